"""CloudWatch metrics: ``ListMetrics``, ``GetMetricData`` and ``GetMetricStatistics`` over
the metric points of training jobs and the invocation metrics of endpoints
(``reference/platform.md`` sections 6.1 and 6.2).

SageMaker publishes the values its ``MetricDefinitions`` find in a job's output to
namespace ``/aws/sagemaker/TrainingJobs``. Here each metric of each job is two CloudWatch
metrics: dimension ``TrainingJobName=<job>`` (the points of every instance, which is what
the SageMaker SDK's ``TrainingJobAnalytics`` asks for) and ``Host=<job>/algo-<n>`` (one
instance's points). The points are read through :mod:`openmaker.training.metrics`.

Endpoint invocations are namespace ``AWS/SageMaker`` with dimensions ``EndpointName`` and
``VariantName`` (both, as SageMaker publishes them): ``Invocations``,
``InvocationsPerInstance``, ``Invocation4XXErrors``, ``Invocation5XXErrors``,
``InvocationModelErrors`` (unit ``None``), ``ModelLatency`` and ``OverheadLatency`` (unit
``Microseconds``), read through :mod:`openmaker.hosting.metrics`. The endpoints' instance
metrics are namespace ``/aws/sagemaker/Endpoints`` with the same two dimensions:
``CPUUtilization``, ``MemoryUtilization`` and ``DiskUtilization`` (unit ``Percent``), one
point per second, each the average over the variant's instances of one sample (so a
period's ``Average`` is the variant's mean instance usage, its ``Maximum`` the busiest
second). Other namespaces hold no metrics here, so they list nothing and return no
datapoints.

Datapoints aggregate the points in ``Period``-second buckets as CloudWatch does: the start
time is rounded down (to the period for the high-resolution periods 1, 5, 10, 20 and 30,
else to the minute, or to 5 minutes / an hour for start times more than 15 / 63 days ago),
buckets run from there, and a bucket is stamped with its start. Points are taken from the
rounded start up to, not including, ``EndTime``. Statistics: ``SampleCount``, ``Average``,
``Sum``, ``Minimum``, ``Maximum`` and percentiles ``p0``-``p100`` (nearest rank). Training
points carry no unit: a request naming a ``Unit`` other than a metric's own (``None`` for
training metrics) matches no data. Job and endpoint names match case-insensitively, as
SageMaker's names are unique regardless of case. Metric math
and Metrics Insights (``Expression``) are refused with ``NotImplemented``.

Errors follow CloudWatch: ``GetMetricStatistics`` answers ``InvalidParameterValue``,
``InvalidParameterCombination`` and ``MissingParameter``; ``GetMetricData`` answers
``ValidationError`` listing every bad query member, one per line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openmaker.core import errors
from openmaker.core.platform import Platform, RequestContext
from openmaker.hosting import metrics as endpoint_metrics
from openmaker.training import metrics as training_metrics

NAMESPACE = "/aws/sagemaker/TrainingJobs"
JOB_DIMENSION = "TrainingJobName"
HOST_DIMENSION = "Host"
UNIT = "None"
ENDPOINT_NAMESPACE = endpoint_metrics.NAMESPACE
ENDPOINT_DIMENSION = endpoint_metrics.ENDPOINT_DIMENSION
VARIANT_DIMENSION = endpoint_metrics.VARIANT_DIMENSION
INSTANCE_NAMESPACE = endpoint_metrics.INSTANCE_NAMESPACE
LIST_PAGE_SIZE = 500
MAX_QUERIES = 500
DEFAULT_MAX_DATAPOINTS = 100_800
MAX_STATISTICS_DATAPOINTS = 1440
HIGH_RESOLUTION_PERIODS = frozenset({1, 5, 10, 20, 30})
RECENTLY_ACTIVE_MS = 3 * 3600 * 1000
BASIC_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
QUERY_ID = re.compile(r"[a-z][a-zA-Z0-9_]*")
PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d{1,10})?)")
DAY_MS = 24 * 3600 * 1000


# --- errors (the codes CloudWatch's query protocol uses) ---------------------------------
class CloudWatchError(errors.AwsError):
    status = 400


class InvalidParameterValue(CloudWatchError):
    """A parameter has a value CloudWatch does not accept."""

    code = "InvalidParameterValue"


class InvalidParameterCombination(CloudWatchError):
    """Parameters that cannot be used together, or a request too large as a whole."""

    code = "InvalidParameterCombination"


class MissingParameter(CloudWatchError):
    """A required parameter is absent."""

    code = "MissingParameter"


class InvalidNextToken(CloudWatchError):
    """``NextToken`` does not continue this request."""

    code = "InvalidNextToken"


class ValidationError(CloudWatchError):
    """Bad input to ``GetMetricData``; the message names each bad member."""

    code = "ValidationError"


def missing_parameter(member: str) -> MissingParameter:
    return MissingParameter(f"The parameter {member} is required.")


# --- series, buckets and statistics -----------------------------------------------------
@dataclass(frozen=True)
class Series:
    """The points behind one CloudWatch metric: one job's metric, of one host or all."""

    job: str
    metric_name: str
    host: str | None = None

    @property
    def unit(self) -> str:
        return UNIT


