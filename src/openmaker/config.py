"""Settings: the home directory, storage, database, server address, identity and auth.

Values come, lowest precedence first, from built-in defaults, ``openmaker.toml`` in the
home directory, and ``OPENMAKER_*`` environment variables. Explicit keyword overrides
(``load_settings(home=..., port=...)``) win over all of them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 7777
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"
CONFIG_FILE_NAME = "openmaker.toml"


class ConfigError(ValueError):
    """A setting has a value openmaker cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    home: Path
    storage_backend: str = "local"  # "local" (a directory in the home) or "s3"
    s3_endpoint_url: str | None = None  # for storage_backend "s3"; None means AWS itself
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    storage_fsync: bool = True  # fsync objects before acknowledging a write
    database_url: str | None = None  # None: SQLite at <home>/metadata.db
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    access_keys: dict[str, str] = field(default_factory=dict)  # access key id -> secret
    max_clock_skew_seconds: int = 900
    max_json_body_bytes: int = 16 * 1024 * 1024
    # Managed spot training: interrupt each spot job's first run after this many seconds of
    # training (None: never), then wait this long for "capacity" (unbilled) before resuming.
    spot_interruption_after_seconds: int | None = None
    spot_capacity_wait_seconds: int = 2
    # Serverless variants stop their instances after this long without a request.
    serverless_idle_seconds: int = 300

    @property
    def auth_enabled(self) -> bool:
        return bool(self.access_keys)

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_info_path(self) -> Path:
        """Where a running server records its address and pid (read by `openmaker status`)."""
        return self.home / "server.json"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'metadata.db'}"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


# setting name -> (environment variable, toml section, toml key, type)
_SOURCES: dict[str, tuple[str, str, str, type]] = {
    "storage_backend": ("OPENMAKER_STORAGE_BACKEND", "storage", "backend", str),
    "s3_endpoint_url": ("OPENMAKER_S3_ENDPOINT_URL", "storage", "s3_endpoint_url", str),
    "s3_region": ("OPENMAKER_S3_REGION", "storage", "s3_region", str),
    "s3_access_key_id": ("OPENMAKER_S3_ACCESS_KEY_ID", "storage", "s3_access_key_id", str),
    "s3_secret_access_key": (
        "OPENMAKER_S3_SECRET_ACCESS_KEY", "storage", "s3_secret_access_key", str,
    ),
    "storage_fsync": ("OPENMAKER_STORAGE_FSYNC", "storage", "fsync", bool),
    "database_url": ("OPENMAKER_DATABASE_URL", "database", "url", str),
    "host": ("OPENMAKER_HOST", "server", "host", str),
    "port": ("OPENMAKER_PORT", "server", "port", int),
    "region": ("OPENMAKER_REGION", "server", "region", str),
    "account_id": ("OPENMAKER_ACCOUNT_ID", "server", "account_id", str),
    "max_clock_skew_seconds": (
        "OPENMAKER_MAX_CLOCK_SKEW_SECONDS", "auth", "max_clock_skew_seconds", int,
    ),
    "spot_interruption_after_seconds": (
        "OPENMAKER_SPOT_INTERRUPTION_AFTER_SECONDS", "training",
        "spot_interruption_after_seconds", int,
    ),
    "spot_capacity_wait_seconds": (
        "OPENMAKER_SPOT_CAPACITY_WAIT_SECONDS", "training", "spot_capacity_wait_seconds", int,
    ),
    "serverless_idle_seconds": (
        "OPENMAKER_SERVERLESS_IDLE_SECONDS", "hosting", "serverless_idle_seconds", int,
    ),
}


def default_home() -> Path:
    return Path(os.environ.get("OPENMAKER_HOME") or Path.home() / ".openmaker").expanduser()


def _convert(name: str, value: object, kind: type, where: str) -> object:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if kind is int:
        # TOML's true and 7777.5 would otherwise pass through int() as 1 and 7777
        if isinstance(value, bool | float):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")
    return value


