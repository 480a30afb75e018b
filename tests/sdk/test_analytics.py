"""Training-job metrics as DataFrames against a real server: the SageMaker SDK's
``TrainingJobAnalytics`` unmodified, and ``openmaker.TrainingJobAnalytics``."""

from __future__ import annotations

import json
import math
import uuid
from datetime import timedelta

import pandas as pd
import pytest
from tests.conftest import start_server
from tests.training.test_jobs import IMAGE, ROLE, source_tar, wait

from openmaker import Session, TrainingJobAnalytics
from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.training.metrics import MetricPoint, metric_history, metric_store

BUCKET = "analytics-jobs"
DEFINITIONS = [{"Name": "loss", "Regex": r"loss=(\S+)"},
               {"Name": "epoch", "Regex": r"epoch=(\d+)"}]
# Lines 1.1 s apart, so every point has a second of its own.
EPOCHS = '''
import os, time
offset = 0.0 if os.environ["SM_CURRENT_HOST"] == "algo-1" else 0.5
for epoch in range(1, 4):
    print(f"epoch={epoch} loss={1 / epoch + offset}", flush=True)
    time.sleep(1.1)
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("analytics-home"))
    running.client("s3").create_bucket(Bucket=BUCKET)
    yield running
    running.stop()


def run_job(server, script: str, definitions=None, count: int = 1) -> dict:
    name = f"analytics-{uuid.uuid4().hex[:10]}"
    key = f"{name}/source/sourcedir.tar.gz"
    server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=source_tar(script))
    algorithm = {"TrainingImage": IMAGE, "TrainingInputMode": "File"}
    if definitions:
        algorithm["MetricDefinitions"] = definitions
    server.client("sagemaker").create_training_job(
        TrainingJobName=name, AlgorithmSpecification=algorithm, RoleArn=ROLE,
        HyperParameters={"sagemaker_program": json.dumps("train.py"),
                         "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}")},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": count,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 120})
    job = wait(server, name, timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return job


@pytest.fixture(scope="module")
def job(server) -> dict:
    return run_job(server, EPOCHS, DEFINITIONS, count=2)


def history(server, name: str) -> list[dict]:
    platform = Platform(load_settings(home=server.home))
    try:
        return metric_history(platform, name)
    finally:
        platform.close()


def add_points(server, name: str, points: list[MetricPoint]) -> None:
    platform = Platform(load_settings(home=server.home))
    try:
        metric_store(platform).add(name, points)
    finally:
        platform.close()


def ms(moment) -> int:
    return math.floor(moment.timestamp() * 1000)


# -- the SageMaker SDK ---------------------------------------------------------------------
@pytest.fixture
def sagemaker_session(server, monkeypatch):
    import boto3
    sagemaker = pytest.importorskip("sagemaker")

    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    boto_session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                 region_name="us-east-1")
    return sagemaker.Session(boto_session=boto_session)


def test_sagemaker_sdk_training_job_analytics(server, job, sagemaker_session):
    from sagemaker.analytics import TrainingJobAnalytics as SageMakerAnalytics

    frame = SageMakerAnalytics(job["TrainingJobName"],
                               sagemaker_session=sagemaker_session).dataframe()
    assert list(frame.columns) == ["timestamp", "metric_name", "value"]
    # the SDK asks for 60-second averages of every host, timed from the first minute
    points = history(server, job["TrainingJobName"])
    start = ms(job["TrainingStartTime"]) // 60_000 * 60_000
    for name in ("loss", "epoch"):
        buckets: dict[int, list[float]] = {}
        for p in points:
            if p["MetricName"] == name:
                buckets.setdefault((ms(p["Timestamp"]) - start) // 60_000, []).append(p["Value"])
        first = min(buckets)
        expected = [((minute - first) * 60.0, sum(v) / len(v))
                    for minute, v in sorted(buckets.items())]
        rows = frame[frame["metric_name"] == name]
        assert rows["timestamp"].tolist() == [stamp for stamp, _ in expected]
        assert rows["value"].tolist() == pytest.approx([value for _, value in expected])
    assert set(frame["metric_name"]) == {"loss", "epoch"}


def test_sagemaker_sdk_analytics_with_a_window_and_period(server, job, sagemaker_session):
    from sagemaker.analytics import TrainingJobAnalytics as SageMakerAnalytics

    name = job["TrainingJobName"]
    origin = job["TrainingStartTime"].replace(second=0, microsecond=0) - timedelta(minutes=20)
    add_points(server, name, [MetricPoint("lr", ms(origin) + minute * 60_000 + 5_000,
                                          0.1 * (minute + 1), "algo-1") for minute in range(6)])
    analytics = SageMakerAnalytics(name, metric_names=["lr"], sagemaker_session=sagemaker_session,
                                   start_time=origin, end_time=origin + timedelta(minutes=4),
                                   period=120)
    frame = analytics.dataframe()
    assert frame["timestamp"].tolist() == [0.0, 120.0]
    assert frame["value"].tolist() == pytest.approx([0.15, 0.35])


# -- openmaker.TrainingJobAnalytics --------------------------------------------------------
def test_openmaker_analytics_keeps_every_point_per_host(server, job, tmp_path):
    session = Session(server.url)
    analytics = TrainingJobAnalytics(job["TrainingJobName"], session=session)
    frame = analytics.dataframe()
    assert list(frame.columns) == ["timestamp", "metric_name", "value", "host"]
    assert len(frame) == 12  # 2 metrics x 2 hosts x 3 epochs
    assert frame["metric_name"].tolist()[:6] == ["loss"] * 6  # definition order
    # whole seconds from the second the training started in
    start = ms(job["TrainingStartTime"]) // 1000
    expected = sorted(
        (["loss", "epoch"].index(p["MetricName"]), ms(p["Timestamp"]) // 1000 - start,
         p["Host"], p["Value"]) for p in history(server, job["TrainingJobName"])
        if p["MetricName"] in ("loss", "epoch"))
    got = [(["loss", "epoch"].index(r.metric_name), r.timestamp, r.host, r.value)
           for r in frame.itertuples()]
    assert [row[:3] for row in got] == [row[:3] for row in expected]
    assert [row[3] for row in got] == pytest.approx([row[3] for row in expected])
    algo2 = frame[(frame["host"] == "algo-2") & (frame["metric_name"] == "loss")]
    assert algo2["value"].tolist() == pytest.approx([1.5, 1.0, 1 / 3 + 0.5])
    assert (frame["timestamp"] >= 0).all()
    assert analytics.dataframe() is frame  # cached
    assert analytics.dataframe(force_refresh=True) is not frame

    path = tmp_path / "metrics.csv"
    analytics.export_csv(path)
    pd.testing.assert_frame_equal(pd.read_csv(path), frame)


def test_openmaker_analytics_selected_metrics_and_period(server, job):
    session = Session(server.url)
    frame = TrainingJobAnalytics(job["TrainingJobName"], metric_names=["epoch"],
                                 session=session, period=60).dataframe()
    assert set(frame["metric_name"]) == {"epoch"}
    assert set(frame["host"]) == {"algo-1", "algo-2"}
    by_host = frame.groupby("host")["value"].apply(list).to_dict()
    # one or two minutes, depending on where the job fell; the averages come from 1, 2, 3
    for values in by_host.values():
        assert 1 <= len(values) <= 2 and all(1 <= v <= 3 for v in values)


def test_openmaker_analytics_lists_metrics_of_jobs_without_definitions(server):
    job = run_job(server, 'print("no metrics printed")')
    name = job["TrainingJobName"]
    start = ms(job["TrainingStartTime"])
    add_points(server, name, [MetricPoint("zeta", start + 100, 1.0, "algo-1"),
                              MetricPoint("alpha", start + 200, 2.0, "algo-1")])
    frame = TrainingJobAnalytics(name, session=Session(server.url)).dataframe()
    assert frame["metric_name"].tolist() == ["alpha", "zeta"]
    assert frame["value"].tolist() == [2.0, 1.0]
    assert frame["timestamp"].tolist() == [(start + offset) // 1000 - start // 1000
                                           for offset in (200, 100)]


def test_openmaker_analytics_of_a_job_without_points_is_empty(server):
    job = run_job(server, 'print("quiet")', [{"Name": "loss", "Regex": "loss=(.*)"}])
    frame = TrainingJobAnalytics(job["TrainingJobName"], session=Session(server.url)).dataframe()
    assert frame.empty
    assert list(frame.columns) == ["timestamp", "metric_name", "value", "host"]
