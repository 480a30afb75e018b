"""A fitted data-preparation pipeline as the first container of an inference pipeline:
impute + scale + one-hot saved into a model.tar.gz with a one-line ``code/inference.py``
(scikit-learn framework image), built-in XGBoost second; the endpoint answers raw CSV rows
with the predictions of transform-then-predict done locally, and a row of the wrong width
is a 4xx naming the fitted columns. Real server, real boto3."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pandas as pd
import pytest
import xgboost
from botocore.exceptions import ClientError
from sklearn.pipeline import Pipeline
from tests.conftest import start_server
from tests.hosting.test_endpoints import ROLE, SKLEARN_IMAGE, XGBOOST_IMAGE, tar_bytes, wait_for

from openmaker.processing.transforms import Imputer, OneHotEncoder, StandardScaler, save

BUCKET = "transform-pipelines"
INFERENCE = ("from openmaker.processing.transforms.serving import model_fn, input_fn, "
             "predict_fn, output_fn\n")


def training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    size = 120
    frame = pd.DataFrame({
        "income": rng.normal(50, 15, size),
        "age": rng.integers(18, 80, size).astype(float),
        "region": rng.choice(["north", "south", "east", "west", "island"], size,
                             p=[0.3, 0.3, 0.2, 0.17, 0.03])})
    frame.loc[rng.random(size) < 0.1, "income"] = np.nan
    frame.loc[rng.random(size) < 0.1, "region"] = None
    return frame


def labels(frame: pd.DataFrame) -> np.ndarray:
    score = frame["income"].fillna(50) / 50 + (frame["region"] == "north") - frame["age"] / 80
    return (score > 0.8).astype(float).to_numpy()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    frame = training_frame()
    features = Pipeline([("impute", Imputer("median", columns=["income", "age"])),
                         ("scale", StandardScaler()),
                         ("onehot", OneHotEncoder(min_frequency=5, columns=["region"]))])
    transformed = features.fit_transform(frame)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(transformed.to_numpy(dtype=np.float32),
                                            label=labels(frame)), 15)
    model_dir = tmp_path_factory.mktemp("transform-model")
    save(features, model_dir)
    files = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    files["code/inference.py"] = INFERENCE.encode()

    server = start_server(tmp_path_factory.mktemp("transform-pipeline-home"))
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="features/model.tar.gz", Body=tar_bytes(files))
    s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="prepared-xgb", ExecutionRoleArn=ROLE, Containers=[
        {"Image": SKLEARN_IMAGE, "ContainerHostname": "features",
         "ModelDataUrl": f"s3://{BUCKET}/features/model.tar.gz",
         "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                         # the next container reads CSV; an earlier one is asked with */*
                         "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}},
        {"Image": XGBOOST_IMAGE, "ContainerHostname": "xgb",
         "ModelDataUrl": f"s3://{BUCKET}/xgb/model.tar.gz"}])
    name = f"ep-{uuid.uuid4().hex[:8]}"
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "prepared-xgb",
        "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    endpoint = wait_for(server, name, ("InService", "Failed"))
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    yield server, name, features, booster
    server.stop()


def test_raw_csv_rows_get_the_predictions_of_transform_then_predict(deployed) -> None:
    server, name, features, booster = deployed
    raw = pd.DataFrame({"income": [61.5, np.nan, 20.0, 45.0],
                        "age": [30.0, 45.0, 70.0, 22.0],
                        "region": ["north", "south", None, "atlantis"]})  # missing, unseen
    body = raw.to_csv(header=False, index=False)
    answer = server.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, ContentType="text/csv", Body=body.encode())
    scores = np.loadtxt(io.StringIO(answer["Body"].read().decode()), delimiter=",")
    local = booster.predict(xgboost.DMatrix(
        features.transform(raw).to_numpy(dtype=np.float32)))
    assert len(set(np.round(local, 4))) > 1  # the rows differ, so the check means something
    assert scores == pytest.approx(local, abs=1e-6)


def test_a_row_of_the_wrong_width_is_a_4xx_naming_the_columns(deployed) -> None:
    server, name, _, _ = deployed
    with pytest.raises(ClientError) as raised:
        server.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Body=b"61.5,30\n")
    response = raised.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 400
    assert ("fitted on 3 columns, in this order: income, age, region"
            in response["Error"]["Message"])
