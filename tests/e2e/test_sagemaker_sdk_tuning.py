"""The SageMaker Python SDK v2, unmodified, tuning on openmaker: ``sagemaker.tuner.
HyperparameterTuner`` over a built-in XGBoost ``Estimator`` — fit, wait, best training job,
analytics, attach, and deploy + predict of the best model. Only ``AWS_ENDPOINT_URL`` (plus
any credentials) and the session's default bucket are set."""

from __future__ import annotations

import numpy as np
import pytest
from tests.e2e.test_sagemaker_sdk import sdk_session

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "sdk-tuning-bucket"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """A server, a SageMaker SDK session reaching it through AWS_ENDPOINT_URL, and data."""
    with sdk_session(tmp_path_factory.mktemp("sdk-tuning-home"), BUCKET) as prepared:
        yield prepared


@pytest.fixture(scope="module")
def tuner(sdk):
    """A finished tuning job: 4 Random-search jobs (2 at a time) maximising validation:auc
    over eta and max_depth, started without waiting and then waited for."""
    import sagemaker
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

    session, data, _, _ = sdk
    image = sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    estimator = Estimator(image, ROLE, instance_count=1, instance_type="ml.m5.large",
                          sagemaker_session=session,
                          hyperparameters={"objective": "binary:logistic", "num_round": 6,
                                           "eval_metric": "auc"})
    tuner = HyperparameterTuner(
        estimator, "validation:auc",
        {"eta": ContinuousParameter(0.1, 0.5), "max_depth": IntegerParameter(2, 5)},
        objective_type="Maximize", max_jobs=4, max_parallel_jobs=2, strategy="Random",
        base_tuning_job_name="sdk-xgb")
    channel = TrainingInput(data, content_type="text/csv")
    tuner.fit({"train": channel, "validation": channel}, wait=False)
    tuner.wait()
    return tuner


@pytest.mark.timeout(180)
def test_fit_wait_best_training_job_and_analytics(tuner):
    job = tuner.describe()
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["HyperParameterTuningJobName"].startswith("sdk-xgb-")
    assert job["TrainingJobStatusCounters"]["Completed"] == 4
    static = job["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["objective"] == "binary:logistic" and "eta" not in static

    best = tuner.best_training_job()
    assert best == job["BestTrainingJob"]["TrainingJobName"]

    frame = tuner.analytics().dataframe()
    assert len(frame) == 4 and set(frame["TrainingJobStatus"]) == {"Completed"}
    assert {"eta", "max_depth", "TrainingJobName", "FinalObjectiveValue",
            "TrainingElapsedTimeSeconds"} <= set(frame.columns)
    assert frame["eta"].between(0.1, 0.5).all()
    objectives = frame.set_index("TrainingJobName")["FinalObjectiveValue"]
    assert objectives[best] == objectives.max()  # Maximize (several may tie at the top)


# The SDK's Estimator.attach (which tuner.deploy uses for the best job) reads
# DescribeTrainingJob's OutputDataConfig["KmsKeyId"], which SageMaker always returns.
@pytest.mark.timeout(240)
def test_deploy_and_predict_with_the_best_model(sdk, tuner):
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer

    session, _, features, labels = sdk
    predictor = tuner.deploy(initial_instance_count=1, instance_type="ml.m5.large",
                             serializer=CSVSerializer(), deserializer=CSVDeserializer(),
                             wait=False)
    try:
        session.wait_for_endpoint(predictor.endpoint_name, poll=1)  # the SDK's waits 30 s
        assert predictor.endpoint_name == tuner.best_training_job()
        rows = predictor.predict(features[:20])
        scores = np.array([float(row[0]) for row in rows])
        assert scores.shape == (20,)
        assert ((scores > 0.5) == (labels[:20] > 0.5)).mean() >= 0.8
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


@pytest.mark.timeout(180)
def test_attach_rebuilds_the_tuner(sdk, tuner):
    """``HyperparameterTuner.attach`` deletes ``_tuning_objective_metric`` from the job's
    ``StaticHyperParameters`` and reads the definition's ``ResourceConfig`` and
    ``AlgorithmSpecification.MetricDefinitions``, all of which SageMaker returns."""
    from sagemaker.tuner import HyperparameterTuner

    session, *_ = sdk
    attached = HyperparameterTuner.attach(tuner.latest_tuning_job.name,
                                          sagemaker_session=session)
    assert attached.best_training_job() == tuner.best_training_job()
    assert attached.objective_metric_name == "validation:auc"
    assert attached.estimator.hyperparameters()["objective"] == "binary:logistic"
