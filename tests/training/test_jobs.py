"""Training jobs end to end: a real server, boto3, and plain-Python script-mode jobs."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "training-jobs"

TRAIN = '''
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--optimizer")
args = parser.parse_args()
train = os.environ["SM_CHANNEL_TRAIN"]
rows = open(os.path.join(train, "data.csv")).read().splitlines()
print(f"epochs={args.epochs} optimizer={args.optimizer} rows={len(rows)}")
print("to stderr", file=sys.stderr)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"epochs": args.epochs, "optimizer": args.optimizer, "rows": len(rows),
               "host": os.environ["SM_CURRENT_HOST"], "hosts": os.environ["SM_HOSTS"],
               "endpoint": os.environ["AWS_ENDPOINT_URL"]}, f)
os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "extra.txt"), "w").write("extra")
'''
CRASH = '''
print("about to fail")
def explode():
    raise RuntimeError("the model diverged")
explode()
'''
SLEEP = '''
import os, time
open(os.path.join(os.environ["SM_MODEL_DIR"], "partial.txt"), "w").write("saved")
print("sleeping", flush=True)
time.sleep(60)
'''
HOSTS = '''
import json, os
with open(os.path.join(os.environ["SM_MODEL_DIR"], "host.json"), "w") as f:
    json.dump({"host": os.environ["SM_CURRENT_HOST"],
               "hosts": json.loads(os.environ["SM_HOSTS"])}, f)
print("host", os.environ["SM_CURRENT_HOST"])
'''
# algo-2 gives up at once; algo-1 would run on, and is stopped because its peer failed
ONE_HOST_FAILS = '''
import os, sys, time
if os.environ["SM_CURRENT_HOST"] == "algo-2":
    print("algo-2 gives up", flush=True)
    sys.exit(3)
time.sleep(60)
'''
FAILURE_FILE = '''
import os, sys
open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("bad input: no label column")
sys.exit(3)
'''


@pytest.fixture(scope="module")
def job_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("training-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/data.csv", Body=b"1,2\n3,4\n5,6\n")
    yield running
    running.stop()


def source_tar(script: str, files: dict[str, str] | None = None) -> bytes:
    """``sourcedir.tar.gz`` holding ``train.py`` and any other ``files`` (path -> text)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, text in {"train.py": script, **(files or {})}.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def create_job(server, script: str, *, name: str | None = None, count: int = 1,
               max_runtime: int = 600, image: str = IMAGE, hyperparameters=None,
               channels: bool = True, input_mode: str = "File",
               files: dict[str, str] | None = None, **request) -> str:
    """Upload ``script`` (and ``files``) and create a job running it; ``request`` adds or
    replaces top-level CreateTrainingJob members."""
    name = name or f"job-{uuid.uuid4().hex[:12]}"
    key = f"{name}/source/sourcedir.tar.gz"
    server.client("s3").put_object(Bucket=BUCKET, Key=key, Body=source_tar(script, files))
    params = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": input_mode},
        "RoleArn": ROLE,
        "HyperParameters": {
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}"),
            **(hyperparameters or {}),
        },
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    if channels:
        params["InputDataConfig"] = [{
            "ChannelName": "train", "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                            "S3Uri": f"s3://{BUCKET}/data/train/"}},
        }]
    params.update(request)
    server.client("sagemaker").create_training_job(**params)
    return name


def wait(server, name: str, timeout: float = 30, statuses=("Completed", "Failed", "Stopped")):
    client = server.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} still {job['TrainingJobStatus']}/{job['SecondaryStatus']}")


