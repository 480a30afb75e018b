"""CatBoost (JumpStart ``catboost-*-model``): real training jobs through the algorithm
runner; accuracy against catboost run directly, early stopping, categorical_index.json,
the JSON response formats, and the hyperparameter rules."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner
from tests.algorithms.test_lightgbm import breast_cancer, categorical_data, csv_bytes

from openmaker.algorithms import find_algorithm
from openmaker.core.errors import ValidationException

BASE = {"iterations": "40", "learning_rate": "0.2", "depth": "4", "thread_count": "1",
        "random_seed": "1", "early_stopping_rounds": "0"}


def run(jobs: JobRunner, hyperparameters: dict[str, str], train: dict[str, bytes],
        validation: dict[str, bytes] | None = None, channel: str = "training"):
    channels = {channel: Channel(train, "text/csv")}
    if validation is not None:
        channels["validation"] = Channel(validation, "text/csv")
    return jobs.run("catboost", channels, hyperparameters)


def predict_json(model_dir, features: np.ndarray) -> dict:
    predictor = find_algorithm("catboost").load(model_dir)
    body, content_type = predictor.predict(csv_bytes(features), "text/csv", "*/*")
    assert content_type == "application/json"
    return json.loads(body)


def test_breast_cancer_accuracy_matches_catboost_run_directly(jobs: JobRunner) -> None:
    import catboost

    train_x, train_y, test_x, test_y = breast_cancer()
    result = run(jobs, BASE, {"part-0": csv_bytes(train_x, train_y)},
                 {"part-0": csv_bytes(test_x, test_y)}).check()
    probabilities = np.asarray(predict_json(result.model_dir, test_x)["probabilities"])
    assert probabilities.shape == (len(test_x), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    ours = float(np.mean(probabilities.argmax(axis=1) == test_y))

    direct = catboost.CatBoostClassifier(iterations=40, learning_rate=0.2, depth=4,
                                         thread_count=1, random_seed=1, verbose=False,
                                         allow_writing_files=False)
    direct.fit(train_x, train_y.astype(int), eval_set=(test_x, test_y.astype(int)))
    theirs = float(np.mean(direct.predict(test_x).astype(float) == test_y))
    assert ours >= 0.93
    assert abs(ours - theirs) <= 0.02, (ours, theirs)
    assert re.search(r"bestTest = [0-9.]+", result.output)
    assert re.search(r"validation:Logloss = [0-9.]+", result.output)
    assert re.search(r"train:Logloss = [0-9.]+", result.output)


def test_early_stopping_on_the_validation_channel(jobs: JobRunner) -> None:
    train_x, train_y, test_x, test_y = breast_cancer()
    result = run(jobs, {**BASE, "iterations": "500", "learning_rate": "0.5",
                        "early_stopping_rounds": "3"},
                 {"part-0": csv_bytes(train_x, train_y)},
                 {"part-0": csv_bytes(test_x, test_y)}).check()
    assert "Early stopping: best iteration" in result.output
    iterations = [int(m.group(1)) for m in re.finditer(r"^(\d+):\t", result.output, re.M)]
    assert 3 < len(iterations) < 500
    best = int(re.search(r"bestIteration = (\d+)", result.output).group(1))
    assert best == len(iterations) - 4
    model = find_algorithm("catboost").load(result.model_dir).model
    assert model.tree_count_ == best + 1


def test_categorical_index_json_marks_categorical_features(jobs: JobRunner) -> None:
    train_x, train_y = categorical_data(1000, 1)
    test_x, test_y = categorical_data(300, 2)
    # one depth-1 tree: a split on the category's statistics separates the classes,
    # a threshold on the code cannot
    hyperparameters = {**BASE, "iterations": "1", "depth": "1", "learning_rate": "0.9"}
    objects = {"data.csv": csv_bytes(train_x, train_y)}
    index = {"categorical_index.json": json.dumps({"cat_index_list": [2]}).encode()}
    with_index = run(jobs, hyperparameters, {**objects, **index},
                     {"part-0": csv_bytes(test_x, test_y)}).check()
    without = run(jobs, hyperparameters, objects, {"part-0": csv_bytes(test_x, test_y)}).check()
    assert "Categorical features: feature_1" in with_index.output
    assert find_algorithm("catboost").load(with_index.model_dir).categorical == [1]
    assert find_algorithm("catboost").load(without.model_dir).categorical == []

    def accuracy(model_dir) -> float:
        probabilities = np.asarray(predict_json(model_dir, test_x)["probabilities"])
        return float(np.mean(probabilities.argmax(axis=1) == test_y))

    assert accuracy(with_index.model_dir) >= 0.95
    assert accuracy(without.model_dir) < 0.9


def test_regression_without_validation_holds_out_rows_and_answers_prediction(
        jobs: JobRunner) -> None:
    from sklearn.datasets import make_regression

    features, target = make_regression(n_samples=300, n_features=5, noise=5, random_state=0)
    result = run(jobs, {**BASE, "iterations": "60"},
                 {"part-0": csv_bytes(features[:250], target[:250])}, channel="train").check()
    assert "holding out 20 %" in result.output
    assert re.search(r"validation:RMSE = [0-9.]+", result.output)
    rmse = find_algorithm("catboost").metric_definitions
    assert {"Name": "RMSE", "Regex": "bestTest = ([0-9.]+)"} in rmse
    answer = predict_json(result.model_dir, features[250:])
    assert set(answer) == {"prediction"}
    predictions = np.asarray(answer["prediction"])
    assert predictions.shape == (50,)
    assert np.corrcoef(predictions, target[250:])[0, 1] > 0.9


def test_multiclass_probabilities_have_a_column_per_class(jobs: JobRunner) -> None:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    result = run(jobs, {**BASE, "iterations": "20"},
                 {"part-0": csv_bytes(features[::2], labels[::2].astype(float))},
                 {"part-0": csv_bytes(features[1::2], labels[1::2].astype(float))}).check()
    probabilities = np.asarray(predict_json(result.model_dir, features[1::2])["probabilities"])
    assert probabilities.shape == (75, 3)
    assert np.mean(probabilities.argmax(axis=1) == labels[1::2]) > 0.9
    assert re.search(r"validation:MultiClass = [0-9.]+", result.output)


@pytest.mark.parametrize("hyperparameters, name", [
    ({"iterations": "0"}, "iterations"),
    ({"depth": "0"}, "depth"),
    ({"l2_leaf_reg": "0"}, "l2_leaf_reg"),
    ({"max_leaves": "65"}, "max_leaves"),
    ({"sampling_frequency": "PerLeaf"}, "sampling_frequency"),
    ({"boosting_type": "Fast"}, "boosting_type"),
    ({"max_bin": "0"}, "max_bin"),
    ({"max_bin": "auto-ish"}, "max_bin"),
    ({"thread_count": "-2"}, "thread_count"),
    ({"random_seed": "-1"}, "random_seed"),
    ({"loss_function": "RMSE", "eval_metric": "AUC"}, "eval_metric"),
])
def test_hyperparameters_refused_by_name(hyperparameters: dict[str, str], name: str) -> None:
    with pytest.raises(ValidationException, match=rf"HyperParameters\.{name}\b"):
        find_algorithm("catboost").validate_hyperparameters(hyperparameters)


def test_sagemaker_defaults_are_accepted() -> None:
    values = find_algorithm("catboost").validate_hyperparameters(
        {"iterations": "500", "early_stopping_rounds": "5", "eval_metric": "auto",
         "learning_rate": "0.009", "depth": "6", "l2_leaf_reg": "3", "random_strength": "1.0",
         "max_bin": "Auto", "random_seed": "1.0", "thread_count": "-1", "verbose": "1"})
    assert values["random_seed"] == 1 and values["thread_count"] == -1


def test_found_by_jumpstart_model_id() -> None:
    assert find_algorithm("catboost-regression-model") is find_algorithm("catboost")
    objectives = find_algorithm("catboost").objective_metrics()
    assert objectives["AUC"] == "Maximize" and objectives["Logloss"] == "Minimize"
