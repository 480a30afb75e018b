"""``openmaker.TrainingJobAnalytics``: a training job's metrics as a pandas DataFrame.

Like the SageMaker SDK's ``sagemaker.analytics.TrainingJobAnalytics``, it reads the
metrics through the CloudWatch API (namespace ``/aws/sagemaker/TrainingJobs``), but per
instance (dimension ``Host=<job>/algo-<n>``) and at one-second resolution by default, so
the frame keeps nearly every point rather than one average a minute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from openmaker.sdk.session import Session

if TYPE_CHECKING:
    import pandas

NAMESPACE = "/aws/sagemaker/TrainingJobs"
COLUMNS = ["timestamp", "metric_name", "value", "host"]
MAX_QUERIES = 500  # per GetMetricData call


class TrainingJobAnalytics:
    """The metric values of training job ``job_name``, one row per instance and
    ``period``-second bucket (the bucket's average).

    ``metric_names`` defaults to the job's ``MetricDefinitions`` (or, for jobs without
    them, every metric the job published). Columns: ``timestamp`` (seconds since the
    training started, counted from the start of the bucket it started in, so whole
    multiples of ``period``), ``metric_name``, ``value`` and ``host`` (``algo-1`` ...).

    >>> TrainingJobAnalytics("my-job").dataframe()
    """

    def __init__(self, job_name: str, metric_names: Sequence[str] | None = None,
                 session: Session | None = None, *, period: int = 1,
                 start_time: datetime | None = None,
                 end_time: datetime | None = None) -> None:
        self.job_name = job_name
        self.metric_names = list(metric_names) if metric_names else None
        self.session = session or Session()
        self.period = period
        self.start_time = start_time
        self.end_time = end_time
        self._dataframe: pandas.DataFrame | None = None

    def __repr__(self) -> str:
        return f"TrainingJobAnalytics({self.job_name!r})"

    def dataframe(self, force_refresh: bool = False) -> pandas.DataFrame:
        """The metrics as a DataFrame, sorted by metric (in ``metric_names`` order), time
        and host; fetched once and cached unless ``force_refresh``."""
        if self._dataframe is None or force_refresh:
            self._dataframe = self._fetch()
        return self._dataframe

    def export_csv(self, path: str | os.PathLike) -> None:
        """Write :meth:`dataframe` to ``path`` as CSV with a header row and no index."""
        self.dataframe().to_csv(path, index=False)

    # -- fetching -------------------------------------------------------------------------
    def _fetch(self) -> pandas.DataFrame:
        import pandas

        job = self.session.sagemaker.describe_training_job(TrainingJobName=self.job_name)
        names = self.metric_names or self._defined_metric_names(job)
        started = job.get("TrainingStartTime") or job["CreationTime"]
        start = self.start_time or started
        origin = _bucket_start(started, self.period)
        # CloudWatch's end is exclusive and the last point may land in the job's last second
        end = self.end_time or (job.get("TrainingEndTime") or datetime.now(UTC)) \
            + timedelta(minutes=1)
        series = [(name, host) for name in names for host in _hosts(job)]
        rows: list[tuple[float, str, float, str]] = []
        for first in range(0, len(series), MAX_QUERIES):
            rows += self._query(series[first:first + MAX_QUERIES], start, end, origin)
        frame = pandas.DataFrame(rows, columns=COLUMNS)
        order = {name: index for index, name in enumerate(names)}
        frame = frame.assign(_order=frame["metric_name"].map(order))
        return (frame.sort_values(["_order", "timestamp", "host"], kind="stable")
                .drop(columns="_order").reset_index(drop=True))

    def _defined_metric_names(self, job: dict) -> list[str]:
        definitions = job.get("AlgorithmSpecification", {}).get("MetricDefinitions") or []
        names = list(dict.fromkeys(d["Name"] for d in definitions))
        if names:
            return names
        paginator = self.session.client("cloudwatch").get_paginator("list_metrics")
        pages = paginator.paginate(Namespace=NAMESPACE, Dimensions=[
            {"Name": "TrainingJobName", "Value": job["TrainingJobName"]}])
        return sorted({m["MetricName"] for page in pages for m in page["Metrics"]})

    def _query(self, series: list[tuple[str, str]], start: datetime, end: datetime,
               origin: datetime) -> list[tuple[float, str, float, str]]:
        queries = [{
            "Id": f"q{index}",
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": [
                    {"Name": "Host", "Value": f"{self.job_name}/{host}"}]},
                "Period": self.period, "Stat": "Average"},
        } for index, (name, host) in enumerate(series)]
        paginator = self.session.client("cloudwatch").get_paginator("get_metric_data")
        rows = []
        for page in paginator.paginate(MetricDataQueries=queries, StartTime=start,
                                       EndTime=end, ScanBy="TimestampAscending"):
            for result in page["MetricDataResults"]:
                name, host = series[int(result["Id"][1:])]
                rows += [((stamp - origin).total_seconds(), name, value, host)
                         for stamp, value in zip(result["Timestamps"], result["Values"],
                                                 strict=True)]
        return rows


def _bucket_start(moment: datetime, period: int) -> datetime:
    """The start of the CloudWatch bucket ``moment`` falls in when a query starts at it:
    timestamps count from there, so they are whole multiples of the period."""
    unit = period if period < 60 else 60
    return datetime.fromtimestamp(moment.timestamp() // unit * unit, moment.tzinfo or UTC)


def _hosts(job: dict[str, Any]) -> list[str]:
    config = job.get("ResourceConfig") or {}
    count = config.get("InstanceCount") or sum(
        group.get("InstanceCount", 0) for group in config.get("InstanceGroups") or []) or 1
    return [f"algo-{n}" for n in range(1, count + 1)]