@dataclass(frozen=True)
class EndpointSeries:
    """The points behind one endpoint metric: one variant's."""

    endpoint: str
    variant: str
    metric_name: str

    @property
    def unit(self) -> str:
        return endpoint_metrics.metric_unit(self.metric_name) or UNIT


@dataclass(frozen=True)
class InstanceSeries:
    """The points behind one instance metric of an endpoint: one variant's."""

    endpoint: str
    variant: str
    metric_name: str

    @property
    def unit(self) -> str:
        return endpoint_metrics.instance_metric_unit(self.metric_name) or UNIT


AnySeries = Series | EndpointSeries | InstanceSeries


def series_for(namespace: str | None, metric_name: str | None,
               dimensions: Sequence[dict[str, str]] | None) -> AnySeries | None:
    """The series a metric names, or None when no points can belong to it (another
    namespace, or a dimension set SageMaker does not publish). CloudWatch matches the
    dimension set exactly, so ``TrainingJobName`` and ``Host`` are never combined, and an
    endpoint metric needs both ``EndpointName`` and ``VariantName``."""
    if namespace not in (NAMESPACE, ENDPOINT_NAMESPACE, INSTANCE_NAMESPACE) or not metric_name:
        return None
    given = {d.get("Name"): d.get("Value") for d in dimensions or ()}
    if len(given) != len(dimensions or ()):
        return None
    if namespace == INSTANCE_NAMESPACE:
        if (set(given) == {ENDPOINT_DIMENSION, VARIANT_DIMENSION} and all(given.values())
                and endpoint_metrics.instance_metric_unit(metric_name) is not None):
            return InstanceSeries(given[ENDPOINT_DIMENSION], given[VARIANT_DIMENSION],
                                  metric_name)
        return None
    if namespace == ENDPOINT_NAMESPACE:
        if (set(given) == {ENDPOINT_DIMENSION, VARIANT_DIMENSION} and all(given.values())
                and endpoint_metrics.metric_unit(metric_name) is not None):
            return EndpointSeries(given[ENDPOINT_DIMENSION], given[VARIANT_DIMENSION],
                                  metric_name)
        return None
    if set(given) == {JOB_DIMENSION} and given[JOB_DIMENSION]:
        return Series(given[JOB_DIMENSION], metric_name)
    if set(given) == {HOST_DIMENSION} and given[HOST_DIMENSION]:
        job, _, host = given[HOST_DIMENSION].rpartition("/")
        if job and host:
            return Series(job, metric_name, host)
    return None


def valid_period(period: int) -> bool:
    return period in HIGH_RESOLUTION_PERIODS or (period > 0 and period % 60 == 0)


def aligned_start(start_ms: int, period: int, now_ms: int) -> int:
    """``start_ms`` rounded down the way CloudWatch rounds a request's start time."""
    if period in HIGH_RESOLUTION_PERIODS:
        unit = period * 1000
    else:
        age = now_ms - start_ms
        unit = 60_000 if age < 15 * DAY_MS else 300_000 if age < 63 * DAY_MS else 3_600_000
    return start_ms - start_ms % unit


