"""CloudWatch metrics over training-job metric points, through a real server with boto3's
``cloudwatch`` client and the AWS CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

from openmaker.cloudwatch.metrics import aligned_start, statistic
from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.training.metrics import MetricPoint, metric_store

NAMESPACE = "/aws/sagemaker/TrainingJobs"
JOB = "cw-job"
WIDE_JOB = "cw-wide"
# Points every 10 s for 10 minutes from a whole minute, alternating between two hosts.
BASE_MS = (int(time.time()) // 60 - 30) * 60_000
POINTS = [MetricPoint("loss", BASE_MS + i * 10_000, round(10 / (i + 1), 6), f"algo-{i % 2 + 1}")
          for i in range(60)]
POINTS += [MetricPoint("accuracy", BASE_MS + i * 30_000, i / 20, "algo-1") for i in range(20)]


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


START, END = at(BASE_MS), at(BASE_MS + 600_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cloudwatch-home"))
    platform = Platform(load_settings(home=running.home))
    try:
        metric_store(platform).add(JOB, POINTS)
        metric_store(platform).add(WIDE_JOB, [MetricPoint(f"m{i:03d}", BASE_MS, 1.0, "algo-1")
                                              for i in range(300)])
    finally:
        platform.close()
    yield running
    running.stop()


@pytest.fixture
def cloudwatch(server):
    return server.client("cloudwatch")


def error_of(excinfo) -> dict:
    return excinfo.value.response["Error"]


def job_dims(job: str = JOB) -> list[dict]:
    return [{"Name": "TrainingJobName", "Value": job}]


def host_dims(host: str, job: str = JOB) -> list[dict]:
    return [{"Name": "Host", "Value": f"{job}/{host}"}]


def expected_buckets(points, period: int, stat: str, host: str | None = None,
                     metric: str = "loss") -> dict[int, float]:
    buckets: dict[int, list[float]] = {}
    for p in points:
        if p.metric_name == metric and host in (None, p.host):
            buckets.setdefault(BASE_MS + (p.timestamp - BASE_MS) // (period * 1000)
                               * period * 1000, []).append(p.value)
    return {stamp: statistic(stat, values) for stamp, values in buckets.items()}


def metric_query(query_id: str, stat: str, period: int = 60, dims=None, name: str = "loss",
                 **extra) -> dict:
    return {"Id": query_id, "MetricStat": {
        "Metric": {"Namespace": NAMESPACE, "MetricName": name,
                   "Dimensions": job_dims() if dims is None else dims},
        "Period": period, "Stat": stat}, **extra}


# -- statistics ------------------------------------------------------------------------------
def test_statistics_match_cloudwatch_definitions():
    values = [4.0, 1.0, 3.0, 2.0]
    assert statistic("SampleCount", values) == 4
    assert statistic("Sum", values) == 10
    assert statistic("Average", values) == 2.5
    assert (statistic("Minimum", values), statistic("Maximum", values)) == (1, 4)
    assert (statistic("p50", values), statistic("p75", values)) == (2, 3)
    assert (statistic("p0", values), statistic("p100", values), statistic("p99.9", values)) \
        == (1, 4, 4)


def test_start_time_is_rounded_like_cloudwatch():
    now = 1_700_000_040_000  # a whole minute
    assert aligned_start(now - 125_500, 60, now) % 60_000 == 0
    recent = now - 3_600_000 + 45_678  # 45.678 s into a minute
    assert aligned_start(recent, 5, now) == recent - 678
    assert aligned_start(recent, 20, now) == recent - 5_678
    assert aligned_start(recent, 300, now) == recent - 45_678  # a minute, not the period
    assert aligned_start(now - 20 * 86_400_000, 60, now) % 300_000 == 0
    assert aligned_start(now - 70 * 86_400_000, 60, now) % 3_600_000 == 0


# -- ListMetrics -----------------------------------------------------------------------------
def test_list_metrics_shows_a_job_metric_and_a_host_metric_per_instance(cloudwatch):
    metrics = cloudwatch.list_metrics(Namespace=NAMESPACE, Dimensions=[
        {"Name": "TrainingJobName", "Value": JOB}])["Metrics"]
    assert metrics == [
        {"Namespace": NAMESPACE, "MetricName": "accuracy", "Dimensions": job_dims()},
        {"Namespace": NAMESPACE, "MetricName": "loss", "Dimensions": job_dims()}]
    hosts = cloudwatch.list_metrics(MetricName="loss", Dimensions=[{"Name": "Host"}])["Metrics"]
    assert [m["Dimensions"] for m in hosts] == [host_dims("algo-1"), host_dims("algo-2")]
    one = cloudwatch.list_metrics(Dimensions=host_dims("algo-2"))["Metrics"]
    assert [(m["MetricName"], m["Dimensions"]) for m in one] == [("loss", host_dims("algo-2"))]


def test_list_metrics_filters(cloudwatch):
    everything = [m for page in cloudwatch.get_paginator("list_metrics").paginate()
                  for m in page["Metrics"]]
    assert len(everything) == 2 + 3 + 300 * 2  # cw-job: 2 job + 3 host metrics; cw-wide
    assert cloudwatch.list_metrics(Namespace="AWS/EC2")["Metrics"] == []
    assert cloudwatch.list_metrics(MetricName="nope")["Metrics"] == []
    assert cloudwatch.list_metrics(Dimensions=job_dims("no-such-job"))["Metrics"] == []
    assert cloudwatch.list_metrics(Dimensions=[{"Name": "InstanceId"}])["Metrics"] == []
    both = [{"Name": "TrainingJobName", "Value": JOB}, {"Name": "Host"}]
    assert cloudwatch.list_metrics(Dimensions=both)["Metrics"] == []
    # the points are half an hour old
    assert len(cloudwatch.list_metrics(MetricName="loss", RecentlyActive="PT3H")["Metrics"]) == 3
    linked = cloudwatch.list_metrics(Dimensions=job_dims(), IncludeLinkedAccounts=True)
    assert linked["OwningAccounts"] == ["000000000000"] * 2


def test_list_metrics_pages_by_500(cloudwatch):
    first = cloudwatch.list_metrics(Dimensions=[{"Name": "TrainingJobName"}])
    assert len(first["Metrics"]) == 302  # accuracy and loss of cw-job, m000..m299 of cw-wide
    assert "NextToken" not in first
    first = cloudwatch.list_metrics(Namespace=NAMESPACE)
    assert len(first["Metrics"]) == 500
    second = cloudwatch.list_metrics(Namespace=NAMESPACE, NextToken=first["NextToken"])
    assert len(second["Metrics"]) == 105 and "NextToken" not in second
    seen = first["Metrics"] + second["Metrics"]
    assert len({json.dumps(m, sort_keys=True) for m in seen}) == 605
    with pytest.raises(ClientError) as excinfo:  # a token of other filters
        cloudwatch.list_metrics(MetricName="loss", NextToken=first["NextToken"])
    assert error_of(excinfo)["Code"] == "InvalidParameterValue"


# -- GetMetricStatistics -----------------------------------------------------------------
@pytest.mark.parametrize("period", [60, 120, 300])
def test_get_metric_statistics_per_period(cloudwatch, period):
    stats = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"]
    response = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="loss", Dimensions=job_dims(), StartTime=START,
        EndTime=END, Period=period, Statistics=stats)
    assert response["Label"] == "loss"
    points = response["Datapoints"]
    assert len(points) == 600 // period
    for stat in stats:
        got = {int(p["Timestamp"].timestamp() * 1000): p[stat] for p in points}
        assert got == pytest.approx(expected_buckets(POINTS, period, stat)), stat
    assert {p["Unit"] for p in points} == {"None"}
    assert sum(p["SampleCount"] for p in points) == 60


def test_get_metric_statistics_percentiles_of_one_host(cloudwatch):
    response = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="loss", Dimensions=host_dims("algo-2"),
        StartTime=START, EndTime=END, Period=300, ExtendedStatistics=["p50", "p99.5"])
    points = sorted(response["Datapoints"], key=lambda p: p["Timestamp"])
    for stat in ("p50", "p99.5"):
        expected = expected_buckets(POINTS, 300, stat, host="algo-2")
        assert [p["ExtendedStatistics"][stat] for p in points] == pytest.approx(
            [expected[k] for k in sorted(expected)])
    assert "Average" not in points[0]


def test_get_metric_statistics_window_excludes_end_and_rounds_start(cloudwatch):
    # a start 30 s into the first minute is rounded down to it; the end is exclusive
    response = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE, MetricName="loss", Dimensions=job_dims(),
        StartTime=at(BASE_MS + 30_000), EndTime=at(BASE_MS + 120_000), Period=60,
        Statistics=["SampleCount"])
    assert sorted((p["Timestamp"], p["SampleCount"]) for p in response["Datapoints"]) == [
        (START, 6.0), (at(BASE_MS + 60_000), 6.0)]


def test_get_metric_statistics_of_unknown_metrics_is_empty(cloudwatch):
    for namespace, dims, unit in [("AWS/EC2", job_dims(), None),
                                  (NAMESPACE, job_dims("no-such-job"), None),
                                  (NAMESPACE, [{"Name": "InstanceId", "Value": JOB}], None),
                                  (NAMESPACE, job_dims() + host_dims("algo-1"), None),
                                  (NAMESPACE, [], None),
                                  (NAMESPACE, job_dims(), "Seconds")]:
        extra = {"Unit": unit} if unit else {}
        response = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName="loss", Dimensions=dims, StartTime=START,
            EndTime=END, Period=60, Statistics=["Average"], **extra)
        assert response["Datapoints"] == [], (namespace, dims, unit)


@pytest.mark.parametrize(("change", "code", "words"), [
    ({"Period": 45}, "InvalidParameterValue", "Period"),
    ({"EndTime": START}, "InvalidParameterValue", "StartTime must be less than"),
    ({"Period": 1, "EndTime": START + timedelta(hours=1)}, "InvalidParameterCombination",
     "3,600 datapoints"),
    ({"ExtendedStatistics": ["p50"]}, "InvalidParameterCombination", "mutually exclusive"),
    ({"Statistics": None}, "InvalidParameterCombination", "Statistics or ExtendedStatistics"),
    ({"Statistics": None, "ExtendedStatistics": ["tm90"]}, "InvalidParameterValue",
     "ExtendedStatistics"),
    ({"Statistics": ["Avg"]}, "ValidationError", "statistics.1.member"),
    ({"Namespace": None}, "MissingParameter", "The parameter Namespace is required."),
    ({"Period": None}, "MissingParameter", "The parameter Period is required."),
])
def test_get_metric_statistics_bad_input(server, change, code, words):
    cloudwatch = server.client("cloudwatch", parameter_validation=False)
    params = {"Namespace": NAMESPACE, "MetricName": "loss", "Dimensions": job_dims(),
              "StartTime": START, "EndTime": END, "Period": 60, "Statistics": ["Average"]}
    params.update(change)
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.get_metric_statistics(**{k: v for k, v in params.items() if v is not None})
    assert error_of(excinfo)["Code"] == code
    assert words in error_of(excinfo)["Message"]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_modeled_errors_raise_their_exception_classes(cloudwatch):
    with pytest.raises(cloudwatch.exceptions.InvalidParameterValueException):
        cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE, MetricName="loss", StartTime=START, EndTime=END, Period=7,
            Statistics=["Average"])


# -- GetMetricData -----------------------------------------------------------------------
def test_get_metric_data_several_stats_and_periods(cloudwatch):
    response = cloudwatch.get_metric_data(
        MetricDataQueries=[
            metric_query("avg", "Average"),
            metric_query("hostmax", "Maximum", period=120, dims=host_dims("algo-1"),
                         Label="algo-1 max"),
            metric_query("median", "p50", period=300),
            metric_query("acc", "SampleCount", period=600, name="accuracy"),
            metric_query("hidden", "Sum", ReturnData=False),
        ],
        StartTime=START, EndTime=END, ScanBy="TimestampAscending")
    results = {r["Id"]: r for r in response["MetricDataResults"]}
    assert list(results) == ["avg", "hostmax", "median", "acc"]
    for query_id, period, stat, host in [("avg", 60, "Average", None),
                                         ("hostmax", 120, "Maximum", "algo-1"),
                                         ("median", 300, "p50", None)]:
        expected = expected_buckets(POINTS, period, stat, host=host)
        result = results[query_id]
        assert [int(t.timestamp() * 1000) for t in result["Timestamps"]] == sorted(expected)
        assert result["Values"] == pytest.approx([expected[k] for k in sorted(expected)])
        assert result["StatusCode"] == "Complete"
    assert results["acc"]["Values"] == [20.0]
    assert results["avg"]["Label"] == "loss"
    assert results["hostmax"]["Label"] == "algo-1 max"
    descending = cloudwatch.get_metric_data(MetricDataQueries=[metric_query("avg", "Average")],
                                            StartTime=START, EndTime=END)
    assert descending["MetricDataResults"][0]["Timestamps"] == \
        results["avg"]["Timestamps"][::-1]


def test_get_metric_data_pages_by_max_datapoints(cloudwatch):
    queries = [metric_query("a", "Average"), metric_query("b", "Maximum", period=120)]
    whole = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=START, EndTime=END)
    assert "NextToken" not in whole
    pages, token = [], None
    while True:
        extra = {"NextToken": token} if token else {}
        page = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=START,
                                          EndTime=END, MaxDatapoints=4, **extra)
        pages.append(page)
        token = page.get("NextToken")
        if not token:
            break
    assert len(pages) == 4  # 10 + 5 datapoints, 4 a page
    assert sum(len(r["Values"]) for p in pages for r in p["MetricDataResults"]) == 15
    for index, query_id in enumerate(("a", "b")):
        assert {p["MetricDataResults"][index]["Id"] for p in pages} == {query_id}
        assert [v for p in pages for v in p["MetricDataResults"][index]["Values"]] == \
            whole["MetricDataResults"][index]["Values"]
    assert pages[0]["MetricDataResults"][0]["StatusCode"] == "PartialData"
    assert pages[-1]["MetricDataResults"][1]["StatusCode"] == "Complete"
    paginated = list(cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=START, EndTime=END,
        PaginationConfig={"PageSize": 6}))
    assert len(paginated) == 3
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.get_metric_data(MetricDataQueries=queries[:1], StartTime=START,
                                   EndTime=END, NextToken=pages[0]["NextToken"])
    assert error_of(excinfo)["Code"] == "InvalidNextToken"
    with pytest.raises(cloudwatch.exceptions.InvalidNextToken):
        cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=START, EndTime=END,
                                   NextToken="garbage")


def test_get_metric_data_of_unknown_metrics_is_empty(cloudwatch):
    response = cloudwatch.get_metric_data(MetricDataQueries=[
        {"Id": "ec2", "MetricStat": {"Metric": {"Namespace": "AWS/EC2",
                                                "MetricName": "CPUUtilization"},
                                     "Period": 60, "Stat": "Average"}},
        metric_query("nojob", "Average", dims=job_dims("nobody")),
    ], StartTime=START, EndTime=END)
    assert [(r["Id"], r["Values"], r["StatusCode"]) for r in response["MetricDataResults"]] \
        == [("ec2", [], "Complete"), ("nojob", [], "Complete")]


def test_get_metric_data_bad_queries_are_all_named(cloudwatch):
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.get_metric_data(MetricDataQueries=[
            metric_query("Bad-id", "Average"), metric_query("x", "Avg", period=90),
            metric_query("x", "Average")], StartTime=START, EndTime=END)
    error = error_of(excinfo)
    assert error["Code"] == "ValidationError"
    lines = error["Message"].splitlines()
    assert len(lines) == 4
    assert "MetricDataQueries.member.1.Id" in lines[0]
    assert "MetricDataQueries.member.2.MetricStat.Period" in lines[1]
    assert "The value Avg for parameter MetricDataQueries.member.2.MetricStat.Stat" in lines[2]
    assert lines[3] == "The values for parameter id in MetricDataQueries are not unique."
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.get_metric_data(MetricDataQueries=[metric_query("a", "Average")],
                                   StartTime=END, EndTime=START)
    assert error_of(excinfo)["Code"] == "ValidationError"
    assert "StartTime" in error_of(excinfo)["Message"]
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.get_metric_data(MetricDataQueries=[{"Id": "e"}], StartTime=START,
                                   EndTime=END)
    assert "Exactly one of MetricDataQueries.member.1.MetricStat" in error_of(excinfo)["Message"]


def test_expressions_are_refused_clearly(cloudwatch):
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.get_metric_data(MetricDataQueries=[
            metric_query("a", "Average"), {"Id": "e", "Expression": "a * 2"}],
            StartTime=START, EndTime=END)
    error = error_of(excinfo)
    assert error["Code"] == "NotImplemented"
    assert "MetricDataQueries.member.2.Expression" in error["Message"]


def test_other_operations_are_not_implemented(cloudwatch):
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.put_metric_data(Namespace="Custom", MetricData=[
            {"MetricName": "m", "Value": 1.0}])
    assert error_of(excinfo)["Code"] == "NotImplemented"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "PutMetricData" in error_of(excinfo)["Message"]


def test_unsigned_requests_are_routed_by_target(server):
    import urllib.request

    request = urllib.request.Request(server.url + "/", method="POST", data=json.dumps(
        {"Namespace": NAMESPACE, "MetricName": "accuracy"}).encode(), headers={
        "X-Amz-Target": "GraniteServiceVersion20100801.ListMetrics",
        "Content-Type": "application/x-amz-json-1.0"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/x-amz-json-1.0"
        body = json.loads(response.read())
    assert [m["Dimensions"][0]["Name"] for m in body["Metrics"]] == ["TrainingJobName", "Host"]


def test_signed_requests_are_verified(auth_server):
    from tests.conftest import TEST_KEY_ID, TEST_SECRET

    good = auth_server.client("cloudwatch", key_id=TEST_KEY_ID, secret=TEST_SECRET)
    assert good.list_metrics(Namespace="AWS/EC2")["Metrics"] == []
    with pytest.raises(ClientError) as excinfo:
        auth_server.client("cloudwatch", key_id=TEST_KEY_ID, secret="wrong").list_metrics()
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


# -- the AWS CLI -------------------------------------------------------------------------
def aws(server, *args: str) -> dict:
    cli = Path(sys.executable).with_name("aws")
    env = {**server.env, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    result = subprocess.run([str(cli), "--endpoint-url", server.url, "--output", "json", *args],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_aws_cli_lists_metrics_and_gets_statistics(server):
    listed = aws(server, "cloudwatch", "list-metrics", "--namespace", NAMESPACE,
                 "--dimensions", f"Name=Host,Value={JOB}/algo-1")
    assert [m["MetricName"] for m in listed["Metrics"]] == ["accuracy", "loss"]
    stats = aws(server, "cloudwatch", "get-metric-statistics", "--namespace", NAMESPACE,
                "--metric-name", "accuracy", "--dimensions", f"Name=TrainingJobName,Value={JOB}",
                "--start-time", START.isoformat(), "--end-time", END.isoformat(),
                "--period", "600", "--statistics", "Average", "SampleCount")
    [point] = stats["Datapoints"]
    assert point["SampleCount"] == 20
    assert math.isclose(point["Average"], sum(i / 20 for i in range(20)) / 20)
