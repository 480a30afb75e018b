"""Asynchronous inference end to end: InvokeEndpointAsync through boto3 against a real
server, with the input and output in its object store and real model-server processes."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.hosting.test_endpoints import (
    ROLE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    csv_rows,
    tar_bytes,
    wait_for,
)

BUCKET = "hosting-async"
SUCCESS_TOPIC = "arn:aws:sns:us-east-1:000000000000:async-success"
ERROR_TOPIC = "arn:aws:sns:us-east-1:000000000000:async-errors"
# A model that sleeps as long as each request asks and reports when it ran.
SLOW = '''
import json, time

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(request, model):
    started = time.time()
    time.sleep(request["sleep"])
    return {"started": started, "ended": time.time(), "tag": request.get("tag")}

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
'''


def _deploy_models(server):
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.float32)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(features, label=labels), 5)
    s3.put_object(Bucket=BUCKET, Key="models/xgb/model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    s3.put_object(Bucket=BUCKET, Key="models/slow/model.tar.gz",
                  Body=tar_bytes({"code/inference.py": SLOW.encode()}))
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="xgb", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/xgb/model.tar.gz"})
    # the model server's own body limit is 6 MB unless the container is told otherwise
    sagemaker.create_model(ModelName="xgb-large", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/xgb/model.tar.gz",
        "Environment": {"MAX_CONTENT_LENGTH": str(1 << 30)}})
    sagemaker.create_model(ModelName="slow", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/slow/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    return booster, features


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("async-home"))
    booster, features = _deploy_models(server)
    yield server, booster, features
    server.stop()


def deploy_async(server, model: str, *, failure: bool = True, topics: bool = True,
                 per_instance: int | None = None) -> str:
    name = f"async-{uuid.uuid4().hex[:10]}"
    output = {"S3OutputPath": f"s3://{BUCKET}/{name}/out"}
    if failure:
        output["S3FailurePath"] = f"s3://{BUCKET}/{name}/failed"
    if topics:
        output["NotificationConfig"] = {"SuccessTopic": SUCCESS_TOPIC,
                                        "ErrorTopic": ERROR_TOPIC}
    config = {"OutputConfig": output}
    if per_instance is not None:
        config["ClientConfig"] = {"MaxConcurrentInvocationsPerInstance": per_instance}
    sagemaker = server.client("sagemaker")
    sagemaker.create_endpoint_config(
        EndpointConfigName=name, AsyncInferenceConfig=config,
        ProductionVariants=[{"VariantName": "primary", "ModelName": model,
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = wait_for(server, name, ("InService", "Failed"))
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    return name


def upload(server, key: str, body: bytes) -> str:
    server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def wait_object(server, uri: str, timeout: float = 60) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3 = server.client("s3")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
        time.sleep(0.2)
    raise AssertionError(f"{uri} never appeared")


def notifications(server, topic: str) -> list[dict]:
    path = server.home / "notifications" / f"{topic.rsplit(':', 1)[-1]}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_notification(server, topic: str, inference_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in notifications(server, topic):
            if message["inferenceId"] == inference_id:
                return message
        time.sleep(0.2)
    raise AssertionError(f"no notification for {inference_id} on {topic}")


def test_async_request_writes_the_predictions_and_notifies_success(hosting):
    server, booster, features = hosting
    name = deploy_async(server, "xgb")
    location = upload(server, f"{name}/in/rows.csv", csv_rows(features[:5]))
    runtime = server.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint_async(EndpointName=name, InputLocation=location,
                                           ContentType="text/csv", InferenceId="first")
    assert answer["OutputLocation"] == f"s3://{BUCKET}/{name}/out/first.out"
    assert answer["InferenceId"] == "first"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["FailureLocation"] == f"s3://{BUCKET}/{name}/failed/first-error.out"
    predictions = [float(v) for v in wait_object(server, answer["OutputLocation"])
                   .decode().replace("\n", ",").strip(",").split(",")]
    expected = booster.predict(xgboost.DMatrix(features[:5]))
    assert np.allclose(predictions, expected, atol=1e-5)
    message = wait_notification(server, SUCCESS_TOPIC, "first")
    assert message["invocationStatus"] == "Completed"
    assert message["eventSource"] == "aws:sagemaker"
    assert message["eventName"] == "InferenceResult" and message["eventVersion"] == "1.0"
    assert message["requestParameters"] == {"contentType": "text/csv", "endpointName": name,
                                            "inputLocation": location}
    assert message["responseParameters"]["outputLocation"] == answer["OutputLocation"]
    assert message["awsRegion"] and message["receivedTime"] <= message["eventTime"]


def test_generated_inference_id_names_the_output(hosting):
    server, _, features = hosting
    name = deploy_async(server, "xgb", failure=False, topics=False)
    location = upload(server, f"{name}/in/rows.csv", csv_rows(features[:2]))
    answer = server.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=name, InputLocation=location, ContentType="text/csv")
    assert "FailureLocation" not in answer
    output = answer["OutputLocation"]
    assert output.startswith(f"s3://{BUCKET}/{name}/out/") and output.endswith(".out")
    uuid.UUID(output.rsplit("/", 1)[1].removesuffix(".out"))
    assert len(wait_object(server, output).decode().split()) == 2


def test_model_error_goes_to_the_failure_path_and_the_error_topic(hosting):
    server, _, _ = hosting
    name = deploy_async(server, "xgb")
    location = upload(server, f"{name}/in/bad.csv", b"not,numbers\n")
    answer = server.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=name, InputLocation=location, ContentType="text/csv",
        InferenceId="broken")
    text = wait_object(server, answer["FailureLocation"]).decode()
    assert "error" in text.lower()
    message = wait_notification(server, ERROR_TOPIC, "broken")
    assert message["invocationStatus"] == "Failed"
    assert message["failureReason"] == text
    assert message["responseParameters"]["outputLocation"] == answer["FailureLocation"]
    assert not [m for m in notifications(server, SUCCESS_TOPIC) if m["inferenceId"] == "broken"]


def test_without_a_failure_path_the_error_lands_next_to_the_output(hosting):
    server, _, _ = hosting
    name = deploy_async(server, "xgb", failure=False, topics=False)
    location = upload(server, f"{name}/in/bad.csv", b"not,numbers\n")
    server.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=name, InputLocation=location, ContentType="text/csv", InferenceId="e1")
    assert wait_object(server, f"s3://{BUCKET}/{name}/out/e1-error.out")


def test_a_20_mb_input_is_processed(hosting):
    server, _, features = hosting
    name = deploy_async(server, "xgb-large", topics=False)
    rows = np.tile(features, (1 + 20 * 1024 * 1024 // len(csv_rows(features)), 1))
    body = csv_rows(rows)
    assert len(body) > 20 * 1024 * 1024
    location = upload(server, f"{name}/in/big.csv", body)
    answer = server.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=name, InputLocation=location, ContentType="text/csv")
    output = wait_object(server, answer["OutputLocation"], timeout=120)
    assert len(output.decode().split()) == len(rows)


def test_unknown_input_location_is_a_validation_error(hosting):
    server, _, _ = hosting
    name = deploy_async(server, "xgb", topics=False)
    runtime = server.client("sagemaker-runtime")
    with pytest.raises(ClientError) as missing:
        runtime.invoke_endpoint_async(EndpointName=name,
                                      InputLocation=f"s3://{BUCKET}/nowhere/x.csv")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert "InputLocation" in missing.value.response["Error"]["Message"]


def test_a_real_time_endpoint_refuses_async_requests(hosting):
    server, _, _ = hosting
    name = f"sync-{uuid.uuid4().hex[:8]}"
    sagemaker = server.client("sagemaker")
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "primary", "ModelName": "xgb", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_for(server, name, ("InService",))
    with pytest.raises(ClientError) as refused:
        server.client("sagemaker-runtime").invoke_endpoint_async(
            EndpointName=name, InputLocation=upload(server, f"{name}/x", b"1,2,3,4\n"))
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert "AsyncInferenceConfig" in refused.value.response["Error"]["Message"]


def _slow_requests(server, name: str, count: int, sleep: float) -> list[str]:
    runtime = server.client("sagemaker-runtime")
    outputs = []
    for index in range(count):
        location = upload(server, f"{name}/in/{index}.json",
                          json.dumps({"sleep": sleep, "tag": index}).encode())
        outputs.append(runtime.invoke_endpoint_async(
            EndpointName=name, InputLocation=location, ContentType="application/json",
            InferenceId=f"slow-{index}")["OutputLocation"])
    return outputs


def test_concurrency_is_limited_per_instance(hosting):
    server, _, _ = hosting
    name = deploy_async(server, "slow", topics=False, per_instance=1)
    started = time.monotonic()
    outputs = _slow_requests(server, name, 3, 0.5)
    assert time.monotonic() - started < 1.5  # answered at once, before any ran
    runs = sorted((r["started"], r["ended"]) for r in
                  (json.loads(wait_object(server, output)) for output in outputs))
    for (_, ended), (next_started, _) in zip(runs, runs[1:], strict=False):
        assert next_started >= ended - 0.01, runs  # never two at once


def test_queued_requests_survive_a_server_restart(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("async-restart-home"))
    try:
        _deploy_models(server)
        name = deploy_async(server, "slow", topics=False, per_instance=1)
        outputs = _slow_requests(server, name, 4, 1.0)
    finally:
        server.stop()
    server = start_server(server.home)
    try:
        # the first async call of the new server resumes the queue (and the endpoint)
        wait_for(server, name, ("InService",))
        server.client("sagemaker-runtime").invoke_endpoint_async(
            EndpointName=name, ContentType="application/json", InferenceId="after",
            InputLocation=upload(server, f"{name}/in/after.json", b'{"sleep": 0}'))
        tags = sorted(json.loads(wait_object(server, output, timeout=90))["tag"]
                      for output in outputs)
        assert tags == [0, 1, 2, 3]
    finally:
        server.stop()


def test_an_invocation_past_its_timeout_fails(hosting):
    server, _, _ = hosting
    name = deploy_async(server, "slow")
    location = upload(server, f"{name}/in/late.json", b'{"sleep": 3}')
    answer = server.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=name, InputLocation=location, ContentType="application/json",
        InferenceId="late", InvocationTimeoutSeconds=1)
    assert "InvocationTimeoutSeconds" in wait_object(server, answer["FailureLocation"]).decode()
    assert wait_notification(server, ERROR_TOPIC, "late")["invocationStatus"] == "Failed"
