"""Endpoints end to end: CreateEndpoint deploys real model-server processes, and SageMaker
Runtime's InvokeEndpoint reaches them through the router, with boto3 against a real server."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server

BUCKET = "hosting-endpoints"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN_IMAGE = ("683313688378.dkr.ecr.us-east-1.amazonaws.com/"
                 "sagemaker-scikit-learn:1.2-1-cpu-py3")
INFERENCE = '''
import json, os
import numpy as np

def model_fn(model_dir):
    return json.load(open(os.path.join(model_dir, "weights.json")))

def input_fn(body, content_type):
    assert content_type == "application/json", content_type
    return np.array(json.loads(body)["rows"], dtype=float)

def predict_fn(rows, weights):
    return rows @ np.array(weights["w"])

def output_fn(prediction, accept):
    return json.dumps({"scores": prediction.tolist()}), "application/json"
'''


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hosting(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("hosting-home"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.float32)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(features, label=labels), 10)
    s3.put_object(Bucket=BUCKET, Key="models/xgb/model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    s3.put_object(Bucket=BUCKET, Key="models/linear/model.tar.gz", Body=tar_bytes({
        "weights.json": json.dumps({"w": [1.0, 2.0]}).encode(),
        "code/inference.py": INFERENCE.encode()}))
    s3.put_object(Bucket=BUCKET, Key="models/broken/model.tar.gz", Body=b"not a tar archive")
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="xgb", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/xgb/model.tar.gz"})
    sagemaker.create_model(ModelName="linear", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/linear/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sagemaker.create_model(ModelName="broken", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/broken/model.tar.gz"})
    yield server, booster, features
    server.stop()


def deploy(server, variants: list[dict], *, wait: bool = True) -> str:
    name = f"ep-{uuid.uuid4().hex[:10]}"
    sagemaker = server.client("sagemaker")
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, **variant}
        for variant in variants])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        wait_for(server, name, ("InService", "Failed"))
    return name


def wait_for(server, name: str, statuses, timeout: float = 90) -> dict:
    sagemaker = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
        if endpoint["EndpointStatus"] in statuses:
            return endpoint
        time.sleep(0.2)
    raise AssertionError(f"{name} still {endpoint['EndpointStatus']}")


def csv_rows(rows: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in rows).encode()


def test_built_in_xgboost_endpoint_answers_like_the_booster(hosting):
    server, booster, features = hosting
    name = deploy(server, [{"VariantName": "primary", "ModelName": "xgb",
                            "InitialInstanceCount": 2}])
    endpoint = server.client("sagemaker").describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    [variant] = endpoint["ProductionVariants"]
    assert variant["VariantName"] == "primary" and variant["CurrentInstanceCount"] == 2
    assert variant["CurrentWeight"] == 1.0
    runtime = server.client("sagemaker-runtime")
    for _ in range(3):  # both instances, in turn
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                         Body=csv_rows(features[:5]))
        assert answer["InvokedProductionVariant"] == "primary"
        assert answer["ContentType"].startswith("text/csv")
        scores = [float(line) for line in answer["Body"].read().decode().split()]
        expected = booster.predict(xgboost.DMatrix(features[:5]))
        assert np.allclose(scores, expected, atol=1e-6)
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                     Accept="application/json", Body=csv_rows(features[:2]))
    assert len(json.loads(answer["Body"].read())["predictions"]) == 2
    streams = server.client("logs").describe_log_streams(
        logGroupName=f"/aws/sagemaker/Endpoints/{name}")["logStreams"]
    assert len(streams) == 2 and all(s["logStreamName"].startswith("primary/")
                                     for s in streams)


def test_variants_share_traffic_by_weight_and_target_variant_picks_one(hosting):
    server, _, features = hosting
    name = deploy(server, [{"VariantName": "blue", "ModelName": "xgb",
                            "InitialVariantWeight": 1.0},
                           {"VariantName": "green", "ModelName": "xgb",
                            "InitialVariantWeight": 0.0}])
    runtime = server.client("sagemaker-runtime")
    served = {runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                      Body=csv_rows(features[:1]))["InvokedProductionVariant"]
              for _ in range(10)}
    assert served == {"blue"}  # green has weight 0
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                     TargetVariant="green", Body=csv_rows(features[:1]))
    assert answer["InvokedProductionVariant"] == "green"
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                TargetVariant="purple", Body=csv_rows(features[:1]))
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "purple" in raised.value.response["Error"]["Message"]


def test_user_inference_code_in_the_model_archive_serves_requests(hosting):
    server, _, _ = hosting
    name = deploy(server, [{"VariantName": "AllTraffic", "ModelName": "linear"}])
    endpoint = server.client("sagemaker").describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    answer = server.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="application/json", Accept="application/json",
        Body=json.dumps({"rows": [[1, 1], [2, 0.5]]}))
    assert json.loads(answer["Body"].read()) == {"scores": [3.0, 3.0]}


def test_model_errors_come_back_as_model_error_and_the_instance_stays_up(hosting):
    server, _, features = hosting
    name = deploy(server, [{"VariantName": "primary", "ModelName": "xgb"}])
    runtime = server.client("sagemaker-runtime")
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2\n")
    error = raised.value.response["Error"]
    assert error["Code"] == "ModelError"
    assert raised.value.response["OriginalStatusCode"] == 400
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    answer = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                     Body=csv_rows(features[:1]))
    assert answer["InvokedProductionVariant"] == "primary"
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                Body=b"1," * (3 * 1024 * 1024 + 8))
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "6 MB" in raised.value.response["Error"]["Message"]


def test_unknown_and_failed_endpoints(hosting):
    server, _, features = hosting
    runtime = server.client("sagemaker-runtime")
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="text/csv",
                                Body=b"1,2,3,4\n")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "not found" in raised.value.response["Error"]["Message"]
    name = deploy(server, [{"VariantName": "primary", "ModelName": "broken"}])
    endpoint = server.client("sagemaker").describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "Failed"
    assert endpoint["FailureReason"]
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                Body=csv_rows(features[:1]))
    assert "not in service" in raised.value.response["Error"]["Message"]


def test_delete_endpoint_stops_its_processes(hosting):
    server, _, _ = hosting
    name = deploy(server, [{"VariantName": "primary", "ModelName": "xgb"}])
    sagemaker = server.client("sagemaker")
    work = server.home / "work" / "endpoints" / name
    assert work.is_dir()
    listed = sagemaker.list_endpoints(NameContains=name)["Endpoints"]
    assert [e["EndpointName"] for e in listed] == [name]
    assert listed[0]["EndpointStatus"] == "InService"
    sagemaker.delete_endpoint(EndpointName=name)
    with pytest.raises(ClientError) as raised:
        sagemaker.describe_endpoint(EndpointName=name)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert not work.exists()
    with pytest.raises(ClientError):
        sagemaker.delete_endpoint(EndpointName=name)


def test_create_endpoint_refuses_unknown_configs_and_taken_names(hosting):
    server, _, _ = hosting
    sagemaker = server.client("sagemaker")
    with pytest.raises(ClientError) as raised:
        sagemaker.create_endpoint(EndpointName="orphan", EndpointConfigName="no-such-config")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "no-such-config" in raised.value.response["Error"]["Message"]
    name = deploy(server, [{"VariantName": "primary", "ModelName": "xgb"}], wait=False)
    with pytest.raises(ClientError) as raised:
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert "already existing endpoint" in raised.value.response["Error"]["Message"]
    wait_for(server, name, ("InService", "Failed"))



def test_runtime_requests_are_checked_against_the_model(hosting):
    server, _, _ = hosting
    runtime = server.client("sagemaker-runtime", parameter_validation=False)
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="bad_name!", ContentType="text/csv",
                                TargetVariant="v" * 70, Body=b"1\n")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert "endpointName" in error["Message"] and "targetVariant" in error["Message"]


def test_data_capture_and_invocation_metrics(hosting):
    server, _, features = hosting
    sagemaker = server.client("sagemaker")
    name = f"ep-{uuid.uuid4().hex[:10]}"
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "primary", "ModelName": "xgb",
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": f"s3://{BUCKET}/capture",
                           "CaptureOptions": [{"CaptureMode": "Input"},
                                              {"CaptureMode": "Output"}],
                           "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = wait_for(server, name, ("InService", "Failed"))
    assert endpoint["DataCaptureConfig"]["CaptureStatus"] == "Started"
    runtime = server.client("sagemaker-runtime")
    for index in range(3):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                InferenceId=f"request-{index}", Body=csv_rows(features[:1]))
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=b"1,2\n")
    s3 = server.client("s3")
    deadline = time.monotonic() + 20
    records: list[dict] = []
    while len(records) < 4:
        assert time.monotonic() < deadline, records
        time.sleep(0.5)
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"capture/{name}/primary/")
        records = [json.loads(line) for item in listed.get("Contents", [])
                   for line in s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"]
                   .read().decode().splitlines()]
    first = next(r for r in records if r["eventMetadata"].get("inferenceId") == "request-0")
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv", "mode": "INPUT",
        "data": csv_rows(features[:1]).decode(), "encoding": "CSV"}
    assert first["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert first["eventVersion"] == "0"

    cloudwatch = server.client("cloudwatch")
    dimensions = [{"Name": "EndpointName", "Value": name},
                  {"Name": "VariantName", "Value": "primary"}]
    now = datetime.now(UTC)
    deadline = time.monotonic() + 20
    while True:
        stats = {metric: cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric, Dimensions=dimensions,
            StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=5),
            Period=600, Statistics=["Sum"])["Datapoints"]
            for metric in ("Invocations", "Invocation4XXErrors")}
        if stats["Invocations"] and stats["Invocations"][0]["Sum"] == 4:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.5)
    assert stats["Invocation4XXErrors"][0]["Sum"] == 1


BRING_YOUR_OWN = '''#!{python}
import http.server, json, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = json.dumps({{"echo": body.decode(), "argv": sys.argv[1:]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

port = int(os.environ["SAGEMAKER_BIND_TO_PORT"])
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def test_a_bring_your_own_server_answers_ping_and_invocations(hosting, tmp_path):
    import sys

    server, _, _ = hosting
    executable = tmp_path / "my-server"
    executable.write_text(BRING_YOUR_OWN.format(python=sys.executable))
    executable.chmod(0o755)
    server.client("sagemaker").create_model(
        ModelName=f"byo-{uuid.uuid4().hex[:6]}", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": str(executable)})
    model = server.client("sagemaker").list_models(NameContains="byo-")["Models"][0]
    name = deploy(server, [{"VariantName": "own", "ModelName": model["ModelName"]}])
    answer = server.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/plain", Body=b"hello")
    assert json.loads(answer["Body"].read()) == {"echo": "hello", "argv": ["serve"]}


def test_instances_report_cpu_and_memory_utilization(hosting):
    server, _, features = hosting
    name = deploy(server, [{"VariantName": "primary", "ModelName": "xgb"}])
    runtime = server.client("sagemaker-runtime")
    for _ in range(5):
        runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                Body=csv_rows(features[:1]))["Body"].read()
    cloudwatch = server.client("cloudwatch")
    dimensions = [{"Name": "EndpointName", "Value": name},
                  {"Name": "VariantName", "Value": "primary"}]
    now = datetime.now(UTC)
    deadline = time.monotonic() + 20
    while True:
        memory = cloudwatch.get_metric_statistics(
            Namespace="/aws/sagemaker/Endpoints", MetricName="MemoryUtilization",
            Dimensions=dimensions, StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=5), Period=600,
            Statistics=["Average", "SampleCount"])["Datapoints"]
        if memory and memory[0]["SampleCount"] >= 2:
            break
        assert time.monotonic() < deadline, memory
        time.sleep(0.5)
    assert 0 < memory[0]["Average"] < 100 and memory[0]["Unit"] == "Percent"
