"""Batch transform jobs end to end: boto3 against a real server, real model-server
processes for built-in XGBoost, a user inference script and an inference pipeline."""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.hosting.test_endpoints import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE, csv_rows, tar_bytes
from tests.hosting.test_pipelines import DOUBLER

BUCKET = "transform-jobs"
# A user script that answers one line per request line (its tag, SAGEMAKER_BATCH, the
# line's length, the request's line count and its pid), one line per request for other
# types, sleeps ECHO_DELAY seconds, fails on a line starting with "fail", and fails the
# first time it sees a line starting with "flaky".
ECHO = '''
import os, time

seen = set()

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    if isinstance(body, str):
        body = body.encode()
    started = time.time()
    time.sleep(float(os.environ.get("ECHO_DELAY", "0")))
    tag = os.environ.get("ECHO_TAG", "") + "|" + os.environ.get("SAGEMAKER_BATCH", "")
    times = f"|{started:.6f}|{time.time():.6f}" if os.environ.get("ECHO_TIMES") else ""
    if content_type != "text/csv":
        return f"{tag}|{len(body)}\\n", "text/csv"
    lines = [line for line in body.split(b"\\n") if line.strip()]
    for line in lines:
        if line.startswith(b"fail"):
            raise ValueError("echo refuses " + line.decode())
        if line.startswith(b"flaky") and line not in seen:
            seen.add(line)
            raise RuntimeError("flaky once")
    return "".join(f"{tag}|{len(line)}|{len(lines)}|{os.getpid()}{times}\\n"
                   for line in lines), \\
        "text/csv"
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("transform-home"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 3)).astype(np.float32)
    booster = xgboost.train({"max_depth": 3}, xgboost.DMatrix(
        features, label=features[:, 0] - features[:, 2]), 5)
    s3.put_object(Bucket=BUCKET, Key="models/xgb/model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    s3.put_object(Bucket=BUCKET, Key="models/echo/model.tar.gz",
                  Body=tar_bytes({"code/inference.py": ECHO.encode()}))
    s3.put_object(Bucket=BUCKET, Key="models/doubler/model.tar.gz",
                  Body=tar_bytes({"code/inference.py": DOUBLER.encode()}))
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="xgb", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/xgb/model.tar.gz"})
    for name, delay in (("echo", "0"), ("slow", "3")):
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/echo/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "ECHO_TAG": "model",
                            "ECHO_DELAY": delay}})
    sagemaker.create_model(ModelName="pipeline", ExecutionRoleArn=ROLE, Containers=[
        {"Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/doubler/model.tar.gz",
         "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}},
        {"Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/xgb/model.tar.gz"}])
    yield server, booster, features
    server.stop()


def job_request(name: str, model: str, input_uri: str, output_uri: str, **extra) -> dict:
    transform_input = {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                       "S3Uri": input_uri}},
                       "ContentType": "text/csv", "SplitType": "Line"}
    transform_input.update(extra.pop("TransformInput", {}))
    output = {"S3OutputPath": output_uri, "AssembleWith": "Line"}
    output.update(extra.pop("TransformOutput", {}))
    return {"TransformJobName": name, "ModelName": model, "TransformInput": transform_input,
            "TransformOutput": output,
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            **extra}


def run_job(server, model: str, input_uri: str, **extra) -> tuple[dict, str]:
    name = f"tj-{uuid.uuid4().hex[:10]}"
    output = f"s3://{BUCKET}/out/{name}/"
    sagemaker = server.client("sagemaker")
    sagemaker.create_transform_job(**job_request(name, model, input_uri, output, **extra))
    return wait_for(server, name), output


def wait_for(server, name: str, timeout: float = 120) -> dict:
    sagemaker = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sagemaker.describe_transform_job(TransformJobName=name)
        if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} still {job['TransformJobStatus']}")


def put(server, key: str, body: bytes) -> str:
    server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def read(server, uri: str) -> bytes:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def output_keys(server, output: str) -> list[str]:
    bucket, prefix = output[len("s3://"):].split("/", 1)
    listing = server.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"][len(prefix):] for item in listing.get("Contents", []))


def scores(data: bytes) -> list[float]:
    return [float(v) for v in data.decode().split()]


def test_xgboost_transforms_every_object_in_order_with_relative_keys(env):
    server, booster, features = env
    put(server, "in/basic/a.csv", csv_rows(features[:120]))
    put(server, "in/basic/sub/b.csv", csv_rows(features[120:]))
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/basic/", MaxPayloadInMB=1,
                          BatchStrategy="MultiRecord", MaxConcurrentTransforms=2,
                          Tags=[{"Key": "team", "Value": "ml"}])
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert output_keys(server, output) == ["a.csv.out", "sub/b.csv.out"]
    expected = booster.predict(xgboost.DMatrix(features))
    assert np.allclose(scores(read(server, output + "a.csv.out")), expected[:120], atol=1e-5)
    assert np.allclose(scores(read(server, output + "sub/b.csv.out")), expected[120:],
                       atol=1e-5)
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    assert job["CreationTime"] <= job["TransformStartTime"]
    assert job["MaxPayloadInMB"] == 1 and job["BatchStrategy"] == "MultiRecord"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformOutput"]["S3OutputPath"] == output
    sagemaker = server.client("sagemaker")
    listed = sagemaker.list_transform_jobs(NameContains=job["TransformJobName"])
    assert [j["TransformJobName"] for j in listed["TransformJobSummaries"]] == \
        [job["TransformJobName"]]
    assert listed["TransformJobSummaries"][0]["TransformJobStatus"] == "Completed"
    streams = server.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TransformJobs",
        logStreamNamePrefix=job["TransformJobName"] + "/")["logStreams"]
    assert streams


def test_single_records_gzip_objects_and_a_manifest(env):
    server, booster, features = env
    put(server, "in/gz/part.csv.gz", gzip.compress(csv_rows(features[:30])))
    put(server, "in/manifest/x.csv", csv_rows(features[30:40]))
    manifest = put(server, "in/manifest.json", json.dumps(
        [{"prefix": f"s3://{BUCKET}/in/"}, "gz/part.csv.gz", "manifest/x.csv"]).encode())
    job, output = run_job(server, "xgb", manifest, BatchStrategy="SingleRecord",
                          TransformInput={"CompressionType": "Gzip", "DataSource": {
                              "S3DataSource": {"S3DataType": "ManifestFile",
                                               "S3Uri": manifest}}})
    # the manifest's second object is not gzip: it fails, the first is still uploaded
    assert job["TransformJobStatus"] == "Failed"
    assert "in/manifest/x.csv" in job["FailureReason"]
    assert output_keys(server, output) == ["gz/part.csv.gz.out"]
    expected = booster.predict(xgboost.DMatrix(features[:30]))
    assert np.allclose(scores(read(server, output + "gz/part.csv.gz.out")), expected, atol=1e-5)


def test_a_malformed_record_fails_its_object_naming_the_line(env):
    server, booster, features = env
    put(server, "in/bad/good.csv", csv_rows(features[:10]))
    lines = csv_rows(features[:10]).decode().splitlines()
    lines[6] = "1.0,not-a-number,2.0"
    put(server, "in/bad/broken.csv", ("\n".join(lines) + "\n").encode())
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/bad/")
    assert job["TransformJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert f"line 7 of s3://{BUCKET}/in/bad/broken.csv" in reason, reason
    assert "not-a-number" in reason or "CSV" in reason, reason
    assert output_keys(server, output) == ["good.csv.out"]


def test_a_record_larger_than_max_payload_fails_the_job(env):
    server, _, _ = env
    big = b"1," * (600 * 1024) + b"1\n"
    put(server, "in/big/x.csv", b"1,2,3\n" + big)
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/big/", MaxPayloadInMB=1)
    assert job["TransformJobStatus"] == "Failed"
    assert f"s3://{BUCKET}/in/big/x.csv: line 2 " in job["FailureReason"]
    assert "MaxPayloadInMB" in job["FailureReason"]
    assert output_keys(server, output) == []


def test_empty_prefix_fails_and_an_empty_object_gives_an_empty_out(env):
    server, _, _ = env
    job, _ = run_job(server, "xgb", f"s3://{BUCKET}/in/nothing-here/")
    assert job["TransformJobStatus"] == "Failed"
    assert "No S3 objects found" in job["FailureReason"]
    put(server, "in/empty/e.csv", b"")
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/empty/")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert read(server, output + "e.csv.out") == b""


def test_csv_input_filter_join_and_output_filter(env):
    server, booster, features = env
    rows = "".join(f"id{i}," + ",".join(f"{v:.9g}" for v in row) + "\n"
                   for i, row in enumerate(features[:5]))
    put(server, "in/csvjoin/rows.csv", rows.encode())
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/csvjoin/",
                          TransformOutput={"Accept": "text/csv"},
                          DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input",
                                          "OutputFilter": "$[0,-1]"})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    result = read(server, output + "rows.csv.out").decode().splitlines()
    expected = booster.predict(xgboost.DMatrix(features[:5]))
    assert [line.split(",")[0] for line in result] == [f"id{i}" for i in range(5)]
    assert np.allclose([float(line.split(",")[1]) for line in result], expected, atol=1e-5)


def test_a_bad_record_after_a_blank_line_is_named_by_its_line_with_filters(env):
    server, _, _ = env
    put(server, "in/blank/rows.csv", b"id0,1,2,3\n\nid1,x,2,3\nid2,1,2,3\n")
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/blank/",
                          TransformOutput={"Accept": "text/csv"},
                          DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"})
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(f"line 3 of s3://{BUCKET}/in/blank/rows.csv: "
                                           "the model failed (HTTP 4"), job["FailureReason"]
    assert output_keys(server, output) == []


def test_json_lines_join_keeps_the_input_object_and_adds_sagemaker_output(env):
    server, booster, features = env
    records = "".join(json.dumps({"id": i, "features": [float(v) for v in row]}) + "\n"
                      for i, row in enumerate(features[:4]))
    put(server, "in/jsonl/r.jsonl", records.encode())
    job, output = run_job(server, "xgb", f"s3://{BUCKET}/in/jsonl/",
                          BatchStrategy="SingleRecord",
                          TransformInput={"ContentType": "application/jsonlines"},
                          TransformOutput={"Accept": "application/jsonlines"},
                          DataProcessing={"InputFilter": "$.features", "JoinSource": "Input",
                                          "OutputFilter": "$['id','SageMakerOutput']"})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = [json.loads(line) for line in read(server, output + "r.jsonl.out").splitlines()]
    expected = booster.predict(xgboost.DMatrix(features[:4]))
    assert [line["id"] for line in lines] == [0, 1, 2, 3]
    assert set(lines[0]) == {"id", "SageMakerOutput"}
    assert np.allclose([line["SageMakerOutput"]["score"] for line in lines], expected,
                       atol=1e-5)


def test_a_filter_that_matches_nothing_fails_naming_filter_and_record(env):
    server, _, _ = env
    put(server, "in/nomatch/r.jsonl", b'{"features": [1, 2, 3]}\n{"other": 1}\n')
    job, _ = run_job(server, "xgb", f"s3://{BUCKET}/in/nomatch/",
                     TransformInput={"ContentType": "application/jsonlines"},
                     DataProcessing={"InputFilter": "$.features"})
    assert job["TransformJobStatus"] == "Failed"
    assert "InputFilter '$.features' matches nothing in line 2 of " \
        f"s3://{BUCKET}/in/nomatch/r.jsonl" in job["FailureReason"]


def test_an_inference_pipeline_runs_each_record_through_every_container(env):
    server, booster, features = env
    put(server, "in/pipe/p.csv", csv_rows(features[:8]))
    job, output = run_job(server, "pipeline", f"s3://{BUCKET}/in/pipe/")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    expected = booster.predict(xgboost.DMatrix(features[:8] * 2))
    assert np.allclose(scores(read(server, output + "p.csv.out")), expected, atol=1e-5)


def test_user_script_gets_the_job_environment_and_instances_split_the_objects(env):
    server, _, _ = env
    for index in range(3):
        put(server, f"in/echo/{index}.csv", b"abc\nde\n")
    job, output = run_job(server, "echo", f"s3://{BUCKET}/in/echo/",
                          Environment={"ECHO_TAG": "job"},
                          TransformResources={"InstanceType": "ml.m5.large",
                                              "InstanceCount": 2})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert output_keys(server, output) == ["0.csv.out", "1.csv.out", "2.csv.out"]
    answers = [line.split("|") for line in read(server, output + "1.csv.out").decode().split()]
    assert [answer[:4] for answer in answers] == [["job", "true", "3", "2"],
                                                  ["job", "true", "2", "2"]]
    with pytest.raises(ProcessLookupError):  # the model servers are stopped after the job
        os.kill(int(answers[0][4]), 0)
    streams = server.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TransformJobs",
        logStreamNamePrefix=job["TransformJobName"] + "/")["logStreams"]
    assert len({s["logStreamName"] for s in streams}) == 2


def test_record_io_records_are_sent_one_by_one_with_single_record(env):
    from openmaker.formats.recordio import frame_record

    server, _, _ = env
    put(server, "in/rec/r.rec", b"".join(frame_record(p) for p in (b"a" * 5, b"bb", b"c" * 9)))
    job, output = run_job(server, "echo", f"s3://{BUCKET}/in/rec/",
                          BatchStrategy="SingleRecord",
                          TransformInput={"ContentType": "application/x-recordio",
                                          "SplitType": "RecordIO"})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    # header (8 bytes) + payload, padding stripped with SingleRecord
    assert read(server, output + "r.rec.out") == b"model||13\nmodel||10\nmodel||17\n".replace(
        b"||", b"|true|")


def test_single_record_sends_each_line_and_retries_cover_a_failing_request(env):
    server, _, _ = env
    put(server, "in/single/s.csv", b"abc\nflaky-1\n")
    job, output = run_job(server, "echo", f"s3://{BUCKET}/in/single/",
                          BatchStrategy="SingleRecord",
                          ModelClientConfig={"InvocationsMaxRetries": 1})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    answers = [line.split(b"|")[:4] for line in read(server, output + "s.csv.out").split()]
    assert answers == [[b"model", b"true", b"3", b"1"], [b"model", b"true", b"7", b"1"]]
    put(server, "in/noretry/s.csv", b"abc\nflaky-2\n")
    job, output = run_job(server, "echo", f"s3://{BUCKET}/in/noretry/",
                          BatchStrategy="SingleRecord",
                          ModelClientConfig={"InvocationsMaxRetries": 0})
    assert job["TransformJobStatus"] == "Failed"
    assert f"line 2 of s3://{BUCKET}/in/noretry/s.csv" in job["FailureReason"]
    assert "flaky once" in job["FailureReason"]


def test_a_kmeans_model_trained_on_the_server_transforms_json_lines(env):
    from tests.e2e.test_built_in_endpoints import BUCKET as TRAINING_BUCKET
    from tests.e2e.test_built_in_endpoints import _train, _unlabelled

    server, _, _ = env
    server.client("s3").create_bucket(Bucket=TRAINING_BUCKET)
    body, _ = _unlabelled()
    trained = _train(server, "kmeans", "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
                     {"k": "2", "feature_dim": "4"}, body, "text/csv;label_size=0",
                     ("train",))
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    server.client("sagemaker").create_model(ModelName="kmeans", ExecutionRoleArn=ROLE,
                                            PrimaryContainer={
        "Image": trained["AlgorithmSpecification"]["TrainingImage"],
        "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"]})
    put(server, "in/kmeans/points.csv", b"-4,-4,-4,-4\n4,4,4,4\n-3.5,-4,-4,-4.2\n")
    job, output = run_job(server, "kmeans", f"s3://{BUCKET}/in/kmeans/",
                          TransformOutput={"Accept": "application/jsonlines"})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    clusters = [json.loads(line)["closest_cluster"]
                for line in read(server, output + "points.csv.out").splitlines()]
    assert len(clusters) == 3 and clusters[0] == clusters[2] != clusters[1]


def test_max_payload_zero_sends_each_object_whole(env):
    server, _, _ = env
    put(server, "in/whole/w.bin", b"z" * (7 * 1024 * 1024))  # over the 6 MB default
    job, output = run_job(server, "echo", f"s3://{BUCKET}/in/whole/", MaxPayloadInMB=0,
                          TransformInput={"ContentType": "application/octet-stream",
                                          "SplitType": "None"})
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert read(server, output + "w.bin.out") == f"model|true|{7 * 1024 * 1024}\n".encode()


def test_max_concurrent_transforms_keeps_that_many_requests_in_flight(env):
    server, _, _ = env
    # Each request sleeps and reports when it started and ended: requests overlap only
    # when the job has more than one in flight and the model server (one worker process)
    # serves them at once, small as they are.
    server.client("sagemaker").create_model(
        ModelName="echo-workers", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/echo/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "ECHO_DELAY": "0.5",
                            "ECHO_TIMES": "1"}})
    put(server, "in/concurrent/c.csv", b"a\nb\nc\nd\n")
    most_in_flight = {}
    for concurrency in (1, 2):
        job, output = run_job(server, "echo-workers", f"s3://{BUCKET}/in/concurrent/",
                              BatchStrategy="SingleRecord",
                              MaxConcurrentTransforms=concurrency)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        lines = read(server, output + "c.csv.out").decode().split()
        assert len(lines) == 4
        spans = [tuple(map(float, line.split("|")[-2:])) for line in lines]
        most_in_flight[concurrency] = max(
            sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert most_in_flight == {1: 1, 2: 2}


def test_model_client_timeout_fails_the_job_after_its_retries(env):
    server, _, _ = env
    put(server, "in/slow/s.csv", b"x\n")
    job, output = run_job(server, "slow", f"s3://{BUCKET}/in/slow/",
                          ModelClientConfig={"InvocationsTimeoutInSeconds": 1,
                                             "InvocationsMaxRetries": 0})
    assert job["TransformJobStatus"] == "Failed"
    assert "within 1 s" in job["FailureReason"], job["FailureReason"]
    assert output_keys(server, output) == []


def test_stop_ends_the_job_stopped_without_output(env):
    server, _, _ = env
    put(server, "in/stop/s.csv", b"x\n" * 5)
    name = f"tj-{uuid.uuid4().hex[:10]}"
    output = f"s3://{BUCKET}/out/{name}/"
    sagemaker = server.client("sagemaker")
    sagemaker.create_transform_job(**job_request(name, "slow", f"s3://{BUCKET}/in/stop/",
                                                 output, BatchStrategy="SingleRecord"))
    time.sleep(1.0)
    sagemaker.stop_transform_job(TransformJobName=name)
    assert sagemaker.describe_transform_job(TransformJobName=name)["TransformJobStatus"] in \
        ("Stopping", "Stopped")
    job = wait_for(server, name)
    assert job["TransformJobStatus"] == "Stopped"
    assert output_keys(server, output) == []
    with pytest.raises(ClientError) as raised:
        sagemaker.stop_transform_job(TransformJobName=name)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize(("change", "code", "words"), [
    ({"ModelName": "no-such-model"}, "ResourceNotFound", "Could not find model"),
    ({"MaxPayloadInMB": 101}, "ValidationException", "MaxPayloadInMB"),
    ({"MaxPayloadInMB": 20, "MaxConcurrentTransforms": 6}, "ValidationException",
     "MaxConcurrentTransforms x MaxPayloadInMB"),
    ({"Environment": {f"K{i}": "v" for i in range(17)}}, "ValidationException",
     "at 'environment' failed to satisfy constraint"),
    ({"DataProcessing": {"InputFilter": "$[1:"}}, "ValidationException",
     "DataProcessing.InputFilter"),
    ({"DataProcessing": {"OutputFilter": "$." + "a" * 62}}, "ValidationException",
     "dataProcessing.outputFilter"),
    ({"DataProcessing": {"JoinSource": "Input"},
      "TransformOutput": {"Accept": "application/json"}}, "ValidationException",
     "Accept"),
    ({"DataProcessing": {"JoinSource": "Input"},
      "TransformOutput": {"Accept": "text/csv", "AssembleWith": "None"}},
     "ValidationException", "AssembleWith"),
    ({"TransformInput": {"DataSource": {"S3DataSource": {
        "S3DataType": "AugmentedManifestFile", "S3Uri": f"s3://{BUCKET}/m"}}}},
     "ValidationException", "S3DataType"),
])
def test_bad_requests_are_refused_by_field_and_store_nothing(env, change, code, words):
    server, _, _ = env
    name = f"bad-{uuid.uuid4().hex[:8]}"
    request = job_request(name, "xgb", f"s3://{BUCKET}/in/basic/", f"s3://{BUCKET}/out/x/")
    for key, value in change.items():
        if isinstance(value, dict) and key in ("TransformInput", "TransformOutput"):
            request[key].update(value)
        else:
            request[key] = value
    sagemaker = server.client("sagemaker")
    with pytest.raises(ClientError) as raised:
        sagemaker.create_transform_job(**request)
    assert raised.value.response["Error"]["Code"] == code
    assert words in raised.value.response["Error"]["Message"]
    assert sagemaker.list_transform_jobs(NameContains=name)["TransformJobSummaries"] == []


def test_a_duplicate_name_is_in_use_and_unknown_jobs_are_not_found(env):
    server, _, features = env
    put(server, "in/dup/a.csv", csv_rows(features[:3]))
    job, _ = run_job(server, "xgb", f"s3://{BUCKET}/in/dup/")
    sagemaker = server.client("sagemaker")
    with pytest.raises(ClientError) as raised:
        sagemaker.create_transform_job(**job_request(
            job["TransformJobName"], "xgb", f"s3://{BUCKET}/in/dup/", f"s3://{BUCKET}/o/"))
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as raised:
        sagemaker.describe_transform_job(TransformJobName="never-created")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_jobs_a_stopped_server_left_running_are_failed_by_the_next(tmp_path):
    server = start_server(tmp_path / "home")
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="m/echo.tar.gz",
                      Body=tar_bytes({"code/inference.py": ECHO.encode()}))
        s3.put_object(Bucket=BUCKET, Key="in/x.csv", Body=b"x\n")
        sagemaker = server.client("sagemaker")
        sagemaker.create_model(ModelName="slow", ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/m/echo.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "ECHO_DELAY": "8"}})
        sagemaker.create_transform_job(**job_request(
            "cut-off", "slow", f"s3://{BUCKET}/in/", f"s3://{BUCKET}/out/"))
        time.sleep(0.5)
    finally:
        server.stop()
    again = start_server(tmp_path / "home")
    try:
        listed = again.client("sagemaker").list_transform_jobs()["TransformJobSummaries"]
        assert [(j["TransformJobName"], j["TransformJobStatus"]) for j in listed] == \
            [("cut-off", "Failed")]  # failed at startup, before any transform operation
        job = again.client("sagemaker").describe_transform_job(TransformJobName="cut-off")
        assert job["TransformJobStatus"] == "Failed"
        assert "restarted" in job["FailureReason"]
    finally:
        again.stop()
