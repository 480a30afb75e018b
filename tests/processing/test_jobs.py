"""Processing jobs end to end: a real server, boto3, and scripts that use SageMaker's literal
container paths."""

from __future__ import annotations

import gzip
import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "processing-jobs"
CODE = "/opt/ml/processing/input/code"

SUMMARY = '''
import glob, json, os, sys
rows = []
for path in sorted(glob.glob("/opt/ml/processing/input/data/*.csv")):
    with open(path) as f:
        rows += f.read().splitlines()
os.makedirs("/opt/ml/processing/output/result/nested", exist_ok=True)
with open("/opt/ml/processing/output/result/nested/summary.json", "w") as f:
    json.dump({"rows": len(rows), "args": sys.argv[1:], "colour": os.environ.get("COLOUR"),
               "config": json.load(open("/opt/ml/config/processingjobconfig.json")),
               "resources": json.load(open("/opt/ml/config/resourceconfig.json")),
               "output_dir_existed": os.path.isdir("/opt/ml/processing/output/other")}, f)
os.makedirs("/opt/ml/output", exist_ok=True)
open("/opt/ml/output/message", "w").write("processed %d rows" % len(rows))
print("processed", len(rows), "rows")
'''
CRASH = '''
import sys
print("reading the input")
open("/opt/ml/processing/output/result/half.csv", "w").write("1\\n")
print("the column 'label' is missing", file=sys.stderr)
sys.exit(3)
'''
SLEEP = '''
import time
print("sleeping", flush=True)
time.sleep(120)
'''


@pytest.fixture(scope="module")
def job_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("processing-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/a.csv", Body=b"1,2\n3,4\n")
    s3.put_object(Bucket=BUCKET, Key="data/train/b.csv", Body=b"5,6\n")
    yield running
    running.stop()


def put(server, key: str, body: str | bytes) -> str:
    server.client("s3").put_object(Bucket=BUCKET, Key=key,
                                   Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def s3_input(name: str, uri: str, local: str, **extra) -> dict:
    return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local,
                                           "S3DataType": "S3Prefix", **extra}}


def s3_output(name: str, uri: str, local: str, mode: str = "EndOfJob") -> dict:
    return {"OutputName": name, "S3Output": {"S3Uri": uri, "LocalPath": local,
                                             "S3UploadMode": mode}}


def request(server, script: str | None, *, name: str | None = None, inputs=(), outputs=(),
            arguments=(), count: int = 1, **extra) -> dict:
    """A CreateProcessingJob request running ``script`` as the SDK's ScriptProcessor
    does (code input at /opt/ml/processing/input/code, ``python3 <script> args``)."""
    name = name or f"job-{uuid.uuid4().hex[:12]}"
    inputs = list(inputs)
    app = {"ImageUri": IMAGE}
    if script is not None:
        code = put(server, f"{name}/input/code/process.py", script)
        inputs.append(s3_input("code", code, CODE))
        app["ContainerEntrypoint"] = ["python3", f"{CODE}/process.py"]
    if arguments:
        app["ContainerArguments"] = list(arguments)
    params = {
        "ProcessingJobName": name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": list(outputs)},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": count,
                                                  "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 5}},
        "AppSpecification": app,
        "RoleArn": ROLE,
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }
    params.update(extra)
    return params


