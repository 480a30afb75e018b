"""The resource store: every resource's Describe-shaped record, status, times and tags.

Every area (training jobs, models, endpoints ...) keeps its resources here through one
small interface, :class:`ResourceStore`. :class:`SqlResourceStore` implements it on
SQLite (the default, ``<home>/metadata.db``) and PostgreSQL (``postgresql+psycopg://``);
one test suite runs against both. :func:`open_resource_store` picks it from settings.

Behaviours callers can rely on:

* Names are unique per resource type, ignoring case, because SageMaker puts the
  lower-cased name in ARNs (``MyModel`` and ``mymodel`` would share an ARN). This is a
  chosen behaviour; AWS does not document it.
* Every acknowledged write is committed (SQLite: WAL with ``synchronous=FULL``).
  Concurrent creates of one name from threads or processes: exactly one wins, the rest
  get ``ResourceInUse``; the unique index decides, not a read-then-write check.
* ``update(..., mutate=f)`` is an atomic read-modify-write (``SELECT ... FOR UPDATE`` on
  PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so job runners lose no updates.
* Listing filters and sorts in SQL and pages by keyset (the last row's sort key and
  name), so pages stay stable while rows are inserted; ``NextToken`` is bound to its
  query.
* Datetimes inside records come back as timezone-aware UTC ``datetime`` objects (stored
  tagged as ``{"__datetime__": "<ISO 8601>"}``); naive datetimes are taken to be UTC.

Errors: :class:`ResourceNotFoundError` (internal; callers raise their own AWS error),
``ResourceInUse``, ``ConflictException``, ``ResourceLimitExceeded`` and
``ValidationException`` (bad pagination tokens) from :mod:`openmaker.core.errors`.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from openmaker.config import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from openmaker.core.arns import make_arn
from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.errors import (
    ConflictException,
    ResourceInUse,
    ResourceLimitExceeded,
    ValidationException,
)

if TYPE_CHECKING:
    from openmaker.config import Settings

SCHEMA_VERSION = 1
MAX_TAGS_PER_RESOURCE = 50
DEFAULT_MAX_RESULTS = 100
DEFAULT_TAG_MAX_RESULTS = 50
SORT_KEYS = ("Name", "CreationTime", "Status", "LastModifiedTime")
SORT_ORDERS = ("Ascending", "Descending")

Record = dict[str, Any]
Tag = dict[str, str]
# What ``update(mutate=...)`` callables return: the new record, the new record and the
# new status, or None when they changed the record they were given in place.
MutateResult = Record | tuple[Record, str | None] | None


class ResourceNotFoundError(LookupError):
    """No resource has this type and name (or this ARN); callers raise their AWS error."""

    def __init__(
        self, message: str, *, resource_type: str | None = None, name: str | None = None,
        arn: str | None = None,
    ) -> None:
        super().__init__(message)
        self.resource_type = resource_type
        self.name = name
        self.arn = arn


@dataclass(frozen=True)
class Resource:
    """One stored resource. Times are timezone-aware UTC with microsecond precision."""

    resource_type: str  # the ARN resource type: "training-job", "model", "endpoint" ...
    name: str  # as the caller spelled it
    arn: str
    status: str | None
    creation_time: datetime
    last_modified_time: datetime
    record: Record  # the Describe-shaped document
    version: int  # starts at 1, +1 on every update; for optimistic concurrency


@dataclass(frozen=True)
class ListQuery:
    """The common SageMaker List parameters; ``None`` means "not given".

    Time filters are strict (``creation_time_after`` keeps times > the value), as in
    SageMaker. ``record_filters`` keeps resources whose top-level record field equals the
    value (str, int, float, bool, or None for "absent or null").
    """

    name_contains: str | None = None  # case-insensitive substring
    status_equals: str | None = None
    creation_time_after: datetime | None = None
    creation_time_before: datetime | None = None
    last_modified_time_after: datetime | None = None
    last_modified_time_before: datetime | None = None
    sort_by: str | None = None  # one of SORT_KEYS; default CreationTime
    sort_order: str | None = None  # Ascending or Descending; default Descending
    max_results: int | None = None  # default 100; the API layer enforces 1-100
    next_token: str | None = None
    record_filters: Mapping[str, object] = field(default_factory=dict)


class ResourceStore(abc.ABC):
    """Resources of every type, addressed by (type, name) or ARN, with their tags."""

    region: str
    account_id: str

    @abc.abstractmethod
    def create(
        self, resource_type: str, name: str, record: Record, *, status: str | None = None,
        tags: Iterable[Mapping[str, str]] | None = None, arn: str | None = None,
        creation_time: datetime | None = None, conflict_error: Exception | None = None,
    ) -> Resource:
        """Store a new resource; raise ``conflict_error`` (default ``ResourceInUse``) when
        the name (ignoring case) or the ARN is taken. ``arn`` defaults to the SageMaker
        ARN with the lower-cased name; ``creation_time`` to now."""

    @abc.abstractmethod
    def get(self, resource_type: str, name: str) -> Resource:
        """The resource, by name ignoring case; ``ResourceNotFoundError`` when absent."""

    @abc.abstractmethod
    def get_by_arn(self, arn: str) -> Resource:
        """The resource with exactly this ARN; ``ResourceNotFoundError`` when absent."""

    @abc.abstractmethod
    def update(
        self, resource_type: str, name: str, *, record: Record | None = None,
        status: str | None = None, expected_version: int | None = None,
        mutate: Callable[[Record], MutateResult] | None = None,
    ) -> Resource:
        """Replace the record and/or status in one transaction; bump the version and
        last-modified time. ``None`` leaves a field unchanged.

        ``mutate`` receives the current record (a private copy) while the row is locked
        and returns the new record, ``(record, status)``, or None after changing it in
        place; an exception it raises aborts the update. Keep it quick: on SQLite it runs
        holding the database's write lock. ``expected_version`` that differs from the
        stored version raises ``ConflictException``.
        """

    @abc.abstractmethod
    def delete(self, resource_type: str, name: str) -> None:
        """Delete the resource and its tags; ``ResourceNotFoundError`` when absent."""

    @abc.abstractmethod
    def list(self, resource_type: str, query: ListQuery) -> tuple[list[Resource], str | None]:
        """One page of resources and the token for the next (None on the last page)."""

    @abc.abstractmethod
    def add_tags(self, arn: str, tags: Iterable[Mapping[str, str]]) -> None:
        """Add tags or overwrite their values by key; at most 50 per resource."""

    @abc.abstractmethod
    def list_tags(
        self, arn: str, *, max_results: int | None = None, next_token: str | None = None
    ) -> tuple[list[Tag], str | None]:
        """One page of ``{"Key", "Value"}`` tags in the order they were first added."""

    @abc.abstractmethod
    def delete_tags(self, arn: str, keys: Iterable[str]) -> None:
        """Remove the tags with these keys; keys the resource lacks are ignored."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    def exists(self, resource_type: str, name: str) -> bool:
        """Whether a resource of this type has this name (ignoring case)."""
        try:
            self.get(resource_type, name)
        except ResourceNotFoundError:
            return False
        return True

    def __enter__(self) -> ResourceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- schema ------------------------------------------------------------------------------

