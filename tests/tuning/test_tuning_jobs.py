"""Hyperparameter tuning jobs end to end: a real server, boto3, built-in XGBoost."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.training.test_xgboost_jobs import csv_rows

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "tuning"
OBJECTIVE = {"Type": "Minimize", "MetricName": "validation:rmse"}


@pytest.fixture(scope="module")
def tuning_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("tuning-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(3)
    features = rng.normal(size=(400, 5))
    labels = features[:, 0] * 2 + np.sin(features[:, 1] * 3) + rng.normal(0, 0.1, 400)
    s3.put_object(Bucket=BUCKET, Key="train/data.csv", Body=csv_rows(features[:300], labels[:300]))
    s3.put_object(Bucket=BUCKET, Key="validation/data.csv",
                  Body=csv_rows(features[300:], labels[300:]))
    yield running
    running.stop()


def channel(name: str) -> dict:
    return {"ChannelName": name, "ContentType": "text/csv", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{name}",
        "S3DataDistributionType": "FullyReplicated"}}}


def definition(static: dict | None = None, **extra) -> dict:
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "StaticHyperParameters": {"objective": "reg:squarederror", "num_round": "8",
                                  **(static or {})},
        "InputDataConfig": [channel("train"), channel("validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        **extra}


RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"}],
    "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "1", "MaxValue": "6"}],
}


def config(strategy: str = "Random", max_jobs: int | None = 4, parallel: int = 2,
           ranges: dict | None = None, **extra) -> dict:
    limits = {"MaxParallelTrainingJobs": parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    return {"Strategy": strategy, "HyperParameterTuningJobObjective": OBJECTIVE,
            "ResourceLimits": limits, "ParameterRanges": RANGES if ranges is None else ranges,
            **extra}


def create(server, tuning_config: dict, job_definition: dict | None = None, **request) -> str:
    name = request.pop("name", None) or f"tune-{uuid.uuid4().hex[:8]}"
    server.client("sagemaker").create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, HyperParameterTuningJobConfig=tuning_config,
        TrainingJobDefinition=job_definition or definition(), **request)
    return name


def wait(server, name: str, timeout: float = 180) -> dict:
    client = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"tuning job {name} did not end within {timeout} s: {job}")


def training_jobs(server, name: str, **params) -> list[dict]:
    client = server.client("sagemaker")
    pages = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    return [summary for page in pages.paginate(HyperParameterTuningJobName=name, **params)
            for summary in page["TrainingJobSummaries"]]


def test_random_search_runs_ordinary_training_jobs_and_picks_the_best(tuning_server):
    name = create(tuning_server, config(), Tags=[{"Key": "team", "Value": "ml"}])
    job = wait(tuning_server, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    assert job["TrainingJobStatusCounters"] == {
        "Completed": 4, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0,
        "Stopped": 0}
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    summaries = training_jobs(tuning_server, name)
    assert len(summaries) == 4
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    best = job["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"] == {
        "Type": "Minimize", "MetricName": "validation:rmse", "Value": min(values)}
    assert set(best["TunedHyperParameters"]) == {"eta", "max_depth"}
    client = tuning_server.client("sagemaker")
    for summary in summaries:
        assert summary["TrainingJobName"].startswith(f"{name}-")
        assert summary["ObjectiveStatus"] == "Succeeded"
        described = client.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        assert described["TuningJobArn"] == job["HyperParameterTuningJobArn"]
        hyperparameters = described["HyperParameters"]
        assert hyperparameters["_tuning_objective_metric"] == "validation:rmse"
        assert hyperparameters["num_round"] == "8"
        assert 0.05 <= float(hyperparameters["eta"]) <= 0.5
        assert 1 <= int(hyperparameters["max_depth"]) <= 6
        tags = client.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
        assert {"Key": "team", "Value": "ml"} in tags
    ordered = training_jobs(tuning_server, name, SortBy="FinalObjectiveMetricValue",
                            SortOrder="Ascending")
    assert [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in ordered] == \
        sorted(values)
    assert job["ConsumedResources"]["RuntimeInSeconds"] >= 0
    listed = client.list_hyper_parameter_tuning_jobs(NameContains=name)
    assert [s["HyperParameterTuningJobName"]
            for s in listed["HyperParameterTuningJobSummaries"]] == [name]
    assert listed["HyperParameterTuningJobSummaries"][0]["Strategy"] == "Random"
