"""The SQL database every area keeps its tables in: SQLite in WAL mode by default,
PostgreSQL by URL. Each area owns its own tables (DESIGN: areas never touch each other's),
created through :func:`create_schema`, which records the area's schema version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

SQLITE_BUSY_TIMEOUT_SECONDS = 30
WRITE_OPTION = "openmaker_write"  # execution option: SQLite opens with BEGIN IMMEDIATE
_SCHEMA_LOCK_KEY = 0x6F6D5245  # pg advisory lock serialising schema creation ("omRE")

# Binary collation on PostgreSQL so names and statuses sort the way SQLite sorts them,
# whatever locale the cluster was created with.
Key = sa.String().with_variant(sa.String(collation="C"), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER

_versions_metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", _versions_metadata,
    sa.Column("component", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


def make_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError(
                f"database URL {url!r} names an in-memory SQLite database, which separate "
                "connections cannot share; use sqlite:///<path> instead"
            )
        path = Path(database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed.set(database=str(path)),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    if backend in ("postgresql", "postgres"):
        if "+" not in parsed.drivername or backend == "postgres":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ValueError(
        f"database URL {url!r} is not supported: use sqlite:///<path> or "
        "postgresql+psycopg://<user>@<host>/<database>"
    )


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module opens transactions lazily and only before writes; turning that
    # off lets _begin_sqlite_transaction open every transaction itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and
    # an acknowledged write must survive that.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then
    # writes fails with SQLITE_BUSY when another writer got in between, without waiting.
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction (on SQLite it holds the write lock from its start)."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.connect() as connection:
        yield connection


def create_schema(engine: sa.Engine, metadata: sa.MetaData, component: str, version: int) -> int:
    """Create ``metadata``'s tables if missing and record ``component``'s schema version;
    returns the version found before (``version`` for a new database). A database written
    by a newer openmaker is refused."""
    with writing(engine) as connection:
        if engine.dialect.name == "postgresql":
            # two processes creating the tables at once would collide in pg_type
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        _versions_metadata.create_all(connection)
        metadata.create_all(connection)
        found = connection.execute(
            sa.select(schema_version.c.version).where(schema_version.c.component == component)
        ).scalar()
        if found is None:
            connection.execute(schema_version.insert().values(component=component,
                                                              version=version))
            return version
        if found > version:
            url = engine.url.render_as_string(hide_password=True)
            raise RuntimeError(
                f"the database at {url} has {component} schema version {found}, newer than "
                f"this openmaker understands ({version}); upgrade openmaker"
            )
        return found
