"""The SageMaker Python SDK v2's own first-party algorithm estimators, unmodified, on
openmaker: ``record_set`` uploads RecordIO-protobuf shards and a manifest, ``fit`` trains
the built-in, ``deploy`` serves it and the SDK's RecordIO predictor decodes the answer."""

from __future__ import annotations

import numpy as np
import pytest
from tests.e2e.test_sagemaker_sdk import sdk_session

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "sdk-algorithms-bucket"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    with sdk_session(tmp_path_factory.mktemp("sdk-algorithms-home"), BUCKET) as prepared:
        yield prepared


def _estimators(session):
    import sagemaker

    common = {"role": ROLE, "instance_count": 1, "instance_type": "ml.m5.large",
              "sagemaker_session": session}
    return {
        "kmeans": (sagemaker.KMeans(k=2, **common), "closest_cluster"),
        "pca": (sagemaker.PCA(num_components=2, **common), "projection"),
        "linear-learner": (sagemaker.LinearLearner(predictor_type="binary_classifier",
                                                   epochs=3, **common), "predicted_label"),
        "knn": (sagemaker.KNN(k=3, sample_size=100, predictor_type="classifier", **common),
                "predicted_label"),
        "factorization-machines": (sagemaker.FactorizationMachines(
            num_factors=2, predictor_type="binary_classifier", **common), "score"),
        "randomcutforest": (sagemaker.RandomCutForest(num_trees=50, num_samples_per_tree=32,
                                                      **common), "score"),
    }


LABELLED = ("linear-learner", "knn", "factorization-machines")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", ["kmeans", "pca", "linear-learner", "knn",
                                  "factorization-machines", "randomcutforest"])
def test_first_party_estimator_fits_deploys_and_predicts(sdk, name):
    session, _, features, labels = sdk
    estimator, key = _estimators(session)[name]
    data = features.astype(np.float32)
    records = estimator.record_set(data, labels=labels.astype(np.float32)
                                   if name in LABELLED else None)
    estimator.fit(records, wait=True, logs=False)
    job = session.sagemaker_client.describe_training_job(
        TrainingJobName=estimator.latest_training_job.name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    predictor = estimator.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                                 wait=False)
    try:
        session.wait_for_endpoint(predictor.endpoint_name, poll=1)
        answers = predictor.predict(data[:3])
        assert len(answers) == 3
        assert all(key in answer.label for answer in answers)
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()
