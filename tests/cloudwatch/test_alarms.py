"""CloudWatch metric alarms through a real server with boto3's ``cloudwatch`` client,
evaluated over endpoint invocation metrics and training-job metrics written to the same
home database the server uses."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

from openmaker.cloudwatch.alarms import alarm_states
from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.hosting.metrics import flush_endpoint_metrics, record_invocation
from openmaker.training.metrics import MetricPoint, metric_store

ENDPOINT = "alarm-endpoint"
JOB = "alarm-job"
TRAINING = "/aws/sagemaker/TrainingJobs"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cloudwatch-alarms-home"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def platform(server):
    platform = Platform(load_settings(home=server.home))
    yield platform
    platform.close()


@pytest.fixture
def cloudwatch(server):
    return server.client("cloudwatch")


def record(platform, variant: str, statuses: list[int]) -> None:
    now = datetime.now(UTC)
    for status in statuses:
        record_invocation(platform, ENDPOINT, variant, status=status, model_latency_us=900,
                          overhead_latency_us=100, instance_count=1, when=now)
    flush_endpoint_metrics(platform)


def variant_dims(variant: str) -> list[dict]:
    return [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": variant}]


def put_alarm(cloudwatch, name: str, **overrides) -> None:
    params = {"AlarmName": name, "Namespace": "AWS/SageMaker",
              "MetricName": "Invocation5XXErrors", "Dimensions": variant_dims("blue"),
              "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 2,
              "DatapointsToAlarm": 1, "Threshold": 0.0,
              "ComparisonOperator": "GreaterThanThreshold"}
    params.update(overrides)
    cloudwatch.put_metric_alarm(**{k: v for k, v in params.items() if v is not None})


def describe(cloudwatch, name: str) -> dict:
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


def error_of(excinfo) -> dict:
    return excinfo.value.response["Error"]


# -- put / describe / delete -----------------------------------------------------------------
def test_put_describe_and_delete_an_alarm(cloudwatch):
    put_alarm(cloudwatch, "shape", AlarmDescription="5xx on blue", Unit="None",
              TreatMissingData="notBreaching", AlarmActions=["arn:aws:sns:us-east-1:0:x"])
    alarm = describe(cloudwatch, "shape")
    assert alarm["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:000000000000:alarm:shape"
    assert {k: alarm[k] for k in ("AlarmDescription", "Namespace", "MetricName", "Statistic",
                                  "Period", "EvaluationPeriods", "DatapointsToAlarm",
                                  "Threshold", "ComparisonOperator", "TreatMissingData",
                                  "Unit", "ActionsEnabled", "AlarmActions", "OKActions")} == {
        "AlarmDescription": "5xx on blue", "Namespace": "AWS/SageMaker",
        "MetricName": "Invocation5XXErrors", "Statistic": "Sum", "Period": 60,
        "EvaluationPeriods": 2, "DatapointsToAlarm": 1, "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
        "Unit": "None", "ActionsEnabled": True, "AlarmActions": ["arn:aws:sns:us-east-1:0:x"],
        "OKActions": []}
    assert alarm["Dimensions"] == variant_dims("blue")
    assert alarm["StateValue"] == "OK"  # no errors, missing data not breaching
    for stamp in ("StateUpdatedTimestamp", "StateTransitionedTimestamp",
                  "AlarmConfigurationUpdatedTimestamp"):
        assert isinstance(alarm[stamp], datetime)
    put_alarm(cloudwatch, "shape", Threshold=5.0)  # an update replaces the configuration
    assert describe(cloudwatch, "shape")["Threshold"] == 5.0
    assert "AlarmDescription" not in describe(cloudwatch, "shape")
    cloudwatch.delete_alarms(AlarmNames=["shape"])
    assert cloudwatch.describe_alarms(AlarmNames=["shape"])["MetricAlarms"] == []
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.delete_alarms(AlarmNames=["shape"])
    assert error_of(excinfo)["Code"] == "ResourceNotFound"
    assert "shape" in error_of(excinfo)["Message"]


def test_describe_filters_and_pages(cloudwatch):
    for i in range(7):
        put_alarm(cloudwatch, f"page-{i:02d}", TreatMissingData="breaching" if i % 2 else None)
    put_alarm(cloudwatch, "page_other")
    pages = list(cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix="page-", PaginationConfig={"PageSize": 3}))
    assert [len(page["MetricAlarms"]) for page in pages] == [3, 3, 1]
    names = [a["AlarmName"] for page in pages for a in page["MetricAlarms"]]
    assert names == [f"page-{i:02d}" for i in range(7)]
    alarmed = cloudwatch.describe_alarms(AlarmNamePrefix="page-", StateValue="ALARM")
    assert [a["AlarmName"] for a in alarmed["MetricAlarms"]] == ["page-01", "page-03", "page-05"]
    assert cloudwatch.describe_alarms(AlarmNames=["page-02", "nope"])["MetricAlarms"][0][
        "AlarmName"] == "page-02"
    assert cloudwatch.describe_alarms(AlarmNamePrefix="page-",
                                      AlarmTypes=["CompositeAlarm"])["MetricAlarms"] == []
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.describe_alarms(AlarmNamePrefix="page-", NextToken="garbage")
    assert error_of(excinfo)["Code"] == "InvalidNextToken"
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.describe_alarms(AlarmNames=["page-01"], AlarmNamePrefix="page-")
    assert error_of(excinfo)["Code"] == "InvalidParameterCombination"
    cloudwatch.delete_alarms(AlarmNames=[f"page-{i:02d}" for i in range(7)] + ["page_other"])
    assert cloudwatch.describe_alarms(AlarmNamePrefix="page")["MetricAlarms"] == []


@pytest.mark.parametrize(("overrides", "code", "field"), [
    ({"EvaluationPeriods": None}, "MissingParameter", "EvaluationPeriods"),
    ({"ComparisonOperator": None}, "MissingParameter", "ComparisonOperator"),
    ({"Period": 45}, "InvalidParameterValue", "Period"),
    ({"DatapointsToAlarm": 3}, "ValidationError", "DatapointsToAlarm"),
    ({"Period": 3600, "EvaluationPeriods": 25}, "ValidationError", "EvaluationPeriods"),
    ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination", "ExtendedStatistic"),
    ({"Statistic": None}, "InvalidParameterCombination", "Statistic"),
    ({"Statistic": None, "ExtendedStatistic": "p101"}, "InvalidParameterValue",
     "ExtendedStatistic"),
    ({"TreatMissingData": "sometimes"}, "InvalidParameterValue", "TreatMissingData"),
    ({"ComparisonOperator": "Bigger"}, "ValidationError", "comparisonOperator"),
    ({"ComparisonOperator": "GreaterThanUpperThreshold"}, "InvalidParameterValue",
     "ComparisonOperator"),
    ({"Statistic": "Median"}, "ValidationError", "statistic"),
    ({"Metrics": [{"Id": "m1", "Expression": "SUM(METRICS())"}], "MetricName": None,
      "Namespace": None, "Statistic": None}, "NotImplemented", "Metrics"),
])
def test_bad_alarms_are_refused_naming_the_field(cloudwatch, overrides, code, field):
    with pytest.raises(ClientError) as excinfo:
        put_alarm(cloudwatch, "bad", **overrides)
    assert error_of(excinfo)["Code"] == code
    assert field in error_of(excinfo)["Message"]
    assert cloudwatch.describe_alarms(AlarmNames=["bad"])["MetricAlarms"] == []


# -- evaluation ------------------------------------------------------------------------------
def test_endpoint_errors_put_the_alarm_in_alarm(cloudwatch, platform):
    record(platform, "blue", [200, 500, 503, 200])
    record(platform, "green", [200, 200])
    put_alarm(cloudwatch, "blue-5xx")
    put_alarm(cloudwatch, "green-5xx", Dimensions=variant_dims("green"))
    put_alarm(cloudwatch, "blue-latency", MetricName="ModelLatency", Statistic=None,
              ExtendedStatistic="p99", Threshold=500.0, Unit="Microseconds")
    blue = describe(cloudwatch, "blue-5xx")
    assert blue["StateValue"] == "ALARM"
    assert blue["StateReason"].startswith("Threshold Crossed: 1 out of the last 2 datapoints")
    assert json.loads(blue["StateReasonData"])["recentDatapoints"] == [2.0]
    assert blue["StateTransitionedTimestamp"] >= blue["AlarmConfigurationUpdatedTimestamp"]
    assert describe(cloudwatch, "green-5xx")["StateValue"] == "OK"
    assert describe(cloudwatch, "blue-latency")["StateValue"] == "ALARM"
    assert alarm_states(platform, ["blue-5xx", "green-5xx", "no-such-alarm"]) == {
        "blue-5xx": "ALARM", "green-5xx": "OK", "no-such-alarm": "INSUFFICIENT_DATA"}
    # two errors in the window: not enough for a threshold of 2 errors per minute
    put_alarm(cloudwatch, "blue-5xx", Threshold=2.0)
    assert describe(cloudwatch, "blue-5xx")["StateValue"] == "OK"
    history = cloudwatch.describe_alarm_history(AlarmName="blue-5xx")["AlarmHistoryItems"]
    assert [(h["HistoryItemType"], h["HistorySummary"]) for h in history] == [
        ("StateUpdate", "Alarm updated from ALARM to OK"),
        ("ConfigurationUpdate", 'Alarm "blue-5xx" updated'),
        ("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM"),
        ("ConfigurationUpdate", 'Alarm "blue-5xx" created')]
    states = cloudwatch.describe_alarm_history(AlarmName="blue-5xx", HistoryItemType="StateUpdate",
                                               ScanBy="TimestampAscending", MaxRecords=1)
    assert states["AlarmHistoryItems"][0]["HistorySummary"].endswith("to ALARM")
    assert "NextToken" in states


@pytest.mark.parametrize(("treatment", "state"), [
    (None, "INSUFFICIENT_DATA"), ("missing", "INSUFFICIENT_DATA"), ("ignore", "INSUFFICIENT_DATA"),
    ("notBreaching", "OK"), ("breaching", "ALARM")])
def test_missing_data_is_treated_as_asked(cloudwatch, treatment, state):
    name = f"quiet-{treatment}"
    put_alarm(cloudwatch, name, Dimensions=variant_dims("never-invoked"),
              TreatMissingData=treatment)
    assert describe(cloudwatch, name)["StateValue"] == state
    cloudwatch.delete_alarms(AlarmNames=[name])


def test_a_unit_other_than_the_metrics_own_matches_no_data(cloudwatch, platform):
    record(platform, "blue", [500])
    put_alarm(cloudwatch, "wrong-unit", Unit="Seconds")
    assert describe(cloudwatch, "wrong-unit")["StateValue"] == "INSUFFICIENT_DATA"


def test_training_metrics_are_evaluated(cloudwatch, platform):
    now = int(time.time() * 1000)
    metric_store(platform).add(JOB, [MetricPoint("validation:loss", now - 1000, 0.8, "algo-1"),
                                     MetricPoint("validation:loss", now, 0.4, "algo-2")])
    dims = [{"Name": "TrainingJobName", "Value": JOB}]
    common = {"Namespace": TRAINING, "MetricName": "validation:loss", "Dimensions": dims,
              "Statistic": "Maximum", "Threshold": 0.5}
    put_alarm(cloudwatch, "loss-high", **common, ComparisonOperator="GreaterThanThreshold")
    put_alarm(cloudwatch, "loss-low", **common, ComparisonOperator="LessThanOrEqualToThreshold")
    put_alarm(cloudwatch, "host-2-high", **{**common, "Dimensions": [
        {"Name": "Host", "Value": f"{JOB}/algo-2"}]}, ComparisonOperator="GreaterThanThreshold")
    assert {a["AlarmName"]: a["StateValue"] for a in cloudwatch.describe_alarms(
        AlarmNames=["loss-high", "loss-low", "host-2-high"])["MetricAlarms"]} == {
        "loss-high": "ALARM", "loss-low": "OK", "host-2-high": "OK"}


# -- SetAlarmState ---------------------------------------------------------------------------
def test_set_alarm_state_holds_for_one_period(cloudwatch, platform):
    put_alarm(cloudwatch, "forced", Dimensions=variant_dims("idle"), Period=10,
              EvaluationPeriods=1)
    assert describe(cloudwatch, "forced")["StateValue"] == "INSUFFICIENT_DATA"
    cloudwatch.set_alarm_state(AlarmName="forced", StateValue="ALARM",
                               StateReason="testing the rollback",
                               StateReasonData=json.dumps({"by": "test"}))
    alarm = describe(cloudwatch, "forced")
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "testing the rollback")
    assert json.loads(alarm["StateReasonData"]) == {"by": "test"}
    assert alarm_states(platform, ["forced"]) == {"forced": "ALARM"}
    time.sleep(10.2)
    assert alarm_states(platform, ["forced"]) == {"forced": "INSUFFICIENT_DATA"}
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.set_alarm_state(AlarmName="no-such-alarm", StateValue="OK", StateReason="x")
    assert error_of(excinfo)["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.set_alarm_state(AlarmName="forced", StateValue="OK", StateReason="x",
                                   StateReasonData="{not json")
    assert error_of(excinfo)["Code"] == "InvalidFormat"
    assert "StateReasonData" in error_of(excinfo)["Message"]
    with pytest.raises(ClientError) as excinfo:
        cloudwatch.set_alarm_state(AlarmName="forced", StateValue="RED", StateReason="x")
    assert error_of(excinfo)["Code"] == "ValidationError"
    assert "stateValue" in error_of(excinfo)["Message"]
