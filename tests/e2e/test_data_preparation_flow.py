"""The data-preparation library across the areas it serves: a processing job fits the
features on raw data and saves them as a model (its script uses SageMaker's literal
container paths), built-in XGBoost trains on the features it wrote, and a batch transform
job sends the raw rows through an inference pipeline of the two. The transform's output
equals transform-then-predict done locally. Real server, real boto3."""

from __future__ import annotations

import io
import tarfile
import time

import numpy as np
import pandas as pd
import pytest
import xgboost
from tests.conftest import start_server
from tests.processing.test_jobs import BUCKET as CODE_BUCKET
from tests.processing.test_jobs import request, s3_input, s3_output, wait
from tests.transform.test_transform_jobs import job_request
from tests.transform.test_transform_jobs import wait_for as wait_for_transform

from openmaker.algorithms.xgboost import load_booster
from openmaker.processing.transforms import load

BUCKET = "preparation-flow"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"

# Fits impute + scale + one-hot on raw.csv (label last), writes the training CSV XGBoost
# wants (label first, no header) and the fitted features as a servable model.tar.gz.
PREPARE = '''
import io, os, tarfile
import pandas as pd
from sklearn.pipeline import make_pipeline
from openmaker.processing.transforms import Imputer, OneHotEncoder, StandardScaler, save

raw = pd.read_csv("/opt/ml/processing/input/raw/raw.csv")
features = make_pipeline(Imputer("median", columns=["income", "age"]), StandardScaler(),
                         OneHotEncoder(min_frequency=5, columns=["region"]))
train = features.fit_transform(raw.drop(columns="label"))
train.insert(0, "label", raw["label"])
os.makedirs("/opt/ml/processing/train", exist_ok=True)
train.to_csv("/opt/ml/processing/train/train.csv", header=False, index=False)
save(features, "/opt/ml/processing/fitted")
with tarfile.open("/opt/ml/processing/model/model.tar.gz", "w:gz") as archive:
    for name in sorted(os.listdir("/opt/ml/processing/fitted")):
        archive.add(os.path.join("/opt/ml/processing/fitted", name), arcname=name)
    code = ("from openmaker.processing.transforms.serving import model_fn, input_fn, "
            "predict_fn, output_fn\\n").encode()
    info = tarfile.TarInfo("code/inference.py")
    info.size = len(code)
    archive.addfile(info, io.BytesIO(code))
print("prepared", len(train), "rows")
'''


def raw_frame(size: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "income": rng.normal(50, 15, size).round(2),
        "age": rng.integers(18, 80, size).astype(float),
        "region": rng.choice(["north", "south", "east", "west", "island"], size,
                             p=[0.3, 0.3, 0.2, 0.17, 0.03])})
    frame.loc[rng.random(size) < 0.1, "income"] = np.nan
    score = frame["income"].fillna(50) / 50 + (frame["region"] == "north") - frame["age"] / 80
    frame["label"] = (score > 0.8).astype(int)
    return frame


def wait_for_training(sagemaker, name: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sagemaker.describe_training_job(TrainingJobName=name)
        if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} still {job['TrainingJobStatus']}")


def read(s3, uri: str) -> bytes:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("preparation-home"))
    for bucket in (BUCKET, CODE_BUCKET):  # request() uploads the script to CODE_BUCKET
        running.client("s3").create_bucket(Bucket=bucket)
    yield running
    running.stop()


def test_features_fitted_in_processing_serve_a_batch_transform_pipeline(server, tmp_path):
    s3, sagemaker = server.client("s3"), server.client("sagemaker")
    s3.put_object(Bucket=BUCKET, Key="raw/raw.csv",
                  Body=raw_frame(300, seed=3).to_csv(index=False).encode())
    params = request(
        server, PREPARE, name="prepare-features",
        inputs=[s3_input("raw", f"s3://{BUCKET}/raw/", "/opt/ml/processing/input/raw")],
        outputs=[s3_output("train", f"s3://{BUCKET}/train/", "/opt/ml/processing/train"),
                 s3_output("model", f"s3://{BUCKET}/features/", "/opt/ml/processing/model")])
    sagemaker.create_processing_job(**params)
    job = wait(sagemaker, "prepare-features")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")

    sagemaker.create_training_job(
        TrainingJobName="train-on-features", RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        HyperParameters={"objective": "binary:logistic", "num_round": "15", "max_depth": "3"},
        InputDataConfig=[{"ChannelName": "train", "ContentType": "text/csv", "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/train/"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                        "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 300})
    trained = wait_for_training(sagemaker, "train-on-features")
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    model_data = trained["ModelArtifacts"]["S3ModelArtifacts"]

    sagemaker.create_model(ModelName="prepared-xgboost", ExecutionRoleArn=ROLE, Containers=[
        {"Image": SKLEARN_IMAGE, "ContainerHostname": "features",
         "ModelDataUrl": f"s3://{BUCKET}/features/model.tar.gz",
         "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                         "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}},
        {"Image": XGBOOST_IMAGE, "ContainerHostname": "xgboost", "ModelDataUrl": model_data}])
    batch = raw_frame(40, seed=11).drop(columns="label")
    s3.put_object(Bucket=BUCKET, Key="batch/rows.csv",
                  Body=batch.to_csv(header=False, index=False).encode())
    sagemaker.create_transform_job(**job_request(
        "score-raw-rows", "prepared-xgboost", f"s3://{BUCKET}/batch/",
        f"s3://{BUCKET}/scores/", BatchStrategy="MultiRecord"))
    transformed = wait_for_transform(server, "score-raw-rows")
    assert transformed["TransformJobStatus"] == "Completed", transformed.get("FailureReason")
    scores = np.loadtxt(io.BytesIO(read(s3, f"s3://{BUCKET}/scores/rows.csv.out")))

    # the same two steps done here, from the artifacts the jobs wrote
    with tarfile.open(fileobj=io.BytesIO(read(s3, f"s3://{BUCKET}/features/model.tar.gz"))) \
            as archive:
        archive.extractall(tmp_path / "features", filter="data")
    with tarfile.open(fileobj=io.BytesIO(read(s3, model_data))) as archive:
        archive.extractall(tmp_path / "xgboost", filter="data")
    features = load(tmp_path / "features")
    booster = load_booster(tmp_path / "xgboost")
    local = booster.predict(xgboost.DMatrix(features.transform(batch).to_numpy(np.float32)))
    assert len(scores) == len(batch) and len(set(np.round(local, 4))) > 1
    assert scores == pytest.approx(local, abs=1e-6)
