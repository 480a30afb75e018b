"""Endpoint invocation metrics (``reference/platform.md`` section 6.1).

The router calls :func:`record_invocation` after each request a variant served; each call
is one row of the ``endpoint_metrics`` table (endpoint, variant, time, the container's
HTTP status or 0 when none answered, model and overhead latency, the variant's instance
count). Rows are buffered and written by a background thread every
:data:`FLUSH_INTERVAL_SECONDS` (and before every read, at exit and on
:func:`flush_endpoint_metrics`); recording never raises and never waits on the database.

CloudWatch serves them (``openmaker.cloudwatch.metrics``) in namespace ``AWS/SageMaker``
with dimensions ``EndpointName, VariantName``; each row is one point of each metric:
``Invocations`` 1, ``InvocationsPerInstance`` 1/N, ``Invocation4XXErrors`` /
``Invocation5XXErrors`` 1 for a 4xx / 5xx status else 0, ``InvocationModelErrors`` 1 for
any status but 2xx (0 included: no answer, a timeout, a broken connection) else 0, and
``ModelLatency`` / ``OverheadLatency`` in microseconds.

Instance metrics (section 6.2) are a table of their own, ``endpoint_instance_metrics``,
served in namespace ``/aws/sagemaker/Endpoints`` with the same dimensions:
``CPUUtilization`` (the instance's processes' CPU time over wall time, summed over cores:
0-100 x cores), ``MemoryUtilization`` (their resident memory over the machine's, 0-100)
and ``DiskUtilization`` (the file system holding the instance's directory, 0-100), unit
``Percent``. The fleet's monitor samples each running instance every
``fleet.MONITOR_SECONDS`` (one second) with :func:`instance_usage` and
:func:`disk_percent` and records each sample with :func:`record_instance_usage`, passing
the same ``when`` for every instance of one round: the samples of one variant at the same
millisecond are averaged into one point, so each point is the variant's average over its
instances, and CloudWatch's statistics aggregate those one-second points into periods.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import PerPlatform, Platform

log = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
ENDPOINT_DIMENSION = "EndpointName"
VARIANT_DIMENSION = "VariantName"
SCHEMA_VERSION = 1
INSERT_BATCH = 1000
FLUSH_INTERVAL_SECONDS = 1.0
MAX_BUFFERED_ROWS = 100_000


@dataclass(frozen=True)
class EndpointPoint:
    """One point of one endpoint metric; ``timestamp`` in epoch milliseconds."""

    metric_name: str
    timestamp: int
    value: float


def _is_error(low: int, high: int) -> Callable[[Any], float]:
    return lambda row: 1.0 if low <= row.status < high else 0.0


METRICS: dict[str, tuple[str, Callable[[Any], float]]] = {
    "Invocations": ("None", lambda row: 1.0),
    "InvocationsPerInstance": ("None", lambda row: 1.0 / max(row.instance_count, 1)),
    "Invocation4XXErrors": ("None", _is_error(400, 500)),
    "Invocation5XXErrors": ("None", _is_error(500, 600)),
    "InvocationModelErrors": ("None", lambda row: 0.0 if 200 <= row.status < 300 else 1.0),
    "ModelLatency": ("Microseconds", lambda row: row.model_latency_us),
    "OverheadLatency": ("Microseconds", lambda row: row.overhead_latency_us),
    # Only requests that waited for a serverless cold start (or a model load) have one.
    "ModelSetupTime": ("Microseconds", lambda row: row.model_setup_us),
}
"""Metric name: (CloudWatch unit, the row's value)."""

_metadata = sa.MetaData()
_rows = sa.Table(
    "endpoint_metrics", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("endpoint_key", Key, nullable=False),  # the endpoint name in lower case
    sa.Column("endpoint_name", sa.String, nullable=False),  # as the router spelt it
    sa.Column("variant", sa.String, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("model_latency_us", sa.Double, nullable=False),
    sa.Column("overhead_latency_us", sa.Double, nullable=False),
    sa.Column("instance_count", sa.Integer, nullable=False),
    sa.Column("model_setup_us", sa.Double, nullable=True),
    sa.Index("endpoint_metrics_by_time", "endpoint_key", "variant", "timestamp", "id"),
)


INSTANCE_METRICS: dict[str, tuple[str, str]] = {
    "CPUUtilization": ("Percent", "cpu_percent"),
    "MemoryUtilization": ("Percent", "memory_percent"),
    "DiskUtilization": ("Percent", "disk_percent"),
}
"""Instance metric name: (CloudWatch unit, column of ``endpoint_instance_metrics``)."""

INSTANCE_SCHEMA_VERSION = 1
_usage_metadata = sa.MetaData()
_usage_rows = sa.Table(
    "endpoint_instance_metrics", _usage_metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("endpoint_key", Key, nullable=False),  # the endpoint name in lower case
    sa.Column("endpoint_name", sa.String, nullable=False),
    sa.Column("variant", sa.String, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("cpu_percent", sa.Double, nullable=False),
    sa.Column("memory_percent", sa.Double, nullable=False),
    sa.Column("disk_percent", sa.Double, nullable=True),  # None: not known
    sa.Index("endpoint_instance_metrics_by_time", "endpoint_key", "variant", "timestamp",
             "id"),
)


def metric_unit(metric_name: str) -> str | None:
    """The CloudWatch unit of an endpoint metric, None for a name not published."""
    entry = METRICS.get(metric_name)
    return entry[0] if entry else None


class EndpointMetricStore:
    """Invocation rows of endpoints in the platform's database, written in batches (or,
    given the instance table, the instances' usage samples)."""

    def __init__(self, url: str, *, instances: bool = False) -> None:
        self._engine = make_engine(url)
        if instances:
            self._table, self._what = _usage_rows, "instance usage samples"
            create_schema(self._engine, _usage_metadata, "endpoint-instance-metrics",
                          INSTANCE_SCHEMA_VERSION)
        else:
            self._table, self._what = _rows, "invocations"
            create_schema(self._engine, _metadata, "endpoint-metrics", SCHEMA_VERSION)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._dropped = 0
        threading.Thread(target=_flush_forever, args=(weakref.ref(self),),
                         name="openmaker-endpoint-metrics", daemon=True).start()

    def close(self) -> None:
        self.flush()
        self._engine.dispose()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            if len(self._pending) >= MAX_BUFFERED_ROWS:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 10_000 == 0:
                    log.warning("endpoint metrics buffer full; %d %s not recorded",
                                self._dropped, self._what)
                return
            self._pending.append(row)

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            if not rows:
                return
            with writing(self._engine) as connection:
                for start in range(0, len(rows), INSERT_BATCH):
                    connection.execute(self._table.insert(),
                                       rows[start:start + INSERT_BATCH])

    def series(self, endpoint: str | None = None, variant: str | None = None,
               since_ms: int | None = None) -> list[tuple[str, str]]:
        """``(endpoint name, variant)`` of each variant with a row (at or after
        ``since_ms`` when given), ordered by endpoint key and variant."""
        self.flush()
        c = self._table.c
        query = sa.select(c.endpoint_key, sa.func.max(c.endpoint_name), c.variant)
        if endpoint is not None:
            query = query.where(c.endpoint_key == endpoint.lower())
        if variant is not None:
            query = query.where(c.variant == variant)
        if since_ms is not None:
            query = query.where(c.timestamp >= since_ms)
        query = query.group_by(c.endpoint_key, c.variant).order_by(c.endpoint_key, c.variant)
        with reading(self._engine) as connection:
            return [(name, var) for _, name, var in connection.execute(query).all()]

    def rows(self, endpoint: str, variant: str | None, start_ms: int, end_ms: int,
             ) -> list[Any]:
        self.flush()
        c = self._table.c
        query = sa.select(self._table).where(c.endpoint_key == endpoint.lower(),
                                       c.timestamp >= start_ms, c.timestamp < end_ms)
        if variant is not None:
            query = query.where(c.variant == variant)
        with reading(self._engine) as connection:
            return connection.execute(query.order_by(c.timestamp, c.id)).all()


def _flush_forever(store_ref: weakref.ref[EndpointMetricStore]) -> None:
    # Holds the store only while flushing, so the thread ends once the store is gone.
    while True:
        time.sleep(FLUSH_INTERVAL_SECONDS)
        store = store_ref()
        if store is None:
            return
        try:
            store.flush()
        except Exception:  # keep the rows of later flushes
            log.exception("could not write endpoint metrics; these %s are lost", store._what)
        del store


endpoint_metric_store: PerPlatform[EndpointMetricStore] = PerPlatform(
    lambda platform: EndpointMetricStore(platform.settings.resolved_database_url))
"""The platform's endpoint metric store, opened (and its table created) on first use."""
instance_usage_store: PerPlatform[EndpointMetricStore] = PerPlatform(
    lambda platform: EndpointMetricStore(platform.settings.resolved_database_url,
                                         instances=True))
"""The platform's store of instance usage samples, opened on first use."""


def record_invocation(platform: Platform, endpoint: str, variant: str, *, status: int,
                      model_latency_us: float, overhead_latency_us: float,
                      instance_count: int, when: datetime,
                      model_setup_us: float | None = None) -> None:
    """Keep one invocation of ``endpoint``'s ``variant``; ``status`` is the container's
    HTTP status, 0 when no container answered; ``model_setup_us`` the time the request
    waited for a serverless cold start. Never raises."""
    try:
        moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        endpoint_metric_store(platform).add({
            "endpoint_key": endpoint.lower(), "endpoint_name": endpoint, "variant": variant,
            "timestamp": math.floor(moment.timestamp() * 1000), "status": int(status),
            "model_latency_us": float(model_latency_us),
            "overhead_latency_us": float(overhead_latency_us),
            "instance_count": int(instance_count),
            "model_setup_us": None if model_setup_us is None else float(model_setup_us)})
    except Exception:  # metrics must never fail the request
        log.exception("could not record an invocation of endpoint %s variant %s",
                      endpoint, variant)


def flush_endpoint_metrics(platform: Platform | None = None) -> None:
    """Write the buffered invocations and instance usage samples now (of ``platform``, or
    of every platform)."""
    for store in [*endpoint_metric_store.existing(platform),
                  *instance_usage_store.existing(platform)]:
        store.flush()


def endpoint_series(platform: Platform, endpoint: str | None = None,
                    variant: str | None = None, since_ms: int | None = None,
                    ) -> list[dict[str, str]]:
    """``{EndpointName, VariantName}`` of each variant with recorded invocations (since
    ``since_ms`` when given); the endpoint matched case-insensitively."""
    return [{"EndpointName": name, "VariantName": var} for name, var in
            endpoint_metric_store(platform).series(endpoint, variant, since_ms)]


def endpoint_points(platform: Platform, endpoint: str, variant: str, metric_name: str,
                    start_ms: int, end_ms: int) -> list[EndpointPoint]:
    """The points of ``metric_name`` of one variant in ``[start_ms, end_ms)``, in time
    order; none for a metric name not published."""
    entry = METRICS.get(metric_name)
    if entry is None:
        return []
    value = entry[1]
    points = (EndpointPoint(metric_name, row.timestamp, value(row)) for row in
              endpoint_metric_store(platform).rows(endpoint, variant, start_ms, end_ms))
    return [point for point in points if point.value is not None]


def invocation_count(platform: Platform, endpoint: str, variant: str, since: float,
                     until: float) -> int:
    """Requests the variant got between ``since`` and ``until`` (epoch seconds): what the
    autoscaler's target tracking on ``SageMakerVariantInvocationsPerInstance`` reads."""
    return len(endpoint_metric_store(platform).rows(endpoint, variant, int(since * 1000),
                                                    int(until * 1000)))


# --- instance usage ----------------------------------------------------------------------
def record_instance_usage(platform: Platform, endpoint: str, variant: str, *,
                          cpu_percent: float, memory_percent: float,
                          disk_percent: float | None, when: datetime) -> None:
    """Keep one usage sample of an instance of ``endpoint``'s ``variant`` (see the module
    docstring: samples of one variant at the same ``when`` are averaged into one point).
    Buffered like :func:`record_invocation`; never raises."""
    try:
        moment = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        instance_usage_store(platform).add({
            "endpoint_key": endpoint.lower(), "endpoint_name": endpoint, "variant": variant,
            "timestamp": math.floor(moment.timestamp() * 1000),
            "cpu_percent": float(cpu_percent), "memory_percent": float(memory_percent),
            "disk_percent": None if disk_percent is None else float(disk_percent)})
    except Exception:  # metrics must never fail the fleet's monitor
        log.exception("could not record the usage of an instance of endpoint %s variant %s",
                      endpoint, variant)


def instance_metric_unit(metric_name: str) -> str | None:
    """The CloudWatch unit of an instance metric, None for a name not published."""
    entry = INSTANCE_METRICS.get(metric_name)
    return entry[0] if entry else None


def instance_series(platform: Platform, endpoint: str | None = None,
                    variant: str | None = None, since_ms: int | None = None,
                    ) -> list[dict[str, str]]:
    """``{EndpointName, VariantName}`` of each variant with usage samples (since
    ``since_ms`` when given); the endpoint matched case-insensitively."""
    return [{"EndpointName": name, "VariantName": var} for name, var in
            instance_usage_store(platform).series(endpoint, variant, since_ms)]


def instance_points(platform: Platform, endpoint: str, variant: str, metric_name: str,
                    start_ms: int, end_ms: int) -> list[EndpointPoint]:
    """The points of instance metric ``metric_name`` of one variant in ``[start_ms,
    end_ms)``, in time order: the average of the samples taken at the same millisecond
    (the variant's instances in one round of the monitor). Samples without a value (disk
    usage not known) are left out."""
    entry = INSTANCE_METRICS.get(metric_name)
    if entry is None:
        return []
    column = entry[1]
    by_time: dict[int, list[float]] = {}
    for row in instance_usage_store(platform).rows(endpoint, variant, start_ms, end_ms):
        value = getattr(row, column)
        if value is not None:
            by_time.setdefault(row.timestamp, []).append(value)
    return [EndpointPoint(metric_name, stamp, math.fsum(values) / len(values))
            for stamp, values in by_time.items()]


@dataclass(frozen=True)
class UsageSample:
    """What :func:`instance_usage` read, kept by the caller for the next call: the
    monotonic time and each process's CPU ticks (keyed by pid and start time, so a reused
    pid is a new process)."""

    monotonic: float
    ticks: dict[tuple[int, int], int] = field(default_factory=dict)


_MAX_PROCESSES = 256  # descendants followed per instance


def instance_usage(pids: list[int], previous: UsageSample | None,
                   ) -> tuple[float, float, UsageSample]:
    """``(cpu percent, memory percent, sample)`` of the processes ``pids`` and their live
    descendants (Linux ``/proc``; zeros elsewhere). CPU is user+system time since
    ``previous`` over the wall time since it, summed over cores (0-100 x cores; 0 without
    ``previous``); processes that appeared since ``previous`` count all their time.
    Memory is the processes' summed VmRSS over MemTotal (shared pages count once per
    process). Pass the returned sample as ``previous`` to the next call. Never raises."""
    now = time.monotonic()
    if not sys.platform.startswith("linux"):
        return 0.0, 0.0, UsageSample(now)
    try:
        ticks, rss_kb = _process_usage(pids)
        memory = min(100.0, 100.0 * rss_kb / _mem_total_kb()) if rss_kb else 0.0
    except Exception:  # a sampler must not stop the monitor
        log.exception("could not sample the usage of processes %s", pids)
        return 0.0, 0.0, UsageSample(now)
    sample = UsageSample(now, ticks)
    if previous is None or now <= previous.monotonic:
        return 0.0, memory, sample
    used = sum(max(0, count - previous.ticks.get(key, 0)) for key, count in ticks.items())
    cores = os.cpu_count() or 1
    cpu = 100.0 * used / os.sysconf("SC_CLK_TCK") / (now - previous.monotonic)
    return min(cpu, 100.0 * cores), memory, sample


def _process_usage(pids: list[int]) -> tuple[dict[tuple[int, int], int], int]:
    """CPU ticks of each live process among ``pids`` and their descendants, and their
    summed resident memory in KiB."""
    ticks: dict[tuple[int, int], int] = {}
    rss_kb = 0
    pending, seen = list(pids), set()
    while pending and len(seen) < _MAX_PROCESSES:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # the command name may hold spaces and parentheses: fields follow the last ')'
                fields = stat.read().rpartition(")")[2].split()
            with open(f"/proc/{pid}/status") as status:
                rss_kb += next((int(line.split()[1]) for line in status
                                if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        ticks[(pid, int(fields[19]))] = int(fields[11]) + int(fields[12])
        pending += _children(pid)
    return ticks, rss_kb


def _children(pid: int) -> list[int]:
    children: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as listed:
                children += [int(child) for child in listed.read().split()]
        except (OSError, ValueError):
            continue  # a kernel without CONFIG_PROC_CHILDREN, or the thread ended
    return children


def _mem_total_kb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    raise ValueError("/proc/meminfo has no MemTotal")


def disk_percent(path: str | os.PathLike[str]) -> float | None:
    """How full the file system holding ``path`` is, 0-100; None if it cannot be read
    (the instance's directory gone)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return 100.0 * usage.used / usage.total if usage.total else None


def endpoint_metric_summary(platform: Platform, endpoint: str, *, minutes: int = 60,
                            ) -> dict[str, dict[str, Any]]:
    """Per variant, over the last ``minutes``: ``Invocations``, ``Invocation4XXErrors``,
    ``Invocation5XXErrors``, ``InvocationModelErrors`` (counts) and ``ModelLatencyP50`` /
    ``ModelLatencyP99`` / ``OverheadLatencyP50`` (microseconds, nearest rank; None without
    invocations). Variants without invocations in the window are absent."""
    end_ms = time.time_ns() // 1_000_000 + 1
    start_ms = end_ms - minutes * 60_000
    by_variant: dict[str, list[Any]] = {}
    for row in endpoint_metric_store(platform).rows(endpoint, None, start_ms, end_ms):
        by_variant.setdefault(row.variant, []).append(row)
    summary = {}
    for variant, rows in sorted(by_variant.items()):
        model = sorted(row.model_latency_us for row in rows)
        overhead = sorted(row.overhead_latency_us for row in rows)
        summary[variant] = {
            "Invocations": len(rows),
            "Invocation4XXErrors": sum(400 <= row.status < 500 for row in rows),
            "Invocation5XXErrors": sum(500 <= row.status < 600 for row in rows),
            "InvocationModelErrors": sum(not 200 <= row.status < 300 for row in rows),
            "ModelLatencyP50": _percentile(model, 50),
            "ModelLatencyP99": _percentile(model, 99),
            "OverheadLatencyP50": _percentile(overhead, 50),
        }
    return summary


def _percentile(ordered: list[float], percent: float) -> float | None:
    if not ordered:
        return None
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]


@atexit.register
def _flush_at_exit() -> None:
    try:
        flush_endpoint_metrics()
    except Exception:  # exiting anyway
        log.exception("could not write endpoint metrics at exit")
