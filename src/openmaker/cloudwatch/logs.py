"""CloudWatch Logs: log groups, log streams and their events, kept in the platform's
database, and served through the Logs API (AWS JSON 1.1, ``Logs_20140328.<Operation>``).

Jobs and model servers write their output here (``/aws/sagemaker/TrainingJobs`` and
friends) with :meth:`LogStore.append`; SDKs read it back with ``DescribeLogStreams``,
``GetLogEvents`` and ``FilterLogEvents``, the way they tail SageMaker logs.

Times are epoch milliseconds, as in the API. ``FilterLogEvents`` understands CloudWatch's
filter patterns for unstructured text — terms (all must occur), ``"quoted phrases"``,
``?term`` alternatives and ``-term`` exclusions, matched case-sensitively; JSON
(``{ $.x = 1 }``) and space-delimited (``[a, b]``) patterns are refused with
``InvalidParameterException`` rather than answered wrongly.
"""

from __future__ import annotations

import base64
import binascii
import json
import shlex
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from openmaker.core import errors
from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import RequestContext

SCHEMA_VERSION = 1
EVENT_OVERHEAD_BYTES = 26  # what PutLogEvents counts per event on top of its message
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_SPAN_MS = 24 * 3600 * 1000
MAX_AGE_MS = 14 * 24 * 3600 * 1000  # older events are rejected (tooOldLogEventEndIndex)
MAX_AHEAD_MS = 2 * 3600 * 1000  # events further ahead are rejected (tooNewLogEventStartIndex)
MAX_EVENTS_PER_PAGE = 10_000
MAX_BYTES_PER_PAGE = 1_048_576

