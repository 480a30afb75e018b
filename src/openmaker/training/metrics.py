"""Training metrics from ``AlgorithmSpecification.MetricDefinitions``
(``reference/platform.md`` section 2.6).

Every output line of every instance is searched with every definition's regex as it
arrives; the first capture group (the whole match when the regex has no group) is parsed
as a float and kept as a data point — job, metric name, time, value, instance host — in
the ``training_metrics`` table of the platform's database. ``DescribeTrainingJob`` shows
the latest value of each metric in ``FinalMetricDataList``; :func:`metric_history` returns
every point, and :func:`metric_series` / :func:`metric_points` (filtered in SQL) serve the
CloudWatch metrics API (``openmaker.cloudwatch.metrics``).

Values are parsed like Python's ``float`` (``0.5``, ``-3``, ``1e-3``, ``.5E+2``, ``nan``,
``inf``, surrounding spaces allowed). Text that does not parse is skipped, and so are NaN
and ±infinity: SageMaker publishes the points to CloudWatch, whose ``PutMetricData``
refuses non-finite values, and ``FinalMetricDataList`` cannot carry them in JSON.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from openmaker.core import errors
from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import PerPlatform, Platform

SCHEMA_VERSION = 1
INSERT_BATCH = 1000

_metadata = sa.MetaData()
_points = sa.Table(
    "training_metrics", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("job_key", Key, nullable=False),  # the job name in lower case
    sa.Column("metric_name", sa.String, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("host", sa.String, nullable=False),
    sa.Index("training_metrics_by_time", "job_key", "timestamp", "id"),
)


@dataclass(frozen=True)
class MetricPoint:
    metric_name: str
    timestamp: int  # epoch milliseconds
    value: float
    host: str


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_datetime(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def parse_value(text: str | None) -> float | None:
    """``text`` as a finite float, or None when it is not a number (or NaN/infinite)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def compile_definitions(definitions: Sequence[dict[str, Any]] | None,
                        ) -> list[tuple[str, re.Pattern[str]]]:
    """``(Name, compiled Regex)`` per definition; ValidationException naming
    ``AlgorithmSpecification.MetricDefinitions.<i>.Regex`` (1-based, as AWS numbers list
    members) when a regex does not compile."""
    compiled = []
    for index, definition in enumerate(definitions or [], start=1):
        regex = definition["Regex"]
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise errors.ValidationException(
                f"AlgorithmSpecification.MetricDefinitions.{index}.Regex: {regex!r} is not a "
                f"valid regular expression: {exc}"
            ) from None
        compiled.append((definition["Name"], pattern))
    return compiled


class MetricParser:
    """Finds the metric values in output lines; the regexes are compiled once."""

    def __init__(self, definitions: Sequence[dict[str, Any]] | None) -> None:
        self.definitions = compile_definitions(definitions)
        self.names = list(dict.fromkeys(name for name, _ in self.definitions))

    def __bool__(self) -> bool:
        return bool(self.definitions)

    def parse(self, line: str) -> list[tuple[str, float]]:
        """``(metric name, value)`` for each definition that matches ``line`` (its first
        match), in definition order."""
        found = []
        for name, pattern in self.definitions:
            match = pattern.search(line)
            if match is None:
                continue
            value = parse_value(match.group(1) if pattern.groups else match.group(0))
            if value is not None:
                found.append((name, value))
        return found


