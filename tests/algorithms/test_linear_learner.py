"""Built-in Linear Learner: quality against scikit-learn on its bundled breast cancer and
diabetes data (real training jobs), multiclass, sparse RecordIO in Pipe mode, two hosts,
the vectorised models, losses, threshold calibration, and the response formats."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import find_algorithm, linear_learner
from openmaker.algorithms._cluster import HostGroup
from openmaker.core.errors import ValidationException
from openmaker.formats import read_records, write_csv, write_sparse_records


def csv_bytes(features: np.ndarray, labels: np.ndarray | None) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, features, labels)
    return buffer.getvalue()


def metric(output: str, name: str) -> float:
    definition = next(m for m in linear_learner.METRICS if m.name == name)
    values = [float(match.group(1)) for line in output.splitlines()
              if (match := re.search(definition.regex, line))]
    assert values, output
    return values[-1]


def split(features: np.ndarray, labels: np.ndarray, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(features.astype(np.float32), labels.astype(np.float32),
                            test_size=0.3, random_state=seed)


def test_binary_accuracy_within_a_point_of_logistic_regression(jobs: JobRunner) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x, train_y, test_y = split(*load_breast_cancer(return_X_y=True))
    reference = make_pipeline(StandardScaler(), LogisticRegression()).fit(train_x, train_y)
    expected = reference.score(test_x, test_y)
    fit_x, val_x, fit_y, val_y = split(train_x, train_y, seed=1)
    channels = {"train": Channel({"part-0": csv_bytes(fit_x, fit_y)}, "text/csv"),
                "validation": Channel({"part-0": csv_bytes(val_x, val_y)}, "text/csv"),
                "test": Channel({"part-0": csv_bytes(test_x, test_y)}, "text/csv")}
    result = jobs.run("linear-learner", channels, {
        "predictor_type": "binary_classifier", "feature_dim": "30", "mini_batch_size": "32",
        "epochs": "20", "num_models": "8"}).check()
    accuracy = metric(result.output, "test:binary_classification_accuracy")
    assert accuracy >= expected - 0.01, (accuracy, expected)
    for name in ("test:binary_f_beta", "test:precision", "test:recall", "test:roc_auc_score",
                 "test:objective_loss", "validation:objective_loss", "train:objective_loss",
                 "validation:binary_classification_accuracy", "train:progress"):
        metric(result.output, name)
    predictor = find_algorithm("linear-learner").load(result.model_dir)
    body, kind = predictor.predict(csv_bytes(test_x, None), "text/csv", "application/json")
    predictions = json.loads(body)["predictions"]
    assert kind == "application/json" and set(predictions[0]) == {"score", "predicted_label"}
    assert isinstance(predictions[0]["predicted_label"], int)
    ours = np.mean([p["predicted_label"] for p in predictions] == test_y)
    assert ours == pytest.approx(accuracy, abs=1e-6)


def test_regression_rmse_within_two_percent_of_ridge(jobs: JobRunner) -> None:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    train_x, test_x, train_y, test_y = split(*load_diabetes(return_X_y=True))
    reference = Ridge().fit(train_x, train_y)
    expected = float(np.sqrt(np.mean((reference.predict(test_x) - test_y) ** 2)))
    channels = {"train": Channel({"part-0": csv_bytes(train_x, train_y)}, "text/csv"),
                "test": Channel({"part-0": csv_bytes(test_x, test_y)}, "text/csv")}
    result = jobs.run("linear-learner", channels, {
        "predictor_type": "regressor", "feature_dim": "10", "mini_batch_size": "32",
        "epochs": "30"}).check()
    rmse = float(np.sqrt(metric(result.output, "test:mse")))
    assert rmse <= expected * 1.02, (rmse, expected)
    metric(result.output, "test:absolute_loss")
    predictor = find_algorithm("linear-learner").load(result.model_dir)
    body, _ = predictor.predict(csv_bytes(test_x[:3], None), "text/csv", "application/json")
    assert [set(p) for p in json.loads(body)["predictions"]] == [{"score"}] * 3


def test_multiclass_from_sparse_recordio_in_pipe_mode(jobs: JobRunner) -> None:
    import scipy.sparse
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    features, labels = features[order].astype(np.float32), labels[order].astype(np.float32)
    buffer = io.BytesIO()
    write_sparse_records(buffer, scipy.sparse.csr_matrix(features[:120]), labels[:120])
    test = io.BytesIO()
    write_sparse_records(test, scipy.sparse.csr_matrix(features[120:]), labels[120:])
    channels = {"train": Channel({"part-0": buffer.getvalue()},
                                 "application/x-recordio-protobuf"),
                "test": Channel({"part-0": test.getvalue()}, "application/x-recordio-protobuf")}
    result = jobs.run("linear-learner", channels, {
        "predictor_type": "multiclass_classifier", "num_classes": "3", "feature_dim": "4",
        "mini_batch_size": "16", "epochs": "20"}, input_mode="Pipe").check()
    assert metric(result.output, "test:multiclass_accuracy") >= 0.9
    for name in ("test:multiclass_top_k_accuracy", "test:macro_f_beta", "test:dcg"):
        metric(result.output, name)
    predictor = find_algorithm("linear-learner").load(result.model_dir)
    body, _ = predictor.predict(csv_bytes(features[:2], None), "text/csv",
                                "application/jsonlines")
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert len(rows[0]["score"]) == 3 and sum(rows[0]["score"]) == pytest.approx(1, abs=1e-5)
    body, _ = predictor.predict(csv_bytes(features[:2], None), "text/csv",
                                "application/x-recordio-protobuf")
    record = read_records(body)[0]
    assert record.label["predicted_label"].values.tolist() == [float(rows[0]["predicted_label"])]


def test_two_hosts_average_their_shards(jobs: JobRunner) -> None:
    from sklearn.datasets import load_breast_cancer

    train_x, test_x, train_y, test_y = split(*load_breast_cancer(return_X_y=True))
    half = len(train_y) // 2
    channels = {"train": Channel({"part-0": csv_bytes(train_x[:half], train_y[:half]),
                                  "part-1": csv_bytes(train_x[half:], train_y[half:])},
                                 "text/csv", distribution="ShardedByS3Key"),
                "test": Channel({"part-0": csv_bytes(test_x, test_y)}, "text/csv",
                                distribution="ShardedByS3Key")}
    result = jobs.run("linear-learner", channels, {
        "predictor_type": "binary_classifier", "feature_dim": "30", "mini_batch_size": "32",
        "epochs": "10", "num_models": "4"}, instance_count=2).check()
    assert metric(result.output, "test:binary_classification_accuracy") >= 0.94
    assert (result.layouts[0].model_dir / "model_algo-1").is_file()


def test_models_are_one_batched_tensor_with_varied_settings() -> None:
    values = linear_learner.defaults({"predictor_type": "binary_classifier"})
    trainer = linear_learner.Trainer(values, 7, 32, HostGroup.alone())
    assert tuple(trainer.weight.shape) == (32, 7, 1)
    assert len(set(trainer.settings["lr"])) > 1 and len(set(trainer.settings["wd"])) > 1
    fixed = linear_learner.model_settings({**values, "learning_rate": 0.2, "wd": 0.01}, 4)
    assert set(fixed["lr"]) == {0.2} and set(fixed["wd"]) == {0.01}


@pytest.mark.parametrize("loss", linear_learner.REGRESSION_LOSSES)
def test_each_regression_loss_has_the_gradient_of_its_value(loss: str) -> None:
    import torch

    objective = linear_learner.Objective(loss, quantile=0.3, insensitivity=0.1)
    out = torch.tensor([[[0.5], [-1.2], [2.0]]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 0.3, -1.0], dtype=torch.float64)
    value, grad = objective(out, y)
    value.sum().backward()
    torch.testing.assert_close(grad, out.grad)


@pytest.mark.parametrize(("loss", "outputs"), [("logistic", 1), ("hinge_loss", 1),
                                               ("softmax_loss", 3), ("hinge_loss", 3)])
def test_classification_losses_have_the_gradient_of_their_value(loss: str, outputs: int
                                                                ) -> None:
    import torch

    objective = linear_learner.Objective(loss)
    out = torch.tensor(np.random.default_rng(1).normal(size=(2, 4, outputs)),
                       requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0] if outputs == 1 else [0.0, 2.0, 1.0, 2.0],
                     dtype=torch.float64)
    value, grad = objective(out, y)
    value.sum().backward()
    torch.testing.assert_close(grad, out.grad)


def test_threshold_is_calibrated_for_each_criterion() -> None:
    scores = np.array([[0.1, 0.2, 0.35, 0.4, 0.8, 0.9]])
    labels = np.array([0, 0, 1, 0, 1, 1], dtype=float)
    values = {"f_beta": 1.0, "target_recall": 1.0, "target_precision": 1.0}
    best, threshold = linear_learner.calibrate(scores, labels, "accuracy", values)
    assert best[0] == pytest.approx(5 / 6) and 0.2 < threshold[0] < 0.35 or \
        0.4 < threshold[0] < 0.8
    best, threshold = linear_learner.calibrate(scores, labels, "precision_at_target_recall",
                                               values)
    assert best[0] == pytest.approx(3 / 4) and 0.2 < threshold[0] < 0.35
    best, threshold = linear_learner.calibrate(scores, labels, "recall_at_target_precision",
                                               values)
    assert best[0] == pytest.approx(2 / 3) and 0.4 < threshold[0] < 0.8


@pytest.mark.parametrize(("change", "name"), [
    ({"predictor_type": "multiclass_classifier"}, "num_classes"),
    ({"loss": "softmax_loss"}, "loss"),
    ({"num_classes": "5"}, "num_classes"),
    ({"positive_example_weight_mult": "0"}, "positive_example_weight_mult"),
    ({"learning_rate": "-1"}, "learning_rate"),
    ({"normalize_data": "sometimes"}, "normalize_data"),
    ({"target_recall": "1.5"}, "target_recall"),
])
def test_dependent_and_auto_hyperparameters_are_checked_by_name(change, name) -> None:
    algorithm = find_algorithm("linear-learner")
    with pytest.raises(ValidationException, match=rf"HyperParameters\.{name}\b"):
        algorithm.validate_hyperparameters({"predictor_type": "binary_classifier", **change})
    algorithm.validate_hyperparameters({"predictor_type": "binary_classifier",
                                        "positive_example_weight_mult": "balanced",
                                        "learning_rate": "auto", "normalize_label": "False"})


def test_validation_channel_must_be_fully_replicated() -> None:
    algorithm = find_algorithm("linear-learner")
    with pytest.raises(ValidationException, match="FullyReplicated"):
        algorithm.validate_channels([
            {"ChannelName": "train", "ContentType": "text/csv"},
            {"ChannelName": "validation", "ContentType": "text/csv", "DataSource": {
                "S3DataSource": {"S3DataDistributionType": "ShardedByS3Key"}}}])


def test_csv_response_has_the_label_then_the_score() -> None:
    model = linear_learner.LinearModel("binary_classifier", "logistic",
                                       np.array([[1.0], [-1.0]], np.float32),
                                       np.zeros(1, np.float32), threshold=0.5)
    predictor = linear_learner.LinearLearnerPredictor(model, environ={})
    body, kind = predictor.predict(b"2,0\n0,2\n", "text/csv", "text/csv")
    lines = [line.split(",") for line in body.decode().splitlines()]
    assert kind == "text/csv" and [line[0] for line in lines] == ["1", "0"]
    assert float(lines[0][1]) == pytest.approx(1 / (1 + np.exp(-2)), rel=1e-6)
    loaded = linear_learner.LinearModel.from_bytes(model.files()["model_algo-1"])
    assert np.array_equal(loaded.weight, model.weight) and loaded.threshold == 0.5


def test_balanced_positive_weight_raises_recall_on_rare_positives(capsys) -> None:
    from sklearn.datasets import make_classification

    features, labels = make_classification(3000, 8, weights=[0.95], flip_y=0.05,
                                           random_state=3)
    hyperparameters = {"predictor_type": "binary_classifier", "num_models": "1",
                       "mini_batch_size": "100", "epochs": "5",
                       "binary_classifier_model_selection_criteria": "loss_function"}
    plain = linear_learner.fit_arrays(features, labels, hyperparameters)
    balanced = linear_learner.fit_arrays(features, labels, {
        **hyperparameters, "positive_example_weight_mult": "balanced"})

    def recall(model: linear_learner.LinearModel) -> float:
        predicted = model.labels(model.scores(features.astype(np.float32)))
        return float(np.mean(predicted[labels == 1]))

    assert recall(balanced) > recall(plain) + 0.1
    capsys.readouterr()


def test_tuning_trains_one_model_and_repeats_itself(capsys) -> None:
    from sklearn.datasets import load_diabetes

    features, labels = load_diabetes(return_X_y=True)
    hyperparameters = {"predictor_type": "regressor", "mini_batch_size": "50",
                       "_tuning_objective_metric": "test:mse"}
    first = linear_learner.fit_arrays(features, labels, hyperparameters)
    assert "selected model 0 of 1 " in capsys.readouterr().out
    second = linear_learner.fit_arrays(features, labels, hyperparameters)
    assert first.files() == second.files()


def test_a_bad_label_fails_the_job_with_a_client_error(jobs: JobRunner) -> None:
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([0, 1, 0, 2, 1, 0], dtype=np.float32)
    result = jobs.run("linear-learner", {"train": Channel({"p": csv_bytes(features, labels)},
                                                          "text/csv")},
                      {"predictor_type": "binary_classifier"})
    assert result.returncode != 0
    assert result.failure().startswith("ClientError: ") and "record 4" in result.failure()


def test_training_job_through_the_server(tmp_path) -> None:
    """CreateTrainingJob with the SDK's linear-learner image: validation and test channels,
    test: metrics in FinalMetricDataList; a bad hyperparameter refused by name."""
    from botocore.exceptions import ClientError
    from sklearn.datasets import load_breast_cancer
    from tests.conftest import start_server
    from tests.training.test_jobs import read_tar, wait

    train_x, test_x, train_y, test_y = split(*load_breast_cancer(return_X_y=True))
    running = start_server(tmp_path / "home")
    try:
        s3 = running.client("s3")
        s3.create_bucket(Bucket="ll-data")
        s3.put_object(Bucket="ll-data", Key="train/train.csv", Body=csv_bytes(train_x, train_y))
        s3.put_object(Bucket="ll-data", Key="test/test.csv", Body=csv_bytes(test_x, test_y))

        def channel(name: str) -> dict:
            return {"ChannelName": name, "ContentType": "text/csv", "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://ll-data/{name}/",
                                 "S3DataDistributionType": "FullyReplicated"}}}

        def create(name: str, hps: dict[str, str]) -> None:
            running.client("sagemaker").create_training_job(
                TrainingJobName=name, RoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
                HyperParameters=hps,
                AlgorithmSpecification={
                    "TrainingImage":
                        "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1",
                    "TrainingInputMode": "File"},
                InputDataConfig=[channel("train"), channel("test")],
                OutputDataConfig={"S3OutputPath": "s3://ll-data/output"},
                ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                "VolumeSizeInGB": 5},
                StoppingCondition={"MaxRuntimeInSeconds": 300})

        hps = {"predictor_type": "binary_classifier", "mini_batch_size": "32",
               "num_models": "4", "epochs": "10"}
        create("ll-cancer", hps)
        job = wait(running, "ll-cancer", timeout=120)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        assert final["test:binary_classification_accuracy"] >= 0.94, final
        assert "test:roc_auc_score" in final and "train:objective_loss" in final
        files = read_tar(running, job["ModelArtifacts"]["S3ModelArtifacts"])
        assert sorted(name.removeprefix("./") for name in files) == [linear_learner.MODEL_FILE]
        with pytest.raises(ClientError, match=r"HyperParameters\.optimizer"):
            create("ll-bad", {**hps, "optimizer": "adagrad"})
    finally:
        running.stop()
