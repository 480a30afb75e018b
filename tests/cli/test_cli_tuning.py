"""``openmaker tuning`` run as a real subprocess against a real server: create from a JSON
request (and --wait), describe, list with filters, jobs with sorting, best, stop, and clean
failures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest
from tests.conftest import clean_environment, start_server
from tests.sdk.test_tuner import regression_rows

XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "cli-tuning-data"


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("cli-tuning-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="train/data.csv", Body=regression_rows(seed=0)[0])
    s3.put_object(Bucket=BUCKET, Key="validation/data.csv", Body=regression_rows(seed=1)[0])
    yield running
    running.stop()


def openmaker(server, *args: str, timeout: float = 120,
              stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "openmaker", "tuning", *args],
        env=clean_environment({"OPENMAKER_URL": server.url}), capture_output=True, text=True,
        timeout=timeout, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def tuning_request(name: str, max_jobs: int = 3, parallel: int = 2) -> dict:
    """A CreateHyperParameterTuningJob request in botocore's shape: xgboost on the bucket's
    train/validation channels, minimising validation:rmse over eta and max_depth."""
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize",
                                                 "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs,
                               "MaxParallelTrainingJobs": parallel},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2",
                                            "MaxValue": "5"}],
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.1",
                                               "MaxValue": "0.5"}],
            },
            "RandomSeed": 3,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": XGBOOST, "TrainingInputMode": "File"},
            "StaticHyperParameters": {"objective": "reg:squarederror", "num_round": "6"},
            "RoleArn": ROLE,
            "InputDataConfig": [
                {"ChannelName": channel, "ContentType": "text/csv",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                 "S3Uri": f"s3://{BUCKET}/{channel}/"}}}
                for channel in ("train", "validation")],
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }


@dataclass
class FinishedTuning:
    name: str
    best_printed: str  # the best job's name, as ``create --wait`` printed it


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def finished(cli_server, tmp_path_factory) -> FinishedTuning:
    """A tuning job created by ``create --cli-input-json file://... --wait``."""
    name = unique("cli-tune")
    path = tmp_path_factory.mktemp("requests") / "tuning.json"
    path.write_text(json.dumps(tuning_request("ignored-by-name-option")))
    result = openmaker(cli_server, "create", "--cli-input-json", f"file://{path}",
                       "--name", name, "--wait", timeout=170)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"created: {name} (arn:aws:sagemaker:")
    assert f"{name} ended Completed" in result.stderr
    assert "validation:rmse = " in result.stderr
    return FinishedTuning(name, lines[1])


@pytest.mark.timeout(180)
def test_create_wait_describe_and_best(cli_server, finished):
    described = openmaker(cli_server, "describe", finished.name)
    assert described.returncode == 0, described.stderr
    job = json.loads(described.stdout)
    assert job["HyperParameterTuningJobName"] == finished.name
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Completed"] == 3
    best_name = job["BestTrainingJob"]["TrainingJobName"]
    assert finished.best_printed == best_name

    best = openmaker(cli_server, "best", finished.name)
    assert best.returncode == 0, best.stderr
    assert best.stdout.strip() == best_name
    assert "eta=" in best.stderr and "max_depth=" in best.stderr
    as_json = openmaker(cli_server, "best", finished.name, "--json")
    assert json.loads(as_json.stdout)["TrainingJobName"] == best_name


@pytest.mark.timeout(180)
def test_jobs_lists_every_training_job_sorted(cli_server, finished):
    result = openmaker(cli_server, "jobs", finished.name, "--sort-by", "FinalObjectiveMetricValue",
                       "--sort-order", "Ascending", "--page-size", "2")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "OBJECTIVE", "HYPERPARAMETERS"]
    assert len(rows) == 3
    objectives = [float(row.split()[2]) for row in rows]
    assert objectives == sorted(objectives)
    best = next(row for row in rows if row.split()[0] == finished.best_printed)
    assert float(best.split()[2]) == objectives[0]  # Minimize: the best is the lowest
    assert all(row.split()[1] == "Completed" for row in rows)
    assert all("eta=" in row and "max_depth=" in row for row in rows)

    none_failed = openmaker(cli_server, "jobs", finished.name, "--status", "Failed")
    assert none_failed.returncode == 0, none_failed.stderr
    assert none_failed.stdout.splitlines()[1:] == []


@pytest.mark.timeout(180)
def test_list_filters_by_status_and_name(cli_server, finished):
    prefix = finished.name[:12]
    listing = openmaker(cli_server, "list", "--name-contains", prefix,
                        "--status", "Completed", "--page-size", "1")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0].split() == ["NAME", "STATUS", "CREATED"]
    names = [line.split()[0] for line in listing.stdout.splitlines()[1:]]
    assert finished.name in names and all(prefix in name for name in names)
    running = openmaker(cli_server, "list", "--status", "InProgress")
    assert finished.name not in running.stdout


@pytest.mark.timeout(180)
def test_create_from_stdin_then_stop(cli_server):
    name = unique("cli-stop")
    created = openmaker(cli_server, "create", "--cli-input-json", "-",
                        stdin=json.dumps(tuning_request(name, max_jobs=20, parallel=1)))
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created: {name} ")
    stopped = openmaker(cli_server, "stop", name)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopping: {name}"
    client = cli_server.client("sagemaker")
    deadline = time.monotonic() + 60
    while True:
        job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] in ("Stopped", "Completed", "Failed"):
            break
        assert time.monotonic() < deadline, job["HyperParameterTuningJobStatus"]
        time.sleep(0.2)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"


@pytest.mark.parametrize("action", ["describe", "stop", "jobs", "best"])
def test_unknown_tuning_job_fails_cleanly(cli_server, action):
    result = openmaker(cli_server, action, "no-such-tuning-job")
    assert result.returncode == 1
    assert result.stderr.startswith("openmaker: ")
    assert "Traceback" not in result.stderr


def test_bad_requests_fail_cleanly(cli_server, tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    broken = openmaker(cli_server, "create", "--cli-input-json", str(tmp_path / "broken.json"))
    assert broken.returncode == 1
    assert "--cli-input-json is not valid JSON" in broken.stderr
    unnamed = openmaker(cli_server, "create", "--cli-input-json", '{"TrainingJobDefinition": {}}')
    assert unnamed.returncode == 1 and "HyperParameterTuningJobName" in unnamed.stderr
    invalid = openmaker(cli_server, "create", "--cli-input-json",
                        json.dumps({"HyperParameterTuningJobName": "x", "Bogus": 1}))
    assert invalid.returncode == 1 and "Bogus" in invalid.stderr  # botocore's validation
    missing = openmaker(cli_server, "create", "--cli-input-json", str(tmp_path / "none.json"))
    assert missing.returncode == 1 and "none.json" in missing.stderr
    for result in (broken, unnamed, invalid, missing):
        assert "Traceback" not in result.stderr


def test_tuning_help_imports_nothing_heavy():
    probe = (
        "import json, sys\n"
        "import openmaker.cli.main as cli\n"
        "for argv in (['tuning', '--help'], ['tuning', 'jobs', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.split('.')[0] in ('boto3', 'botocore', 'uvicorn',\n"
        "                                               'sqlalchemy', 'pandas'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=clean_environment(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--sort-by" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1]) == []
