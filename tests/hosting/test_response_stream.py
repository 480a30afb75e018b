"""InvokeEndpointWithResponseStream end to end: a model whose user code streams answers
as an event stream of PayloadPart events that arrive while it is still producing, with
boto3 against a real server; a non-streaming model answers in one part; errors before the
stream are ModelError, errors during it a ModelStreamError event."""

from __future__ import annotations

import http.client
import json
import time

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError, EventStreamError
from tests.conftest import start_server
from tests.hosting.test_endpoints import (
    ROLE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    csv_rows,
    deploy,
    tar_bytes,
)

BUCKET = "hosting-response-stream"
STREAMING = '''
import json, time

def model_fn(model_dir):
    return "tok"

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(request, prefix):
    if request.get("fail") == "early":
        raise ValueError("the model refuses this request")

    def tokens():
        for i in range(request["n"]):
            if request.get("fail") == "late" and i == 2:
                raise RuntimeError("the model broke mid-stream")
            time.sleep(request.get("sleep", 0.0))
            yield f"{prefix}{i} "
    return tokens()
'''


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("response-stream-home"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(100, 4)).astype(np.float32)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2},
                            xgboost.DMatrix(features, label=features[:, 0] > 0), 5)
    s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    s3.put_object(Bucket=BUCKET, Key="streaming/model.tar.gz", Body=tar_bytes(
        {"code/inference.py": STREAMING.encode()}))
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="xgb", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/xgb/model.tar.gz"})
    sagemaker.create_model(ModelName="streaming", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/streaming/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    name = deploy(server, [{"VariantName": "streaming", "ModelName": "streaming"},
                           {"VariantName": "xgb", "ModelName": "xgb",
                            "InitialVariantWeight": 0.0}])
    described = sagemaker.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    yield server, name, booster, features
    server.stop()


def stream(server, name: str, request: dict, **extra) -> dict:
    return server.client("sagemaker-runtime").invoke_endpoint_with_response_stream(
        EndpointName=name, ContentType="application/json", Body=json.dumps(request), **extra)


def test_a_streaming_model_s_chunks_arrive_as_they_are_produced(endpoint):
    server, name, _, _ = endpoint
    started = time.monotonic()
    response = stream(server, name, {"n": 5, "sleep": 0.3})
    assert response["InvokedProductionVariant"] == "streaming"
    assert response["ContentType"] == "application/json"
    parts, arrivals = [], []
    for event in response["Body"]:
        assert set(event) == {"PayloadPart"}
        parts.append(event["PayloadPart"]["Bytes"])
        arrivals.append(time.monotonic() - started)
    assert b"".join(parts) == b"tok0 tok1 tok2 tok3 tok4 "
    assert len(parts) >= 3  # not buffered into one answer
    # the model takes 1.5 s; the first part must not wait for it to finish
    assert arrivals[0] < arrivals[-1] - 0.8, arrivals


def test_a_non_streaming_model_answers_in_parts_that_make_its_whole_answer(endpoint):
    server, name, booster, features = endpoint
    response = server.client("sagemaker-runtime").invoke_endpoint_with_response_stream(
        EndpointName=name, TargetVariant="xgb", ContentType="text/csv",
        Body=csv_rows(features[:5]))
    assert response["InvokedProductionVariant"] == "xgb"
    assert response["ContentType"].startswith("text/csv")
    body = b"".join(event["PayloadPart"]["Bytes"] for event in response["Body"])
    scores = [float(line) for line in body.decode().split()]
    assert np.allclose(scores, booster.predict(xgboost.DMatrix(features[:5])), atol=1e-6)


def test_an_error_before_the_stream_starts_is_a_model_error(endpoint):
    server, name, _, _ = endpoint
    with pytest.raises(ClientError) as raised:
        stream(server, name, {"n": 3, "fail": "early"})
    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert raised.value.response["OriginalStatusCode"] == 500
    assert "refuses this request" in raised.value.response["OriginalMessage"]


def test_an_error_mid_stream_is_a_model_stream_error_event_after_the_parts_sent(endpoint):
    server, name, _, _ = endpoint
    response = stream(server, name, {"n": 5, "fail": "late"})
    parts = []
    with pytest.raises(EventStreamError) as raised:
        for event in response["Body"]:
            parts.append(event["PayloadPart"]["Bytes"])
    assert b"".join(parts) == b"tok0 tok1 "
    assert raised.value.response["Error"]["Code"] == "ModelStreamError"
    assert "closed the stream" in raised.value.response["Error"]["Message"]
    # the instance keeps serving
    again = stream(server, name, {"n": 2})
    assert b"".join(e["PayloadPart"]["Bytes"] for e in again["Body"]) == b"tok0 tok1 "


def test_unknown_endpoints_and_variants_are_validation_errors(endpoint):
    server, name, _, _ = endpoint
    for kwargs in ({"EndpointName": "no-such-endpoint"},
                   {"EndpointName": name, "TargetVariant": "purple"}):
        with pytest.raises(ClientError) as raised:
            server.client("sagemaker-runtime").invoke_endpoint_with_response_stream(
                ContentType="application/json", Body=b"{}", **kwargs)
        assert raised.value.response["Error"]["Code"] == "ValidationError"


def test_streamed_invocations_are_counted_in_the_endpoint_s_metrics(endpoint):
    server, name, _, _ = endpoint
    for event in stream(server, name, {"n": 2})["Body"]:
        assert "PayloadPart" in event
    metrics = server.client("cloudwatch").list_metrics(
        Namespace="AWS/SageMaker", MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": name}])["Metrics"]
    assert metrics


# -- the model server alone -------------------------------------------------------------------
TRANSFORM_STREAMING = '''
import json, time

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    request = json.loads(body)

    def rows():
        for i in range(request["n"]):
            time.sleep(0.2)
            yield json.dumps({"row": i}) + "\\n"
    return rows(), "application/jsonlines"
'''


def test_the_model_server_answers_an_iterator_with_a_chunked_body_flushed_per_chunk(
        tmp_path):
    from tests.hosting.test_model_server import Server

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(TRANSFORM_STREAMING)
    server = Server(tmp_path, {"SAGEMAKER_PROGRAM": "inference.py",
                               "SAGEMAKER_SUBMIT_DIRECTORY": str(tmp_path / "code"),
                               "OPENMAKER_FRAMEWORK": "sklearn"})
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        started = time.monotonic()
        connection.request("POST", "/invocations", body=b'{"n": 4}',
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") is None
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Type") == "application/jsonlines"
        first = response.read1(65536)
        first_at = time.monotonic() - started
        rest = response.read()
        done_at = time.monotonic() - started
        assert [json.loads(line) for line in (first + rest).splitlines()] == [
            {"row": i} for i in range(4)]
        assert first_at < done_at - 0.4, (first_at, done_at)
        # the connection stays usable, and a non-streaming answer still has a length
        status, body, _ = server.request("GET", "/ping")
        assert status == 200
    finally:
        server.stop()
