"""Fixtures for the resource store suite: a store per backend, and a real PostgreSQL server.

The server is started once per session from the installed PostgreSQL binaries (``initdb``
and ``pg_ctl`` on PATH or under ``/usr/lib/postgresql/*/bin``) in a temporary directory,
listening on a free loopback port; each test gets a fresh database on it. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` user (a temporary
user is created when there is none).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from openmaker.core.resources import SqlResourceStore

if TYPE_CHECKING:
    import psycopg

REGION = "us-west-2"
ACCOUNT_ID = "123456789012"
_TEMPORARY_USER = "openmaker-pgtest"


@dataclass
class PostgresServer:
    port: int
    user: str = "postgres"  # the superuser initdb created; trust authentication
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    _idle: list[str] = field(default_factory=list)

    def _connect(self, database: str) -> psycopg.Connection:
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                               dbname=database, autocommit=True)

    def acquire_database(self) -> str:
        """An empty database for one test; give it back with :meth:`release_database`."""
        if self._idle:
            return self._idle.pop()
        import psycopg

        name = f"openmaker_test_{next(self._counter)}"
        with self._connect("postgres") as connection:
            try:
                # a linguistic collation where the server has ICU, so that the suite
                # checks the store sorts the same whatever the database's collation
                connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 '
                                   "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
            except psycopg.Error:
                connection.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def release_database(self, name: str) -> None:
        """Empty the database and keep it for the next test (much faster than creating)."""
        import psycopg

        try:
            with self._connect(name) as connection:
                connection.execute("SET lock_timeout = '10s'")  # a leaked session holds locks
                connection.execute("DROP SCHEMA public CASCADE")
                connection.execute("CREATE SCHEMA public")
        except psycopg.Error:
            return  # leave it; the next test gets a new database
        self._idle.append(name)


def _postgres_bin_dir() -> Path | None:
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        directory = Path(pg_ctl).resolve().parent
        if (directory / "initdb").exists():
            return directory
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], run_as: str | None, timeout: float = 60) -> None:
    if run_as is not None:
        if shutil.which("runuser"):
            command = ["runuser", "-u", run_as, "--", *command]
        else:
            import shlex

            command = ["su", run_as, "-s", "/bin/sh", "-c", shlex.join(command)]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=timeout, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}:\n"
                           f"{result.stdout[-2000:]}")


def _server_user() -> tuple[str | None, bool]:
    """(user to run PostgreSQL as, or None for the current user; whether we created it)."""
    if os.geteuid() != 0:
        return None, False
    import pwd

    try:
        pwd.getpwnam("postgres")
        return "postgres", False
    except KeyError:
        pass
    try:
        pwd.getpwnam(_TEMPORARY_USER)
        return _TEMPORARY_USER, False
    except KeyError:
        pass
    if not shutil.which("useradd"):
        pytest.skip("PostgreSQL refuses to run as root and there is no postgres user "
                    "(and no useradd to create one)")
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    _TEMPORARY_USER], check=True, capture_output=True)
    return _TEMPORARY_USER, True


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server private to this test session; skips when none can be started."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg)")
    bin_dir = _postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed: install the postgresql package to run "
                    "these tests (initdb and pg_ctl not found on PATH or under "
                    "/usr/lib/postgresql/*/bin)")
    run_as, created_user = _server_user()
    # not under pytest's tmp_path: its parents are private to root, and the server user
    # must be able to reach the directory
    root = Path(tempfile.mkdtemp(prefix="openmaker-pg-"))
    data_dir, socket_dir, log_file = root / "data", root / "sock", root / "server.log"
    socket_dir.mkdir()
    if run_as is not None:
        shutil.chown(root, run_as)
        shutil.chown(socket_dir, run_as)
    try:
        port = _start_server(bin_dir, data_dir, socket_dir, log_file, run_as)
        yield PostgresServer(port=port)
    finally:
        if (data_dir / "postmaster.pid").exists():
            try:
                _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w",
                      "stop"], run_as)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(root, ignore_errors=True)
        if created_user:
            subprocess.run(["userdel", _TEMPORARY_USER], capture_output=True)


def _start_server(
    bin_dir: Path, data_dir: Path, socket_dir: Path, log_file: Path, run_as: str | None
) -> int:
    """initdb and start the server; its port. Skips the tests when either step fails."""
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "-A", "trust",
              "-E", "UTF8", "--locale=C", "--no-sync"], run_as)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"PostgreSQL server failed to start: initdb failed: {exc}")
    error = ""
    for _attempt in range(3):  # another process may take the free port first
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {socket_dir} "
                   "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
        try:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file),
                  "-w", "-t", "30", "-o", options, "start"], run_as)
            return port
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            error = f"{exc}\n{log}"
    pytest.skip(f"PostgreSQL server failed to start: {error}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'metadata.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.acquire_database()
    yield server.url(name)
    server.release_database(name)


@pytest.fixture
def open_store(database_url: str) -> Iterator[Callable[[], SqlResourceStore]]:
    """Opens more store objects on the same database (another "process")."""
    stores: list[SqlResourceStore] = []

    def open_one() -> SqlResourceStore:
        store = SqlResourceStore(database_url, region=REGION, account_id=ACCOUNT_ID)
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], SqlResourceStore]) -> SqlResourceStore:
    return open_store()