def wait(sagemaker, name: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sagemaker.describe_processing_job(ProcessingJobName=name)
        if job["ProcessingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} still {job['ProcessingJobStatus']}")


def wait_for(predicate, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def read(server, key: str) -> bytes:
    return server.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()


def keys(server, prefix: str) -> list[str]:
    listed = server.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_script_reads_its_inputs_and_config_and_its_outputs_land_in_s3(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(
        job_server, SUMMARY, arguments=["--scale", "/opt/ml/processing/input/data"],
        inputs=[s3_input("data", f"s3://{BUCKET}/data/train", "/opt/ml/processing/input/data")],
        outputs=[s3_output("result", f"s3://{BUCKET}/out/summary",
                           "/opt/ml/processing/output/result"),
                 s3_output("other", f"s3://{BUCKET}/out/other",
                           "/opt/ml/processing/output/other")],
        Environment={"COLOUR": "teal"})
    arn = sagemaker.create_processing_job(**params)["ProcessingJobArn"]
    assert arn.endswith(f":processing-job/{params['ProcessingJobName']}")
    assert sagemaker.describe_processing_job(
        ProcessingJobName=params["ProcessingJobName"])["ProcessingJobStatus"] == "InProgress"
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ExitMessage"] == "processed 3 rows"
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    assert job["LastModifiedTime"] >= job["CreationTime"]
    assert job["ProcessingInputs"][0]["S3Input"]["S3InputMode"] == "File"

    summary = json.loads(read(job_server, "out/summary/nested/summary.json"))
    assert summary["rows"] == 3
    assert summary["colour"] == "teal"
    # The argument stays a container path for the script; the script's open() maps it.
    assert summary["args"][0] == "--scale"
    assert summary["args"][1].endswith("/opt/ml/processing/input/data")
    assert summary["output_dir_existed"] is True
    assert summary["resources"] == {"current_host": "algo-1", "hosts": ["algo-1"]}
    config = summary["config"]
    assert config["ProcessingJobName"] == params["ProcessingJobName"]
    assert config["ProcessingJobArn"] == arn
    assert config["Environment"] == {"COLOUR": "teal"}
    assert config["ProcessingInputs"][0]["S3Input"]["S3DownloadMode"] == "StartOfJob"
    assert config["AppSpecification"]["ImageUri"] == IMAGE

    logs = job_server.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                        logStreamNamePrefix=params["ProcessingJobName"] + "/")
    stream = streams["logStreams"][0]["logStreamName"]
    assert stream.startswith(f"{params['ProcessingJobName']}/algo-1-")
    events = logs.get_log_events(logGroupName="/aws/sagemaker/ProcessingJobs",
                                 logStreamName=stream)["events"]
    assert "processed 3 rows" in [event["message"] for event in events]


def test_a_failing_script_fails_the_job_with_its_exit_code_and_output(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(job_server, CRASH, outputs=[
        s3_output("result", f"s3://{BUCKET}/out/crash", "/opt/ml/processing/output/result")])
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("AlgorithmError: algo-1 exited with code 3")
    assert "the column 'label' is missing" in reason
    # EndOfJob outputs of a failed job are not uploaded.
    assert keys(job_server, "out/crash") == []


def test_stop_moves_the_job_to_stopping_then_stopped(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(job_server, SLEEP)
    name = params["ProcessingJobName"]
    sagemaker.create_processing_job(**params)
    logs = job_server.client("logs")

    def sleeping():
        try:
            streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/ProcessingJobs",
                                                logStreamNamePrefix=name + "/")["logStreams"]
        except ClientError:
            return False
        return streams and any(
            event["message"] == "sleeping" for event in logs.get_log_events(
                logGroupName="/aws/sagemaker/ProcessingJobs",
                logStreamName=streams[0]["logStreamName"])["events"])

    wait_for(sleeping)
    sagemaker.stop_processing_job(ProcessingJobName=name)
    assert sagemaker.describe_processing_job(ProcessingJobName=name)[
        "ProcessingJobStatus"] in ("Stopping", "Stopped")
    job = wait(sagemaker, name, timeout=30)
    assert job["ProcessingJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as caught:
        sagemaker.stop_processing_job(ProcessingJobName=name)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "not running" in caught.value.response["Error"]["Message"]


def test_max_runtime_stops_the_job(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(job_server, SLEEP, StoppingCondition={"MaxRuntimeInSeconds": 1})
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"], timeout=60)
    assert job["ProcessingJobStatus"] == "Stopped"
    assert "MaxRuntimeInSeconds (1 s)" in job["FailureReason"]


CONTINUOUS = '''
import os, sys, time, boto3
open("/opt/ml/processing/output/live/first.txt", "w").write("early")
s3 = boto3.client("s3")
deadline = time.time() + 30
while time.time() < deadline:
    listed = s3.list_objects_v2(Bucket=sys.argv[1], Prefix=sys.argv[2])
    if listed.get("KeyCount"):
        print("seen", listed["Contents"][0]["Key"])
        break
    time.sleep(0.2)
else:
    sys.exit("first.txt never reached the bucket while the job ran")
'''


def test_continuous_outputs_are_uploaded_while_the_job_runs(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(job_server, CONTINUOUS, arguments=[BUCKET, "out/live/first.txt"],
                     outputs=[s3_output("live", f"s3://{BUCKET}/out/live",
                                        "/opt/ml/processing/output/live", "Continuous")])
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert read(job_server, "out/live/first.txt") == b"early"


HOSTS = '''
import json, os
host = json.load(open("/opt/ml/config/resourceconfig.json"))["current_host"]
def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files)
out = "/opt/ml/processing/output/hosts"
json.dump({"sharded": listing("/opt/ml/processing/input/shards"),
           "replicated": listing("/opt/ml/processing/input/all")},
          open(os.path.join(out, host + ".json"), "w"))
'''


def test_instances_get_sharded_and_replicated_inputs(job_server):
    sagemaker = job_server.client("sagemaker")
    for index in range(4):
        put(job_server, f"shards/part-{index}.csv", f"{index}\n")
    params = request(job_server, HOSTS, count=2, inputs=[
        s3_input("shards", f"s3://{BUCKET}/shards/", "/opt/ml/processing/input/shards",
                 S3DataDistributionType="ShardedByS3Key"),
        s3_input("all", f"s3://{BUCKET}/data/train/", "/opt/ml/processing/input/all")],
        outputs=[s3_output("hosts", f"s3://{BUCKET}/out/hosts",
                           "/opt/ml/processing/output/hosts")])
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    first = json.loads(read(job_server, "out/hosts/algo-1.json"))
    second = json.loads(read(job_server, "out/hosts/algo-2.json"))
    assert first["replicated"] == second["replicated"] == ["a.csv", "b.csv"]
    assert len(first["sharded"]) == len(second["sharded"]) == 2
    assert sorted(first["sharded"] + second["sharded"]) == [f"part-{i}.csv" for i in range(4)]


PIPE = '''
data = open("/opt/ml/processing/input/stream_0", "rb").read()
open("/opt/ml/processing/output/result/stream.txt", "wb").write(data)
'''


def test_pipe_mode_streams_a_gzip_input_into_a_fifo(job_server):
    sagemaker = job_server.client("sagemaker")
    put(job_server, "gz/part.csv.gz", gzip.compress(b"x,y\n1,2\n"))
    params = request(job_server, PIPE, inputs=[
        s3_input("stream", f"s3://{BUCKET}/gz/", "/opt/ml/processing/input/stream",
                 S3InputMode="Pipe", S3CompressionType="Gzip")],
        outputs=[s3_output("result", f"s3://{BUCKET}/out/pipe",
                           "/opt/ml/processing/output/result")])
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert read(job_server, "out/pipe/stream.txt") == b"x,y\n1,2\n"


RUN_SH = '''#!/bin/bash
set -e
cd /opt/ml/processing/input/data
cat a.csv b.csv > /opt/ml/processing/output/result/all.csv
ln -s /opt/ml/processing/input/data/a.csv /opt/ml/processing/output/result/link.csv
echo "$1" > /opt/ml/processing/output/result/arg.txt
'''


def test_a_shell_entrypoint_runs_with_container_paths_and_symlinks_are_not_uploaded(
        job_server):
    sagemaker = job_server.client("sagemaker")
    name = f"job-{uuid.uuid4().hex[:12]}"
    script = put(job_server, f"{name}/entrypoint/run.sh", RUN_SH)
    params = request(
        job_server, None, name=name,
        inputs=[s3_input("entrypoint", script, "/opt/ml/processing/input/entrypoint"),
                s3_input("data", f"s3://{BUCKET}/data/train/", "/opt/ml/processing/input/data")],
        outputs=[s3_output("result", f"s3://{BUCKET}/out/{name}",
                           "/opt/ml/processing/output/result")],
        AppSpecification={"ImageUri": IMAGE, "ContainerEntrypoint": [
            "/bin/bash", "/opt/ml/processing/input/entrypoint/run.sh"],
            "ContainerArguments": ["hello"]})
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert read(job_server, f"out/{name}/all.csv") == b"1,2\n3,4\n5,6\n"
    assert read(job_server, f"out/{name}/arg.txt") == b"hello\n"
    assert keys(job_server, f"out/{name}/") == [f"out/{name}/all.csv", f"out/{name}/arg.txt"]


def test_arguments_alone_are_the_command(job_server):
    sagemaker = job_server.client("sagemaker")
    name = f"job-{uuid.uuid4().hex[:12]}"
    code = put(job_server, f"{name}/code/process.py",
               'open("/opt/ml/output/message", "w").write("from arguments")\n')
    params = request(job_server, None, name=name,
                     inputs=[s3_input("code", code, CODE)],
                     AppSpecification={"ImageUri": IMAGE, "ContainerArguments": [
                         "python3", f"{CODE}/process.py"]})
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, name)
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ExitMessage"] == "from arguments"


def test_exit_messages_are_joined_across_hosts_and_cut_to_1kb(job_server):
    sagemaker = job_server.client("sagemaker")
    script = '''
import json
host = json.load(open("/opt/ml/config/resourceconfig.json"))["current_host"]
open("/opt/ml/output/message", "w").write(host[-1] * 700)
'''
    params = request(job_server, script, count=2)
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ExitMessage"] == "1" * 700 + "2" * 324


def test_a_non_utf8_exit_message_fails_the_job(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(job_server, 'open("/opt/ml/output/message", "wb").write(b"\\xff\\xfe")\n')
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError:")
    assert "UTF-8" in job["FailureReason"]


def test_a_missing_command_fails_clearly(job_server):
    sagemaker = job_server.client("sagemaker")
    params = request(job_server, None, AppSpecification={
        "ImageUri": IMAGE, "ContainerEntrypoint": ["no-such-program-here"]})
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Failed"
    assert "no-such-program-here" in job["FailureReason"]


def test_list_processing_jobs_filters_sorts_and_pages(job_server):
    sagemaker = job_server.client("sagemaker")
    prefix = f"listed-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{index}" for index in range(3)]
    for name in names:
        sagemaker.create_processing_job(**request(job_server, "print('hi')\n", name=name))
    for name in names:
        wait(sagemaker, name)
    listed = sagemaker.list_processing_jobs(NameContains=prefix, SortBy="Name",
                                            SortOrder="Ascending")
    summaries = listed["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in summaries] == names
    assert all(s["ProcessingJobStatus"] == "Completed" for s in summaries)
    assert all("ProcessingEndTime" in s and s["ProcessingJobArn"] for s in summaries)
    first = sagemaker.list_processing_jobs(NameContains=prefix, MaxResults=2)
    assert len(first["ProcessingJobSummaries"]) == 2 and first["NextToken"]
    rest = sagemaker.list_processing_jobs(NameContains=prefix, MaxResults=2,
                                          NextToken=first["NextToken"])
    assert len(rest["ProcessingJobSummaries"]) == 1
    assert sagemaker.list_processing_jobs(NameContains=prefix, StatusEquals="Failed")[
        "ProcessingJobSummaries"] == []


def test_jobs_left_running_by_an_earlier_server_are_failed(tmp_path):
    home = tmp_path / "home"
    first = start_server(home)
    try:
        first.client("s3").create_bucket(Bucket=BUCKET)
        params = request(first, SLEEP)
        first.client("sagemaker").create_processing_job(**params)
    finally:
        first.stop()
    second = start_server(home)
    try:
        # failed at startup: a listing before any processing operation shows it
        listed = second.client("sagemaker").list_processing_jobs(StatusEquals="Failed")
        assert [job["ProcessingJobName"] for job in listed["ProcessingJobSummaries"]] == [
            params["ProcessingJobName"]]
        job = second.client("sagemaker").describe_processing_job(
            ProcessingJobName=params["ProcessingJobName"])
        assert job["ProcessingJobStatus"] == "Failed"
        assert "restarted" in job["FailureReason"]
    finally:
        second.stop()


MANIFEST = '''
import os
found = sorted(os.path.relpath(os.path.join(d, f), "/opt/ml/processing/input/listed")
               for d, _, files in os.walk("/opt/ml/processing/input/listed") for f in files)
open("/opt/ml/output/message", "w").write(",".join(found))
'''


def test_a_manifest_input_delivers_the_objects_it_lists(job_server):
    sagemaker = job_server.client("sagemaker")
    manifest = put(job_server, "manifests/train.json", json.dumps(
        [{"prefix": f"s3://{BUCKET}/data/"}, "train/b.csv"]))
    params = request(job_server, MANIFEST, inputs=[
        s3_input("listed", manifest, "/opt/ml/processing/input/listed",
                 S3DataType="ManifestFile")])
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, params["ProcessingJobName"])
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ExitMessage"] == "train/b.csv"


ONE_HOST_FAILS = '''
import json, sys, time
host = json.load(open("/opt/ml/config/resourceconfig.json"))["current_host"]
open("/opt/ml/processing/output/live/" + host + ".txt", "w").write(host)
if host == "algo-2":
    sys.exit("algo-2 cannot read its shard")
time.sleep(60)
'''


def test_one_failing_host_stops_the_others_and_continuous_outputs_still_upload(job_server):
    sagemaker = job_server.client("sagemaker")
    name = f"job-{uuid.uuid4().hex[:12]}"
    params = request(job_server, ONE_HOST_FAILS, name=name, count=2, outputs=[
        s3_output("live", f"s3://{BUCKET}/out/{name}/live", "/opt/ml/processing/output/live",
                  "Continuous"),
        s3_output("end", f"s3://{BUCKET}/out/{name}/end", "/opt/ml/processing/output/live")])
    started = time.monotonic()
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, name, timeout=40)
    assert time.monotonic() - started < 30  # algo-1 did not sleep its 60 s
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: algo-2 exited with code 1")
    assert "algo-2 cannot read its shard" in job["FailureReason"]
    assert keys(job_server, f"out/{name}/") == [f"out/{name}/live/algo-1.txt",
                                                f"out/{name}/live/algo-2.txt"]
