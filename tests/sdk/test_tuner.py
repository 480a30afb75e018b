"""``openmaker.HyperparameterTuner``: the CreateHyperParameterTuningJob request it builds from
an estimator, its argument checks, and, against a real server with the built-in XGBoost
algorithm, fit / best job / analytics / attach / deploy / stop."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tests.conftest import start_server

from openmaker import (
    CategoricalParameter,
    ContinuousParameter,
    Estimator,
    HyperparameterTuner,
    IntegerParameter,
    Session,
    TrainingInput,
    TuningJobFailedError,
    WarmStartConfig,
    WarmStartTypes,
)
from openmaker.sdk.serializers import CSVDeserializer, CSVSerializer
from openmaker.sdk.tuner import ANALYTICS_COLUMNS, tuning_job_name_from_base

XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
DATA_BUCKET = "tuner-data"
RANGES = {"eta": ContinuousParameter(0.1, 0.5), "max_depth": IntegerParameter(2, 5)}


def regression_rows(count: int = 200, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``count`` CSV rows, label first and no header: y = 2 x0 - x1 + noise."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, 3))
    labels = 2 * features[:, 0] - features[:, 1] + rng.normal(scale=0.1, size=count)
    rows = "".join(",".join(f"{v:.5g}" for v in row) + "\n"
                   for row in np.column_stack([labels, features]))
    return rows.encode(), features, labels


def xgboost_estimator(session: Session | None, **settings) -> Estimator:
    settings.setdefault("output_path", f"s3://{DATA_BUCKET}/output/")
    return Estimator(XGBOOST, role=ROLE, session=session,
                     hyperparameters={"objective": "reg:squarederror", "num_round": 8,
                                      "eta": 0.3, "max_depth": 3},
                     **settings)


def channels() -> dict[str, TrainingInput]:
    return {name: TrainingInput(f"s3://{DATA_BUCKET}/{name}/", content_type="text/csv")
            for name in ("train", "validation")}


def rmse_tuner(session: Session | None, **settings) -> HyperparameterTuner:
    settings = {"objective_type": "Minimize", "max_jobs": 4, "max_parallel_jobs": 2,
                "strategy": "Random", "random_seed": 7, **settings}
    return HyperparameterTuner(xgboost_estimator(session), "validation:rmse", RANGES,
                               **settings)


# -- the request, without a server ---------------------------------------------------------
def test_request_carries_the_estimator_as_the_training_job_definition():
    estimator = xgboost_estimator(
        None, instance_type="ml.c5.xlarge", max_run=900, use_spot_instances=True,
        max_wait=1800, checkpoint_s3_uri=f"s3://{DATA_BUCKET}/checkpoints/",
        environment={"MODE": "tuning"}, tags={"team": "ml"})
    tuner = HyperparameterTuner(
        estimator, "validation:rmse",
        {**RANGES, "booster": CategoricalParameter(["gbtree", "dart"])},
        metric_definitions=[{"Name": "validation:rmse", "Regex": "validation-rmse:([0-9.]+)"}],
        objective_type="Minimize", max_jobs=6, max_parallel_jobs=3,
        max_runtime_in_seconds=3600, base_tuning_job_name="xgb-tuning",
        warm_start_config=WarmStartConfig(WarmStartTypes.TRANSFER_LEARNING, {"parent-a"}),
        early_stopping_type="Auto", random_seed=11,
        completion_criteria_config={"target_objective_metric_value": 0.2,
                                    "max_number_training_jobs_not_improving": 3,
                                    "complete_on_convergence": True})
    request = tuner.tuning_job_request(channels())

    assert re.fullmatch(r"xgb-tuning-\d{6}-\d{6}-\d{3}", request["HyperParameterTuningJobName"])
    config = request["HyperParameterTuningJobConfig"]
    assert config == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Minimize",
                                             "MetricName": "validation:rmse"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3,
                           "MaxRuntimeInSeconds": 3600},
        "ParameterRanges": {
            "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2",
                                        "MaxValue": "5", "ScalingType": "Auto"}],
            "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.1",
                                           "MaxValue": "0.5", "ScalingType": "Auto"}],
            "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}],
        },
        "TrainingJobEarlyStoppingType": "Auto",
        "TuningJobCompletionCriteria": {
            "TargetObjectiveMetricValue": 0.2,
            "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3},
            "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}},
        "RandomSeed": 11,
    }
    definition = request["TrainingJobDefinition"]
    assert definition["AlgorithmSpecification"] == {
        "TrainingImage": XGBOOST, "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "validation:rmse",
                               "Regex": "validation-rmse:([0-9.]+)"}]}
    # the tuned hyperparameters are not static; the others are, encoded as Estimator.fit does
    assert definition["StaticHyperParameters"] == {"objective": '"reg:squarederror"',
                                                   "num_round": "8"}
    assert definition["RoleArn"] == ROLE
    assert [c["ChannelName"] for c in definition["InputDataConfig"]] == ["train",
                                                                        "validation"]
    assert definition["InputDataConfig"][0]["ContentType"] == "text/csv"
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{DATA_BUCKET}/output/"}
    assert definition["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 900,
                                               "MaxWaitTimeInSeconds": 1800}
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["CheckpointConfig"] == {"S3Uri": f"s3://{DATA_BUCKET}/checkpoints/"}
    assert definition["Environment"] == {"MODE": "tuning"}
    assert "HyperParameters" not in definition and "TrainingJobName" not in definition
    assert request["WarmStartConfig"] == {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent-a"}]}
    assert request["Tags"] == [{"Key": "team", "Value": "ml"}]  # the estimator's, by default


def test_request_defaults_follow_the_sdk():
    tuner = HyperparameterTuner(xgboost_estimator(None), "validation:auc",
                                {"eta": ContinuousParameter(0.01, 0.3, "Logarithmic")})
    request = tuner.tuning_job_request(job_name="my-tuning")
    config = request["HyperParameterTuningJobConfig"]
    assert request["HyperParameterTuningJobName"] == "my-tuning"
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 1,
                                        "MaxParallelTrainingJobs": 1}
    assert config["TrainingJobEarlyStoppingType"] == "Off"
    assert config["ParameterRanges"]["ContinuousParameterRanges"][0]["ScalingType"] == \
        "Logarithmic"
    assert config["ParameterRanges"]["IntegerParameterRanges"] == []
    assert "InputDataConfig" not in request["TrainingJobDefinition"]
    assert "Tags" not in request and "WarmStartConfig" not in request


def test_hyperband_and_grid_strategies():
    hyperband = rmse_tuner(None, strategy="Hyperband",
                           strategy_config={"min_resource": 1, "max_resource": 8})
    assert hyperband.tuning_job_request(job_name="hb")["HyperParameterTuningJobConfig"][
        "StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 8}}
    grid = HyperparameterTuner(xgboost_estimator(None), "validation:rmse",
                               {"max_depth": CategoricalParameter([2, 3])}, strategy="Grid",
                               objective_type="Minimize")
    config = grid.tuning_job_request(job_name="grid")["HyperParameterTuningJobConfig"]
    assert config["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "max_depth", "Values": ["2", "3"]}]
    assert "MaxNumberOfTrainingJobs" not in config["ResourceLimits"]


def test_script_mode_estimators_get_json_categorical_values_and_their_source(tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    estimator = Estimator(XGBOOST, entry_point=str(tmp_path / "train.py"), role=ROLE,
                          output_path="s3://b/o/", hyperparameters={"optimizer": "adam"})
    estimator._upload_source = lambda job: {"sagemaker_program": '"train.py"'}
    tuner = HyperparameterTuner(estimator, "loss",
                                {"optimizer": CategoricalParameter(["adam", "sgd"])},
                                metric_definitions=[{"Name": "loss", "Regex": "loss=(.*)"}])
    request = tuner.tuning_job_request(job_name="script")
    assert request["HyperParameterTuningJobConfig"]["ParameterRanges"][
        "CategoricalParameterRanges"] == [{"Name": "optimizer", "Values": ['"adam"', '"sgd"']}]
    assert request["TrainingJobDefinition"]["StaticHyperParameters"] == {
        "sagemaker_program": '"train.py"'}


def test_tuning_job_names_fit_in_32_characters():
    name = tuning_job_name_from_base("sagemaker-xgboost-with-a-long-base")
    assert len(name) <= 32 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name)
    assert name.startswith("sagemaker-xgbo")


@pytest.mark.parametrize(("settings", "error", "message"), [
    ({"objective_metric_name": ""}, ValueError, "objective_metric_name"),
    ({"hyperparameter_ranges": {}}, ValueError, "hyperparameter_ranges"),
    ({"hyperparameter_ranges": {"eta": (0.1, 0.5)}}, TypeError, r"hyperparameter_ranges\['eta'\]"),
    ({"strategy": "Genetic"}, ValueError, "strategy must be one of"),
    ({"objective_type": "Max"}, ValueError, "objective_type"),
    ({"max_jobs": 0}, ValueError, "max_jobs"),
    ({"max_parallel_jobs": "2"}, ValueError, "max_parallel_jobs"),
    ({"max_runtime_in_seconds": -1}, ValueError, "max_runtime_in_seconds"),
    ({"early_stopping_type": "On"}, ValueError, "early_stopping_type"),
    ({"random_seed": 1.5}, ValueError, "random_seed"),
    ({"metric_definitions": [{"Name": "x"}]}, ValueError, "metric_definitions"),
    ({"warm_start_config": {"parents": ["a"]}}, TypeError, "warm_start_config"),
    ({"strategy_config": {"MinResource": 1}}, ValueError, "Hyperband only"),
    ({"strategy": "Hyperband", "strategy_config": {"MinResource": 0}}, ValueError,
     "MinResource"),
    ({"strategy": "Grid"}, ValueError, "CategoricalParameter ranges only"),
    ({"completion_criteria_config": {"patience": 3}}, ValueError,
     "completion_criteria_config"),
])
def test_bad_arguments_are_refused_by_name(settings, error, message):
    arguments = {"estimator": xgboost_estimator(None), "objective_metric_name": "validation:rmse",
                 "hyperparameter_ranges": RANGES, **settings}
    with pytest.raises(error, match=message):
        HyperparameterTuner(**arguments)


def test_bad_estimator_and_job_name_are_refused():
    with pytest.raises(TypeError, match="estimator must be an openmaker.Estimator"):
        HyperparameterTuner("xgboost", "validation:rmse", RANGES)
    with pytest.raises(ValueError, match="job_name"):
        rmse_tuner(None).tuning_job_request(job_name="no_underscores_or_more_than_32_chars")
    with pytest.raises(ValueError, match="call fit"):
        rmse_tuner(None).describe()


@pytest.mark.parametrize(("make", "message"), [
    (lambda: IntegerParameter(5, 2), "min_value .* must not exceed max_value"),
    (lambda: IntegerParameter(1.5, 2), "IntegerParameter min_value must be an integer"),
    (lambda: ContinuousParameter("0", 1), "ContinuousParameter min_value must be a number"),
    (lambda: ContinuousParameter(0, 1, "Log"), "scaling_type must be one of"),
    (lambda: ContinuousParameter(0, 1, "Logarithmic"), "min_value > 0"),
    (lambda: ContinuousParameter(0.5, 1, "ReverseLogarithmic"), "max_value < 1"),
    (lambda: CategoricalParameter([]), "non-empty"),
    (lambda: WarmStartConfig("Identical", ["a"]), "warm_start_type"),
    (lambda: WarmStartConfig("TransferLearning", []), "parents"),
    (lambda: WarmStartConfig("TransferLearning", [f"p{i}" for i in range(6)]), "at most 5"),
])
def test_bad_parameter_ranges_say_what_is_wrong(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_parameter_ranges_round_trip_through_their_wire_form():
    for parameter in (IntegerParameter(1, 9, "Linear"), ContinuousParameter(0.01, 1.0),
                      CategoricalParameter(["a", 2])):
        entry = parameter.as_tuning_range("p")
        assert type(parameter).from_tuning_range(entry) == parameter
    assert CategoricalParameter("only").values == ["only"]
    assert WarmStartConfig("IdenticalDataAndAlgorithm", "a").parents == ["a"]


# -- against a server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tuner_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("tuner-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    train, _, _ = regression_rows(seed=0)
    validation, _, _ = regression_rows(seed=1)
    s3.put_object(Bucket=DATA_BUCKET, Key="train/data.csv", Body=train)
    s3.put_object(Bucket=DATA_BUCKET, Key="validation/data.csv", Body=validation)
    yield running
    running.stop()


@pytest.fixture
def session(tuner_server, tmp_path) -> Session:
    return Session(tuner_server.url, home=tmp_path / "client-home")


@pytest.fixture(scope="module")
def finished(tuner_server, tmp_path_factory) -> HyperparameterTuner:
    """One completed Random-search tuning job of 4 xgboost jobs, 2 at a time."""
    session = Session(tuner_server.url, home=tmp_path_factory.mktemp("client-home"))
    tuner = rmse_tuner(session, tags={"project": "tuning"})
    tuner.fit(channels())
    return tuner


@pytest.mark.timeout(180)
def test_fit_waits_for_every_training_job_and_names_the_best(finished):
    job = finished.describe()
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"]["Completed"] == 4
    best = job["BestTrainingJob"]
    assert finished.best_training_job() == best["TrainingJobName"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["MetricName"] == \
        "validation:rmse"
    tuned = best["TunedHyperParameters"]
    assert set(tuned) == {"eta", "max_depth"}
    assert 0.1 <= float(tuned["eta"]) <= 0.5 and 2 <= int(tuned["max_depth"]) <= 5


@pytest.mark.timeout(180)
def test_analytics_has_one_row_per_training_job(finished):
    frame = finished.analytics().dataframe()
    tuned = list(frame.columns[:-len(ANALYTICS_COLUMNS)])
    assert sorted(tuned) == ["eta", "max_depth"]
    assert list(frame.columns[-len(ANALYTICS_COLUMNS):]) == ANALYTICS_COLUMNS
    assert len(frame) == 4 and frame["TrainingJobName"].is_unique
    assert set(frame["TrainingJobStatus"]) == {"Completed"}
    assert frame["eta"].between(0.1, 0.5).all() and frame["max_depth"].between(2, 5).all()
    assert (frame["TrainingElapsedTimeSeconds"] >= 0).all()
    objectives = frame.set_index("TrainingJobName")["FinalObjectiveValue"]
    assert objectives[finished.best_training_job()] == objectives.min()  # Minimize


@pytest.mark.timeout(180)
def test_best_estimator_and_attach(finished, session):
    best = finished.best_estimator()
    assert best.latest_training_job == finished.best_training_job()
    tuned = finished.describe()["BestTrainingJob"]["TunedHyperParameters"]
    hyperparameters = best.describe()["HyperParameters"]
    assert float(hyperparameters["eta"]) == pytest.approx(float(tuned["eta"]))
    assert int(hyperparameters["max_depth"]) == int(tuned["max_depth"])
    assert best.model_data.startswith(f"s3://{DATA_BUCKET}/output/")

    attached = HyperparameterTuner.attach(finished.latest_tuning_job, session=session)
    assert attached.latest_tuning_job == finished.latest_tuning_job
    assert attached.objective_metric_name == "validation:rmse"
    assert attached.objective_type == "Minimize" and attached.strategy == "Random"
    assert attached.max_jobs == 4 and attached.max_parallel_jobs == 2
    assert attached._hyperparameter_ranges == RANGES
    assert attached.estimator.image_uri == XGBOOST
    assert attached.estimator.hyperparameters() == {"objective": '"reg:squarederror"',
                                                    "num_round": "8"}
    assert attached.tags == [{"Key": "project", "Value": "tuning"}]
    assert attached.best_training_job() == finished.best_training_job()


@pytest.mark.timeout(240)
def test_deploy_serves_the_best_model(finished):
    _, features, labels = regression_rows(seed=0)
    predictor = finished.deploy(1, "ml.m5.large", serializer=CSVSerializer(),
                                deserializer=CSVDeserializer())
    try:
        assert predictor.endpoint_name == finished.best_training_job()
        rows = predictor.predict(features[:20])
        predictions = np.array([float(row[0]) for row in rows])
        assert predictions.shape == (20,)
        assert np.sqrt(np.mean((predictions - labels[:20]) ** 2)) < 1.0
    finally:
        predictor.delete_model()  # reads the endpoint's config, so before deleting it
        predictor.delete_endpoint()


@pytest.mark.timeout(180)
def test_stop_ends_the_tuning_job_stopped(session):
    tuner = rmse_tuner(session, max_jobs=20, max_parallel_jobs=1)
    tuner.fit(channels(), wait=False)
    tuner.stop()
    job = tuner.wait(poll_seconds=0.2)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    counters = job["TrainingJobStatusCounters"]
    assert counters["InProgress"] == 0
    assert sum(counters.values()) < 20


@pytest.mark.timeout(180)
def test_warm_start_from_a_finished_parent(finished, session):
    child = rmse_tuner(session, max_jobs=2, warm_start_config=WarmStartConfig(
        "IdenticalDataAndAlgorithm", [finished.latest_tuning_job]))
    child.fit(channels())
    job = child.describe()
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": finished.latest_tuning_job}]


@pytest.mark.timeout(180)
def test_wait_raises_when_no_training_job_reports_the_objective(session):
    tuner = rmse_tuner(session, max_jobs=2)
    with pytest.raises(TuningJobFailedError) as raised:
        tuner.fit({"train": channels()["train"]})  # no validation channel: no validation:rmse
    assert raised.value.job_name == tuner.latest_tuning_job
    assert raised.value.failure_reason == tuner.describe()["FailureReason"]
    with pytest.raises(ValueError, match="no best training job yet"):
        tuner.best_training_job()