def bucket_values(points: Iterable[training_metrics.MetricPoint | endpoint_metrics.EndpointPoint],
                  start_ms: int, period: int) -> list[tuple[int, list[float]]]:
    """``(bucket start ms, values)`` for each bucket with a point, oldest first."""
    step = period * 1000
    buckets: dict[int, list[float]] = {}
    for point in points:
        key = start_ms + (point.timestamp - start_ms) // step * step
        buckets.setdefault(key, []).append(point.value)
    return sorted(buckets.items())


def is_statistic(name: str) -> bool:
    """A statistic computed here: one of the basic five, or a percentile p0-p100."""
    if name in BASIC_STATISTICS:
        return True
    match = PERCENTILE.fullmatch(name)
    return match is not None and float(match.group(1)) <= 100


def statistic(name: str, values: Sequence[float]) -> float:
    """Statistic ``name`` (see :func:`is_statistic`) of a non-empty bucket."""
    if name == "SampleCount":
        return float(len(values))
    if name == "Sum":
        return math.fsum(values)
    if name == "Average":
        return math.fsum(values) / len(values)
    if name == "Minimum":
        return min(values)
    if name == "Maximum":
        return max(values)
    rank = float(name[1:]) / 100 * len(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(rank) - 1))]


def _points(ctx: RequestContext, series: AnySeries, start_ms: int, end_ms: int,
            ) -> list[training_metrics.MetricPoint] | list[endpoint_metrics.EndpointPoint]:
    return series_points(ctx.platform, series, start_ms, end_ms)


def series_points(platform: Platform, series: AnySeries, start_ms: int, end_ms: int,
                  ) -> list[training_metrics.MetricPoint] | list[endpoint_metrics.EndpointPoint]:
    """The points of ``series`` in ``[start_ms, end_ms)``, read from the area keeping them."""
    if isinstance(series, EndpointSeries):
        return endpoint_metrics.endpoint_points(platform, series.endpoint, series.variant,
                                                series.metric_name, start_ms, end_ms)
    if isinstance(series, InstanceSeries):
        return endpoint_metrics.instance_points(platform, series.endpoint, series.variant,
                                                series.metric_name, start_ms, end_ms)
    return training_metrics.metric_points(platform, series.job, series.metric_name,
                                          start_ms, end_ms, series.host)


def _epoch_ms(moment: datetime) -> int:
    return math.floor(moment.timestamp() * 1000)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- tokens ------------------------------------------------------------------------------
