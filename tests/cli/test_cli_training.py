"""``openmaker training`` run as a real subprocess against a real server: list, describe,
logs (and --follow) and stop, and clean failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from tests.conftest import clean_environment, start_server

from openmaker import Estimator, Session

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
HELLO = 'print("hello from training")\nprint("second line")\n'
SLEEP = 'import time\nprint("sleeping", flush=True)\ntime.sleep(60)\n'
SLOW = ('import time\nfor i in range(3):\n    print(f"step {i}", flush=True)\n'
        '    time.sleep(0.5)\n')


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cli-training-home"))
    yield running
    running.stop()


@pytest.fixture
def session(cli_server, tmp_path) -> Session:
    return Session(cli_server.url, home=tmp_path / "client-home")


def openmaker(server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "openmaker", "training", *args],
        env=clean_environment({"OPENMAKER_URL": server.url}), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def start_job(session: Session, tmp_path, script: str, wait: bool = True) -> Estimator:
    (tmp_path / "train.py").write_text(script)
    estimator = Estimator(IMAGE, entry_point=str(tmp_path / "train.py"), session=session)
    estimator.fit(wait=wait, logs=False)
    return estimator


def test_list_describe_and_logs_of_a_finished_job(cli_server, session, tmp_path):
    estimator = start_job(session, tmp_path, HELLO)
    name = estimator.latest_training_job

    listing = openmaker(cli_server, "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0].split() == ["NAME", "STATUS", "CREATED"]
    row = next(line for line in listing.stdout.splitlines() if line.startswith(name + " "))
    assert row.split()[1] == "Completed"

    described = openmaker(cli_server, "describe", name)
    assert described.returncode == 0, described.stderr
    job = json.loads(described.stdout)
    assert job["TrainingJobName"] == name and job["TrainingJobStatus"] == "Completed"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == estimator.model_data

    logs = openmaker(cli_server, "logs", name)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert lines.index("hello from training") < lines.index("second line")


def test_list_pages_through_every_job(cli_server, session, tmp_path):
    names = [start_job(session, tmp_path, HELLO, wait=False).latest_training_job
             for _ in range(3)]
    listing = openmaker(cli_server, "list", "--page-size", "2")
    assert listing.returncode == 0, listing.stderr
    listed = [line.split()[0] for line in listing.stdout.splitlines()[1:]]
    assert len(listed) == len(set(listed)) >= 3
    assert set(names) <= set(listed)
    total = sum(len(page["TrainingJobSummaries"]) for page in
                session.sagemaker.get_paginator("list_training_jobs").paginate())
    assert len(listed) == total


def test_logs_follow_tails_until_the_job_ends(cli_server, session, tmp_path):
    name = start_job(session, tmp_path, SLOW, wait=False).latest_training_job
    result = openmaker(cli_server, "logs", name, "--follow")
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("step")] == [
        "step 0", "step 1", "step 2"]
    assert "ended Completed" in result.stderr
    assert session.sagemaker.describe_training_job(
        TrainingJobName=name)["TrainingJobStatus"] == "Completed"


def test_stop_stops_a_running_job(cli_server, session, tmp_path):
    estimator = start_job(session, tmp_path, SLEEP, wait=False)
    deadline = time.monotonic() + 20
    while estimator.describe()["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = openmaker(cli_server, "stop", estimator.latest_training_job)
    assert result.returncode == 0, result.stderr
    assert f"stopping: {estimator.latest_training_job}" in result.stdout
    assert estimator.wait(logs=False)["TrainingJobStatus"] == "Stopped"

    again = openmaker(cli_server, "stop", estimator.latest_training_job)
    assert again.returncode == 1
    assert "ValidationException" in again.stderr and "not running" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize("action", ["describe", "logs", "stop"])
def test_unknown_job_fails_cleanly(cli_server, action):
    result = openmaker(cli_server, action, "no-such-job")
    assert result.returncode == 1
    assert "openmaker: ValidationException: Requested resource not found." in result.stderr
    assert "Traceback" not in result.stderr


def test_training_help_imports_nothing_heavy():
    probe = (
        "import json, sys\n"
        "import openmaker.cli.main as cli\n"
        "for argv in (['training', '--help'], ['training', 'logs', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.split('.')[0] in ('boto3', 'botocore', 'uvicorn',\n"
        "                                               'sqlalchemy'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=clean_environment(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "follow" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1]) == []
