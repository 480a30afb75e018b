"""The SageMaker Python SDK v2, unmodified, hosting on openmaker: ``estimator.deploy()`` of a
built-in XGBoost estimator, ``sagemaker.model.Model(...).deploy()`` and a scikit-learn
framework model with an entry point (the SDK repacks it with ``code/``), then
``predictor.predict`` through SageMaker Runtime. Only ``AWS_ENDPOINT_URL`` (plus any
credentials) and the session's default bucket are set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost
from tests.e2e.test_sagemaker_sdk import sdk_session
from tests.hosting.test_endpoints import tar_bytes
from tests.sdk.test_predictor import INFERENCE

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "sdk-hosting-bucket"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """A server, a SageMaker SDK session reaching it through AWS_ENDPOINT_URL, and data."""
    with sdk_session(tmp_path_factory.mktemp("sdk-hosting-home"), BUCKET) as prepared:
        yield prepared


def put(session, key: str, body: bytes) -> str:
    session.boto_session.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


@pytest.mark.timeout(300)
def test_estimator_deploy_and_predict_csv(sdk):
    import sagemaker
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.serializers import CSVSerializer

    session, data, features, labels = sdk
    image = sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    estimator = Estimator(image, ROLE, instance_count=1, instance_type="ml.m5.large",
                          sagemaker_session=session,
                          hyperparameters={"objective": "binary:logistic", "num_round": 10})
    estimator.fit({"train": TrainingInput(data, content_type="text/csv")}, logs=False)
    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                 serializer=CSVSerializer(), deserializer=CSVDeserializer())
    try:
        rows = predictor.predict(features[:20])
        scores = np.array([float(row[0]) for row in rows])
        assert scores.shape == (20,)
        assert ((scores > 0.5) == (labels[:20] > 0.5)).mean() >= 0.8
        answer = predictor.predict(features[:2], initial_args={"Accept": "application/json"},
                                   target_variant="AllTraffic")
        assert len(answer) == 1 and "predictions" in answer[0][0]  # CSV-parsed JSON text
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


@pytest.mark.timeout(180)
def test_model_deploy_with_the_sdk(sdk):
    import sagemaker
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer

    session, _, features, labels = sdk
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(features, label=labels), 10)
    model_data = put(session, "models/xgb/model.tar.gz", tar_bytes(
        {"xgboost-model": bytes(booster.save_raw(raw_format="ubj"))}))
    image = sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    model = Model(image_uri=image, model_data=model_data, role=ROLE,
                  sagemaker_session=session, predictor_cls=Predictor)
    endpoint_name = sagemaker.utils.unique_name_from_base("sdk-model")
    model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                 endpoint_name=endpoint_name, wait=False)
    session.wait_for_endpoint(endpoint_name, poll=1)  # the SDK's waiter, polled faster
    predictor = Predictor(endpoint_name, sagemaker_session=session,
                          serializer=CSVSerializer(), deserializer=JSONDeserializer())
    try:
        answer = predictor.predict(features[:5])
        scores = [prediction["score"] for prediction in answer["predictions"]]
        assert np.allclose(scores, booster.predict(xgboost.DMatrix(features[:5])), atol=1e-6)
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("isolated", [False, True], ids=["sourcedir", "repacked"])
def test_sklearn_model_with_an_entry_point(sdk, tmp_path, isolated):
    """Without network isolation the SDK uploads ``sourcedir.tar.gz`` and names it in
    ``SAGEMAKER_SUBMIT_DIRECTORY``; with it, the SDK repacks the code into the model archive
    under ``code/`` and points there (``/opt/ml/model/code``)."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from sagemaker.sklearn.model import SKLearnModel

    session, *_ = sdk
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text(INFERENCE)
    model_data = put(session, "models/linear/model.tar.gz", tar_bytes(
        {"weights.json": json.dumps({"w": [1.0, 2.0]}).encode()}))
    model = SKLearnModel(model_data=model_data, role=ROLE, entry_point="inference.py",
                         source_dir=str(tmp_path / "code"), framework_version="1.2-1",
                         sagemaker_session=session, enable_network_isolation=isolated)
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                             serializer=JSONSerializer(), deserializer=JSONDeserializer())
    try:
        assert predictor.predict({"rows": [[1, 1], [2, 0.5]]}) == {"scores": [3.0, 3.0]}
        described = session.sagemaker_client.describe_model(ModelName=model.name)
        environment = described["PrimaryContainer"]["Environment"]
        submit = environment["SAGEMAKER_SUBMIT_DIRECTORY"]
        if isolated:
            assert submit == "/opt/ml/model/code"
            assert described["EnableNetworkIsolation"] is True
        else:
            assert submit.startswith(f"s3://{BUCKET}/") and submit.endswith("sourcedir.tar.gz")
        assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