def read_tar(server, uri: str) -> dict[str, bytes]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_script_mode_job_completes_with_model_logs_and_listing(job_server):
    name = create_job(job_server, TRAIN, hyperparameters={"epochs": "3",
                                                          "optimizer": json.dumps("adam")})
    client = job_server.client("sagemaker")
    started = client.describe_training_job(TrainingJobName=name)
    assert started["TrainingJobStatus"] in ("InProgress", "Completed")
    job = wait(job_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all("EndTime" in t and t["StatusMessage"] for t in job["SecondaryStatusTransitions"])
    assert job["TrainingTimeInSeconds"] >= 1 and job["BillableTimeInSeconds"] >= 1
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    model_uri = f"s3://{BUCKET}/output/{name}/output/model.tar.gz"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == model_uri
    model = json.loads(read_tar(job_server, model_uri)["model.json"])
    assert model["epochs"] == 3 and model["optimizer"] == "adam" and model["rows"] == 3
    assert model["host"] == "algo-1" and model["endpoint"] == job_server.url
    output = read_tar(job_server, f"s3://{BUCKET}/output/{name}/output/output.tar.gz")
    assert output == {"extra.txt": b"extra"}

    logs = job_server.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=f"{name}/")["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                 logStreamName=streams[0]["logStreamName"],
                                 startFromHead=True)["events"]
    messages = [e["message"] for e in events]
    assert "epochs=3 optimizer=adam rows=3" in messages and "to stderr" in messages

    listed = client.list_training_jobs(NameContains=name)["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in listed] == [name]
    assert listed[0]["TrainingJobStatus"] == "Completed"
    arn = job["TrainingJobArn"]
    assert client.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]


PIPE = '''
import os
data = open(os.path.join(os.path.dirname(os.environ["SM_CHANNEL_TRAIN"]), "train_0"), "rb").read()
open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.csv"), "wb").write(data)
'''


