"""Built-in XGBoost as training jobs: boto3 against a real server, the way the SageMaker
SDK's ``image_uris.retrieve("xgboost", ...)`` images are used."""

from __future__ import annotations

import io
import tarfile
import uuid

import numpy as np
import pytest
import xgboost
from botocore.exceptions import ClientError
from tests.conftest import start_server
from tests.training.test_jobs import wait

BUCKET = "xgboost-jobs"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
LEGACY_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"


def csv_rows(features: np.ndarray, labels: np.ndarray) -> bytes:
    rows = np.column_stack([labels, features])
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows).encode()


@pytest.fixture(scope="module")
def xgb_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("xgboost-home"), {
        "OPENMAKER_SPOT_INTERRUPTION_AFTER_SECONDS": "2",
        "OPENMAKER_SPOT_CAPACITY_WAIT_SECONDS": "1",
    })
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(7)
    features = rng.normal(size=(600, 6))
    labels = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(float)
    s3.put_object(Bucket=BUCKET, Key="binary/train/part-0.csv",
                  Body=csv_rows(features[:300], labels[:300]))
    s3.put_object(Bucket=BUCKET, Key="binary/train/part-1.csv",
                  Body=csv_rows(features[300:500], labels[300:500]))
    s3.put_object(Bucket=BUCKET, Key="binary/validation/data.csv",
                  Body=csv_rows(features[500:], labels[500:]))
    libsvm = "".join(f"{int(y)} " + " ".join(f"{i}:{v:.5g}" for i, v in enumerate(x)) + "\n"
                     for x, y in zip(features[:300], labels[:300], strict=True))
    s3.put_object(Bucket=BUCKET, Key="libsvm/train/data.libsvm", Body=libsvm.encode())
    s3.put_object(Bucket=BUCKET, Key="bad/train/data.csv", Body=b"1,2,3\n0,4,5\n1,6,oops\n")
    s3.put_object(Bucket=BUCKET, Key="labels/train/data.csv", Body=b"1,2,3\n7,4,5\n")
    yield running
    running.stop()


def channel(name: str, prefix: str, content_type: str = "text/csv", **extra) -> dict:
    return {"ChannelName": name, "ContentType": content_type, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{prefix}",
        "S3DataDistributionType": extra.pop("distribution", "FullyReplicated")}}, **extra}


def create(server, hyperparameters: dict, channels: list[dict], *, image: str = IMAGE,
           count: int = 1, name: str | None = None, **request) -> str:
    name = name or f"xgb-{uuid.uuid4().hex[:10]}"
    params = {
        "TrainingJobName": name, "RoleArn": ROLE, "HyperParameters": hyperparameters,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": count,
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300}, **request}
    if channels:  # the API refuses an empty list: no channels means no member
        params["InputDataConfig"] = channels
    server.client("sagemaker").create_training_job(**params)
    return name


def booster(server, job: dict) -> xgboost.Booster:
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["xgboost-model"]
        model = xgboost.Booster()
        model.load_model(bytearray(tar.extractfile("xgboost-model").read()))
    return model


BINARY = {"objective": "binary:logistic", "num_round": "12", "max_depth": "3",
          "eval_metric": "auc,logloss", "seed": "1"}


def test_csv_job_trains_and_reports_train_and_validation_metrics(xgb_server):
    name = create(xgb_server, BINARY, [channel("train", "binary/train/"),
                                       channel("validation", "binary/validation/")])
    job = wait(xgb_server, name, timeout=90)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert booster(xgb_server, job).num_boosted_rounds() == 12
    names = {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"train:auc", "validation:auc", "validation:logloss"} <= names
    final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert {"train:auc", "train:logloss", "validation:auc", "validation:logloss"} <= set(final)
    assert final["validation:auc"] > 0.9


def test_libsvm_job_by_the_legacy_image(xgb_server):
    name = create(xgb_server, {"objective": "binary:logistic", "num_round": "5"},
                  [channel("train", "libsvm/train/", "text/libsvm")], image=LEGACY_IMAGE)
    job = wait(xgb_server, name, timeout=90)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert booster(xgb_server, job).num_boosted_rounds() == 5


def test_two_instances_train_one_model_on_sharded_data(xgb_server):
    name = create(xgb_server, BINARY, [
        channel("train", "binary/train/", distribution="ShardedByS3Key"),
        channel("validation", "binary/validation/")], count=2)
    job = wait(xgb_server, name, timeout=120)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert booster(xgb_server, job).num_boosted_rounds() == 12
    work = xgb_server.home / "work" / name
    shards = [sorted(p.name for p in (work / f"algo-{n}/opt/ml/input/data/train").rglob("*.csv"))
              for n in (1, 2)]
    assert shards == [["part-0.csv"], ["part-1.csv"]]


