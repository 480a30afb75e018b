"""Settings: built-in defaults, then ``openmaker.toml`` in the home, then ``OPENMAKER_*``
variables, then explicit keywords; bad values are ConfigErrors that name the setting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from openmaker import config
from openmaker.config import ConfigError, load_settings

# A value for every setting in config._SOURCES, different from its default, as the file
# would hold it ...
FILE_VALUES: dict[str, object] = {
    "storage_backend": "s3",
    "s3_endpoint_url": "http://minio.internal:9000",
    "s3_region": "eu-west-1",
    "s3_access_key_id": "file-minio-key",
    "s3_secret_access_key": "file-minio-secret",
    "storage_fsync": False,
    "database_url": "postgresql+psycopg://file:pw@db-from-file/openmaker",
    "host": "127.0.0.2",
    "port": 8123,
    "region": "eu-central-1",
    "account_id": "111111111111",
    "max_clock_skew_seconds": 60,
    "spot_interruption_after_seconds": 30,
    "spot_capacity_wait_seconds": 5,
    "serverless_idle_seconds": 600,
}
# ... and a different one again, as an environment variable would hold it.
ENV_VALUES: dict[str, object] = {
    "storage_backend": "local",
    "s3_endpoint_url": "http://minio-from-env:9000",
    "s3_region": "ap-south-1",
    "s3_access_key_id": "env-minio-key",
    "s3_secret_access_key": "env-minio-secret",
    "storage_fsync": True,
    "database_url": "postgresql+psycopg://env:pw@db-from-env/openmaker",
    "host": "127.0.0.3",
    "port": 8124,
    "region": "us-west-2",
    "account_id": "222222222222",
    "max_clock_skew_seconds": 120,
    "spot_interruption_after_seconds": 45,
    "spot_capacity_wait_seconds": 0,
    "serverless_idle_seconds": 30,
}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)  # a TOML basic string for these plain values


def write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / config.CONFIG_FILE_NAME
    path.write_text(text)
    return path


def settings_file(values: dict[str, object]) -> str:
    """An openmaker.toml holding ``values``, each in the section _SOURCES names."""
    sections: dict[str, list[str]] = {}
    for name, value in values.items():
        _, section, key, _ = config._SOURCES[name]
        sections.setdefault(section, []).append(f"{key} = {toml_value(value)}")
    return "\n".join(f"[{section}]\n" + "\n".join(lines) + "\n"
                     for section, lines in sections.items())


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh home, with no OPENMAKER_* variable of the test process leaking in."""
    for name in list(os.environ):
        if name.startswith("OPENMAKER_"):
            monkeypatch.delenv(name)
    return tmp_path / "home"


def test_sample_values_cover_every_setting():
    assert set(FILE_VALUES) == set(config._SOURCES) == set(ENV_VALUES)


def test_defaults_without_file_or_environment(home):
    settings = load_settings(home)
    assert settings.home == home.resolve()
    assert settings.storage_backend == "local"
    assert settings.s3_endpoint_url is None
    assert settings.storage_fsync is True
    assert settings.database_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == config.DEFAULT_PORT == 7777
    assert settings.region == "us-east-1"
    assert settings.account_id == "000000000000"
    assert settings.access_keys == {}
    assert not settings.auth_enabled
    assert settings.max_clock_skew_seconds == 900
    assert settings.url == "http://127.0.0.1:7777"
    assert settings.storage_dir == home.resolve() / "storage"
    assert settings.server_info_path == home.resolve() / "server.json"


def test_default_database_is_sqlite_in_the_home(home):
    settings = load_settings(home)
    assert settings.resolved_database_url == f"sqlite:///{home.resolve() / 'metadata.db'}"


def test_openmaker_home_variable_chooses_the_home(home, monkeypatch):
    monkeypatch.setenv("OPENMAKER_HOME", str(home))
    settings = load_settings()
    assert settings.home == home.resolve()
    assert settings.resolved_database_url == f"sqlite:///{home.resolve() / 'metadata.db'}"