# Binary collation on PostgreSQL so names and statuses sort the way SQLite sorts them,
# whatever locale the cluster was created with.

_metadata = sa.MetaData()


# Times are integer microseconds since the epoch: exact, and they compare and sort alike
# on both databases (SQLite has no timestamp type), which keeps keyset tokens exact.
_resources = sa.Table(
    "resources", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("resource_type", Key, nullable=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("name_key", Key, nullable=False),  # lower-cased name: uniqueness and sorting
    sa.Column("arn", sa.String(), nullable=False),
    # "" stands for no status, so that keyset comparisons never meet NULL
    sa.Column("status", Key, nullable=False),
    sa.Column("creation_time_us", sa.BigInteger, nullable=False),
    sa.Column("last_modified_time_us", sa.BigInteger, nullable=False),
    sa.Column("record", sa.JSON(), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ux_resources_type_name", "resource_type", "name_key", unique=True),
    sa.Index("ux_resources_arn", "arn", unique=True),
    sa.Index("ix_resources_type_created", "resource_type", "creation_time_us", "name_key"),
    sa.Index("ix_resources_type_modified", "resource_type", "last_modified_time_us",
             "name_key"),
    sa.Index("ix_resources_type_status", "resource_type", "status", "name_key"),
)

_tags = sa.Table(
    "resource_tags", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),  # keeps insertion order
    sa.Column("resource_id", Id, sa.ForeignKey("resources.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("key", sa.String(), nullable=False),
    sa.Column("value", sa.String(), nullable=False),
    sa.Index("ux_resource_tags_key", "resource_id", "key", unique=True),
)

_COMPONENT = "resources"


# --- values ------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DATETIME_TAG = "__datetime__"
_RECORD_FIELD = re.compile(r"[A-Za-z0-9_]+")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _to_us(value: datetime) -> int:
    return (_utc(value) - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def _now() -> datetime:
    return datetime.now(UTC)


def _encode(value: Any, path: str) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: _utc(value).isoformat()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"record field {path} has a non-string key {key!r}")
            encoded[key] = _encode(item, f"{path}.{key}")
        return encoded
    if isinstance(value, list | tuple):
        return [_encode(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise TypeError(
        f"record field {path} holds a {type(value).__name__}, which the resource store "
        "cannot keep (use str, int, float, bool, None, datetime, dict or list)"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_DATETIME_TAG), str):
            return datetime.fromisoformat(value[_DATETIME_TAG])
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _encode_record(record: Mapping[str, Any]) -> Record:
    if not isinstance(record, Mapping):
        raise TypeError(f"a resource record must be a dict, got {type(record).__name__}")
    return _encode(record, "record")


def _normalise_tags(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    merged: dict[str, str] = {}  # later tags with the same key win, as in AddTags
    for tag in tags or ():
        key = tag.get("Key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"a tag needs a non-empty string Key, got {tag!r}")
        value = tag.get("Value", "")
        if not isinstance(value, str):
            raise ValueError(f"tag {key!r} needs a string Value, got {value!r}")
        merged[key] = value
    return merged


def _tag_limit_error(arn: str, count: int) -> Exception:
    return ResourceLimitExceeded(
        f"You have exceeded the maximum number of tags ({MAX_TAGS_PER_RESOURCE}) for "
        f"resource {arn}: the request would leave it with {count} tags. "
        "Delete tags before adding new ones."
    )


# --- pagination tokens -------------------------------------------------------------------

_CHECK_CHARS = 12


def _fingerprint(document: object) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_token(kind: str, binding: str, position: list[Any]) -> str:
    payload = json.dumps([kind, binding, position], separators=(",", ":"))
    check = hashlib.sha256(payload.encode()).hexdigest()[:_CHECK_CHARS]
    return base64.urlsafe_b64encode((check + payload).encode()).decode().rstrip("=")


def _decode_token(token: str, kind: str, binding: str) -> list[Any]:
    garbled = ValidationException(
        "Invalid pagination token: NextToken is not one this service returned; "
        "repeat the request without NextToken to start from the first page."
    )
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        check, payload = raw[:_CHECK_CHARS], raw[_CHECK_CHARS:]
        if hashlib.sha256(payload.encode()).hexdigest()[:_CHECK_CHARS] != check:
            raise garbled
        parsed = json.loads(payload)
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise garbled from None
    if not (isinstance(parsed, list) and len(parsed) == 3 and parsed[0] == kind
            and isinstance(parsed[2], list)):
        raise garbled
    if parsed[1] != binding:
        raise ValidationException(
            "Invalid pagination token: NextToken was returned for a request with "
            "different filters or sort order; repeat the original request's parameters "
            "with it, or start again without NextToken."
        )
    return parsed[2]


# --- the SQL store -----------------------------------------------------------------------


class SqlResourceStore(ResourceStore):
    """The resource store on SQLite (``sqlite:///<path>``) or PostgreSQL
    (``postgresql+psycopg://...``; plain ``postgresql://`` means psycopg too)."""

    def __init__(
        self, url: str, *, region: str = DEFAULT_REGION, account_id: str = DEFAULT_ACCOUNT_ID
    ) -> None:
        self.region = region
        self.account_id = account_id
        self._engine = make_engine(url)
        self._dialect = self._engine.dialect.name
        try:
            self._initialise_schema()
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"SqlResourceStore({self.url!r})"

    # -- connections ----------------------------------------------------------------------

    def _writing(self):
        return writing(self._engine)

    def _reading(self):
        return reading(self._engine)

    def _initialise_schema(self) -> None:
        # Migrations from older schema versions go here, keyed on the version found.
        create_schema(self._engine, _metadata, _COMPONENT, SCHEMA_VERSION)

    def close(self) -> None:
        self._engine.dispose()

    # -- rows -----------------------------------------------------------------------------

    @staticmethod
    def _resource(row: sa.Row) -> Resource:
        return Resource(
            resource_type=row.resource_type,
            name=row.name,
            arn=row.arn,
            status=row.status or None,
            creation_time=_from_us(row.creation_time_us),
            last_modified_time=_from_us(row.last_modified_time_us),
            record=_decode(row.record),
            version=row.version,
        )

    @staticmethod
    def _by_name(resource_type: str, name: str) -> sa.ColumnElement[bool]:
        return sa.and_(_resources.c.resource_type == resource_type,
                       _resources.c.name_key == name.lower())

    @staticmethod
    def _not_found(resource_type: str, name: str) -> ResourceNotFoundError:
        return ResourceNotFoundError(
            f"{resource_type} {name} does not exist", resource_type=resource_type, name=name
        )

    @staticmethod
    def _arn_not_found(arn: str) -> ResourceNotFoundError:
        return ResourceNotFoundError(f"no resource has the ARN {arn}", arn=arn)

    # -- resources ------------------------------------------------------------------------

    def create(
        self, resource_type: str, name: str, record: Record, *, status: str | None = None,
        tags: Iterable[Mapping[str, str]] | None = None, arn: str | None = None,
        creation_time: datetime | None = None, conflict_error: Exception | None = None,
    ) -> Resource:
        if not resource_type or not name:
            raise ValueError("a resource needs a non-empty type and name")
        arn = arn or make_arn(resource_type, name, region=self.region,
                              account_id=self.account_id)
        encoded = _encode_record(record)
        tag_values = _normalise_tags(tags)
        if len(tag_values) > MAX_TAGS_PER_RESOURCE:
            raise _tag_limit_error(arn, len(tag_values))
        created_us = _to_us(creation_time or _now())
        try:
            with self._writing() as connection:
                result = connection.execute(_resources.insert().values(
                    resource_type=resource_type, name=name, name_key=name.lower(), arn=arn,
                    status=status or "", creation_time_us=created_us,
                    last_modified_time_us=created_us, record=encoded, version=1,
                ))
                resource_id = result.inserted_primary_key[0]
                if tag_values:
                    connection.execute(_tags.insert(), [
                        {"resource_id": resource_id, "key": key, "value": value}
                        for key, value in tag_values.items()
                    ])
        except sa.exc.IntegrityError:
            if conflict_error is not None:
                raise conflict_error from None
            raise ResourceInUse(
                f"Cannot create {resource_type} {name}: one with this name already exists "
                "(names are unique per account and region, ignoring case)"
            ) from None
        return Resource(resource_type, name, arn, status or None, _from_us(created_us),
                        _from_us(created_us), _decode(encoded), 1)

    def get(self, resource_type: str, name: str) -> Resource:
        with self._reading() as connection:
            row = connection.execute(
                sa.select(_resources).where(self._by_name(resource_type, name))
            ).first()
        if row is None:
            raise self._not_found(resource_type, name)
        return self._resource(row)

    def get_by_arn(self, arn: str) -> Resource:
        with self._reading() as connection:
            row = connection.execute(
                sa.select(_resources).where(_resources.c.arn == arn)
            ).first()
        if row is None:
            raise self._arn_not_found(arn)
        return self._resource(row)

    def update(
        self, resource_type: str, name: str, *, record: Record | None = None,
        status: str | None = None, expected_version: int | None = None,
        mutate: Callable[[Record], MutateResult] | None = None,
    ) -> Resource:
        if record is not None and mutate is not None:
            raise ValueError("pass either record or mutate to update, not both")
        encoded = _encode_record(record) if record is not None else None
        with self._writing() as connection:
            row = connection.execute(
                sa.select(_resources).where(self._by_name(resource_type, name))
                .with_for_update()
            ).first()
            if row is None:
                raise self._not_found(resource_type, name)
            if expected_version is not None and row.version != expected_version:
                raise ConflictException(
                    f"{resource_type} {row.name} was changed by another request (version "
                    f"{row.version}, expected {expected_version}); read it again and retry"
                )
            new_status = status
            if mutate is not None:
                current = _decode(row.record)
                result = mutate(current)
                if isinstance(result, tuple):
                    result, mutated_status = result
                    if mutated_status is not None:
                        new_status = mutated_status
                encoded = _encode_record(current if result is None else result)
            values: dict[str, Any] = {
                "version": row.version + 1,
                "last_modified_time_us": _to_us(_now()),
            }
            if encoded is not None:
                values["record"] = encoded
            if new_status is not None:
                values["status"] = new_status
            connection.execute(
                _resources.update()
                .where(_resources.c.id == row.id, _resources.c.version == row.version)
                .values(**values)
            )
            updated = connection.execute(
                sa.select(_resources).where(_resources.c.id == row.id)
            ).one()
        return self._resource(updated)

    def delete(self, resource_type: str, name: str) -> None:
        with self._writing() as connection:
            resource_id = connection.execute(
                sa.select(_resources.c.id).where(self._by_name(resource_type, name))
                .with_for_update()
            ).scalar()
            if resource_id is None:
                raise self._not_found(resource_type, name)
            connection.execute(_tags.delete().where(_tags.c.resource_id == resource_id))
            connection.execute(_resources.delete().where(_resources.c.id == resource_id))

    # -- listing --------------------------------------------------------------------------

    def _record_field_equals(self, key: str, value: object) -> sa.ColumnElement[bool]:
        if not _RECORD_FIELD.fullmatch(key):
            raise ValueError(f"record filter field {key!r} must be a top-level field name")
        column = _resources.c.record
        if self._dialect == "postgresql":
            kind = sa.func.json_typeof(column[key])  # string, number, boolean, null
            text = column[key].as_string()
            is_string, is_number = kind == "string", kind == "number"
            is_true = sa.and_(kind == "boolean", text == "true")
            is_false = sa.and_(kind == "boolean", text == "false")
        else:
            path = f'$."{key}"'
            kind = sa.func.json_type(column, path)  # text, integer, real, true, false, null
            text = sa.func.json_extract(column, path)
            is_string, is_number = kind == "text", kind.in_(("integer", "real"))
            is_true, is_false = kind == "true", kind == "false"
        if value is None:  # absent (json type NULL) or JSON null
            return sa.or_(kind.is_(None), kind == "null")
        if isinstance(value, bool):
            return is_true if value else is_false
        if isinstance(value, str):
            return sa.and_(is_string, text == value)
        if isinstance(value, int | float):
            # CASE guards the cast: PostgreSQL may evaluate AND operands in any order
            return sa.case((is_number, sa.cast(text, sa.Numeric)), else_=None) == value
        raise TypeError(
            f"record filter {key!r} compares with a {type(value).__name__}; "
            "use str, int, float, bool or None"
        )

    def list(self, resource_type: str, query: ListQuery) -> tuple[list[Resource], str | None]:
        sort_by = query.sort_by or "CreationTime"
        sort_order = query.sort_order or "Descending"
        if sort_by not in SORT_KEYS:
            raise ValidationException(
                f"SortBy must be one of {', '.join(SORT_KEYS)}, got {sort_by!r}"
            )
        if sort_order not in SORT_ORDERS:
            raise ValidationException(
                f"SortOrder must be Ascending or Descending, got {sort_order!r}"
            )
        limit = DEFAULT_MAX_RESULTS if query.max_results is None else query.max_results
        if limit < 1:
            raise ValueError(f"max_results must be at least 1, got {limit}")

        table = _resources.c
        conditions: list[sa.ColumnElement[bool]] = [table.resource_type == resource_type]
        if query.name_contains:
            conditions.append(table.name_key.contains(query.name_contains.lower(),
                                                      autoescape=True))
        if query.status_equals is not None:
            conditions.append(table.status == query.status_equals)
        time_filters = [
            (table.creation_time_us, query.creation_time_after, query.creation_time_before),
            (table.last_modified_time_us, query.last_modified_time_after,
             query.last_modified_time_before),
        ]
        bounds: list[int | None] = []
        for column, after, before in time_filters:
            for bound, strictly in ((after, column.__gt__), (before, column.__lt__)):
                bounds.append(None if bound is None else _to_us(bound))
                if bound is not None:
                    conditions.append(strictly(_to_us(bound)))
        for key, value in sorted(query.record_filters.items()):
            conditions.append(self._record_field_equals(key, value))

        primary = {"Name": None, "CreationTime": table.creation_time_us,
                   "Status": table.status, "LastModifiedTime": table.last_modified_time_us}
        keys = [table.name_key] if primary[sort_by] is None else [primary[sort_by],
                                                                  table.name_key]
        descending = sort_order == "Descending"
        binding = _fingerprint({
            "type": resource_type,
            "name_contains": (query.name_contains or "").lower(),
            "status_equals": query.status_equals,
            "times": bounds,
            "sort": [sort_by, sort_order],
            "record_filters": sorted([k, v] for k, v in query.record_filters.items()),
        })
        if query.next_token is not None:
            position = _decode_token(query.next_token, "resources", binding)
            conditions.append(self._after(keys, position, descending))

        statement = (
            sa.select(_resources).where(*conditions)
            .order_by(*[key.desc() if descending else key.asc() for key in keys])
            .limit(limit + 1)
        )
        with self._reading() as connection:
            rows = connection.execute(statement).all()
        next_token = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_token = _encode_token(
                "resources", binding, [getattr(last, key.name) for key in keys]
            )
        return [self._resource(row) for row in rows], next_token

    @staticmethod
    def _after(
        keys: list[sa.Column], position: list[Any], descending: bool
    ) -> sa.ColumnElement[bool]:
        """Rows strictly past ``position`` in the (primary, name) sort order."""
        expected = [int if key.name.endswith("_us") else str for key in keys]
        if len(position) != len(keys) or not all(
            type(value) is kind for value, kind in zip(position, expected, strict=False)
        ):
            raise ValidationException(
                "Invalid pagination token: NextToken is not one this service returned; "
                "repeat the request without NextToken to start from the first page."
            )
        past = [key < value if descending else key > value
                for key, value in zip(keys, position, strict=True)]
        if len(keys) == 1:
            return past[0]
        return sa.or_(past[0], sa.and_(keys[0] == position[0], past[1]))

    # -- tags -----------------------------------------------------------------------------

    def _locked_resource_id(self, connection: sa.Connection, arn: str) -> int:
        resource_id = connection.execute(
            sa.select(_resources.c.id).where(_resources.c.arn == arn).with_for_update()
        ).scalar()
        if resource_id is None:
            raise self._arn_not_found(arn)
        return resource_id

    def add_tags(self, arn: str, tags: Iterable[Mapping[str, str]]) -> None:
        wanted = _normalise_tags(tags)
        with self._writing() as connection:
            resource_id = self._locked_resource_id(connection, arn)
            existing = set(connection.execute(
                sa.select(_tags.c.key).where(_tags.c.resource_id == resource_id)
            ).scalars())
            total = len(existing | wanted.keys())
            if total > MAX_TAGS_PER_RESOURCE:
                raise _tag_limit_error(arn, total)
            for key, value in wanted.items():
                if key in existing:
                    connection.execute(
                        _tags.update()
                        .where(_tags.c.resource_id == resource_id, _tags.c.key == key)
                        .values(value=value)
                    )
            new = [{"resource_id": resource_id, "key": key, "value": value}
                   for key, value in wanted.items() if key not in existing]
            if new:
                connection.execute(_tags.insert(), new)

    def list_tags(
        self, arn: str, *, max_results: int | None = None, next_token: str | None = None
    ) -> tuple[list[Tag], str | None]:
        limit = DEFAULT_TAG_MAX_RESULTS if max_results is None else max_results
        if limit < 1:
            raise ValueError(f"max_results must be at least 1, got {limit}")
        binding = _fingerprint({"arn": arn})
        statement = sa.select(_tags.c.id, _tags.c.key, _tags.c.value)
        if next_token is not None:
            position = _decode_token(next_token, "tags", binding)
            if len(position) != 1 or type(position[0]) is not int:
                raise ValidationException("Invalid pagination token: NextToken is malformed.")
            statement = statement.where(_tags.c.id > position[0])
        with self._reading() as connection:
            resource_id = connection.execute(
                sa.select(_resources.c.id).where(_resources.c.arn == arn)
            ).scalar()
            if resource_id is None:
                raise self._arn_not_found(arn)
            rows = connection.execute(
                statement.where(_tags.c.resource_id == resource_id)
                .order_by(_tags.c.id).limit(limit + 1)
            ).all()
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = _encode_token("tags", binding, [rows[-1].id])
        return [{"Key": row.key, "Value": row.value} for row in rows], token

    def delete_tags(self, arn: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        with self._writing() as connection:
            resource_id = self._locked_resource_id(connection, arn)
            if keys:
                connection.execute(
                    _tags.delete()
                    .where(_tags.c.resource_id == resource_id, _tags.c.key.in_(keys))
                )


def open_resource_store(settings: Settings) -> ResourceStore:
    """The resource store for ``settings`` (its database URL, region and account)."""
    return SqlResourceStore(
        settings.resolved_database_url, region=settings.region, account_id=settings.account_id
    )
