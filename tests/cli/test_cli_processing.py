"""``openmaker processing`` run as a real subprocess against a real server: list with
filters, describe, logs (and --follow), stop, and clean failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from tests.conftest import clean_environment, start_server

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "cli-processing"


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cli-processing-home"))
    running.client("s3").create_bucket(Bucket=BUCKET)
    yield running
    running.stop()


def openmaker(server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "openmaker", "processing", *args],
        env=clean_environment({"OPENMAKER_URL": server.url}), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL)


def create(server, name: str, code: str, count: int = 1) -> None:
    key = f"{name}/code/process.py"
    server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=code.encode())
    server.client("sagemaker").create_processing_job(
        ProcessingJobName=name,
        ProcessingInputs=[{"InputName": "code", "S3Input": {
            "S3Uri": f"s3://{BUCKET}/{key}", "LocalPath": "/opt/ml/processing/input/code",
            "S3DataType": "S3Prefix"}}],
        ProcessingResources={"ClusterConfig": {"InstanceCount": count,
                                               "InstanceType": "ml.m5.large",
                                               "VolumeSizeInGB": 5}},
        AppSpecification={"ImageUri": IMAGE, "ContainerEntrypoint": [
            "python3", "/opt/ml/processing/input/code/process.py"]},
        RoleArn=ROLE)


def wait(server, name: str) -> dict:
    sagemaker = server.client("sagemaker")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = sagemaker.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} did not end")


def test_list_describe_and_logs(cli_server):
    prefix = f"cli-{uuid.uuid4().hex[:6]}"
    create(cli_server, f"{prefix}-ok", 'print("line one")\nprint("line two")\n', count=2)
    create(cli_server, f"{prefix}-bad", 'raise SystemExit("broken input")\n')
    wait(cli_server, f"{prefix}-ok")
    wait(cli_server, f"{prefix}-bad")

    listed = openmaker(cli_server, "list", "--name-contains", prefix, "--page-size", "1")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "CREATED"]
    assert {line.split()[0] for line in lines[1:]} == {f"{prefix}-ok", f"{prefix}-bad"}
    failed = openmaker(cli_server, "list", "--name-contains", prefix, "--status", "Failed")
    assert [line.split()[:2] for line in failed.stdout.splitlines()[1:]] == [
        [f"{prefix}-bad", "Failed"]]

    described = openmaker(cli_server, "describe", f"{prefix}-bad")
    assert described.returncode == 0, described.stderr
    assert "broken input" in json.loads(described.stdout)["FailureReason"]

    logs = openmaker(cli_server, "logs", f"{prefix}-ok")
    assert logs.returncode == 0, logs.stderr
    assert sorted(logs.stdout.splitlines()) == sorted(
        f"[algo-{n}] line {word}" for n in (1, 2) for word in ("one", "two"))
    followed = openmaker(cli_server, "logs", f"{prefix}-bad", "--follow")
    assert followed.returncode == 1
    assert "broken input" in followed.stdout
    assert "ended Failed" in followed.stderr


def test_stop_and_errors(cli_server):
    name = f"cli-stop-{uuid.uuid4().hex[:6]}"
    create(cli_server, name, 'import time\nprint("waiting", flush=True)\ntime.sleep(60)\n')
    stopped = openmaker(cli_server, "stop", name)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopping: {name}"
    assert wait(cli_server, name)["ProcessingJobStatus"] == "Stopped"
    again = openmaker(cli_server, "stop", name)
    assert again.returncode == 1
    assert "ValidationException" in again.stderr and "not running" in again.stderr
    missing = openmaker(cli_server, "describe", "no-such-job")
    assert missing.returncode == 1
    assert "Requested resource not found" in missing.stderr