def test_model_channel_warm_starts_training(xgb_server):
    first = wait(xgb_server, create(xgb_server, BINARY, [channel("train", "binary/train/")]),
                 timeout=90)
    assert first["TrainingJobStatus"] == "Completed", first.get("FailureReason")
    model_key = first["ModelArtifacts"]["S3ModelArtifacts"].split(f"{BUCKET}/", 1)[1]
    second = wait(xgb_server, create(
        xgb_server, {**BINARY, "num_round": "4"},
        [channel("train", "binary/train/"),
         channel("model", model_key, "application/x-sagemaker-model")]), timeout=90)
    assert second["TrainingJobStatus"] == "Completed", second.get("FailureReason")
    assert booster(xgb_server, second).num_boosted_rounds() == 16


def test_spot_job_resumes_from_xgboost_checkpoints(xgb_server):
    name = f"xgb-spot-{uuid.uuid4().hex[:8]}"
    rows = 20000
    rng = np.random.default_rng(3)
    features = rng.normal(size=(rows, 20))
    xgb_server.client("s3").put_object(
        Bucket=BUCKET, Key="spot/train/data.csv",
        Body=csv_rows(features, (features.sum(axis=1) > 0).astype(float)))
    job = wait(xgb_server, create(
        xgb_server, {"objective": "binary:logistic", "num_round": "400", "max_depth": "8",
                     "eta": "0.05"},
        [channel("train", "spot/train/")], name=name, EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 300, "MaxWaitTimeInSeconds": 600},
        CheckpointConfig={"S3Uri": f"s3://{BUCKET}/checkpoints/{name}"}), timeout=240)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert "Interrupted" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert booster(xgb_server, job).num_boosted_rounds() == 400
    listed = xgb_server.client("s3").list_objects_v2(Bucket=BUCKET,
                                                      Prefix=f"checkpoints/{name}/")
    assert any("xgboost-checkpoint" in o["Key"] for o in listed.get("Contents", []))


@pytest.mark.parametrize(("hyperparameters", "channels", "message"), [
    ({"objective": "binary:logistic"}, None, "HyperParameters.num_round"),
    ({**BINARY, "eta": "1.5"}, None, "eta"),
    ({**BINARY, "max_depth": "deep"}, None, "max_depth"),
    ({**BINARY, "no_such_parameter": "1"}, None, "no_such_parameter"),
    ({**BINARY, "objective": "multi:softmax"}, None, "num_class"),
    (BINARY, [], "train"),
    (BINARY, [{"ChannelName": "validation", "ContentType": "text/csv",
               "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                               "S3Uri": f"s3://{BUCKET}/binary/validation/"}}}],
     "train"),
    (BINARY, [{"ChannelName": "train", "ContentType": "image/png",
               "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                               "S3Uri": f"s3://{BUCKET}/binary/train/"}}}],
     "image/png"),
])
def test_bad_hyperparameters_and_channels_are_refused_at_create(
        xgb_server, hyperparameters, channels, message):
    channels = [channel("train", "binary/train/")] if channels is None else channels
    with pytest.raises(ClientError) as raised:
        create(xgb_server, hyperparameters, channels, name="xgb-refused")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException" and message in error["Message"], error
    with pytest.raises(ClientError):
        xgb_server.client("sagemaker").describe_training_job(TrainingJobName="xgb-refused")


def test_malformed_rows_fail_the_job_naming_file_line_and_column(xgb_server):
    job = wait(xgb_server, create(xgb_server, {"num_round": "2"}, [channel("train", "bad/train/")]),
               timeout=60)
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert "data.csv" in reason and "line 3" in reason and "column 3" in reason, reason


def test_labels_invalid_for_the_objective_fail_the_job(xgb_server):
    job = wait(xgb_server, create(xgb_server, {"num_round": "2", "objective": "binary:logistic"},
                                  [channel("train", "labels/train/")]), timeout=60)
    assert job["TrainingJobStatus"] == "Failed"
    assert "label" in job["FailureReason"].lower(), job["FailureReason"]


@pytest.mark.parametrize("specification", [
    {"TrainingImage": "xgboost", "TrainingInputMode": "File"},
    {"AlgorithmName": "xgboost", "TrainingInputMode": "Pipe"},
])
def test_xgboost_is_addressed_by_its_bare_name(xgb_server, specification):
    name = create(xgb_server, {"num_round": "3"}, [channel("train", "binary/train/")],
                  AlgorithmSpecification=specification)
    job = wait(xgb_server, name, timeout=60)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
