"""Checkpoints, managed spot training, several instances talking to each other, and
requirements.txt, through real jobs on a real server."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.training.test_jobs import BUCKET, create_job, read_tar, wait

# Counts to ten, one step every 0.3 s, keeping its progress in the checkpoint directory;
# a restarted run carries on from the last step saved. Records every run it was part of.
COUNTER = '''
import json, os, signal, sys, time
checkpoints = "/opt/ml/checkpoints".replace("/opt/ml", os.environ["SAGEMAKER_BASE_DIR"])
state_file = os.path.join(checkpoints, "state.json")
state = json.load(open(state_file)) if os.path.exists(state_file) else {"step": 0, "runs": 0}
state["runs"] += 1
print(f"resuming at step {state['step']} (run {state['runs']})", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
while state["step"] < 10:
    time.sleep(0.3)
    state["step"] += 1
    tmp = state_file + ".tmp"
    json.dump(state, open(tmp, "w"))
    os.replace(tmp, state_file)
    print(f"step {state['step']}", flush=True)
json.dump(state, open(os.path.join(os.environ["SM_MODEL_DIR"], "state.json"), "w"))
'''


@pytest.fixture(scope="module")
def spot_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("spot-home"), {
        "OPENMAKER_SPOT_INTERRUPTION_AFTER_SECONDS": "1",
        "OPENMAKER_SPOT_CAPACITY_WAIT_SECONDS": "3",
    })
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/data.csv", Body=b"1,2\n3,4\n5,6\n")
    yield running
    running.stop()


def spot_request(name: str, *, max_wait: int = 120) -> dict:
    return {
        "EnableManagedSpotTraining": True,
        "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": max_wait},
        "CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/checkpoints/{name}"},
    }


def test_spot_interruption_resumes_from_the_checkpoint_and_bills_less(spot_server):
    name = "spot-resumes"
    job = wait(spot_server, create_job(spot_server, COUNTER, name=name,
                                       **spot_request(name)), timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Interrupted", "Starting",
                        "Downloading", "Training", "Uploading", "Completed"]
    state = json.loads(read_tar(spot_server, job["ModelArtifacts"]["S3ModelArtifacts"])[
        "state.json"])
    assert state["step"] == 10 and state["runs"] == 2  # the second run did not start over
    assert job["BillableTimeInSeconds"] < job["TrainingTimeInSeconds"]
    saved = spot_server.client("s3").get_object(
        Bucket=BUCKET, Key=f"checkpoints/{name}/state.json")["Body"].read()
    assert json.loads(saved)["step"] == 10


def test_spot_job_out_of_wait_time_stops_with_max_wait_time_exceeded(spot_server):
    name = "spot-out-of-time"
    job = wait(spot_server, create_job(spot_server, COUNTER, name=name,
                                       **{**spot_request(name, max_wait=60),
                                          "StoppingCondition": {"MaxRuntimeInSeconds": 2,
                                                                "MaxWaitTimeInSeconds": 3}}),
               timeout=60)
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["SecondaryStatus"] == "MaxWaitTimeExceeded"


def test_checkpoints_in_s3_are_restored_when_a_job_starts(spot_server):
    s3 = spot_server.client("s3")
    s3.put_object(Bucket=BUCKET, Key="checkpoints/restored/state.json",
                  Body=json.dumps({"step": 8, "runs": 5}).encode())
    name = create_job(spot_server, COUNTER, name="restored", CheckpointConfig={
        "S3Uri": f"s3://{BUCKET}/checkpoints/restored/", "LocalPath": "/opt/ml/checkpoints"})
    job = wait(spot_server, name, timeout=30)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    state = json.loads(read_tar(spot_server, job["ModelArtifacts"]["S3ModelArtifacts"])[
        "state.json"])
    assert state == {"step": 10, "runs": 6}
    assert job["BillableTimeInSeconds"] == job["TrainingTimeInSeconds"]  # not a spot job


@pytest.mark.parametrize(("request_members", "field"), [
    ({"EnableManagedSpotTraining": True}, "MaxWaitTimeInSeconds is required"),
    ({"EnableManagedSpotTraining": True,
      "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 30}},
     "must be greater than or equal to MaxRuntimeInSeconds"),
    ({"StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 90}},
     "only valid with EnableManagedSpotTraining"),
    ({"CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/c", "LocalPath": "/tmp/checkpoints"}},
     "CheckpointConfig.LocalPath"),
    ({"CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/c", "LocalPath": "/opt/ml/../etc"}},
     "CheckpointConfig.LocalPath"),
])
def test_bad_spot_and_checkpoint_settings_are_refused(spot_server, request_members, field):
    with pytest.raises(ClientError) as raised:
        create_job(spot_server, COUNTER, name="refused-spot", **request_members)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException" and field in error["Message"]
    with pytest.raises(ClientError):
        spot_server.client("sagemaker").describe_training_job(TrainingJobName="refused-spot")


TORCH_DISTRIBUTED = '''
import json, os
import torch, torch.distributed as dist
hosts = json.loads(os.environ["SM_HOSTS"])
rank = hosts.index(os.environ["SM_CURRENT_HOST"])
os.environ["MASTER_ADDR"] = hosts[0]  # as SageMaker's PyTorch examples do
dist.init_process_group("gloo", rank=rank, world_size=len(hosts))
total = torch.tensor([rank + 1.0])
dist.all_reduce(total)
dist.destroy_process_group()
json.dump({"rank": rank, "total": total.item()},
          open(os.path.join(os.environ["SM_MODEL_DIR"], "result.json"), "w"))
'''
TORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1-cpu-py310"


@pytest.mark.timeout(180)
def test_torch_distributed_gloo_across_instances_by_host_name(spot_server):
    name = create_job(spot_server, TORCH_DISTRIBUTED, count=3, image=TORCH_IMAGE)
    job = wait(spot_server, name, timeout=150)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    work = spot_server.home / "work" / name
    results = [json.loads((work / f"algo-{n}/opt/ml/model/result.json").read_text())
               for n in (1, 2, 3)]
    assert [r["rank"] for r in results] == [0, 1, 2]
    assert all(r["total"] == 6.0 for r in results)


RESOLVE = '''
import json, os, socket
hosts = json.loads(os.environ["SM_HOSTS"])
json.dump({h: socket.gethostbyname(h) for h in hosts},
          open(os.path.join(os.environ["SM_MODEL_DIR"], "hosts.json"), "w"))
'''


def test_instances_resolve_each_others_host_names(spot_server):
    job = wait(spot_server, create_job(spot_server, RESOLVE, count=2))
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    resolved = json.loads(read_tar(spot_server, job["ModelArtifacts"]["S3ModelArtifacts"])[
        "hosts.json"])
    assert resolved == {"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}


USES_REQUIREMENT = '''
import os, helper_pkg
open(os.path.join(os.environ["SM_MODEL_DIR"], "answer.txt"), "w").write(helper_pkg.ANSWER)
'''
LOCAL_PACKAGE = {
    "requirements.txt": "numpy\n./helper_pkg\n",
    "helper_pkg/pyproject.toml": (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "helper-pkg"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["helper_pkg"]\n'
    ),
    "helper_pkg/helper_pkg/__init__.py": 'ANSWER = "forty-two"\n',
}


@pytest.mark.timeout(240)
def test_requirements_txt_is_installed_into_the_jobs_environment(spot_server):
    job = wait(spot_server, create_job(spot_server, USES_REQUIREMENT, files=LOCAL_PACKAGE),
               timeout=200)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    files = read_tar(spot_server, job["ModelArtifacts"]["S3ModelArtifacts"])
    assert files == {"answer.txt": b"forty-two"}


@pytest.mark.timeout(240)
def test_requirements_that_cannot_be_installed_fail_the_job_with_pips_reason(spot_server):
    job = wait(spot_server, create_job(spot_server, USES_REQUIREMENT, files={
        "requirements.txt": "openmaker-no-such-package-0xdeadbeef==1.0\n"}), timeout=200)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: InstallRequirementsError")
    assert "openmaker-no-such-package-0xdeadbeef" in job["FailureReason"]


def test_stop_during_the_wait_for_spot_capacity_stops_the_job(spot_server):
    client = spot_server.client("sagemaker")
    name = "spot-stopped-while-waiting"
    create_job(spot_server, COUNTER, name=name, **spot_request(name))
    deadline = time.monotonic() + 30
    while client.describe_training_job(TrainingJobName=name)["SecondaryStatus"] \
            != "Interrupted":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    client.stop_training_job(TrainingJobName=name)
    job = wait(spot_server, name, timeout=20)
    assert job["TrainingJobStatus"] == "Stopped" and job["SecondaryStatus"] == "Stopped"


def test_admin_interruption_from_the_cli_reclaims_a_running_spot_job(spot_server):
    import subprocess
    import sys

    client = spot_server.client("sagemaker")
    name = "spot-admin-interrupted"
    create_job(spot_server, COUNTER, name=name, **spot_request(name))

    def transitions() -> list[str]:
        job = client.describe_training_job(TrainingJobName=name)
        return [t["Status"] for t in job["SecondaryStatusTransitions"]]

    deadline = time.monotonic() + 30
    while transitions().count("Training") < 2:  # past the configured interruption
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cli = [sys.executable, "-m", "openmaker", "training", "--url", spot_server.url]
    done = subprocess.run([*cli, "interrupt", name], capture_output=True, text=True,
                          env=spot_server.env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"interrupted: {name}"
    job = wait(spot_server, name, timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]].count("Interrupted") == 2
    state = json.loads(read_tar(spot_server, job["ModelArtifacts"]["S3ModelArtifacts"])[
        "state.json"])
    assert state["step"] == 10 and state["runs"] == 3

    refused = subprocess.run([*cli, "interrupt", name], capture_output=True, text=True,
                             env=spot_server.env, timeout=60)
    assert refused.returncode == 1 and "ValidationException" in refused.stderr
    assert "not running" in refused.stderr
    unknown = subprocess.run([*cli, "interrupt", "no-such-job"], capture_output=True,
                             text=True, env=spot_server.env, timeout=60)
    assert unknown.returncode == 1 and "Requested resource not found" in unknown.stderr


def test_only_spot_jobs_can_be_interrupted(spot_server):
    import openmaker

    name = create_job(spot_server, COUNTER)
    session = openmaker.Session(spot_server.url)
    with pytest.raises(ClientError) as raised:
        session.interrupt_training_job(name)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "managed spot training" in raised.value.response["Error"]["Message"]
    wait(spot_server, name)
