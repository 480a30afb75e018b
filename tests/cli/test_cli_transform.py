"""``openmaker transform`` run as a real subprocess against a real server: create from a
JSON request with --wait, list, describe, stop, and clean failures."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
import pytest
import xgboost
from tests.conftest import clean_environment, start_server
from tests.hosting.test_endpoints import ROLE, XGBOOST_IMAGE, csv_rows, tar_bytes

BUCKET = "cli-transform"


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cli-transform-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    features = np.random.default_rng(5).normal(size=(20, 3)).astype(np.float32)
    booster = xgboost.train({}, xgboost.DMatrix(features, label=features[:, 0]), 3)
    s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    s3.put_object(Bucket=BUCKET, Key="in/rows.csv", Body=csv_rows(features))
    running.client("sagemaker").create_model(ModelName="xgb", ExecutionRoleArn=ROLE,
                                             PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})
    yield running, booster, features
    running.stop()


def openmaker(server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "openmaker", "transform", *args],
        env=clean_environment({"OPENMAKER_URL": server.url}), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL)


def request(name: str, model: str = "xgb") -> dict:
    return {"TransformJobName": name, "ModelName": model,
            "TransformInput": {"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}},
                "ContentType": "text/csv", "SplitType": "Line"},
            "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/out/{name}/"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}


def test_create_waits_then_list_and_describe_show_the_job(cli_server, tmp_path):
    server, booster, features = cli_server
    name = f"cli-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "job.json"
    path.write_text(json.dumps(request("ignored")))
    created = openmaker(server, "create", "--cli-input-json", f"file://{path}", "--name", name,
                        "--wait")
    assert created.returncode == 0, created.stderr
    assert f"created: {name}" in created.stdout and "ended Completed" in created.stderr
    body = server.client("s3").get_object(Bucket=BUCKET, Key="out/ignored/rows.csv.out")
    scores = [float(v) for v in body["Body"].read().split()]
    assert np.allclose(scores, booster.predict(xgboost.DMatrix(features)), atol=1e-5)
    listed = openmaker(server, "list", "--status", "Completed", "--name-contains", name)
    assert listed.returncode == 0 and name in listed.stdout and "Completed" in listed.stdout
    described = openmaker(server, "describe", name)
    assert json.loads(described.stdout)["TransformJobStatus"] == "Completed"
    stopped = openmaker(server, "stop", name)
    assert stopped.returncode == 1 and "not running" in stopped.stderr


def test_a_bad_request_is_one_line_on_stderr_and_exit_1(cli_server):
    server, _, _ = cli_server
    result = openmaker(server, "create", "--cli-input-json",
                       json.dumps(request(f"cli-{uuid.uuid4().hex[:8]}", model="missing")))
    assert result.returncode == 1
    assert "ResourceNotFound" in result.stderr and "Could not find model" in result.stderr
    failed = openmaker(server, "create", "--wait", "--cli-input-json", json.dumps(
        {**request(f"cli-{uuid.uuid4().hex[:8]}"), "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{BUCKET}/nothing/"}}}}))
    assert failed.returncode == 1 and "ended Failed: No S3 objects found" in failed.stderr
