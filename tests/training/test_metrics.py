"""Training metrics: MetricDefinitions parsing, the metric store, and real jobs whose output
lines become FinalMetricDataList and metric_history."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.training.test_jobs import IMAGE, ROLE, source_tar, wait

from openmaker.config import load_settings
from openmaker.core import errors
from openmaker.core.platform import Platform
from openmaker.training.metrics import (
    MetricParser,
    MetricPoint,
    compile_definitions,
    final_metric_data,
    metric_history,
    metric_store,
    parse_value,
)

BUCKET = "metric-jobs"
DEFINITIONS = [{"Name": "loss", "Regex": r"loss=(\S+)"},
               {"Name": "epoch", "Regex": r"epoch=(\d+)"}]

# algo-1 prints its epochs at once; algo-2 waits, so its lines are the last ones.
TWO_HOSTS = '''
import os, time
host = os.environ["SM_CURRENT_HOST"]
losses = [0.5, 0.25, 0.125] if host == "algo-1" else ["4e-1", "2E-2", "1e-3"]
if host == "algo-2":
    time.sleep(1.0)
for epoch, loss in enumerate(losses, start=1):
    print(f"epoch={epoch} loss={loss}", flush=True)
    time.sleep(0.1)
print("loss=not-a-number epoch=x", flush=True)
'''
SLOW = '''
import time
print("loss=0.9", flush=True)
time.sleep(3)
print("loss=0.1", flush=True)
'''


# -- parsing --------------------------------------------------------------------------------
def test_first_capture_group_is_the_value():
    parser = MetricParser([{"Name": "loss", "Regex": r"loss: ([0-9.]+) \(acc (\d+)\)"}])
    assert parser.parse("step 3 loss: 0.75 (acc 9)") == [("loss", 0.75)]
    assert parser.parse("no metric here") == []


def test_regex_without_group_takes_the_whole_match():
    parser = MetricParser([{"Name": "n", "Regex": r"-?\d+\.\d+"}])
    assert parser.parse("value -12.5 seen") == [("n", -12.5)]


def test_scientific_notation_and_spaces():
    parser = MetricParser([{"Name": "lr", "Regex": r"lr=(.*?);"}])
    assert parser.parse("lr=1e-3;") == [("lr", 0.001)]
    assert parser.parse("lr= 2.5E+2 ;") == [("lr", 250.0)]
    assert parser.parse("lr=.5;") == [("lr", 0.5)]


def test_values_that_do_not_parse_are_skipped():
    parser = MetricParser([{"Name": "loss", "Regex": r"loss=(\S*)"}])
    for line in ("loss=abc", "loss=", "loss=0.5,", "loss=nan", "loss=inf", "loss=-Infinity"):
        assert parser.parse(line) == [], line
    assert parse_value("1e-3") == 0.001 and parse_value(" 7 ") == 7.0
    assert parse_value("nan") is None and parse_value("inf") is None
    assert parse_value(None) is None


def test_optional_group_that_did_not_match_is_skipped():
    parser = MetricParser([{"Name": "x", "Regex": r"x(?:=(\d+))?"}])
    assert parser.parse("x") == []
    assert parser.parse("x=4") == [("x", 4.0)]


def test_several_metrics_in_one_line():
    parser = MetricParser([{"Name": "train:loss", "Regex": r"train_loss=([^ ]+)"},
                           {"Name": "val:loss", "Regex": r"val_loss=([^ ]+)"},
                           {"Name": "acc", "Regex": r"acc=([^ ]+)"}])
    assert parser.parse("epoch 2 train_loss=0.3 val_loss=0.4") == [("train:loss", 0.3),
                                                                    ("val:loss", 0.4)]


def test_bad_regex_names_the_member():
    with pytest.raises(errors.AwsError) as caught:
        compile_definitions([{"Name": "ok", "Regex": "a(b)"}, {"Name": "bad", "Regex": "a(b"}])
    assert isinstance(caught.value, errors.ValidationException)
    assert "AlgorithmSpecification.MetricDefinitions.2.Regex" in caught.value.message
    assert "missing )" in caught.value.message
    assert compile_definitions(None) == []


def test_final_metric_data_keeps_definition_order():
    latest = {"b": MetricPoint("b", 2000, 2.0, "algo-1"), "a": MetricPoint("a", 1000, 1.0,
                                                                          "algo-2")}
    final = final_metric_data(["a", "b", "c"], latest)
    assert [(m["MetricName"], m["Value"]) for m in final] == [("a", 1.0), ("b", 2.0)]
    assert final[0]["Timestamp"].timestamp() == 1.0


def test_store_returns_points_in_time_order(tmp_path):
    platform = Platform(load_settings(home=tmp_path))
    store = metric_store(platform)
    assert metric_store(platform) is store
    store.add("Job-A", [MetricPoint("loss", 2000, 0.5, "algo-1"),
                        MetricPoint("loss", 1000, 0.9, "algo-2"),
                        MetricPoint("acc", 2000, 0.7, "algo-1")])
    store.add("other", [MetricPoint("loss", 500, 1.0, "algo-1")])
    history = metric_history(platform, "job-a")
    assert [(p["MetricName"], p["Value"], p["Host"]) for p in history] == [
        ("loss", 0.9, "algo-2"), ("loss", 0.5, "algo-1"), ("acc", 0.7, "algo-1")]
    assert history[0]["Timestamp"].timestamp() == 1.0
    assert metric_history(platform, "missing") == []
    platform.close()


# -- real jobs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def metric_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("metrics-home"))
    running.client("s3").create_bucket(Bucket=BUCKET)
    yield running
    running.stop()


def create_job(server, script: str, definitions, *, count: int = 1) -> str:
    name = f"metrics-{uuid.uuid4().hex[:12]}"
    key = f"{name}/source/sourcedir.tar.gz"
    server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=source_tar(script))
    server.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                "MetricDefinitions": definitions},
        RoleArn=ROLE,
        HyperParameters={"sagemaker_program": json.dumps("train.py"),
                         "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}")},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": count,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    return name


def test_job_metrics_from_two_instances(metric_server):
    name = create_job(metric_server, TWO_HOSTS, DEFINITIONS, count=2)
    job = wait(metric_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == DEFINITIONS
    final = {m["MetricName"]: m for m in job["FinalMetricDataList"]}
    assert [m["MetricName"] for m in job["FinalMetricDataList"]] == ["loss", "epoch"]
    assert final["loss"]["Value"] == pytest.approx(0.001)  # algo-2's last line
    assert final["epoch"]["Value"] == 3.0
    assert job["TrainingStartTime"] <= final["loss"]["Timestamp"] <= job["TrainingEndTime"]

    platform = Platform(load_settings(home=metric_server.home))
    try:
        history = metric_history(platform, name)
    finally:
        platform.close()
    assert len(history) == 12  # 2 hosts x 3 epochs x 2 metrics; the bad line is skipped
    stamps = [p["Timestamp"] for p in history]
    assert stamps == sorted(stamps)
    by_host = {host: [(p["MetricName"], p["Value"]) for p in history if p["Host"] == host]
               for host in ("algo-1", "algo-2")}
    assert by_host["algo-1"] == [("loss", 0.5), ("epoch", 1.0), ("loss", 0.25), ("epoch", 2.0),
                                 ("loss", 0.125), ("epoch", 3.0)]
    assert by_host["algo-2"] == [("loss", 0.4), ("epoch", 1.0), ("loss", 0.02), ("epoch", 2.0),
                                 ("loss", 0.001), ("epoch", 3.0)]
    assert history[-1]["Host"] == "algo-2"
    assert final["loss"]["Timestamp"] == max(p["Timestamp"] for p in history
                                             if p["MetricName"] == "loss")


def test_final_metrics_are_updated_while_the_job_runs(metric_server):
    name = create_job(metric_server, SLOW, [{"Name": "loss", "Regex": r"loss=([\d.]+)"}])
    client = metric_server.client("sagemaker")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.describe_training_job(TrainingJobName=name)
        if job.get("FinalMetricDataList"):
            break
        time.sleep(0.1)
    assert job["TrainingJobStatus"] == "InProgress"
    assert job["FinalMetricDataList"][0]["Value"] == 0.9
    job = wait(metric_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [(m["MetricName"], m["Value"]) for m in job["FinalMetricDataList"]] == [("loss", 0.1)]


def test_job_without_matches_has_no_final_metrics(metric_server):
    name = create_job(metric_server, 'print("hello")', [{"Name": "loss", "Regex": "loss=(.*)"}])
    job = wait(metric_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert "FinalMetricDataList" not in job


def test_bad_regex_is_refused_at_create(metric_server):
    with pytest.raises(ClientError) as caught:
        create_job(metric_server, 'print("x")',
                   [{"Name": "loss", "Regex": "loss=(.*)"}, {"Name": "acc", "Regex": "acc=[0-9"}])
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "AlgorithmSpecification.MetricDefinitions.2.Regex" in error["Message"]
    assert "unterminated character set" in error["Message"]