_metadata = sa.MetaData()
_groups = sa.Table(
    "log_groups", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", Key, nullable=False, unique=True),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("retention_days", sa.Integer),
    sa.Column("kms_key_id", sa.String),
    sa.Column("log_group_class", sa.String, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
)
_streams = sa.Table(
    "log_streams", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("group_id", Id, sa.ForeignKey("log_groups.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("name", Key, nullable=False),
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.Column("first_event_timestamp", sa.BigInteger),
    sa.Column("last_event_timestamp", sa.BigInteger),
    sa.Column("last_ingestion_time", sa.BigInteger),
    sa.Column("stored_bytes", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("group_id", "name"),
)
_events = sa.Table(
    "log_events", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("stream_id", Id, sa.ForeignKey("log_streams.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("ingestion_time", sa.BigInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("log_events_by_time", "stream_id", "timestamp", "id"),
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _missing_group(name: str) -> errors.AwsError:
    return errors.ResourceNotFoundException("The specified log group does not exist.",
                                            _name=name)


def _missing_stream(name: str) -> errors.AwsError:
    return errors.ResourceNotFoundException("The specified log stream does not exist.",
                                            _name=name)


def _encode_token(kind: str, position: list) -> str:
    raw = json.dumps([kind, *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, kind: str) -> list:
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, list) or not value or value[0] != kind:
        raise errors.InvalidParameterException(f"The specified nextToken is invalid: {token!r}")
    return value[1:]


# Event tokens follow CloudWatch's visible shape, f/<position> and b/<position>.
def _event_token(direction: str, timestamp: int, event_id: int) -> str:
    return f"{direction}/{timestamp:020d}{event_id:020d}"


def _parse_event_token(token: str) -> tuple[str, int, int]:
    direction, _, digits = token.partition("/")
    if direction not in ("f", "b") or len(digits) != 40 or not digits.isdigit():
        raise errors.InvalidParameterException(f"The specified nextToken is invalid: {token!r}")
    return direction, int(digits[:20]), int(digits[20:])


@dataclass(frozen=True)
class FilterPattern:
    """A parsed unstructured-text filter pattern."""

    required: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FilterPattern:
        text = (text or "").strip()
        if not text:
            return cls()
        if text.startswith(("{", "[")):
            raise errors.InvalidParameterException(
                "filterPattern: JSON ({ $.field ... }) and space-delimited ([a, b ...]) "
                "patterns are not implemented by openmaker; use terms, \"quoted phrases\", "
                "?alternatives and -exclusions"
            )
        try:
            words = shlex.split(text, posix=True)
        except ValueError as exc:
            raise errors.InvalidParameterException(f"filterPattern {text!r}: {exc}") from None
        required, alternatives, excluded = [], [], []
        for word in words:
            if word.startswith("?") and len(word) > 1:
                alternatives.append(word[1:])
            elif word.startswith("-") and len(word) > 1:
                excluded.append(word[1:])
            else:
                required.append(word)
        return cls(tuple(required), tuple(alternatives), tuple(excluded))

    def matches(self, message: str) -> bool:
        if any(term in message for term in self.excluded):
            return False
        if not all(term in message for term in self.required):
            return False
        return not self.alternatives or any(term in message for term in self.alternatives)


class LogStore:
    """Log groups, streams and events in the platform's database."""

    def __init__(self, url: str, region: str, account_id: str) -> None:
        self._engine = make_engine(url)
        self.region = region
        self.account_id = account_id
        create_schema(self._engine, _metadata, "cloudwatch-logs", SCHEMA_VERSION)
        self._append_lock = threading.Lock()

    def close(self) -> None:
        self._engine.dispose()

    def group_arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}"

    # -- groups ---------------------------------------------------------------------------
    def create_group(self, name: str, *, tags: dict[str, str] | None = None,
                     kms_key_id: str | None = None, log_group_class: str = "STANDARD") -> None:
        try:
            with writing(self._engine) as connection:
                connection.execute(_groups.insert().values(
                    name=name, creation_time=now_ms(), kms_key_id=kms_key_id,
                    log_group_class=log_group_class, tags=json.dumps(tags or {}),
                ))
        except sa.exc.IntegrityError:
            raise errors.ResourceAlreadyExistsException(
                "The specified log group already exists"
            ) from None

    def delete_group(self, name: str) -> None:
        with writing(self._engine) as connection:
            group_id = self._group_id(connection, name)
            stream_ids = sa.select(_streams.c.id).where(_streams.c.group_id == group_id)
            connection.execute(_events.delete().where(_events.c.stream_id.in_(stream_ids)))
            connection.execute(_streams.delete().where(_streams.c.group_id == group_id))
            connection.execute(_groups.delete().where(_groups.c.id == group_id))

    def describe_groups(self, prefix: str = "", limit: int = 50,
                        token: str | None = None) -> tuple[list[dict], str | None]:
        query = sa.select(_groups).order_by(_groups.c.name).limit(limit + 1)
        if prefix:
            query = query.where(_groups.c.name.startswith(prefix, autoescape=True))
        if token:
            (after,) = _decode_token(token, "groups")
            query = query.where(_groups.c.name > after)
        with reading(self._engine) as connection:
            rows = connection.execute(query).all()
            sizes = dict(connection.execute(
                sa.select(_streams.c.group_id, sa.func.sum(_streams.c.stored_bytes))
                .group_by(_streams.c.group_id)
            ).all())
        more = len(rows) > limit
        rows = rows[:limit]
        groups = [{
            "logGroupName": row.name, "creationTime": row.creation_time,
            "retentionInDays": row.retention_days, "metricFilterCount": 0,
            "arn": self.group_arn(row.name) + ":*", "logGroupArn": self.group_arn(row.name),
            "storedBytes": int(sizes.get(row.id) or 0), "kmsKeyId": row.kms_key_id,
            "logGroupClass": row.log_group_class,
        } for row in rows]
        return groups, _encode_token("groups", [rows[-1].name]) if more else None

    # -- streams --------------------------------------------------------------------------
    def create_stream(self, group: str, name: str) -> None:
        try:
            with writing(self._engine) as connection:
                group_id = self._group_id(connection, group)
                connection.execute(_streams.insert().values(
                    group_id=group_id, name=name, creation_time=now_ms(), stored_bytes=0
                ))
        except sa.exc.IntegrityError:
            raise errors.ResourceAlreadyExistsException(
                "The specified log stream already exists"
            ) from None

    def delete_stream(self, group: str, name: str) -> None:
        with writing(self._engine) as connection:
            stream_id = self._stream_id(connection, group, name)
            connection.execute(_events.delete().where(_events.c.stream_id == stream_id))
            connection.execute(_streams.delete().where(_streams.c.id == stream_id))

    def describe_streams(
        self, group: str, *, prefix: str = "", order_by: str = "LogStreamName",
        descending: bool = False, limit: int = 50, token: str | None = None,
    ) -> tuple[list[dict], str | None]:
        if order_by == "LastEventTime" and prefix:
            raise errors.InvalidParameterException(
                "Cannot order by LastEventTime with a logStreamNamePrefix."
            )
        by_time = order_by == "LastEventTime"
        last = sa.func.coalesce(_streams.c.last_event_timestamp, 0)
        keys = (last, _streams.c.name) if by_time else (_streams.c.name,)
        with reading(self._engine) as connection:
            group_id = self._group_id(connection, group)
            query = sa.select(_streams).where(_streams.c.group_id == group_id)
            if prefix:
                query = query.where(_streams.c.name.startswith(prefix, autoescape=True))
            if token:
                position = _decode_token(token, "streams")
                compare = sa.tuple_(*keys) < sa.tuple_(*position) if descending else \
                    sa.tuple_(*keys) > sa.tuple_(*position)
                query = query.where(compare)
            order = [k.desc() if descending else k.asc() for k in keys]
            rows = connection.execute(query.order_by(*order).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        streams = [{
            "logStreamName": row.name, "creationTime": row.creation_time,
            "firstEventTimestamp": row.first_event_timestamp,
            "lastEventTimestamp": row.last_event_timestamp,
            "lastIngestionTime": row.last_ingestion_time,
            "uploadSequenceToken": "0", "storedBytes": row.stored_bytes,
            "arn": f"{self.group_arn(group)}:log-stream:{row.name}",
        } for row in rows]
        token_out = None
        if more:
            tail = rows[-1]
            position = [tail.last_event_timestamp or 0, tail.name] if by_time else [tail.name]
            token_out = _encode_token("streams", position)
        return streams, token_out

    # -- events ---------------------------------------------------------------------------
    def put_events(self, group: str, stream: str, events: list[dict]) -> dict:
        """PutLogEvents: store ``[{"timestamp": ms, "message": str}, ...]``; returns the
        response with ``rejectedLogEventsInfo`` for events too old or too far ahead."""
        if not events:
            raise errors.InvalidParameterException("logEvents must hold at least one event")
        if len(events) > MAX_BATCH_EVENTS:
            raise errors.InvalidParameterException(
                f"logEvents holds {len(events)} events; at most {MAX_BATCH_EVENTS} per batch"
            )
        size = sum(len(e["message"].encode()) + EVENT_OVERHEAD_BYTES for e in events)
        if size > MAX_BATCH_BYTES:
            raise errors.InvalidParameterException(
                f"logEvents is {size} bytes (messages + 26 bytes per event); at most "
                f"{MAX_BATCH_BYTES} per batch"
            )
        stamps = [e["timestamp"] for e in events]
        if stamps != sorted(stamps):
            raise errors.InvalidParameterException(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        if stamps[-1] - stamps[0] > MAX_BATCH_SPAN_MS:
            raise errors.InvalidParameterException(
                "The batch of log events in a single PutLogEvents request cannot span more "
                "than 24 hours."
            )
        ingested = now_ms()
        too_old = [i for i, t in enumerate(stamps) if t < ingested - MAX_AGE_MS]
        too_new = [i for i, t in enumerate(stamps) if t > ingested + MAX_AHEAD_MS]
        first = too_old[-1] + 1 if too_old else 0
        end = too_new[0] if too_new else len(events)
        accepted = events[first:end]
        with writing(self._engine) as connection:
            stream_id = self._stream_id(connection, group, stream)
            if accepted:
                self._insert(connection, stream_id, accepted, ingested)
        response: dict = {"nextSequenceToken": str(ingested)}
        rejected = {}
        if too_old:
            rejected["tooOldLogEventEndIndex"] = too_old[-1]
        if too_new:
            rejected["tooNewLogEventStartIndex"] = too_new[0]
        if rejected:
            response["rejectedLogEventsInfo"] = rejected
        return response

    def append(self, group: str, stream: str, messages: Iterable[str],
               timestamp: int | None = None) -> None:
        """Write lines as events stamped now, creating the group and stream as needed (how
        jobs and model servers log)."""
        stamp = now_ms() if timestamp is None else timestamp
        events = [{"timestamp": stamp, "message": m} for m in messages]
        if not events:
            return
        with self._append_lock:  # one creator per process; the unique keys settle the rest
            for create in (lambda: self.create_group(group),
                           lambda: self.create_stream(group, stream)):
                try:
                    create()
                except errors.ResourceAlreadyExistsException:
                    pass
        for start in range(0, len(events), 1000):
            with writing(self._engine) as connection:
                stream_id = self._stream_id(connection, group, stream)
                self._insert(connection, stream_id, events[start:start + 1000], now_ms())

    def get_events(
        self, group: str, stream: str, *, start_time: int | None = None,
        end_time: int | None = None, token: str | None = None, limit: int | None = None,
        start_from_head: bool = False,
    ) -> dict:
        """GetLogEvents: a page of one stream's events in time order, with forward and
        backward tokens; at either end the token passed in comes back unchanged."""
        limit = min(limit or MAX_EVENTS_PER_PAGE, MAX_EVENTS_PER_PAGE)
        key = sa.tuple_(_events.c.timestamp, _events.c.id)
        with reading(self._engine) as connection:
            stream_id = self._stream_id(connection, group, stream)
            query = sa.select(_events).where(_events.c.stream_id == stream_id)
            if start_time is not None:
                query = query.where(_events.c.timestamp >= start_time)
            if end_time is not None:
                query = query.where(_events.c.timestamp < end_time)
            forward = start_from_head
            if token:
                direction, stamp, event_id = _parse_event_token(token)
                forward = direction == "f"
                query = query.where(key > (stamp, event_id) if forward
                                    else key < (stamp, event_id))
            order = (_events.c.timestamp, _events.c.id) if forward else \
                (_events.c.timestamp.desc(), _events.c.id.desc())
            rows = connection.execute(query.order_by(*order).limit(limit)).all()
        rows = _within_page_bytes(rows)
        if not forward:
            rows.reverse()
        events = [{"timestamp": r.timestamp, "message": r.message,
                   "ingestionTime": r.ingestion_time} for r in rows]
        if rows:
            forward_token = _event_token("f", rows[-1].timestamp, rows[-1].id)
            backward_token = _event_token("b", rows[0].timestamp, rows[0].id)
        else:
            here = token or _event_token("f" if forward else "b", 0, 0)
            forward_token = backward_token = here
        return {"events": events, "nextForwardToken": forward_token,
                "nextBackwardToken": backward_token}

    def filter_events(
        self, group: str, *, stream_names: list[str] | None = None, prefix: str = "",
        start_time: int | None = None, end_time: int | None = None,
        pattern: str | None = None, token: str | None = None, limit: int | None = None,
    ) -> dict:
        """FilterLogEvents across a group's streams, in time order."""
        if stream_names and prefix:
            raise errors.InvalidParameterException(
                "logStreamNames and logStreamNamePrefix cannot both be given"
            )
        matcher = FilterPattern.parse(pattern)
        limit = min(limit or MAX_EVENTS_PER_PAGE, MAX_EVENTS_PER_PAGE)
        key = sa.tuple_(_events.c.timestamp, _events.c.id)
        with reading(self._engine) as connection:
            group_id = self._group_id(connection, group)
            streams = sa.select(_streams.c.id, _streams.c.name).where(
                _streams.c.group_id == group_id)
            if stream_names:
                streams = streams.where(_streams.c.name.in_(stream_names))
            if prefix:
                streams = streams.where(_streams.c.name.startswith(prefix, autoescape=True))
            names = dict(connection.execute(streams).all())
            query = (sa.select(_events).where(_events.c.stream_id.in_(list(names)))
                     .order_by(_events.c.timestamp, _events.c.id))
            if start_time is not None:
                query = query.where(_events.c.timestamp >= start_time)
            if end_time is not None:
                query = query.where(_events.c.timestamp <= end_time)
            if token:
                query = query.where(key > tuple(_decode_token(token, "filter")))
            matched, more, last = [], False, None
            for row in connection.execute(query.execution_options(yield_per=2000)):
                if len(matched) == limit:
                    more = True
                    break
                last = row
                if matcher.matches(row.message):
                    matched.append(row)
        events = [{"logStreamName": names[r.stream_id], "timestamp": r.timestamp,
                   "message": r.message, "ingestionTime": r.ingestion_time,
                   "eventId": f"{r.timestamp:020d}{r.id:020d}"} for r in matched]
        result: dict = {
            "events": events,
            "searchedLogStreams": [{"logStreamName": n, "searchedCompletely": not more}
                                   for n in sorted(names.values())],
        }
        if more and last is not None:
            result["nextToken"] = _encode_token("filter", [last.timestamp, last.id])
        return result

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _group_id(connection: sa.Connection, name: str) -> int:
        found = connection.execute(
            sa.select(_groups.c.id).where(_groups.c.name == name)).scalar()
        if found is None:
            raise _missing_group(name)
        return found

    def _stream_id(self, connection: sa.Connection, group: str, name: str) -> int:
        group_id = self._group_id(connection, group)
        found = connection.execute(sa.select(_streams.c.id).where(
            _streams.c.group_id == group_id, _streams.c.name == name)).scalar()
        if found is None:
            raise _missing_stream(name)
        return found

    @staticmethod
    def _insert(connection: sa.Connection, stream_id: int, events: list[dict],
                ingested: int) -> None:
        connection.execute(_events.insert(), [
            {"stream_id": stream_id, "timestamp": e["timestamp"], "ingestion_time": ingested,
             "message": e["message"]} for e in events
        ])
        stamps = [e["timestamp"] for e in events]
        size = sum(len(e["message"].encode()) for e in events)
        first = sa.func.coalesce(_streams.c.first_event_timestamp, min(stamps))
        last = sa.func.coalesce(_streams.c.last_event_timestamp, max(stamps))
        connection.execute(_streams.update().where(_streams.c.id == stream_id).values(
            first_event_timestamp=sa.case((first < min(stamps), first), else_=min(stamps)),
            last_event_timestamp=sa.case((last > max(stamps), last), else_=max(stamps)),
            last_ingestion_time=ingested,
            stored_bytes=_streams.c.stored_bytes + size,
        ))


def _within_page_bytes(rows: list) -> list:
    kept, size = [], 0
    for row in rows:
        size += len(row.message.encode()) + EVENT_OVERHEAD_BYTES
        if size > MAX_BYTES_PER_PAGE and kept:
            break
        kept.append(row)
    return kept


def open_log_store(settings) -> LogStore:
    return LogStore(settings.resolved_database_url, settings.region, settings.account_id)


# -- API handlers (ctx, params) -> output ----------------------------------------------------
def _store(ctx: RequestContext) -> LogStore:
    return ctx.platform.logs


def _group_name(params: dict) -> str:
    name = params.get("logGroupName") or params.get("logGroupIdentifier")
    if not name:
        raise errors.InvalidParameterException(
            "Either logGroupName or logGroupIdentifier must be given"
        )
    if name.startswith("arn:"):
        name = name.split(":log-group:", 1)[-1].removesuffix(":*")
    return name


def create_log_group(ctx: RequestContext, params: dict) -> dict:
    _store(ctx).create_group(params["logGroupName"], tags=params.get("tags"),
                             kms_key_id=params.get("kmsKeyId"),
                             log_group_class=params.get("logGroupClass", "STANDARD"))
    return {}


def delete_log_group(ctx: RequestContext, params: dict) -> dict:
    _store(ctx).delete_group(params["logGroupName"])
    return {}


def describe_log_groups(ctx: RequestContext, params: dict) -> dict:
    unsupported = sorted(set(params) & {"logGroupNamePattern", "accountIdentifiers",
                                        "logGroupIdentifiers", "logGroupClass"})
    if unsupported:
        raise errors.NotImplementedOperation(
            f"DescribeLogGroups: {', '.join(unsupported)} is not implemented by openmaker yet"
        )
    groups, token = _store(ctx).describe_groups(
        params.get("logGroupNamePrefix", ""), params.get("limit", 50), params.get("nextToken"))
    return {"logGroups": groups, **({"nextToken": token} if token else {})}


def create_log_stream(ctx: RequestContext, params: dict) -> dict:
    _store(ctx).create_stream(params["logGroupName"], params["logStreamName"])
    return {}


def delete_log_stream(ctx: RequestContext, params: dict) -> dict:
    _store(ctx).delete_stream(params["logGroupName"], params["logStreamName"])
    return {}


def describe_log_streams(ctx: RequestContext, params: dict) -> dict:
    streams, token = _store(ctx).describe_streams(
        _group_name(params), prefix=params.get("logStreamNamePrefix", ""),
        order_by=params.get("orderBy", "LogStreamName"),
        descending=params.get("descending", False), limit=params.get("limit", 50),
        token=params.get("nextToken"),
    )
    return {"logStreams": streams, **({"nextToken": token} if token else {})}


def put_log_events(ctx: RequestContext, params: dict) -> dict:
    return _store(ctx).put_events(params["logGroupName"], params["logStreamName"],
                                  params["logEvents"])


def get_log_events(ctx: RequestContext, params: dict) -> dict:
    return _store(ctx).get_events(
        _group_name(params), params["logStreamName"], start_time=params.get("startTime"),
        end_time=params.get("endTime"), token=params.get("nextToken"),
        limit=params.get("limit"), start_from_head=params.get("startFromHead", False),
    )


def filter_log_events(ctx: RequestContext, params: dict) -> dict:
    return _store(ctx).filter_events(
        _group_name(params), stream_names=params.get("logStreamNames"),
        prefix=params.get("logStreamNamePrefix", ""), start_time=params.get("startTime"),
        end_time=params.get("endTime"), pattern=params.get("filterPattern"),
        token=params.get("nextToken"), limit=params.get("limit"),
    )
