"""``openmaker.Estimator`` against a real server: packaging and uploading the source, the
CreateTrainingJob request, waiting with logs, failures, attach and stop."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

import pytest
from tests.conftest import start_server

from openmaker import Estimator, Session, TrainingInput, TrainingJobFailedError
from openmaker.sdk.estimator import base_name_from_image, name_from_base

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
DATA_BUCKET = "estimator-data"

HELPER = '''
def summarize(rows):
    return {"rows": len(rows), "total": sum(int(v) for row in rows for v in row.split(","))}
'''
TRAIN = '''
import argparse, json, os, sys
from helpers import summarize
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--optimizer")
args = parser.parse_args()
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().splitlines()
summary = summarize(rows)
print(f"training epochs={args.epochs} optimizer={args.optimizer} rows={summary['rows']}")
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "summary": summary,
               "channels": sorted(json.loads(os.environ["SM_CHANNELS"]))}, f)
'''
CRASH = '''
print("about to fail")
raise RuntimeError("the model diverged")
'''
SLEEP = '''
import os, time
open(os.path.join(os.environ["SM_MODEL_DIR"], "partial.txt"), "w").write("saved")
print("sleeping", flush=True)
time.sleep(60)
'''


@pytest.fixture(scope="module")
def estimator_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("estimator-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    s3.put_object(Bucket=DATA_BUCKET, Key="train/data.csv", Body=b"1,2\n3,4\n5,6\n")
    s3.put_object(Bucket=DATA_BUCKET, Key="test/data.csv", Body=b"7,8\n")
    yield running
    running.stop()


@pytest.fixture
def session(estimator_server, tmp_path) -> Session:
    return Session(estimator_server.url, home=tmp_path / "client-home")


def write_source(root: Path, script: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(script)
    (root / "helpers.py").write_text(HELPER)
    return root


def read_tar(session: Session, uri: str) -> dict[str, bytes]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = session.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def wait_for_secondary(estimator: Estimator, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while estimator.describe()["SecondaryStatus"] != status:
        assert time.monotonic() < deadline, estimator.describe()["SecondaryStatus"]
        time.sleep(0.1)


def test_job_names_follow_the_sdk(session):
    assert base_name_from_image(IMAGE) == "sagemaker-scikit-learn"
    assert base_name_from_image("my-image") == "my-image"
    name = name_from_base("sagemaker-scikit-learn")
    assert re.fullmatch(r"sagemaker-scikit-learn-\d{4}(-\d{2}){5}-\d{3}", name)
    assert len(name_from_base("x" * 100)) == 63


def test_fit_with_source_dir_runs_the_script_and_streams_its_logs(session, tmp_path, capsys):
    source = write_source(tmp_path / "src", TRAIN)
    estimator = Estimator(IMAGE, entry_point="train.py", source_dir=str(source),
                          hyperparameters={"epochs": 3, "optimizer": "adam"}, session=session)
    estimator.fit({"train": f"s3://{DATA_BUCKET}/train/"})

    job = estimator.describe()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    name = estimator.latest_training_job
    assert re.fullmatch(r"sagemaker-scikit-learn-\d{4}(-\d{2}){5}-\d{3}", name)
    bucket = f"openmaker-{session.account_id}-{session.region}"
    hyperparameters = job["HyperParameters"]
    assert hyperparameters["epochs"] == "3" and hyperparameters["optimizer"] == '"adam"'
    assert hyperparameters["sagemaker_program"] == '"train.py"'
    assert hyperparameters["sagemaker_submit_directory"] == \
        f'"s3://{bucket}/{name}/source/sourcedir.tar.gz"'
    assert hyperparameters["sagemaker_job_name"] == json.dumps(name)
    assert hyperparameters["sagemaker_region"] == '"us-east-1"'
    assert hyperparameters["sagemaker_container_log_level"] == "20"
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{bucket}/"
    assert set(read_tar(session, f"s3://{bucket}/{name}/source/sourcedir.tar.gz")) == {
        "train.py", "helpers.py"}

    assert estimator.model_data == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert estimator.model_data.startswith(f"s3://{bucket}/{name}/")
    model = json.loads(read_tar(session, estimator.model_data)["model.json"])
    assert model == {"argv": ["--epochs", "3", "--optimizer", "adam"],
                     "summary": {"rows": 3, "total": 21}, "channels": ["train"]}
    assert "training epochs=3 optimizer=adam rows=3" in capsys.readouterr().out


def test_fit_with_the_entry_point_alone_and_training_inputs(session, tmp_path, capsys):
    (tmp_path / "train.py").write_text(TRAIN.replace("from helpers import summarize\n", "")
                                       .replace("summarize(rows)",
                                                "{'rows': len(rows), 'total': 0}"))
    output = f"s3://{DATA_BUCKET}/models/"
    estimator = Estimator(IMAGE, entry_point=str(tmp_path / "train.py"), output_path=output,
                          hyperparameters={"epochs": 1}, base_job_name="inputs",
                          tags={"team": "ml"}, environment={"MODE": "test"}, session=session)
    estimator.fit({
        "train": TrainingInput(f"s3://{DATA_BUCKET}/train/", content_type="text/csv",
                               distribution="ShardedByS3Key", shuffle_config=7),
        "test": f"s3://{DATA_BUCKET}/test/",
    }, logs=False)
    assert capsys.readouterr().out == ""
    job = estimator.describe()
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobName"].startswith("inputs-")
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert channels["train"]["ContentType"] == "text/csv"
    assert channels["train"]["ShuffleConfig"] == {"Seed": 7}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == \
        "ShardedByS3Key"
    assert channels["test"]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == \
        "FullyReplicated"
    assert job["Environment"] == {"MODE": "test"}
    assert estimator.model_data.startswith(output)
    model = json.loads(read_tar(session, estimator.model_data)["model.json"])
    assert model["channels"] == ["test", "train"]


def test_a_failing_script_raises_with_its_traceback(session, tmp_path, capsys):
    source = write_source(tmp_path / "src", CRASH)
    estimator = Estimator(IMAGE, entry_point="train.py", source_dir=str(source),
                          session=session)
    with pytest.raises(TrainingJobFailedError) as raised:
        estimator.fit()
    assert raised.value.job_name == estimator.latest_training_job
    assert "Traceback" in raised.value.failure_reason
    assert "RuntimeError: the model diverged" in str(raised.value)
    assert "about to fail" in capsys.readouterr().out


def test_attach_rebuilds_the_estimator_of_a_finished_job(session, tmp_path):
    source = write_source(tmp_path / "src", TRAIN)
    original = Estimator(IMAGE, entry_point="train.py", source_dir=str(source),
                         hyperparameters={"epochs": 2, "optimizer": "sgd"},
                         instance_type="ml.c5.xlarge", max_run=600, tags=[
                             {"Key": "team", "Value": "ml"}], session=session)
    original.fit({"train": f"s3://{DATA_BUCKET}/train/"}, logs=False)

    attached = Estimator.attach(original.latest_training_job, session=session)
    assert attached.latest_training_job == original.latest_training_job
    assert attached.image_uri == IMAGE
    assert attached.instance_type == "ml.c5.xlarge" and attached.instance_count == 1
    assert attached.max_run == 600
    assert attached.hyperparameters() == {"epochs": "2", "optimizer": '"sgd"'}
    assert attached.entry_point == "train.py"
    assert attached.source_dir.endswith("/source/sourcedir.tar.gz")
    assert attached.base_job_name == "sagemaker-scikit-learn"
    assert attached.tags == [{"Key": "team", "Value": "ml"}]
    assert attached.model_data == original.model_data
    assert attached.wait()["TrainingJobStatus"] == "Completed"


def test_stop_ends_a_running_job_stopped(session, tmp_path, capsys):
    source = write_source(tmp_path / "src", SLEEP)
    estimator = Estimator(IMAGE, entry_point="train.py", source_dir=str(source),
                          session=session)
    estimator.fit(wait=False)
    wait_for_secondary(estimator, "Training")
    estimator.stop()
    job = estimator.wait()
    assert job["TrainingJobStatus"] == "Stopped"
    assert read_tar(session, estimator.model_data) == {"partial.txt": b"saved"}
    assert "sleeping" in capsys.readouterr().out


def test_methods_before_fit_say_what_to_do(session):
    with pytest.raises(ValueError, match="call fit"):
        Estimator(IMAGE, session=session).describe()
    with pytest.raises(TypeError, match="channel"):
        Estimator(IMAGE, session=session).fit(["s3://a/b"])


def test_logs_of_several_instances_are_prefixed_by_host(session, tmp_path, capsys):
    (tmp_path / "train.py").write_text('import os\nprint("I am", os.environ["SM_CURRENT_HOST"])\n')
    estimator = Estimator(IMAGE, entry_point=str(tmp_path / "train.py"), instance_count=2,
                          session=session)
    estimator.fit()
    out = capsys.readouterr().out.splitlines()
    assert "[algo-1] I am algo-1" in out and "[algo-2] I am algo-2" in out


def test_built_in_xgboost_with_checkpoints_spot_and_analytics(session, estimator_server, capsys):
    rows = "".join(f"{i % 2},{i % 7},{(i * 3) % 5}\n" for i in range(200))
    session.s3.put_object(Bucket=DATA_BUCKET, Key="xgb/train.csv", Body=rows.encode())
    estimator = Estimator(
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        hyperparameters={"objective": "binary:logistic", "num_round": 5, "eval_metric": "auc"},
        checkpoint_s3_uri=f"s3://{DATA_BUCKET}/checkpoints/xgb/", use_spot_instances=True,
        max_run=600, max_wait=900, session=session)
    estimator.fit({"train": TrainingInput(f"s3://{DATA_BUCKET}/xgb/train.csv",
                                          content_type="text/csv")})
    job = estimator.describe()
    assert job["TrainingJobStatus"] == "Completed"
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 900}
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{DATA_BUCKET}/checkpoints/xgb/"
    assert list(read_tar(session, estimator.model_data)) == ["xgboost-model"]
    assert "train-auc" in capsys.readouterr().out
    frame = estimator.training_job_analytics.dataframe()
    assert set(frame["metric_name"]) == {"train:auc"} and len(frame) >= 1
    attached = Estimator.attach(estimator.latest_training_job, session=session)
    assert attached.use_spot_instances and attached.max_wait == 900
    assert attached.checkpoint_s3_uri == f"s3://{DATA_BUCKET}/checkpoints/xgb/"
