"""Endpoint instance metrics: the /proc sampler on this process and a child, disk usage,
recording, and CloudWatch serving namespace ``/aws/sagemaker/Endpoints`` through a real
server with boto3."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from tests.conftest import start_server

from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.hosting import metrics
from openmaker.hosting.metrics import (
    disk_percent,
    flush_endpoint_metrics,
    instance_points,
    instance_series,
    instance_usage,
    record_instance_usage,
)

NAMESPACE = "/aws/sagemaker/Endpoints"
ENDPOINT = "Usage-Endpoint"
BASE_MS = (int(time.time()) // 60 - 30) * 60_000  # a whole minute, half an hour ago
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


START, END = at(BASE_MS), at(BASE_MS + 300_000)


def spin(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def rss_percent(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    with open("/proc/meminfo") as meminfo:
        total = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    return 100.0 * rss / total


# -- the sampler -------------------------------------------------------------------------
@linux
def test_sampler_measures_this_process():
    cpu, memory, first = instance_usage([os.getpid()], None)
    assert cpu == 0.0  # nothing to compare with yet
    # this process and its live children (servers other tests' fixtures started)
    assert memory >= rss_percent(os.getpid()) * 0.8
    spin(0.4)  # CPU time, whatever the shared cores allow
    cpu, memory, second = instance_usage([os.getpid()], first)
    assert 10.0 < cpu <= 100.0 * os.cpu_count()
    assert second.monotonic > first.monotonic
    time.sleep(0.5)
    idle, _, _ = instance_usage([os.getpid()], second)
    assert idle < cpu


@linux
def test_sampler_counts_live_children():
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nt = time.time()\nwhile time.time() - t < 20: pass"])
    try:
        time.sleep(0.3)
        _, alone, _ = instance_usage([child.pid], None)
        _, together, first = instance_usage([os.getpid()], None)
        assert any(pid == child.pid for pid, _ in first.ticks)
        assert together > alone > 0.0  # this process's memory and the child's
        time.sleep(1.0)  # this process sleeps; the child spins
        cpu, _, second = instance_usage([os.getpid()], first)
        assert cpu > 20.0
    finally:
        child.kill()
        child.wait()
    cpu, _, _ = instance_usage([os.getpid()], second)  # the child gone: no negative time
    assert 0.0 <= cpu <= 100.0 * os.cpu_count()


def test_sampler_of_gone_processes_or_elsewhere_is_zero(monkeypatch):
    cpu, memory, sample = instance_usage([2**22 + 12345], None)
    assert (cpu, memory, sample.ticks) == (0.0, 0.0, {})
    assert instance_usage([2**22 + 12345], sample)[:2] == (0.0, 0.0)
    monkeypatch.setattr(metrics.sys, "platform", "darwin")
    assert instance_usage([os.getpid()], sample)[:2] == (0.0, 0.0)


def test_disk_percent_is_the_file_system_holding_the_directory(tmp_path):
    usage = shutil.disk_usage(tmp_path)
    assert disk_percent(tmp_path) == pytest.approx(100.0 * usage.used / usage.total, abs=1.0)
    assert disk_percent(tmp_path / "gone") is None


# -- the store ---------------------------------------------------------------------------
@pytest.fixture
def platform(tmp_path):
    platform = Platform(load_settings(home=tmp_path / "home"))
    yield platform
    flush_endpoint_metrics(platform)
    platform.close()


def test_samples_of_one_round_are_averaged_into_one_point(platform):
    for cpu, memory, disk in ((50.0, 10.0, 40.0), (150.0, 30.0, None)):  # two instances
        record_instance_usage(platform, ENDPOINT, "AllTraffic", cpu_percent=cpu,
                              memory_percent=memory, disk_percent=disk, when=at(BASE_MS))
    record_instance_usage(platform, ENDPOINT, "AllTraffic", cpu_percent=10.0,
                          memory_percent=20.0, disk_percent=None, when=at(BASE_MS + 1000))
    args = (platform, ENDPOINT.lower(), "AllTraffic")
    window = (BASE_MS, BASE_MS + 2000)

    def values(name: str) -> list[tuple[int, float]]:
        return [(p.timestamp, p.value) for p in instance_points(*args, name, *window)]

    assert values("CPUUtilization") == [(BASE_MS, 100.0), (BASE_MS + 1000, 10.0)]
    assert values("MemoryUtilization") == [(BASE_MS, 20.0), (BASE_MS + 1000, 20.0)]
    assert values("DiskUtilization") == [(BASE_MS, 40.0)]
    assert values("Invocations") == []
    assert instance_series(platform) == [{"EndpointName": ENDPOINT, "VariantName": "AllTraffic"}]
    assert metrics.endpoint_series(platform) == []  # the invocation table is apart


def test_recording_never_raises(platform, caplog):
    record_instance_usage(platform, ENDPOINT, "AllTraffic",
                          cpu_percent="busy",  # type: ignore[arg-type]
                          memory_percent=1.0, disk_percent=None, when=datetime.now(UTC))
    assert "could not record" in caplog.text
    assert instance_series(platform) == []


# -- CloudWatch through a real server ----------------------------------------------------
def record_usage(platform: Platform) -> None:
    """Five minutes of one-second samples of two instances of AllTraffic (CPU 40 and 80,
    memory 10 and 30), and one instance of Canary every ten seconds."""
    for second in range(300):
        when = at(BASE_MS + second * 1000)
        for cpu, memory in ((40.0, 10.0), (80.0, 30.0)):
            record_instance_usage(platform, ENDPOINT, "AllTraffic", cpu_percent=cpu + second // 60,
                                  memory_percent=memory, disk_percent=55.0, when=when)
        if second % 10 == 0:
            record_instance_usage(platform, ENDPOINT, "Canary", cpu_percent=5.0,
                                  memory_percent=2.0, disk_percent=None, when=when)


@pytest.fixture(scope="module")
def cloudwatch(tmp_path_factory):
    home = tmp_path_factory.mktemp("instance-metrics-home")
    writer = Platform(load_settings(home=home))
    try:
        running = start_server(home)
        record_usage(writer)
        flush_endpoint_metrics(writer)
    finally:
        writer.close()
    yield running.client("cloudwatch")
    running.stop()


def dims(variant: str = "AllTraffic", endpoint: str = ENDPOINT) -> list[dict]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]


def test_list_metrics_of_the_endpoints_namespace(cloudwatch):
    listed = cloudwatch.list_metrics(Namespace=NAMESPACE)["Metrics"]
    names = ["CPUUtilization", "MemoryUtilization", "DiskUtilization"]
    assert listed == [{"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims(variant)}
                      for variant in ("AllTraffic", "Canary") for name in names]
    assert cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName="Invocations")[
        "Metrics"] == []
    assert cloudwatch.list_metrics(Namespace="AWS/SageMaker")["Metrics"] == []
    everything = cloudwatch.list_metrics(MetricName="CPUUtilization")["Metrics"]
    assert [m["Namespace"] for m in everything] == [NAMESPACE, NAMESPACE]


def test_get_metric_statistics_average_over_instances_and_seconds(cloudwatch):
    common = {"Namespace": NAMESPACE, "MetricName": "CPUUtilization", "Dimensions": dims(),
              "StartTime": START, "EndTime": END, "Period": 60}
    points = sorted(cloudwatch.get_metric_statistics(
        **common, Statistics=["Average", "SampleCount", "Maximum"])["Datapoints"],
        key=lambda p: p["Timestamp"])
    assert [p["Average"] for p in points] == [60.0 + minute for minute in range(5)]
    assert {p["SampleCount"] for p in points} == {60.0}  # one point a second
    assert {p["Unit"] for p in points} == {"Percent"}
    assert cloudwatch.get_metric_statistics(**common, Unit="Percent", Statistics=["Sum"])[
        "Datapoints"]
    assert cloudwatch.get_metric_statistics(**common, Unit="None", Statistics=["Sum"])[
        "Datapoints"] == []
    memory = cloudwatch.get_metric_statistics(
        **{**common, "MetricName": "MemoryUtilization", "Period": 300},
        Statistics=["Average"])["Datapoints"]
    assert [p["Average"] for p in memory] == [20.0]
    disk = cloudwatch.get_metric_statistics(
        **{**common, "MetricName": "DiskUtilization", "Dimensions": dims("Canary"),
           "Period": 300}, Statistics=["Average"])["Datapoints"]
    assert disk == []  # the canary's disk usage was never known


def test_instance_metrics_need_both_dimensions_and_their_namespace(cloudwatch):
    for namespace, dimensions in ((NAMESPACE, dims()[:1]), (NAMESPACE, dims("Nope")),
                                  ("AWS/SageMaker", dims()),
                                  (NAMESPACE, dims() + [{"Name": "Host", "Value": "x"}])):
        response = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName="CPUUtilization", Dimensions=dimensions,
            StartTime=START, EndTime=END, Period=60, Statistics=["Average"])
        assert response["Datapoints"] == [], (namespace, dimensions)
    lower = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="MemoryUtilization",
        Dimensions=dims(endpoint=ENDPOINT.lower()), StartTime=START, EndTime=END,
        Period=300, Statistics=["Maximum"])
    assert lower["Datapoints"][0]["Maximum"] == 20.0


def test_get_metric_data_of_instance_metrics(cloudwatch):
    response = cloudwatch.get_metric_data(MetricDataQueries=[
        {"Id": "cpu", "MetricStat": {"Metric": {
            "Namespace": NAMESPACE, "MetricName": "CPUUtilization", "Dimensions": dims()},
            "Period": 300, "Stat": "Average"}},
        {"Id": "canary", "MetricStat": {"Metric": {
            "Namespace": NAMESPACE, "MetricName": "MemoryUtilization",
            "Dimensions": dims("Canary")}, "Period": 60, "Stat": "SampleCount"}}],
        StartTime=START, EndTime=END, ScanBy="TimestampAscending")
    results = {r["Id"]: r for r in response["MetricDataResults"]}
    assert results["cpu"]["Values"] == [62.0]
    assert results["canary"]["Values"] == [6.0] * 5
