"""The SageMaker Python SDK v2, unmodified, running batch transform on openmaker:
``estimator.transformer(...)`` of a built-in XGBoost training job and
``sagemaker.model.Model(...).transformer(...)``, then ``transform(...)`` and ``wait()``
(with the SDK's CloudWatch log following), and ``sagemaker.transformer.Transformer`` made
directly with data processing. Only ``AWS_ENDPOINT_URL`` (plus any credentials) and the
session's default bucket are set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost
from tests.e2e.test_sagemaker_sdk import sdk_session
from tests.hosting.test_endpoints import tar_bytes

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "sdk-transform-bucket"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    with sdk_session(tmp_path_factory.mktemp("sdk-transform-home"), BUCKET) as prepared:
        yield prepared


def put(session, key: str, body: bytes) -> str:
    session.boto_session.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def read(session, uri: str) -> bytes:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return session.boto_session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def csv_rows(rows) -> bytes:
    return "".join(",".join(f"{v:.6g}" for v in row) + "\n" for row in rows).encode()


@pytest.mark.timeout(300)
def test_estimator_transformer_transform_and_wait_with_logs(sdk):
    import sagemaker
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    session, data, features, labels = sdk
    image = sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    estimator = Estimator(image, ROLE, instance_count=1, instance_type="ml.m5.large",
                          sagemaker_session=session,
                          hyperparameters={"objective": "binary:logistic", "num_round": 10})
    estimator.fit({"train": TrainingInput(data, content_type="text/csv")}, logs=False)
    input_uri = put(session, "batch/input/rows.csv", csv_rows(features[:50]))
    transformer = estimator.transformer(instance_count=1, instance_type="ml.m5.large",
                                        strategy="MultiRecord", assemble_with="Line",
                                        max_payload=1)
    transformer.transform(input_uri.rsplit("/", 1)[0] + "/", content_type="text/csv",
                          split_type="Line", wait=False)
    transformer.wait()  # follows /aws/sagemaker/TransformJobs, as on SageMaker
    job = session.describe_transform_job(transformer.latest_transform_job.name)
    assert job["TransformJobStatus"] == "Completed"
    scores = np.array([float(v) for v in read(
        session, transformer.output_path.rstrip("/") + "/rows.csv.out").split()])
    assert scores.shape == (50,)
    assert ((scores > 0.5) == (labels[:50] > 0.5)).mean() >= 0.8


@pytest.mark.timeout(180)
def test_model_transformer_and_a_direct_transformer_with_a_join(sdk):
    import sagemaker
    from sagemaker.model import Model
    from sagemaker.transformer import Transformer

    session, _, features, labels = sdk
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(features, label=labels), 10)
    model_data = put(session, "models/xgb/model.tar.gz", tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    image = sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    model = Model(image_uri=image, model_data=model_data, role=ROLE, sagemaker_session=session,
                  name=sagemaker.utils.unique_name_from_base("sdk-transform"))
    input_uri = put(session, "batch/model/rows.csv", csv_rows(features[:10]))
    output = f"s3://{BUCKET}/batch/model-out"
    transformer = model.transformer(instance_count=1, instance_type="ml.m5.large",
                                    output_path=output, accept="text/csv",
                                    assemble_with="Line")
    transformer.transform(input_uri, content_type="text/csv", split_type="Line", logs=False)
    expected = booster.predict(xgboost.DMatrix(features[:10].astype(np.float32)))
    scores = [float(v) for v in read(session, f"{output}/rows.csv.out").split()]
    assert np.allclose(scores, expected, atol=1e-4)

    joined = Transformer(model.name, 1, "ml.m5.large", strategy="SingleRecord",
                         assemble_with="Line", accept="text/csv",
                         output_path=f"s3://{BUCKET}/batch/joined", sagemaker_session=session)
    joined.transform(input_uri, content_type="text/csv", split_type="Line",
                     join_source="Input", output_filter="$[0,-1]", wait=True, logs=False)
    rows = [line.split(",") for line in read(
        session, f"s3://{BUCKET}/batch/joined/rows.csv.out").decode().splitlines()]
    assert [float(row[0]) for row in rows] == pytest.approx(features[:10, 0], rel=1e-5)
    assert [float(row[1]) for row in rows] == pytest.approx(expected, abs=1e-4)
    described = session.sagemaker_client.describe_transform_job(
        TransformJobName=joined.latest_transform_job.name)
    assert described["DataProcessing"] == {"JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    assert json.loads(json.dumps(described["TransformOutput"]))["Accept"] == "text/csv"