def test_openmaker_home_variable_finds_the_config_file(home, monkeypatch):
    write_config(home, "[server]\nport = 8123\n")
    monkeypatch.setenv("OPENMAKER_HOME", str(home))
    assert load_settings().port == 8123


def test_default_home_is_dot_openmaker_in_the_user_home(home, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings().home == (tmp_path / ".openmaker").resolve()


def test_home_argument_wins_over_openmaker_home_variable(home, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENMAKER_HOME", str(tmp_path / "elsewhere"))
    assert load_settings(home).home == home.resolve()


def test_config_file_sets_every_setting(home):
    write_config(home, settings_file(FILE_VALUES))
    settings = load_settings(home)
    for name, value in FILE_VALUES.items():
        assert getattr(settings, name) == value, name


def test_environment_overrides_the_file_for_every_setting(home, monkeypatch):
    write_config(home, settings_file(FILE_VALUES))
    for name, value in ENV_VALUES.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        monkeypatch.setenv(config._SOURCES[name][0], text)
    settings = load_settings(home)
    for name, value in ENV_VALUES.items():
        assert getattr(settings, name) == value, name


def test_empty_environment_variable_leaves_the_file_value(home, monkeypatch):
    write_config(home, "[server]\nport = 8123\n")
    monkeypatch.setenv("OPENMAKER_PORT", "")
    assert load_settings(home).port == 8123


def test_explicit_keywords_win_over_environment_and_file(home, monkeypatch):
    write_config(home, "[server]\nport = 8123\nhost = \"127.0.0.2\"\n")
    monkeypatch.setenv("OPENMAKER_PORT", "8124")
    monkeypatch.setenv("OPENMAKER_HOST", "127.0.0.3")
    settings = load_settings(home, port=8125, host="127.0.0.4")
    assert (settings.port, settings.host) == (8125, "127.0.0.4")


def test_keyword_given_as_none_leaves_the_lower_sources(home, monkeypatch):
    monkeypatch.setenv("OPENMAKER_PORT", "8124")
    assert load_settings(home, port=None, host=None).port == 8124


@pytest.mark.parametrize(("text", "expected"), [
    ("1", True), ("true", True), ("Yes", True), ("on", True),
    ("0", False), ("false", False), ("NO", False), ("off", False),
])
def test_boolean_setting_spellings_in_the_environment(home, monkeypatch, text, expected):
    monkeypatch.setenv("OPENMAKER_STORAGE_FSYNC", text)
    assert load_settings(home).storage_fsync is expected


def test_single_access_key_in_the_file_turns_auth_on(home):
    write_config(home, '[auth]\naccess_key_id = "AKIAFILE"\nsecret_access_key = "s1"\n')
    settings = load_settings(home)
    assert settings.access_keys == {"AKIAFILE": "s1"}
    assert settings.auth_enabled


def test_access_key_list_in_the_file(home):
    write_config(home, """
[auth]
access_key_id = "AKIAONE"
secret_access_key = "s1"

[[auth.keys]]
access_key_id = "AKIATWO"
secret_access_key = "s2"

[[auth.keys]]
access_key_id = "AKIATHREE"
secret_access_key = "s3"
""")
    assert load_settings(home).access_keys == {"AKIAONE": "s1", "AKIATWO": "s2",
                                              "AKIATHREE": "s3"}


def test_access_key_from_the_environment_joins_the_file_keys(home, monkeypatch):
    write_config(home, '[[auth.keys]]\naccess_key_id = "AKIAFILE"\nsecret_access_key = "s1"\n')
    monkeypatch.setenv("OPENMAKER_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("OPENMAKER_SECRET_ACCESS_KEY", "s2")
    assert load_settings(home).access_keys == {"AKIAFILE": "s1", "AKIAENV": "s2"}


# (openmaker.toml text or None, environment, what the message must name)
BAD_SETTINGS = {
    "port-not-a-number-in-env": (None, {"OPENMAKER_PORT": "abc"}, "OPENMAKER_PORT"),
    "port-not-a-number-in-file": ('[server]\nport = "abc"\n', {}, r"\[server\] port"),
    "port-true-in-file": ("[server]\nport = true\n", {}, r"\[server\] port"),
    "port-fraction-in-file": ("[server]\nport = 7777.5\n", {}, r"\[server\] port"),
    "port-out-of-range": (None, {"OPENMAKER_PORT": "70000"}, "port"),
    "storage-backend-ftp-in-env": (None, {"OPENMAKER_STORAGE_BACKEND": "ftp"},
                                   "storage backend.*'ftp'"),
    "storage-backend-ftp-in-file": ('[storage]\nbackend = "ftp"\n', {}, "storage backend"),
    "fsync-not-a-boolean": (None, {"OPENMAKER_STORAGE_FSYNC": "maybe"},
                            "OPENMAKER_STORAGE_FSYNC"),
    "account-id-too-short-in-env": (None, {"OPENMAKER_ACCOUNT_ID": "123"}, "account id.*'123'"),
    "account-id-too-short-in-file": ('[server]\naccount_id = "123"\n', {}, "account id"),
    "account-id-a-number-in-file": ("[server]\naccount_id = 123456789012\n", {},
                                    r"\[server\] account_id"),
    "key-id-without-secret-in-env": (None, {"OPENMAKER_ACCESS_KEY_ID": "AKIA"},
                                     "OPENMAKER_SECRET_ACCESS_KEY"),
    "secret-without-key-id-in-env": (None, {"OPENMAKER_SECRET_ACCESS_KEY": "s"},
                                     "OPENMAKER_ACCESS_KEY_ID"),
    "key-id-without-secret-in-file": ('[auth]\naccess_key_id = "AKIA"\n', {},
                                      r"\[auth\].*secret_access_key"),
    "key-list-entry-without-secret": ('[[auth.keys]]\naccess_key_id = "AKIA"\n', {},
                                      r"\[\[auth.keys\]\] entry 1"),
    "key-list-as-a-table": ('[auth.keys]\naccess_key_id = "AKIA"\nsecret_access_key = "s"\n',
                            {}, r"\[\[auth.keys\]\]"),
    "invalid-toml": ("[server\nport = 1\n", {}, "openmaker.toml is not valid TOML"),
    "section-not-a-table": ("server = 5\n", {}, "server must be a table"),
}


@pytest.mark.parametrize(("text", "environment", "message"), BAD_SETTINGS.values(),
                         ids=BAD_SETTINGS.keys())
def test_bad_value_raises_config_error_naming_the_setting(home, monkeypatch, text,
                                                          environment, message):
    if text is not None:
        write_config(home, text)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(home)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(("host", "url"), [
    ("127.0.0.1", "http://127.0.0.1:8000"),
    ("0.0.0.0", "http://127.0.0.1:8000"),  # a wildcard address is reached over loopback
    ("::1", "http://[::1]:8000"),
    ("localhost", "http://localhost:8000"),
])
def test_url_is_where_clients_reach_the_server(home, host, url):
    assert load_settings(home, host=host, port=8000).url == url


def test_replace_changes_a_copy(home):
    settings = load_settings(home)
    bound = config.replace(settings, port=43210)
    assert (bound.port, settings.port) == (43210, 7777)
    assert bound.home == settings.home


@pytest.mark.parametrize("text, named", [
    ("[server]\nprot = 7777\n", "prot"),
    ("[storge]\nbackend = 'local'\n", "storge"),
])
def test_unknown_settings_are_refused_by_name(home, text, named):
    write_config(home, text)
    with pytest.raises(ConfigError, match=named):
        load_settings(home)


@pytest.mark.parametrize("name", ["OPENMAKER_SPOT_INTERRUPTION_AFTER_SECONDS",
                                  "OPENMAKER_SPOT_CAPACITY_WAIT_SECONDS"])
def test_negative_spot_seconds_are_refused_by_name(home, monkeypatch, name):
    monkeypatch.setenv(name, "-1")
    with pytest.raises(ConfigError, match=name):
        load_settings(home)
