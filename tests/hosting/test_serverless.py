"""Serverless variants: no instance until a request (a cold start, reported as
ModelSetupTime), MaxConcurrency, scale to zero when idle, MemorySizeInMB."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.hosting.test_deployments import model_servers
from tests.hosting.test_endpoints import (
    BUCKET,
    ROLE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    csv_rows,
    tar_bytes,
    wait_for,
)

SLOW = '''
import time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    time.sleep(1.5)
    return "slow", "text/plain"
'''
HUNGRY = '''
def model_fn(model_dir):
    return bytearray(1100 * 1024 * 1024)  # more than MemorySizeInMB 1024

def transform_fn(model, body, content_type, accept):
    return "ok", "text/plain"
'''


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("serverless-home"),
                          {"OPENMAKER_SERVERLESS_IDLE_SECONDS": "3"})
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    features = np.random.default_rng(5).normal(size=(30, 2)).astype(np.float32)
    booster = xgboost.train({}, xgboost.DMatrix(features, label=features[:, 0]), 2)
    s3.put_object(Bucket=BUCKET, Key="xgb.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="xgb", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/xgb.tar.gz"})
    for name, code in (("slow", SLOW), ("hungry", HUNGRY)):
        s3.put_object(Bucket=BUCKET, Key=f"{name}.tar.gz",
                      Body=tar_bytes({"code/inference.py": code.encode()}))
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/{name}.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    yield server, features
    server.stop()


def serverless(server, model: str, memory: int = 2048, concurrency: int = 2) -> str:
    name = f"sl-{uuid.uuid4().hex[:8]}"
    sagemaker = server.client("sagemaker")
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "ServerlessConfig": {
            "MemorySizeInMB": memory, "MaxConcurrency": concurrency}}])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = wait_for(server, name, ("InService", "Failed"))
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    assert endpoint["ProductionVariants"][0]["CurrentServerlessConfig"] == {
        "MemorySizeInMB": memory, "MaxConcurrency": concurrency}
    return name


def test_cold_start_then_warm_then_scale_to_zero(hosting):
    server, features = hosting
    name = serverless(server, "xgb")
    directory = server.home / "work" / "endpoints" / name
    assert model_servers(directory) == []  # nothing runs before the first request
    runtime = server.client("sagemaker-runtime")
    for _ in range(3):
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                         Body=csv_rows(features[:1]))
        assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert len(model_servers(directory)) == 1
    cloudwatch = server.client("cloudwatch")
    now = datetime.now(UTC)
    deadline = time.monotonic() + 20
    while True:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="ModelSetupTime", Dimensions=[
                {"Name": "EndpointName", "Value": name},
                {"Name": "VariantName", "Value": "AllTraffic"}],
            StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5),
            Period=600, Statistics=["SampleCount", "Maximum"])["Datapoints"]
        if points:
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert points[0]["SampleCount"] == 1 and points[0]["Maximum"] > 0  # one cold start
    deadline = time.monotonic() + 30
    while model_servers(directory):  # idle for 3 s: scaled to zero
        assert time.monotonic() < deadline
        time.sleep(0.5)
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                     Body=csv_rows(features[:1]))
    assert answer["InvokedProductionVariant"] == "AllTraffic"  # a second cold start


def test_requests_beyond_max_concurrency_are_throttled(hosting):
    server, _ = hosting
    name = serverless(server, "slow", concurrency=1)
    runtime = server.client("sagemaker-runtime")
    runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1\n")  # warm
    results: list[str] = []

    def call() -> None:
        try:
            runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1\n")
            results.append("ok")
        except ClientError as exc:
            results.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["ThrottlingException", "ThrottlingException", "ok"]


def test_an_instance_over_its_memory_size_is_stopped(hosting):
    server, _ = hosting
    name = serverless(server, "hungry", memory=1024)
    runtime = server.client("sagemaker-runtime")
    runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1\n")
    logs = server.client("logs")
    deadline = time.monotonic() + 30
    while True:
        streams = logs.describe_log_streams(
            logGroupName=f"/aws/sagemaker/Endpoints/{name}")["logStreams"]
        messages = [e["message"] for s in streams for e in logs.get_log_events(
            logGroupName=f"/aws/sagemaker/Endpoints/{name}", logStreamName=s["logStreamName"],
            startFromHead=True)["events"]]
        if any("MemorySizeInMB" in m for m in messages):
            break
        assert time.monotonic() < deadline, messages
        time.sleep(0.5)
    deadline = time.monotonic() + 30
    while model_servers(server.home / "work" / "endpoints" / name):
        assert time.monotonic() < deadline
        time.sleep(0.5)
