"""Built-in CatBoost (SageMaker's JumpStart ``catboost-classification-model`` /
``catboost-regression-model``): gradient-boosted oblivious trees trained by the catboost
library.

Channels, CSV layout, ``categorical_index.json`` and the inference formats are those of
LightGBM (``lightgbm.py``); the model is CatBoost's own binary format in a file called
``model`` (loaded with ``load_model``). Metrics are printed as CatBoost does
(``bestTest = <value>``), plus ``train:<metric>`` / ``validation:<metric>`` lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms.base import (
    Algorithm,
    ClientError,
    Hyperparameter,
    HyperparameterSpec,
    Interval,
    MetricDefinition,
    TrainingEnvironment,
)
from openmaker.algorithms.lightgbm import (
    TabularPredictor,
    check_class_labels,
    check_job_channels,
    holdout,
    is_classification_labels,
    read_tabular,
    tabular_channels,
    validate_tabular_channels,
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "model"
CLASSIFICATION_LOSSES = ("Logloss", "MultiClass")
REGRESSION_LOSSES = ("RMSE", "MAE", "Poisson")
BINARY_METRICS = ("Logloss", "CrossEntropy", "Precision", "Recall", "F1", "AUC", "Accuracy",
                  "BalancedAccuracy")
MULTICLASS_METRICS = ("MultiClass", "MultiClassOneVsAll", "Accuracy", "TotalF1")
REGRESSION_METRICS = ("RMSE", "MAE", "MedianAbsoluteError", "R2", "MAPE", "Poisson")
EVAL_METRICS = tuple(dict.fromkeys((*REGRESSION_METRICS, *BINARY_METRICS, *MULTICLASS_METRICS)))
# SageMaker's tuning metrics (DG); Logloss and MultiClass are losses, whatever the DG says
_SAGEMAKER_METRICS = {
    "RMSE": "Minimize", "MAE": "Minimize", "MedianAbsoluteError": "Minimize", "R2": "Maximize",
    "Logloss": "Minimize", "Precision": "Maximize", "Recall": "Maximize", "F1": "Maximize",
    "AUC": "Maximize", "MultiClass": "Minimize", "Accuracy": "Maximize",
    "BalancedAccuracy": "Maximize",
}


def _hp(name: str, kind: str, default: Any, **options: Any) -> Hyperparameter:
    return Hyperparameter(name, kind, default=default, **options)


def _check_max_bin(text: str) -> None:
    if text == "Auto":
        return
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError


def _check_thread_count(text: str) -> int:
    value = int(float(text))
    if value != float(text) or not (value == -1 or value >= 1):
        raise ValueError
    return value


HYPERPARAMETERS = HyperparameterSpec("catboost", [
    _hp("iterations", "int", 500, range=Interval(1)),
    _hp("early_stopping_rounds", "int", 5, description="an integer (0 or less disables)"),
    _hp("eval_metric", "str", "auto", choices=("auto", *EVAL_METRICS)),
    _hp("learning_rate", "float", 0.009, range=Interval(0, 1, True, True)),
    _hp("depth", "int", 6, range=Interval(1, 16)),
    _hp("l2_leaf_reg", "float", 3.0, range=Interval(0, None, low_open=True)),
    _hp("random_strength", "float", 1.0, range=Interval(0)),
    _hp("max_leaves", "int", 31, range=Interval(2, 64)),
    _hp("rsm", "float", 1.0, range=Interval(0, 1, True, False)),
    _hp("sampling_frequency", "str", "PerTreeLevel", choices=("PerTreeLevel", "PerTree")),
    _hp("min_data_in_leaf", "int", 1, range=Interval(1)),
    _hp("bagging_temperature", "float", 1.0, range=Interval(0)),
    _hp("boosting_type", "str", "Auto", choices=("Auto", "Ordered", "Plain")),
    _hp("scale_pos_weight", "float", 1.0, range=Interval(0, None, low_open=True)),
    _hp("max_bin", "text", "Auto", check=_check_max_bin,
        description='"Auto" or an integer in [1, 65535]'),
    _hp("grow_policy", "str", "SymmetricTree",
        choices=("SymmetricTree", "Depthwise", "Lossguide")),
    _hp("random_seed", "int", 1, range=Interval(0)),
    _hp("thread_count", "text", -1, check=_check_thread_count,
        description="-1 (every core) or a positive integer"),
    _hp("verbose", "int", 1, range=Interval(0)),
    # openmaker's: JumpStart picks the problem type by model id (classification/regression)
    _hp("loss_function", "str", "auto", choices=("auto", *CLASSIFICATION_LOSSES,
                                                 *REGRESSION_LOSSES)),
])


def _metric_definitions() -> list[MetricDefinition]:
    metrics = [MetricDefinition(name, r"bestTest = ([0-9.]+)", direction)
               for name, direction in _SAGEMAKER_METRICS.items()]
    for name in EVAL_METRICS:
        direction = _SAGEMAKER_METRICS.get(name, "Maximize" if name == "TotalF1" else "Minimize")
        for channel in ("train", "validation"):
            metrics.append(MetricDefinition(f"{channel}:{name}",
                                            rf"{channel}:{name} = (-?[0-9.]+)", direction))
    return metrics


METRICS = _metric_definitions()


def check_dependencies(values: Mapping[str, Any]) -> None:
    """ValidationException for hyperparameters that contradict each other."""
    loss = values.get("loss_function", "auto")
    metric = values.get("eval_metric", "auto")
    if metric == "auto" or loss == "auto":
        return
    allowed = {"Logloss": BINARY_METRICS, "MultiClass": MULTICLASS_METRICS}.get(
        loss, REGRESSION_METRICS)
    if metric not in allowed:
        raise ValidationException(f"HyperParameters.eval_metric: {metric} does not apply to "
                                  f"loss_function {loss}; use one of {', '.join(allowed)}")


def _loss(values: Mapping[str, Any], labels: np.ndarray) -> str:
    loss = values.get("loss_function", "auto")
    if loss != "auto":
        return loss
    metric = values.get("eval_metric", "auto")
    if metric in REGRESSION_METRICS:
        return "RMSE"
    if metric in ("MultiClass", "MultiClassOneVsAll", "TotalF1"):
        return "MultiClass"
    if metric in BINARY_METRICS and metric != "Accuracy":
        return "Logloss"
    if is_classification_labels(labels):
        return "Logloss" if labels.max() <= 1 else "MultiClass"
    return "RMSE"


def frame(features: np.ndarray, categorical: list[int]) -> Any:
    """A DataFrame CatBoost takes: categorical columns as integer strings ("nan" missing)."""
    import pandas

    table = pandas.DataFrame(features, columns=[f"feature_{i}" for i in range(features.shape[1])])
    for index in categorical:
        column = features[:, index]
        table[table.columns[index]] = [
            "nan" if np.isnan(v) else str(int(v)) if float(v).is_integer() else repr(float(v))
            for v in column]
    return table


def catboost_params(values: Mapping[str, Any], loss: str) -> dict[str, Any]:
    """CatBoost's parameters for the job's hyperparameters (SageMaker's defaults)."""
    def value(name: str) -> Any:
        return values.get(name, HYPERPARAMETERS[name].default)

    metric = value("eval_metric")
    params: dict[str, Any] = {
        "loss_function": loss, "eval_metric": loss if metric == "auto" else metric,
        "iterations": value("iterations"), "learning_rate": value("learning_rate"),
        "depth": value("depth"), "l2_leaf_reg": value("l2_leaf_reg"),
        "random_strength": value("random_strength"), "rsm": value("rsm"),
        "grow_policy": value("grow_policy"), "random_seed": value("random_seed"),
        "thread_count": int(value("thread_count")), "logging_level": "Silent",
        "allow_writing_files": False,
    }
    if params["grow_policy"] == "Lossguide":
        params["max_leaves"] = value("max_leaves")
    if params["grow_policy"] != "SymmetricTree":
        params["min_data_in_leaf"] = value("min_data_in_leaf")
    if "sampling_frequency" in values:
        params["sampling_frequency"] = values["sampling_frequency"]
    if "bagging_temperature" in values:
        params["bootstrap_type"] = "Bayesian"
        params["bagging_temperature"] = values["bagging_temperature"]
    if value("boosting_type") != "Auto":
        params["boosting_type"] = value("boosting_type")
    if value("max_bin") != "Auto":
        params["border_count"] = int(value("max_bin"))
    if loss == "Logloss" and "scale_pos_weight" in values:
        params["scale_pos_weight"] = values["scale_pos_weight"]
    stopping = value("early_stopping_rounds")
    if stopping > 0:
        params["od_type"] = "Iter"
        params["od_wait"] = stopping
    return params


def _format(value: float) -> str:
    return f"{value:.6f}"


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``; write ``model`` to the model directory."""
    try:
        values = HYPERPARAMETERS.parse(env.hyperparameters)
        check_dependencies(values)
    except ValidationException as error:
        raise ClientError(error.message) from None
    train_channel = check_job_channels("catboost", CHANNELS, env)
    import catboost

    features, labels, categorical = read_tabular(env, train_channel)
    categorical = categorical or []
    loss = _loss(values, labels)
    if "validation" in env.input_data_config:
        val_features, val_labels, _ = read_tabular(env, "validation")
        if val_features.shape[1] != features.shape[1]:
            raise ClientError(f"the validation data has {val_features.shape[1]} features, the "
                              f"training data {features.shape[1]}; they must match")
    else:
        print("No validation channel: holding out 20 % of the training rows", flush=True)
        features, labels, val_features, val_labels = holdout(
            features, labels, values.get("random_seed", 1))
    if loss in CLASSIFICATION_LOSSES:
        classes = max(check_class_labels(labels, train_channel),
                      check_class_labels(val_labels, "validation"))
        if loss == "Logloss" and classes > 2:
            raise ClientError(f"loss_function Logloss needs labels 0 and 1; the data has "
                              f"{classes} classes (use loss_function MultiClass)")
        labels, val_labels = labels.astype(int), val_labels.astype(int)
    if categorical:
        print(f"Categorical features: {', '.join(f'feature_{i}' for i in categorical)}",
              flush=True)
    params = catboost_params(values, loss)
    train_pool = catboost.Pool(frame(features, categorical), labels, cat_features=categorical)
    valid_pool = catboost.Pool(frame(val_features, categorical), val_labels,
                               cat_features=categorical)
    model = catboost.CatBoost(params)
    try:
        model.fit(train_pool, eval_set=valid_pool, use_best_model=True)
    except catboost.CatBoostError as error:
        raise ClientError(f"catboost refused the job: {error}") from None
    metric = params["eval_metric"].split(":", 1)[0]
    history = model.get_evals_result()
    learn = history.get("learn", {}).get(metric, [])
    test = next((scores.get(metric, []) for name, scores in history.items()
                 if name != "learn"), [])
    for iteration, value in enumerate(test):
        line = f"{iteration}:\tlearn: {_format(learn[iteration])}\t" if iteration < len(
            learn) else f"{iteration}:\t"
        print(f"{line}test: {_format(value)}", flush=True)
    best = model.get_best_iteration()
    if best is None:
        best = len(test) - 1
    if test:
        if best + 1 < params["iterations"]:
            print(f"Early stopping: best iteration {best}", flush=True)
        print(f"bestTest = {_format(test[best])}", flush=True)
        print(f"bestIteration = {best}", flush=True)
        print(f"validation:{metric} = {_format(test[best])}", flush=True)
    if learn:
        print(f"train:{metric} = {_format(learn[min(best, len(learn) - 1)])}", flush=True)
    env.model_dir.mkdir(parents=True, exist_ok=True)
    temporary = env.model_dir / f".{MODEL_FILE}.tmp"
    _fix_metadata(model, temporary)
    model.save_model(str(temporary))
    os.replace(temporary, env.model_dir / MODEL_FILE)


def _fix_metadata(model: Any, scratch: Path) -> None:
    """Same data and seed, same bytes: CatBoost stamps a random ``model_guid`` and the
    finish time; the guid becomes a digest of the model, the time is left out."""
    import hashlib

    metadata = model.get_metadata()
    metadata["train_finish_time"] = ""
    metadata["model_guid"] = ""
    model.save_model(str(scratch))
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    metadata["model_guid"] = "-".join(digest[i:i + 8] for i in range(0, 32, 8))


class CatBoostPredictor(TabularPredictor):
    """Serves a CatBoost ``model`` file."""

    def __init__(self, model: Any) -> None:
        loss = str(model.get_all_params().get("loss_function", "RMSE")).split(":", 1)[0]
        super().__init__(len(model.feature_names_), loss in CLASSIFICATION_LOSSES)
        self.model = model
        self.categorical = list(model.get_cat_feature_indices())

    def scores(self, features: np.ndarray) -> np.ndarray:
        import catboost

        pool = catboost.Pool(frame(features, self.categorical), cat_features=self.categorical)
        kind = "Probability" if self.classification else "RawFormulaVal"
        return np.asarray(self.model.predict(pool, prediction_type=kind, thread_count=1))


def load_model(model_dir: str | os.PathLike) -> Any:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ClientError(f"{model_dir} holds no {MODEL_FILE}")
    import catboost

    return catboost.CatBoost().load_model(str(path))


CHANNELS = tabular_channels()


class CatBoost(Algorithm):
    """SageMaker's built-in CatBoost (JumpStart script mode), trained by catboost."""

    name = "catboost"
    repositories = ("catboost-classification-model", "catboost-regression-model")
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        """SageMaker's tuning objectives, plus ``validation:*``."""
        return {m.name: m.direction for m in self.metrics if not m.name.startswith("train:")}

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values = HYPERPARAMETERS.parse(raw)
        check_dependencies(values)
        return values

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        validate_tabular_channels(self.name, self.channels, channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> CatBoostPredictor:
        return CatBoostPredictor(load_model(model_dir))
