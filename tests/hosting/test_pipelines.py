"""Inference pipelines (several containers per model, Serial and Direct), multi-model
endpoints, and endpoints surviving a server restart."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.hosting.test_endpoints import (
    BUCKET,
    ROLE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    csv_rows,
    tar_bytes,
    wait_for,
)

DOUBLER = '''
import numpy as np

def model_fn(model_dir):
    return 2.0

def transform_fn(factor, body, content_type, accept):
    rows = np.loadtxt(body.splitlines(), delimiter=",", ndmin=2) * factor
    return "".join(",".join(f"{v:.9g}" for v in row) + "\\n" for row in rows), "text/csv"
'''


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("pipelines-home"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    features = np.random.default_rng(3).normal(size=(100, 3)).astype(np.float32)
    boosters = {}
    for name, rounds in (("a", 2), ("b", 6)):
        booster = xgboost.train({"max_depth": 3}, xgboost.DMatrix(
            features, label=features[:, 0] + features[:, 1]), rounds)
        boosters[name] = booster
        archive = tar_bytes({"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))})
        s3.put_object(Bucket=BUCKET, Key=f"models/{name}/model.tar.gz", Body=archive)
        s3.put_object(Bucket=BUCKET, Key=f"many/{name}.tar.gz", Body=archive)
    s3.put_object(Bucket=BUCKET, Key="models/doubler/model.tar.gz",
                  Body=tar_bytes({"code/inference.py": DOUBLER.encode()}))
    yield server, boosters, features
    server.stop()


def deploy(server, model: str) -> str:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    sagemaker = server.client("sagemaker")
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = wait_for(server, name, ("InService", "Failed"))
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    return name


def containers() -> list[dict]:
    return [{"Image": SKLEARN_IMAGE, "ContainerHostname": "doubler",
             "ModelDataUrl": f"s3://{BUCKET}/models/doubler/model.tar.gz",
             "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}},
            {"Image": XGBOOST_IMAGE, "ContainerHostname": "xgb",
             "ModelDataUrl": f"s3://{BUCKET}/models/a/model.tar.gz"}]


def test_a_serial_pipeline_feeds_each_answer_to_the_next_container(hosting):
    server, boosters, features = hosting
    server.client("sagemaker").create_model(
        ModelName="serial", ExecutionRoleArn=ROLE, Containers=containers())
    name = deploy(server, "serial")
    answer = server.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=csv_rows(features[:4]))
    scores = [float(v) for v in answer["Body"].read().decode().split()]
    expected = boosters["a"].predict(xgboost.DMatrix(features[:4] * 2))
    assert np.allclose(scores, expected, atol=1e-5)
    streams = server.client("logs").describe_log_streams(
        logGroupName=f"/aws/sagemaker/Endpoints/{name}")["logStreams"]
    assert sorted(s["logStreamName"].rsplit("/", 1)[1] for s in streams) == ["doubler", "xgb"]


def test_direct_mode_invokes_the_container_named_in_the_request(hosting):
    server, boosters, features = hosting
    server.client("sagemaker").create_model(
        ModelName="direct", ExecutionRoleArn=ROLE, Containers=containers(),
        InferenceExecutionConfig={"Mode": "Direct"})
    name = deploy(server, "direct")
    runtime = server.client("sagemaker-runtime")
    doubled = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                      TargetContainerHostname="doubler",
                                      Body=b"1,2,3\n")["Body"].read()
    assert doubled.decode().strip() == "2,4,6"
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                     TargetContainerHostname="xgb", Body=csv_rows(features[:2]))
    scores = [float(v) for v in answer["Body"].read().decode().split()]
    assert np.allclose(scores, boosters["a"].predict(xgboost.DMatrix(features[:2])), atol=1e-5)
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2,3\n")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "TargetContainerHostname" in raised.value.response["Error"]["Message"]


def test_a_multi_model_endpoint_serves_each_target_model(hosting):
    server, boosters, features = hosting
    server.client("sagemaker").create_model(
        ModelName="many", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "Mode": "MultiModel",
            "ModelDataUrl": f"s3://{BUCKET}/many/"})
    name = deploy(server, "many")
    runtime = server.client("sagemaker-runtime")
    for target in ("a", "b", "a"):
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                         TargetModel=f"{target}.tar.gz",
                                         Body=csv_rows(features[:3]))
        scores = [float(v) for v in answer["Body"].read().decode().split()]
        expected = boosters[target].predict(xgboost.DMatrix(features[:3]))
        assert np.allclose(scores, expected, atol=1e-5)
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                TargetModel="missing.tar.gz", Body=csv_rows(features[:1]))
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                Body=csv_rows(features[:1]))
    assert "TargetModel is required" in raised.value.response["Error"]["Message"]


def test_endpoints_are_served_again_after_a_server_restart(tmp_path):
    home = tmp_path / "home"
    server = start_server(home)
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        features = np.random.default_rng(4).normal(size=(20, 2)).astype(np.float32)
        booster = xgboost.train({}, xgboost.DMatrix(features, label=features[:, 0]), 2)
        s3.put_object(Bucket=BUCKET, Key="m.tar.gz", Body=tar_bytes(
            {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
        server.client("sagemaker").create_model(ModelName="m", ExecutionRoleArn=ROLE,
                                                PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"})
        name = deploy(server, "m")
    finally:
        server.stop()
    server = start_server(home)
    try:
        endpoint = wait_for(server, name, ("InService", "Failed"))
        assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
        answer = server.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, ContentType="application/json", Accept="application/json",
            Body=json.dumps({"instances": [[0.5, 0.5]]}))
        assert answer["InvokedProductionVariant"] == "AllTraffic"
    finally:
        server.stop()
