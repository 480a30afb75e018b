"""Endpoint invocation metrics: what each invocation contributes, the summary, and
CloudWatch serving namespace ``AWS/SageMaker`` through a real server with boto3."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from tests.conftest import start_server

from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.hosting import metrics
from openmaker.hosting.metrics import (
    endpoint_metric_summary,
    endpoint_points,
    endpoint_series,
    flush_endpoint_metrics,
    record_invocation,
)

NAMESPACE = "AWS/SageMaker"
ENDPOINT = "Sales-Endpoint"
# Invocations every 10 s for 10 minutes from a whole minute, half an hour ago.
BASE_MS = (int(time.time()) // 60 - 30) * 60_000
STATUSES = [200, 200, 200, 404, 200, 500, 200, 0, 200, 200]  # repeated every 10 calls


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


START, END = at(BASE_MS), at(BASE_MS + 600_000)


def record_traffic(platform: Platform) -> None:
    for i in range(60):
        record_invocation(platform, ENDPOINT, "AllTraffic", status=STATUSES[i % 10],
                          model_latency_us=1000.0 + i, overhead_latency_us=50.0,
                          instance_count=2, when=at(BASE_MS + i * 10_000))
    for i in range(6):
        record_invocation(platform, ENDPOINT, "Canary", status=200, model_latency_us=5000.0,
                          overhead_latency_us=70.0, instance_count=1,
                          when=at(BASE_MS + i * 100_000))


@pytest.fixture
def platform(tmp_path):
    platform = Platform(load_settings(home=tmp_path / "home"))
    yield platform
    flush_endpoint_metrics(platform)
    platform.close()


# -- the store ---------------------------------------------------------------------------
def test_each_invocation_is_one_point_of_every_metric(platform):
    record_traffic(platform)
    args = (platform, ENDPOINT, "AllTraffic")
    window = (BASE_MS, BASE_MS + 100_000)  # the first ten calls
    values = {name: [p.value for p in endpoint_points(*args, name, *window)]
              for name in metrics.METRICS}
    assert values["Invocations"] == [1.0] * 10
    assert values["InvocationsPerInstance"] == [0.5] * 10
    assert values["Invocation4XXErrors"] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert values["Invocation5XXErrors"] == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert values["InvocationModelErrors"] == [0, 0, 0, 1, 0, 1, 0, 1, 0, 0]
    assert values["ModelLatency"] == [1000.0 + i for i in range(10)]
    assert values["OverheadLatency"] == [50.0] * 10
    assert endpoint_points(*args, "CPUUtilization", *window) == []
    stamps = [p.timestamp for p in endpoint_points(*args, "Invocations", *window)]
    assert stamps == [BASE_MS + i * 10_000 for i in range(10)]


def test_series_match_the_endpoint_case_insensitively(platform):
    record_traffic(platform)
    expected = [{"EndpointName": ENDPOINT, "VariantName": "AllTraffic"},
                {"EndpointName": ENDPOINT, "VariantName": "Canary"}]
    assert endpoint_series(platform) == expected
    assert endpoint_series(platform, ENDPOINT.lower()) == expected
    assert endpoint_series(platform, variant="Canary") == expected[1:]
    assert endpoint_series(platform, since_ms=BASE_MS + 10**9) == []


def test_recording_never_raises(platform, caplog):
    record_invocation(platform, ENDPOINT, "AllTraffic", status="bad",  # type: ignore[arg-type]
                      model_latency_us=1, overhead_latency_us=1, instance_count=1,
                      when=datetime.now(UTC))
    assert "could not record" in caplog.text
    assert endpoint_series(platform) == []


def test_full_buffer_drops_invocations(platform, monkeypatch):
    monkeypatch.setattr(metrics, "MAX_BUFFERED_ROWS", 3)
    monkeypatch.setattr(metrics, "FLUSH_INTERVAL_SECONDS", 3600)
    now = datetime.now(UTC)
    for _ in range(10):
        record_invocation(platform, ENDPOINT, "AllTraffic", status=200, model_latency_us=1,
                          overhead_latency_us=1, instance_count=1, when=now)
    points = endpoint_points(platform, ENDPOINT, "AllTraffic", "Invocations",
                             BASE_MS, BASE_MS + 10**10)
    assert 3 <= len(points) < 10


def test_background_flusher_writes_without_being_asked(platform):
    record_invocation(platform, ENDPOINT, "AllTraffic", status=200, model_latency_us=1,
                      overhead_latency_us=1, instance_count=1, when=datetime.now(UTC))
    other = Platform(load_settings(home=platform.settings.home))  # reads the database only
    try:
        deadline = time.monotonic() + 10
        while not endpoint_series(other):
            assert time.monotonic() < deadline, "nothing written within 10 s"
            time.sleep(0.1)
    finally:
        other.close()


def test_summary_per_variant_over_recent_minutes(platform):
    now = datetime.now(UTC)
    for i, status in enumerate([200] * 97 + [400, 503, 0]):
        record_invocation(platform, ENDPOINT, "AllTraffic", status=status,
                          model_latency_us=float(i + 1), overhead_latency_us=10.0,
                          instance_count=1, when=now - timedelta(seconds=i))
    record_invocation(platform, ENDPOINT, "Old", status=200, model_latency_us=1,
                      overhead_latency_us=1, instance_count=1, when=now - timedelta(hours=2))
    summary = endpoint_metric_summary(platform, ENDPOINT.upper())
    assert summary == {"AllTraffic": {
        "Invocations": 100, "Invocation4XXErrors": 1, "Invocation5XXErrors": 1,
        "InvocationModelErrors": 3, "ModelLatencyP50": 50.0, "ModelLatencyP99": 99.0,
        "OverheadLatencyP50": 10.0}}
    assert set(endpoint_metric_summary(platform, ENDPOINT, minutes=180)) == {"AllTraffic", "Old"}
    assert endpoint_metric_summary(platform, "no-such-endpoint") == {}


# -- CloudWatch through a real server ----------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("endpoint-metrics-home")
    writer = Platform(load_settings(home=home))
    try:
        record_invocation(writer, "early", "AllTraffic", status=200, model_latency_us=1,
                          overhead_latency_us=1, instance_count=1, when=START)
        flush_endpoint_metrics(writer)  # before the server starts
        running = start_server(home)
        record_traffic(writer)  # and while it runs
        flush_endpoint_metrics(writer)
    finally:
        writer.close()
    yield running
    running.stop()


@pytest.fixture
def cloudwatch(server):
    return server.client("cloudwatch")


def dims(variant: str = "AllTraffic", endpoint: str = ENDPOINT) -> list[dict]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]


def test_list_metrics_of_the_sagemaker_namespace(cloudwatch):
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    assert len(listed) == 3 * 8  # early/AllTraffic, Sales-Endpoint/AllTraffic and /Canary
    canary = cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=[
        {"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "Canary"}])
    assert canary["Metrics"] == [{"Namespace": NAMESPACE, "MetricName": name,
                                  "Dimensions": dims("Canary")} for name in metrics.METRICS]
    latency = cloudwatch.list_metrics(MetricName="ModelLatency",
                                      Dimensions=[{"Name": "VariantName"}])["Metrics"]
    assert [m["Dimensions"] for m in latency] == [dims(endpoint="early"), dims(), dims("Canary")]
    assert cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName="CPUUtilization")[
        "Metrics"] == []
    assert cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=[
        {"Name": "TrainingJobName"}])["Metrics"] == []
    assert cloudwatch.list_metrics(Namespace="/aws/sagemaker/TrainingJobs")["Metrics"] == []
    assert len(cloudwatch.list_metrics()["Metrics"]) == 24
    assert cloudwatch.list_metrics(Namespace=NAMESPACE, RecentlyActive="PT3H")["Metrics"]


def test_get_metric_statistics_of_invocations_and_errors(cloudwatch):
    response = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="Invocations", Dimensions=dims(), StartTime=START,
        EndTime=END, Period=60, Statistics=["Sum"])
    points = sorted(response["Datapoints"], key=lambda p: p["Timestamp"])
    assert [p["Sum"] for p in points] == [6.0] * 10
    assert {p["Unit"] for p in points} == {"None"}
    errors = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="InvocationModelErrors", Dimensions=dims(),
        StartTime=START, EndTime=END, Period=600, Statistics=["Sum", "Average"])
    (point,) = errors["Datapoints"]
    assert (point["Sum"], point["Average"]) == (18.0, 0.3)
    per_instance = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="InvocationsPerInstance", Dimensions=dims(),
        StartTime=START, EndTime=END, Period=600, Statistics=["Sum"])
    assert per_instance["Datapoints"][0]["Sum"] == 30.0


def test_latency_is_in_microseconds(cloudwatch):
    common = {"Namespace": NAMESPACE, "MetricName": "ModelLatency", "Dimensions": dims("Canary"),
              "StartTime": START, "EndTime": END, "Period": 600}
    (point,) = cloudwatch.get_metric_statistics(
        **common, Statistics=["Average", "SampleCount"])["Datapoints"]
    assert (point["Average"], point["SampleCount"], point["Unit"]) == (5000.0, 6.0,
                                                                       "Microseconds")
    assert cloudwatch.get_metric_statistics(**common, Unit="Microseconds",
                                            Statistics=["Sum"])["Datapoints"]
    assert cloudwatch.get_metric_statistics(**common, Unit="Milliseconds",
                                            Statistics=["Sum"])["Datapoints"] == []


def test_dimensions_must_name_endpoint_and_variant(cloudwatch):
    for dimensions in ([{"Name": "EndpointName", "Value": ENDPOINT}], dims("Nope"),
                       dims(endpoint="nope"), dims() + [{"Name": "Host", "Value": "x"}]):
        response = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName="Invocations", Dimensions=dimensions,
            StartTime=START, EndTime=END, Period=60, Statistics=["Sum"])
        assert response["Datapoints"] == [], dimensions
    lower = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="Invocations", Dimensions=dims(endpoint="sales-endpoint"),
        StartTime=START, EndTime=END, Period=600, Statistics=["Sum"])
    assert lower["Datapoints"][0]["Sum"] == 60.0


def test_get_metric_data_of_endpoint_metrics(cloudwatch):
    def query(query_id: str, name: str, stat: str, variant: str = "AllTraffic") -> dict:
        return {"Id": query_id, "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims(variant)},
            "Period": 300, "Stat": stat}}

    response = cloudwatch.get_metric_data(MetricDataQueries=[
        query("calls", "Invocations", "Sum"), query("p99", "ModelLatency", "p99"),
        query("canary", "Invocations", "Sum", "Canary"),
        query("fourxx", "Invocation4XXErrors", "Sum"),
        query("fivexx", "Invocation5XXErrors", "Sum")],
        StartTime=START, EndTime=END, ScanBy="TimestampAscending")
    results = {r["Id"]: r for r in response["MetricDataResults"]}
    assert results["calls"]["Values"] == [30.0, 30.0]
    assert results["calls"]["Timestamps"] == [START, at(BASE_MS + 300_000)]
    assert results["p99"]["Values"] == [1029.0, 1059.0]
    assert results["canary"]["Values"] == [3.0, 3.0]
    assert results["fourxx"]["Values"] == results["fivexx"]["Values"] == [3.0, 3.0]
    assert {r["StatusCode"] for r in results.values()} == {"Complete"}
