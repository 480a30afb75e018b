"""openmaker's own SDK: ``Model.transformer(...)``, ``Transformer.transform``/``wait``/
``attach`` and ``TransformJobFailedError``, against a real server."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost
from tests.conftest import start_server
from tests.hosting.test_endpoints import XGBOOST_IMAGE, csv_rows, tar_bytes

from openmaker.sdk.model import Model
from openmaker.sdk.session import Session
from openmaker.sdk.transformer import Transformer, TransformJobFailedError

BUCKET = "sdk-transformer"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("sdk-transformer-home"))
    session = Session(server.url)
    session.make_bucket(BUCKET)
    features = np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32)
    booster = xgboost.train({}, xgboost.DMatrix(features, label=features[:, 1]), 4)
    session.s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    session.s3.put_object(Bucket=BUCKET, Key="in/a.csv", Body=csv_rows(features))
    session.s3.put_object(Bucket=BUCKET, Key="bad/a.csv", Body=b"1,2\n")
    yield session, booster, features
    server.stop()


def test_model_transformer_runs_a_job_and_attach_reads_it_back(prepared, capsys):
    session, booster, features = prepared
    model = Model(XGBOOST_IMAGE, model_data=f"s3://{BUCKET}/model.tar.gz", session=session)
    transformer = model.transformer(instance_count=1, instance_type="ml.m5.large",
                                    strategy="MultiRecord", assemble_with="Line",
                                    max_concurrent_transforms=2, max_payload=1,
                                    env={"SOME_SETTING": "1"})
    job = transformer.transform(f"s3://{BUCKET}/in/", content_type="text/csv",
                                split_type="Line")
    assert job["TransformJobStatus"] == "Completed"
    assert capsys.readouterr().out.endswith("!\n")
    assert transformer.output_path.startswith("s3://openmaker-")  # the default bucket
    bucket, key = transformer.output_path[len("s3://"):].split("/", 1)
    body = session.s3.get_object(Bucket=bucket, Key=f"{key}/a.csv.out")["Body"].read()
    assert np.allclose([float(v) for v in body.split()],
                       booster.predict(xgboost.DMatrix(features)), atol=1e-5)
    attached = Transformer.attach(transformer.latest_transform_job, session=session)
    assert (attached.model_name, attached.strategy, attached.max_payload, attached.env) == \
        (model.name, "MultiRecord", 1, {"SOME_SETTING": "1"})
    assert attached.describe()["TransformJobArn"] == job["TransformJobArn"]


def test_a_failed_job_raises_with_its_failure_reason(prepared):
    session, _, _ = prepared
    model = Model(XGBOOST_IMAGE, model_data=f"s3://{BUCKET}/model.tar.gz", session=session)
    transformer = model.transformer(1, "ml.m5.large", output_path=f"s3://{BUCKET}/out-bad")
    with pytest.raises(TransformJobFailedError) as raised:
        transformer.transform(f"s3://{BUCKET}/bad/", content_type="text/csv",
                              split_type="Line", logs=False)
    assert f"s3://{BUCKET}/bad/a.csv" in raised.value.failure_reason
    assert "features" in raised.value.failure_reason  # the model's own error
