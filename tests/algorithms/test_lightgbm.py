"""LightGBM (JumpStart ``lightgbm-*-model``): real training jobs through the algorithm
runner; accuracy against lightgbm run directly, early stopping, categorical_index.json,
the JSON response formats, and the channel and hyperparameter rules."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import find_algorithm
from openmaker.core.errors import ValidationException
from openmaker.formats import write_csv


def csv_bytes(features: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, features, labels)
    return buffer.getvalue()


def breast_cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True)
    train_x, test_x, train_y, test_y = train_test_split(
        np.round(features, 5), labels.astype(float), test_size=0.3, random_state=0,
        stratify=labels)
    return train_x, train_y, test_x, test_y


def run(jobs: JobRunner, hyperparameters: dict[str, str], train: dict[str, bytes],
        validation: dict[str, bytes] | None = None, channel: str = "train"):
    channels = {channel: Channel(train, "text/csv")}
    if validation is not None:
        channels["validation"] = Channel(validation, "text/csv")
    return jobs.run("lightgbm", channels, hyperparameters)


def predict_json(model_dir, features: np.ndarray) -> dict:
    predictor = find_algorithm("lightgbm").load(model_dir)
    body, content_type = predictor.predict(csv_bytes(features), "text/csv", "application/json")
    assert content_type == "application/json"
    return json.loads(body)


BASE = {"num_boost_round": "40", "learning_rate": "0.1", "num_leaves": "15",
        "min_data_in_leaf": "5", "num_threads": "1", "early_stopping_rounds": "0"}


def test_breast_cancer_accuracy_matches_lightgbm_run_directly(jobs: JobRunner) -> None:
    import lightgbm

    train_x, train_y, test_x, test_y = breast_cancer()
    result = run(jobs, {**BASE, "metric": "binary_logloss"},
                 {"part-0": csv_bytes(train_x, train_y)},
                 {"part-0": csv_bytes(test_x, test_y)}).check()
    probabilities = np.asarray(predict_json(result.model_dir, test_x)["probabilities"])
    assert probabilities.shape == (len(test_x), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    ours = float(np.mean(probabilities.argmax(axis=1) == test_y))

    direct = lightgbm.train(
        {"objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 5,
         "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "max_depth": 6,
         "num_threads": 1, "verbosity": -1},
        lightgbm.Dataset(train_x, train_y), num_boost_round=40)
    theirs = float(np.mean((direct.predict(test_x) > 0.5) == test_y))
    assert ours >= 0.93
    assert abs(ours - theirs) <= 0.02, (ours, theirs)


def test_early_stopping_on_the_validation_channel(jobs: JobRunner) -> None:
    train_x, train_y, test_x, test_y = breast_cancer()
    result = run(jobs, {**BASE, "num_boost_round": "500", "learning_rate": "0.5",
                        "early_stopping_rounds": "3", "metric": "binary_logloss"},
                 {"part-0": csv_bytes(train_x, train_y)},
                 {"part-0": csv_bytes(test_x, test_y)}).check()
    assert "Early stopping: best iteration" in result.output
    rounds = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)\]", result.output, re.M)]
    assert 3 < max(rounds) < 500
    booster = find_algorithm("lightgbm").load(result.model_dir).booster
    assert booster.best_iteration == max(rounds) - 3
    # the printed metrics carry SageMaker's names, validation first on each line
    algorithm = find_algorithm("lightgbm")
    definitions = {d["Name"]: re.compile(d["Regex"]) for d in algorithm.metric_definitions}
    last = [line for line in result.output.splitlines() if line.startswith("[")][-1]
    bare = float(definitions["binary_logloss"].search(last).group(1))
    assert bare == float(definitions["validation:binary_logloss"].search(last).group(1))
    assert float(definitions["train:binary_logloss"].search(last).group(1)) < bare


def categorical_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label 1 for codes 2, 5 and 7 of a 10-code column: a split on the code set, which a
    numeric threshold can only approximate."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 10, rows)
    noise = rng.normal(size=(rows, 2))
    labels = np.isin(codes, [2, 5, 7]).astype(float)
    return np.column_stack([noise[:, 0], codes, noise[:, 1]]), labels


def test_categorical_index_json_marks_categorical_features(jobs: JobRunner) -> None:
    train_x, train_y = categorical_data(1000, 1)
    test_x, test_y = categorical_data(300, 2)
    # one stump: a split on a set of codes separates the classes, a threshold cannot
    hyperparameters = {**BASE, "num_boost_round": "1", "num_leaves": "2", "max_depth": "1",
                       "learning_rate": "0.9", "feature_fraction": "1", "bagging_fraction": "1"}
    objects = {"data.csv": csv_bytes(train_x, train_y)}
    index = {"categorical_index.json": json.dumps({"cat_index_list": [2]}).encode()}
    with_index = run(jobs, hyperparameters, {**objects, **index},
                     {"part-0": csv_bytes(test_x, test_y)}).check()
    without = run(jobs, hyperparameters, objects, {"part-0": csv_bytes(test_x, test_y)}).check()
    assert "Categorical features: feature_1" in with_index.output
    booster = find_algorithm("lightgbm").load(with_index.model_dir).booster
    dump = json.dumps(booster.dump_model())
    assert '"decision_type": "=="' in dump
    assert '"decision_type": "=="' not in json.dumps(
        find_algorithm("lightgbm").load(without.model_dir).booster.dump_model())

    def accuracy(model_dir) -> float:
        probabilities = np.asarray(predict_json(model_dir, test_x)["probabilities"])
        return float(np.mean(probabilities.argmax(axis=1) == test_y))

    assert accuracy(with_index.model_dir) == 1.0
    assert accuracy(without.model_dir) < 0.9


@pytest.mark.parametrize("document, message", [
    ({"cat_index_list": [0]}, "out of range"),
    ({"cat_index_list": [9]}, "out of range"),
    ({"categories": [1]}, "cat_index_list"),
])
def test_a_bad_categorical_index_fails_with_a_client_error(jobs: JobRunner, document,
                                                           message: str) -> None:
    train_x, train_y = categorical_data(60, 1)
    result = run(jobs, BASE, {"data.csv": csv_bytes(train_x, train_y),
                              "categorical_index.json": json.dumps(document).encode()})
    assert result.returncode != 0
    assert result.failure().startswith("ClientError: ") and message in result.failure()


def test_regression_without_validation_holds_out_rows_and_answers_prediction(
        jobs: JobRunner) -> None:
    from sklearn.datasets import make_regression

    features, target = make_regression(n_samples=300, n_features=5, noise=5, random_state=0)
    result = run(jobs, {**BASE, "early_stopping_rounds": "5"},
                 {"part-0": csv_bytes(features[:250], target[:250])},
                 channel="training").check()
    assert "holding out 20 %" in result.output
    assert re.search(r"validation's rmse: [0-9.]+", result.output)
    answer = predict_json(result.model_dir, features[250:])
    assert set(answer) == {"prediction"}
    predictions = np.asarray(answer["prediction"])
    assert predictions.shape == (50,)
    assert np.corrcoef(predictions, target[250:])[0, 1] > 0.9


def test_multiclass_probabilities_have_a_column_per_class(jobs: JobRunner) -> None:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    result = run(jobs, {**BASE, "num_boost_round": "10"},
                 {"part-0": csv_bytes(features[::2], labels[::2].astype(float))},
                 {"part-0": csv_bytes(features[1::2], labels[1::2].astype(float))}).check()
    probabilities = np.asarray(predict_json(result.model_dir, features[1::2])["probabilities"])
    assert probabilities.shape == (75, 3)
    assert np.mean(probabilities.argmax(axis=1) == labels[1::2]) > 0.9
    assert re.search(r"validation's multi_logloss: [0-9.]+", result.output)


@pytest.mark.parametrize("hyperparameters, name", [
    ({"num_boost_round": "0"}, "num_boost_round"),
    ({"feature_fraction": "1.5"}, "feature_fraction"),
    ({"bagging_freq": "-1"}, "bagging_freq"),
    ({"tree_learner": "gpu"}, "tree_learner"),
    ({"tweedie_variance_power": "2"}, "tweedie_variance_power"),
    ({"max_bin": "1"}, "max_bin"),
    ({"is_unbalance": "maybe"}, "is_unbalance"),
    ({"is_unbalance": "True", "scale_pos_weight": "2"}, "scale_pos_weight"),
    ({"objective": "regression", "metric": "auc"}, "metric"),
])
def test_hyperparameters_refused_by_name(hyperparameters: dict[str, str], name: str) -> None:
    with pytest.raises(ValidationException, match=rf"HyperParameters\.{name}\b"):
        find_algorithm("lightgbm").validate_hyperparameters(hyperparameters)


def test_sagemaker_defaults_and_string_spellings_are_accepted() -> None:
    values = find_algorithm("lightgbm").validate_hyperparameters(
        {"num_boost_round": "100", "early_stopping_rounds": "10", "metric": "auto",
         "is_unbalance": "False", "max_depth": "-1", "bagging_fraction": "1.0",
         "verbosity": "1"})
    assert values["is_unbalance"] is False and values["max_depth"] == -1


def test_channels_train_or_training_and_file_mode() -> None:
    algorithm = find_algorithm("lightgbm")
    algorithm.validate_channels([{"ChannelName": "training", "ContentType": "text/csv"},
                                 {"ChannelName": "validation"},
                                 {"ChannelName": "model",
                                  "ContentType": "application/x-sagemaker-model"}])
    with pytest.raises(ValidationException, match="'train'"):
        algorithm.validate_channels([{"ChannelName": "validation"}])
    with pytest.raises(ValidationException, match="not both"):
        algorithm.validate_channels([{"ChannelName": "train"}, {"ChannelName": "training"}])
    with pytest.raises(ValidationException, match="ContentType"):
        algorithm.validate_channels([{"ChannelName": "train", "ContentType": "text/libsvm"}])
    with pytest.raises(ValidationException, match="Pipe"):
        algorithm.validate_channels([{"ChannelName": "train"}], "Pipe")


def test_found_by_jumpstart_model_id() -> None:
    assert find_algorithm("lightgbm-regression-model") is find_algorithm("lightgbm")
    assert find_algorithm("lightgbm").objective_metrics()["auc"] == "Maximize"
    assert find_algorithm("lightgbm").objective_metrics()["rmse"] == "Minimize"


# -- several hosts -----------------------------------------------------------------------------
def _accuracy(model_dir, features: np.ndarray, labels: np.ndarray) -> float:
    probabilities = np.asarray(predict_json(model_dir, features)["probabilities"])
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def _rounds(output: str) -> list[int]:
    return [int(found) for found in re.findall(r"^\[(\d+)\]", output, re.MULTILINE)]


def _rows(output: str) -> tuple[int, int]:
    """(training rows, validation rows) a host reported."""
    found = re.search(r"(\d+) training rows, (\d+) validation rows", output)
    assert found, output
    return int(found[1]), int(found[2])


def test_two_hosts_with_sharded_data_train_one_model(jobs: JobRunner) -> None:
    from openmaker.algorithms.lightgbm import MODEL_FILE

    train_x, train_y, test_x, test_y = breast_cancer()
    half = len(train_y) // 2
    hyperparameters = {**BASE, "metric": "binary_logloss"}
    validation = {"part-0": csv_bytes(test_x, test_y)}
    result = jobs.run("lightgbm", {
        "train": Channel({"part-0": csv_bytes(train_x[:half], train_y[:half]),
                          "part-1": csv_bytes(train_x[half:], train_y[half:])}, "text/csv",
                         distribution="ShardedByS3Key"),
        "validation": Channel(validation, "text/csv"),
    }, hyperparameters, instance_count=2).check()
    assert (result.layouts[0].model_dir / MODEL_FILE).is_file()
    assert not (result.layouts[1].model_dir / MODEL_FILE).exists()
    # the first host reports for the job
    assert "validation's binary_logloss" in result.outputs[0]
    assert "validation's binary_logloss" not in result.outputs[1]
    assert _rounds(result.outputs[0]) == list(range(1, 41))
    # each host trains on its own shard, and evaluates the whole (replicated) validation set
    rows = [_rows(output) for output in result.outputs]
    assert sorted(rows) == [(half, len(test_y)), (len(train_y) - half, len(test_y))]
    booster = find_algorithm("lightgbm").load(result.model_dir).booster
    assert "machines" not in booster.params and booster.num_trees() == 40

    single = run(jobs, hyperparameters, {"part-0": csv_bytes(train_x, train_y)},
                 validation).check()
    ours = _accuracy(result.model_dir, test_x, test_y)
    theirs = _accuracy(single.model_dir, test_x, test_y)
    assert ours >= 0.93
    assert abs(ours - theirs) <= 0.02, (ours, theirs)


def test_two_hosts_stop_early_at_the_same_round(jobs: JobRunner) -> None:
    # no validation channel: each host holds out part of its shard, and the first host
    # gathers the held-out rows so that both evaluate (and stop on) the same rows
    train_x, train_y, _, _ = breast_cancer()
    result = jobs.run("lightgbm", {
        "train": Channel({"part-0": csv_bytes(train_x[::2], train_y[::2]),
                          "part-1": csv_bytes(train_x[1::2], train_y[1::2])}, "text/csv",
                         distribution="ShardedByS3Key"),
    }, {**BASE, "num_boost_round": "500", "learning_rate": "0.5",
        "early_stopping_rounds": "3"}, instance_count=2).check()
    rounds = _rounds(result.outputs[0])
    assert 3 < len(rounds) < 500
    assert "Early stopping: best iteration" in result.outputs[0]
    booster = find_algorithm("lightgbm").load(result.model_dir).booster
    assert booster.best_iteration == rounds[-1] - 3
    # the held-out rows of both shards, on both hosts
    held = [_rows(output)[1] for output in result.outputs]
    assert held[0] == held[1] == 80


def test_two_hosts_with_fully_replicated_data_split_the_rows(jobs: JobRunner) -> None:
    train_x, train_y, test_x, test_y = breast_cancer()
    result = jobs.run("lightgbm", {
        "train": Channel({"part-0": csv_bytes(train_x, train_y)}, "text/csv"),
        "validation": Channel({"part-0": csv_bytes(test_x, test_y)}, "text/csv"),
    }, {**BASE, "tree_learner": "voting"}, instance_count=2).check()
    rows = [_rows(output) for output in result.outputs]
    assert sum(train for train, _ in rows) == len(train_y)
    assert _accuracy(result.model_dir, test_x, test_y) >= 0.93


def test_a_failing_host_fails_every_host(jobs: JobRunner) -> None:
    train_x, train_y, _, _ = breast_cancer()
    result = jobs.run("lightgbm", {
        "train": Channel({"part-0": csv_bytes(train_x, train_y),
                          "part-1": b"1,abc,3\n"}, "text/csv", distribution="ShardedByS3Key"),
    }, BASE, instance_count=2, timeout=60)
    assert result.returncodes[0] != 0 and result.returncodes[1] != 0
    for index in range(2):
        failure = result.failure(index)
        assert failure is not None and failure.startswith("ClientError: "), failure


def test_a_host_with_an_empty_shard_fails_every_host_clearly(jobs: JobRunner) -> None:
    train_x, train_y, _, _ = breast_cancer()
    result = jobs.run("lightgbm", {
        "train": Channel({"part-0": csv_bytes(train_x, train_y)}, "text/csv",
                         distribution="ShardedByS3Key"),
    }, BASE, instance_count=2, timeout=60)
    assert result.returncodes[0] != 0 and result.returncodes[1] != 0
    for index in range(2):
        failure = result.failure(index)
        assert failure is not None and failure.startswith("ClientError: "), failure
        assert "at least 2 files" in failure