def _read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for section in ("server", "storage", "database", "auth", "training", "hosting"):
        if not isinstance(document.get(section, {}), dict):
            raise ConfigError(
                f"{path}: {section} must be a table ([{section}] on a line of its own), "
                f"got {document[section]!r}"
            )
    known: dict[str, set[str]] = {"auth": {"access_key_id", "secret_access_key", "keys"}}
    for _, section, key, _ in _SOURCES.values():
        known.setdefault(section, set()).add(key)
    for section, table in document.items():
        if section not in known:
            raise ConfigError(f"{path}: unknown section [{section}]; known sections: "
                              f"{', '.join(sorted(known))}")
        unknown = sorted(set(table) - known[section])
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)} in [{section}]; "
                              f"known: {', '.join(sorted(known[section]))}")
    return document


def load_settings(home: str | os.PathLike | None = None, **overrides: object) -> Settings:
    """Build the settings for ``home`` (default ``$OPENMAKER_HOME`` or ``~/.openmaker``)."""
    home_path = Path(home).expanduser() if home is not None else default_home()
    toml_path = home_path / CONFIG_FILE_NAME
    document = _read_toml(toml_path)
    values: dict[str, object] = {}
    for name, (env_name, section, key, kind) in _SOURCES.items():
        table = document.get(section, {})
        if key in table:
            values[name] = _convert(name, table[key], kind, f"{toml_path} [{section}] {key}")
        if os.environ.get(env_name, "") != "":
            values[name] = _convert(name, os.environ[env_name], kind, env_name)
    values["access_keys"] = _access_keys(document.get("auth", {}), toml_path)
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(home=home_path.resolve(), **values)  # type: ignore[arg-type]
    _check(settings)
    return settings


def _access_keys(auth: dict, toml_path: Path) -> dict[str, str]:
    keys: dict[str, str] = {}
    if auth.get("access_key_id") or auth.get("secret_access_key"):
        if not (auth.get("access_key_id") and auth.get("secret_access_key")):
            raise ConfigError(
                f"{toml_path} [auth] needs both access_key_id and secret_access_key"
            )
        keys[str(auth["access_key_id"])] = str(auth["secret_access_key"])
    entries = auth.get("keys", [])
    if not isinstance(entries, list):
        raise ConfigError(
            f"{toml_path} [auth] keys must be an array of tables, one [[auth.keys]] per key"
        )
    for index, entry in enumerate(entries):
        if not (isinstance(entry, dict) and entry.get("access_key_id")
                and entry.get("secret_access_key")):
            raise ConfigError(
                f"{toml_path} [[auth.keys]] entry {index + 1} needs access_key_id "
                "and secret_access_key"
            )
        keys[str(entry["access_key_id"])] = str(entry["secret_access_key"])
    key_id = os.environ.get("OPENMAKER_ACCESS_KEY_ID", "")
    secret = os.environ.get("OPENMAKER_SECRET_ACCESS_KEY", "")
    if key_id or secret:
        if not (key_id and secret):
            raise ConfigError(
                "OPENMAKER_ACCESS_KEY_ID and OPENMAKER_SECRET_ACCESS_KEY must be set together"
            )
        keys[key_id] = secret
    return keys


def _check(settings: Settings) -> None:
    if settings.storage_backend not in ("local", "s3"):
        raise ConfigError(
            f"storage backend must be 'local' or 's3', got {settings.storage_backend!r} "
            "(OPENMAKER_STORAGE_BACKEND or [storage] backend)"
        )
    if not 0 <= settings.port <= 65535:
        raise ConfigError(
            f"server port must be between 0 and 65535, got {settings.port} "
            "(OPENMAKER_PORT or [server] port)"
        )
    for name in ("spot_interruption_after_seconds", "spot_capacity_wait_seconds",
                 "serverless_idle_seconds"):
        value = getattr(settings, name)
        if value is not None and value < 0:
            env_name, section, key, _ = _SOURCES[name]
            raise ConfigError(f"{key} must be 0 or more seconds, got {value} "
                              f"({env_name} or [{section}] {key})")
    if not (len(settings.account_id) == 12 and settings.account_id.isdigit()):
        raise ConfigError(
            f"account id must be 12 digits, got {settings.account_id!r} (OPENMAKER_ACCOUNT_ID)"
        )


def replace(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with some fields changed (e.g. the port a server bound)."""
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