def _fingerprint(params: dict, *ignored: str) -> str:
    kept = {k: v for k, v in params.items() if k not in ignored}
    text = json.dumps(kept, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_token(fingerprint: str, offset: int) -> str:
    raw = json.dumps([fingerprint, offset]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, fingerprint: str) -> int | None:
    """The offset ``token`` resumes at, or None when it does not belong to this request."""
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if (not isinstance(value, list) or len(value) != 2 or value[0] != fingerprint
            or not isinstance(value[1], int) or value[1] < 0):
        return None
    return value[1]


# --- ListMetrics -------------------------------------------------------------------------
def list_metrics(ctx: RequestContext, params: dict) -> dict:
    """The metrics with points, 500 a page: for each job's metric its ``TrainingJobName``
    metric, then one ``Host`` metric per instance; then each endpoint variant's metrics."""
    namespace = params.get("Namespace")
    owner = params.get("OwningAccount")
    filters = params.get("Dimensions") or []
    fingerprint = _fingerprint(params, "NextToken")
    offset = 0
    if params.get("NextToken") is not None:
        offset = _decode_token(params["NextToken"], fingerprint)
        if offset is None:
            raise InvalidParameterValue("The parameter NextToken is not valid for this "
                                        "request; pass the NextToken of the previous page "
                                        "with the same filters.")
    metrics: list[dict] = []
    if owner in (None, ctx.account_id) and len({f["Name"] for f in filters}) == len(filters):
        if namespace in (None, NAMESPACE):
            metrics = _listed_metrics(ctx, params.get("MetricName"), filters,
                                      params.get("RecentlyActive"))
        if namespace in (None, ENDPOINT_NAMESPACE):
            metrics += _listed_endpoint_metrics(ctx, params.get("MetricName"), filters,
                                                params.get("RecentlyActive"))
        if namespace in (None, INSTANCE_NAMESPACE):
            metrics += _listed_endpoint_metrics(ctx, params.get("MetricName"), filters,
                                                params.get("RecentlyActive"), instances=True)
    page = metrics[offset:offset + LIST_PAGE_SIZE]
    result: dict[str, Any] = {"Metrics": page}
    if params.get("IncludeLinkedAccounts"):
        result["OwningAccounts"] = [ctx.account_id] * len(page)
    if offset + LIST_PAGE_SIZE < len(metrics):
        result["NextToken"] = _encode_token(fingerprint, offset + LIST_PAGE_SIZE)
    return result


def _listed_metrics(ctx: RequestContext, metric_name: str | None, filters: list[dict],
                    recently_active: str | None) -> list[dict]:
    wanted = {f["Name"]: f.get("Value") for f in filters}
    if set(wanted) - {JOB_DIMENSION, HOST_DIMENSION} or len(wanted) > 1:
        return []  # no metric here carries another dimension, or both
    job, host = wanted.get(JOB_DIMENSION), None
    if wanted.get(HOST_DIMENSION) is not None:
        job, _, host = wanted[HOST_DIMENSION].rpartition("/")
        if not job or not host:
            return []
    since = _now_ms() - RECENTLY_ACTIVE_MS if recently_active == "PT3H" else None
    series = training_metrics.metric_series(ctx.platform, job, metric_name, since)
    listed = []
    seen: set[tuple[str, str]] = set()
    for entry in series:
        name, metric = entry["TrainingJobName"], entry["MetricName"]
        if HOST_DIMENSION not in wanted and (name, metric) not in seen:
            seen.add((name, metric))
            listed.append(_metric(metric, JOB_DIMENSION, name))
        if JOB_DIMENSION not in wanted and host in (None, entry["Host"]):
            listed.append(_metric(metric, HOST_DIMENSION, f"{name}/{entry['Host']}"))
    return listed


def _listed_endpoint_metrics(ctx: RequestContext, metric_name: str | None,
                             filters: list[dict], recently_active: str | None, *,
                             instances: bool = False) -> list[dict]:
    """Each variant's invocation metrics (or, with ``instances``, its instance metrics)."""
    wanted = {f["Name"]: f.get("Value") for f in filters}
    if set(wanted) - {ENDPOINT_DIMENSION, VARIANT_DIMENSION}:
        return []
    if instances:
        namespace, known = INSTANCE_NAMESPACE, endpoint_metrics.INSTANCE_METRICS
        find = endpoint_metrics.instance_series
    else:
        namespace, known = ENDPOINT_NAMESPACE, endpoint_metrics.METRICS
        find = endpoint_metrics.endpoint_series
    if metric_name is not None and metric_name not in known:
        return []
    names = [metric_name] if metric_name is not None else list(known)
    since = _now_ms() - RECENTLY_ACTIVE_MS if recently_active == "PT3H" else None
    listed = []
    for entry in find(ctx.platform, wanted.get(ENDPOINT_DIMENSION),
                      wanted.get(VARIANT_DIMENSION), since):
        dimensions = [{"Name": ENDPOINT_DIMENSION, "Value": entry["EndpointName"]},
                      {"Name": VARIANT_DIMENSION, "Value": entry["VariantName"]}]
        listed += [{"Namespace": namespace, "MetricName": name,
                    "Dimensions": dimensions} for name in names]
    return listed


def _metric(metric_name: str, dimension: str, value: str) -> dict:
    return {"Namespace": NAMESPACE, "MetricName": metric_name,
            "Dimensions": [{"Name": dimension, "Value": value}]}


# --- GetMetricStatistics -----------------------------------------------------------------
def get_metric_statistics(ctx: RequestContext, params: dict) -> dict:
    """Statistics of one metric per ``Period`` bucket, oldest first."""
    statistics = params.get("Statistics") or []
    extended = params.get("ExtendedStatistics") or []
    if not statistics and not extended:
        raise InvalidParameterCombination(
            "Must specify either Statistics or ExtendedStatistics.")
    if statistics and extended:
        raise InvalidParameterCombination(
            "The parameters Statistics and ExtendedStatistics are mutually exclusive; "
            "send the percentiles in a separate request.")
    for name in extended:
        if PERCENTILE.fullmatch(name) is None or not is_statistic(name):
            raise InvalidParameterValue(
                f"The value {name} for parameter ExtendedStatistics is not a valid "
                "percentile statistic: use p0 to p100, such as p90 or p99.9.")
    period = params["Period"]
    if not valid_period(period):
        raise InvalidParameterValue(
            "The parameter Period must be 1, 5, 10, 20, 30 or a multiple of 60.")
    start_ms, end_ms = _epoch_ms(params["StartTime"]), _epoch_ms(params["EndTime"])
    if start_ms >= end_ms:
        raise InvalidParameterValue(
            "The parameter StartTime must be less than the parameter EndTime.")
    start_ms = aligned_start(start_ms, period, _now_ms())
    requested = math.ceil((end_ms - start_ms) / (period * 1000))
    if requested > MAX_STATISTICS_DATAPOINTS:
        raise InvalidParameterCombination(
            f"You have requested up to {requested:,} datapoints, which exceeds the limit of "
            f"{MAX_STATISTICS_DATAPOINTS:,}. You may reduce the datapoints requested by "
            "increasing Period, or decreasing the time range.")
    series = series_for(params["Namespace"], params["MetricName"], params.get("Dimensions"))
    label = params["MetricName"]
    if series is None or params.get("Unit", series.unit) != series.unit:
        return {"Label": label, "Datapoints": []}
    datapoints = []
    for bucket, values in bucket_values(_points(ctx, series, start_ms, end_ms), start_ms,
                                        period):
        datapoint: dict[str, Any] = {"Timestamp": training_metrics.to_datetime(bucket),
                                     "Unit": series.unit}
        for name in statistics:
            datapoint[name] = statistic(name, values)
        if extended:
            datapoint["ExtendedStatistics"] = {name: statistic(name, values)
                                               for name in extended}
        datapoints.append(datapoint)
    return {"Label": label, "Datapoints": datapoints}


# --- GetMetricData -----------------------------------------------------------------------
def get_metric_data(ctx: RequestContext, params: dict) -> dict:
    """The datapoints of every ``MetricStat`` query, paged by ``MaxDatapoints`` (all
    queries' datapoints together, in query order)."""
    queries = params["MetricDataQueries"]
    _check_queries(queries)
    start_ms, end_ms = _epoch_ms(params["StartTime"]), _epoch_ms(params["EndTime"])
    if start_ms >= end_ms:
        raise ValidationError("The parameter StartTime must be less than the parameter "
                              "EndTime.")
    limit = params.get("MaxDatapoints", DEFAULT_MAX_DATAPOINTS)
    if limit < 1:
        raise ValidationError(f"The value {limit} for parameter MaxDatapoints must be "
                              "greater than 0.")
    fingerprint = _fingerprint(params, "NextToken", "MaxDatapoints")
    offset = 0
    if params.get("NextToken") is not None:
        offset = _decode_token(params["NextToken"], fingerprint)
        if offset is None:
            raise InvalidNextToken("The NextToken does not continue this request; pass the "
                                   "NextToken of the previous page with the same queries "
                                   "and times.")
    descending = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
    now = _now_ms()
    answered = []  # (query, [(timestamp ms, value)])
    for query in queries:
        if query.get("ReturnData", True) is False:
            continue
        answered.append((query, _query_datapoints(ctx, query["MetricStat"], start_ms, end_ms,
                                                  now, descending)))
    results = []
    position = 0  # datapoints of the queries before this one
    page_end = offset + limit
    for query, datapoints in answered:
        first = min(max(offset - position, 0), len(datapoints))
        last = min(max(page_end - position, 0), len(datapoints))
        page = datapoints[first:last]
        results.append({
            "Id": query["Id"],
            "Label": query.get("Label") or query["MetricStat"]["Metric"].get("MetricName", ""),
            "Timestamps": [training_metrics.to_datetime(stamp) for stamp, _ in page],
            "Values": [value for _, value in page],
            "StatusCode": "PartialData" if last < len(datapoints) else "Complete",
            "Messages": [],
        })
        position += len(datapoints)
    result: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
    if page_end < position:
        result["NextToken"] = _encode_token(fingerprint, page_end)
    return result


def _check_queries(queries: list[dict]) -> None:
    if not queries:
        raise ValidationError("The parameter MetricDataQueries must contain at least one "
                              "query.")
    if len(queries) > MAX_QUERIES:
        raise ValidationError(f"The collection MetricDataQueries must not contain more than "
                              f"{MAX_QUERIES} members; it has {len(queries)}.")
    problems = []
    for index, query in enumerate(queries, start=1):
        where = f"MetricDataQueries.member.{index}"
        if QUERY_ID.fullmatch(query["Id"]) is None:
            problems.append(f"The value {query['Id']} for parameter {where}.Id is not "
                            "matching the expected pattern ^[a-z][a-zA-Z0-9_]*$.")
        if query.get("Expression") is not None:
            if query.get("MetricStat") is not None:
                problems.append(f"The parameters {where}.MetricStat and {where}.Expression "
                                "are mutually exclusive; give exactly one.")
                continue
            raise errors.NotImplementedOperation(
                f"{where}.Expression: metric math and Metrics Insights queries are not "
                "implemented by openmaker; query the metrics with MetricStat and combine "
                "them in your code.")
        stat = query.get("MetricStat")
        if stat is None:
            problems.append(f"Exactly one of {where}.MetricStat and {where}.Expression must "
                            "be specified.")
            continue
        if not valid_period(stat["Period"]):
            problems.append(f"The value {stat['Period']} for parameter {where}.MetricStat."
                            "Period must be 1, 5, 10, 20, 30 or a multiple of 60.")
        if not is_statistic(stat["Stat"]):
            problems.append(f"The value {stat['Stat']} for parameter {where}.MetricStat.Stat "
                            "is not a valid statistic (openmaker computes SampleCount, "
                            "Average, Sum, Minimum, Maximum and percentiles p0-p100).")
    if len({query["Id"] for query in queries}) != len(queries):
        problems.append("The values for parameter id in MetricDataQueries are not unique.")
    if problems:
        raise ValidationError("\n".join(problems))


def _query_datapoints(ctx: RequestContext, stat: dict, start_ms: int, end_ms: int, now: int,
                      descending: bool) -> list[tuple[int, float]]:
    metric = stat["Metric"]
    series = series_for(metric.get("Namespace"), metric.get("MetricName"),
                        metric.get("Dimensions"))
    if series is None or stat.get("Unit", series.unit) != series.unit:
        return []
    period = stat["Period"]
    start = aligned_start(start_ms, period, now)
    datapoints = [(bucket, statistic(stat["Stat"], values)) for bucket, values in
                  bucket_values(_points(ctx, series, start, end_ms), start, period)]
    if descending:
        datapoints.reverse()
    return datapoints


# --- period statistics for alarms --------------------------------------------------------
def period_statistics(platform: Platform, namespace: str | None, metric_name: str | None,
                      dimensions: Sequence[dict[str, str]] | None, stat: str,
                      unit: str | None, start_ms: int, end_ms: int, period: int,
                      ) -> dict[int, float]:
    """``stat`` of each ``period``-second bucket that has points in ``[start_ms, end_ms)``,
    keyed by bucket start (buckets counted from ``start_ms``, which the caller aligns).
    Empty when no points can belong to the metric or ``unit`` is not the metric's own:
    what a CloudWatch alarm (``openmaker.cloudwatch.alarms``) evaluates."""
    series = series_for(namespace, metric_name, dimensions)
    if series is None or (unit is not None and unit != series.unit):
        return {}
    points: Iterable[Any] = series_points(platform, series, start_ms, end_ms)
    return {bucket: statistic(stat, values)
            for bucket, values in bucket_values(points, start_ms, period)}