class MetricStore:
    """Metric data points of training jobs in the platform's database."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
        create_schema(self._engine, _metadata, "training-metrics", SCHEMA_VERSION)

    def close(self) -> None:
        self._engine.dispose()

    def add(self, job_name: str, points: Iterable[MetricPoint]) -> None:
        rows = [{"job_key": job_name.lower(), "metric_name": p.metric_name,
                 "timestamp": p.timestamp, "value": p.value, "host": p.host} for p in points]
        if not rows:
            return
        with writing(self._engine) as connection:
            for start in range(0, len(rows), INSERT_BATCH):
                connection.execute(_points.insert(), rows[start:start + INSERT_BATCH])

    def history(self, job_name: str) -> list[MetricPoint]:
        query = (sa.select(_points)
                 .where(_points.c.job_key == job_name.lower())
                 .order_by(_points.c.timestamp, _points.c.id))
        with reading(self._engine) as connection:
            rows = connection.execute(query).all()
        return [MetricPoint(r.metric_name, r.timestamp, r.value, r.host) for r in rows]

    def series(self, job_name: str | None = None, metric_name: str | None = None,
               since_ms: int | None = None) -> list[tuple[str, str, str, int]]:
        """``(job key, metric name, host, latest timestamp)`` for each series with a point
        (at or after ``since_ms`` when given), ordered by job key, metric name, host."""
        c = _points.c
        query = sa.select(c.job_key, c.metric_name, c.host, sa.func.max(c.timestamp))
        if job_name is not None:
            query = query.where(c.job_key == job_name.lower())
        if metric_name is not None:
            query = query.where(c.metric_name == metric_name)
        if since_ms is not None:
            query = query.where(c.timestamp >= since_ms)
        query = (query.group_by(c.job_key, c.metric_name, c.host)
                 .order_by(c.job_key, c.metric_name, c.host))
        with reading(self._engine) as connection:
            return [tuple(row) for row in connection.execute(query).all()]

    def points(self, job_name: str, metric_name: str, start_ms: int, end_ms: int,
               host: str | None = None) -> list[MetricPoint]:
        """The points of one metric of one job (of one host when given) with
        ``start_ms <= timestamp < end_ms``, in time order."""
        c = _points.c
        query = sa.select(_points).where(
            c.job_key == job_name.lower(), c.metric_name == metric_name,
            c.timestamp >= start_ms, c.timestamp < end_ms)
        if host is not None:
            query = query.where(c.host == host)
        with reading(self._engine) as connection:
            rows = connection.execute(query.order_by(c.timestamp, c.id)).all()
        return [MetricPoint(r.metric_name, r.timestamp, r.value, r.host) for r in rows]


metric_store: PerPlatform[MetricStore] = PerPlatform(
    lambda platform: MetricStore(platform.settings.resolved_database_url))
"""The platform's metric store, opened (and its table created) on first use."""


def metric_history(platform: Platform, job_name: str) -> list[dict[str, Any]]:
    """Every data point of ``job_name`` in time order: ``{MetricName, Timestamp (UTC
    datetime), Value, Host}``; an empty list for a job without points."""
    return [{"MetricName": p.metric_name, "Timestamp": to_datetime(p.timestamp),
             "Value": p.value, "Host": p.host}
            for p in metric_store(platform).history(job_name)]


def final_metric_data(names: Sequence[str], latest: dict[str, MetricPoint],
                      ) -> list[dict[str, Any]]:
    """``FinalMetricDataList``: the latest point of each metric, in definition order."""
    return [{"MetricName": name, "Value": latest[name].value,
             "Timestamp": to_datetime(latest[name].timestamp)}
            for name in names if name in latest]


def metric_series(platform: Platform, job_name: str | None = None,
                  metric_name: str | None = None, since_ms: int | None = None,
                  ) -> list[dict[str, Any]]:
    """Each stored series ``{TrainingJobName, MetricName, Host, LastTimestamp (epoch ms)}``,
    optionally for one job / one metric / with points since ``since_ms``. The job name is
    spelt as the job record spells it (the table keeps it in lower case)."""
    spelt: dict[str, str] = {}
    found = []
    for job_key, name, host, last in metric_store(platform).series(job_name, metric_name,
                                                                   since_ms):
        if job_key not in spelt:
            spelt[job_key] = _job_name(platform, job_key)
        found.append({"TrainingJobName": spelt[job_key], "MetricName": name, "Host": host,
                      "LastTimestamp": last})
    return found


def metric_points(platform: Platform, job_name: str, metric_name: str, start_ms: int,
                  end_ms: int, host: str | None = None) -> list[MetricPoint]:
    """Points of ``metric_name`` of ``job_name`` (one host's, when given) in
    ``[start_ms, end_ms)``, in time order."""
    return metric_store(platform).points(job_name, metric_name, start_ms, end_ms, host)


def _job_name(platform: Platform, job_key: str) -> str:
    from openmaker.core.resources import ResourceNotFoundError

    try:
        return platform.resources.get("training-job", job_key).record["TrainingJobName"]
    except (ResourceNotFoundError, KeyError):
        return job_key  # points without a job record (written by hand)
