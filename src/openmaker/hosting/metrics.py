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
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import Platform

log = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
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


def metric_unit(metric_name: str) -> str | None:
    """The CloudWatch unit of an endpoint metric, None for a name not published."""
    entry = METRICS.get(metric_name)
    return entry[0] if entry else None


class EndpointMetricStore:
    """Invocation rows of endpoints in the platform's database, written in batches."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
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
                    log.warning("endpoint metrics buffer full; %d invocations not recorded",
                                self._dropped)
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
                    connection.execute(_rows.insert(), rows[start:start + INSERT_BATCH])

    def series(self, endpoint: str | None = None, variant: str | None = None,
               since_ms: int | None = None) -> list[tuple[str, str]]:
        """``(endpoint name, variant)`` of each variant with a row (at or after
        ``since_ms`` when given), ordered by endpoint key and variant."""
        self.flush()
        c = _rows.c
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
        c = _rows.c
        query = sa.select(_rows).where(c.endpoint_key == endpoint.lower(),
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
            log.exception("could not write endpoint metrics; these invocations are lost")
        del store


_stores: weakref.WeakKeyDictionary[Platform, EndpointMetricStore] = (
    weakref.WeakKeyDictionary())
_stores_lock = threading.Lock()


def endpoint_metric_store(platform: Platform) -> EndpointMetricStore:
    """The platform's endpoint metric store, opened (and its table created) on first use."""
    with _stores_lock:
        store = _stores.get(platform)
        if store is None:
            store = _stores[platform] = EndpointMetricStore(
                platform.settings.resolved_database_url)
        return store


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
    """Write the buffered invocations now (of ``platform``, or of every platform)."""
    with _stores_lock:
        if platform is None:
            stores = list(_stores.values())
        else:
            stores = [_stores[platform]] if platform in _stores else []
    for store in stores:
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