def test_pipe_mode_channel_streams_through_a_fifo(job_server):
    job = wait(job_server, create_job(job_server, PIPE, input_mode="Pipe"))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    files = read_tar(job_server, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert files == {"seen.csv": b"1,2\n3,4\n5,6\n"}


def test_source_archives_escaping_the_code_directory_are_refused(tmp_path):
    from openmaker.core.errors import ValidationException
    from openmaker.training.runner import extract_source

    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../evil.py")
        tar.addfile(info, io.BytesIO(b""))
    (tmp_path / "code").mkdir()
    with pytest.raises(ValidationException, match="outside the code directory"):
        extract_source(archive, tmp_path / "code")
    assert not (tmp_path / "evil.py").exists()


def test_crashing_script_fails_with_its_traceback(job_server):
    job = wait(job_server, create_job(job_server, CRASH))
    assert job["TrainingJobStatus"] == "Failed" and job["SecondaryStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("AlgorithmError: algo-1 exited with code 1")
    assert "Traceback" in reason and "RuntimeError: the model diverged" in reason
    assert len(reason) <= 1024


def test_the_host_that_failed_is_named_not_the_one_stopped_for_it(job_server):
    job = wait(job_server, create_job(job_server, ONE_HOST_FAILS, count=2))
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: algo-2 exited with code 3")
    assert "algo-2 gives up" in job["FailureReason"]


def test_failure_file_becomes_the_failure_reason(job_server):
    job = wait(job_server, create_job(job_server, FAILURE_FILE))
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "bad input: no label column"


def test_max_runtime_stops_the_job_and_keeps_the_model(job_server):
    started = time.monotonic()
    job = wait(job_server, create_job(job_server, SLEEP, max_runtime=2))
    assert time.monotonic() - started < 20
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"
    files = read_tar(job_server, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert files == {"partial.txt": b"saved"}


def test_stop_training_job_stops_a_running_script(job_server):
    client = job_server.client("sagemaker")
    name = create_job(job_server, SLEEP)
    deadline = time.monotonic() + 20
    while client.describe_training_job(TrainingJobName=name)["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    started = time.monotonic()
    client.stop_training_job(TrainingJobName=name)
    assert client.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in (
        "Stopping", "Stopped")
    job = wait(job_server, name)
    assert time.monotonic() - started < 10
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert read_tar(job_server, job["ModelArtifacts"]["S3ModelArtifacts"]) == {
        "partial.txt": b"saved"}
    with pytest.raises(ClientError) as raised:
        client.stop_training_job(TrainingJobName=name)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_two_instances_run_two_processes_with_their_host_names(job_server):
    name = create_job(job_server, HOSTS, count=2)
    job = wait(job_server, name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = json.loads(read_tar(job_server, job["ModelArtifacts"]["S3ModelArtifacts"])[
        "host.json"])
    assert model == {"host": "algo-1", "hosts": ["algo-1", "algo-2"]}
    streams = job_server.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/",
    )["logStreams"]
    assert sorted(s["logStreamName"].split("/")[1][:6] for s in streams) == ["algo-1",
                                                                            "algo-2"]
    home = job_server.home / "work" / name
    second = json.loads((home / "algo-2/opt/ml/model/host.json").read_text())
    assert second["host"] == "algo-2"


def test_duplicate_name_is_resource_in_use(job_server):
    name = create_job(job_server, HOSTS)
    wait(job_server, name)
    with pytest.raises(ClientError) as raised:
        create_job(job_server, HOSTS, name=name)
    error = raised.value.response["Error"]
    assert error["Code"] == "ResourceInUse"
    assert error["Message"].startswith("Training job names must be unique")
    assert f"training-job/{name}" in error["Message"]


@pytest.mark.parametrize(("image", "expected"), [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-image:latest", "TrainingImage"),
    ("766337827248.dkr.ecr.us-east-1.amazonaws.com/lda:1", "'lda' is not implemented"),
])
def test_unsupported_images_are_validation_errors(job_server, image, expected):
    with pytest.raises(ClientError) as raised:
        create_job(job_server, HOSTS, image=image)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert expected in error["Message"]


def test_missing_program_and_missing_inputs_are_validation_errors(job_server):
    client = job_server.client("sagemaker")
    with pytest.raises(ClientError) as raised:
        client.create_training_job(
            TrainingJobName="no-program", RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                            "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 60})
    assert "sagemaker_program" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        create_job(job_server, HOSTS, hyperparameters={
            "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/nothing/here.tar.gz")})
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "sagemaker_submit_directory" in raised.value.response["Error"]["Message"]


def test_describe_unknown_job_is_requested_resource_not_found(job_server):
    with pytest.raises(ClientError) as raised:
        job_server.client("sagemaker").describe_training_job(TrainingJobName="never-created")
    assert raised.value.response["Error"] == {
        "Code": "ValidationException", "Message": "Requested resource not found."}


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGKILL"])
def test_jobs_running_when_the_server_stops_are_failed_on_restart(tmp_path, stop_signal):
    import os
    import signal

    script = ("import os, time\n"
              "open(os.path.join(os.environ['SM_MODEL_DIR'], 'pid'), 'w').write(str(os.getpid()))\n"
              "time.sleep(30)\n")
    server = start_server(tmp_path / "home")
    try:
        server.client("s3").create_bucket(Bucket=BUCKET)
        name = create_job(server, script, channels=False)
        pid_file = tmp_path / "home" / "work" / name / "algo-1/opt/ml/model/pid"
        deadline = time.monotonic() + 20
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop(getattr(signal, stop_signal))
    pid = int(pid_file.read_text())
    if stop_signal == "SIGKILL":  # nothing could clean up: end the orphan ourselves
        os.kill(pid, signal.SIGKILL)
    else:  # a clean exit takes the job's processes with it
        deadline = time.monotonic() + 5
        with pytest.raises(ProcessLookupError):
            while time.monotonic() < deadline:  # until init has reaped it
                os.kill(pid, 0)
                time.sleep(0.05)
    restarted = start_server(tmp_path / "home")
    try:
        job = restarted.client("sagemaker").describe_training_job(TrainingJobName=name)
        assert job["TrainingJobStatus"] == "Failed"
        assert job["FailureReason"] == "The openmaker server restarted while the job was running"
    finally:
        restarted.stop()
