"""Built-in LightGBM (SageMaker's JumpStart ``lightgbm-classification-model`` /
``lightgbm-regression-model``): gradient-boosted trees trained by the lightgbm library.

Training data is ``text/csv`` with the target in the first column and no header, in a
``train`` (or ``training``) channel and an optional ``validation`` channel; without one,
20 % of the training rows are held out for validation. A ``categorical_index.json``
(``{"cat_index_list": [1, 5]}``, column indexes counting the target as column 0) next to
the training data marks categorical features. The model is the lightgbm ``Booster``
serialised with joblib as ``model.pkl``; inference takes ``text/csv`` and answers
``application/json`` (``{"probabilities": [[...]]}`` or ``{"prediction": [...]}``) or
``text/csv``.

With several instances the hosts train one model with lightgbm's own socket network
(``tree_learner`` data, voting or feature): they agree on their listen ports, the objective
and one validation set through the first host (:func:`rendezvous`, at
MASTER_ADDR:MASTER_PORT), so every host computes the same metrics and stops at the same
round; only the first host prints them and writes the model.

The CSV reading, the categorical index and the predictor are shared with CatBoost
(``catboost.py``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms.base import (
    Algorithm,
    AlgorithmError,
    ChannelDefinition,
    ClientError,
    EmptyRequest,
    Hyperparameter,
    HyperparameterSpec,
    InferenceError,
    Interval,
    MetricDefinition,
    Predictor,
    TrainingEnvironment,
    UnsupportedContentType,
    negotiate_accept,
    validate_channels,
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "model.pkl"
CATEGORICAL_INDEX = "categorical_index.json"
VALIDATION_FRACTION = 0.2
# An ``auto`` objective is classification when the labels are non-negative integers with
# at most this many distinct values, regression otherwise.
MAX_AUTO_CLASSES = 20

# -- shared by the JumpStart tabular algorithms ----------------------------------------------
TRAIN_CHANNELS = ("train", "training")


def tabular_channels() -> tuple[ChannelDefinition, ...]:
    """``train``/``training`` and ``validation``: text/csv, File (or FastFile) mode; and
    ``model``, the JumpStart estimator's pre-trained artifact channel (accepted, unread)."""
    options: dict[str, Any] = {"content_types": ("text/csv",), "default_content_type": "text/csv",
                               "input_modes": ("File", "FastFile")}
    data = tuple(ChannelDefinition(name, **options) for name in (*TRAIN_CHANNELS, "validation"))
    return (*data, ChannelDefinition("model", input_modes=("File", "FastFile")))


def validate_tabular_channels(algorithm: str, definitions: Sequence[ChannelDefinition],
                              channels: Iterable[Mapping[str, Any]], input_mode: str) -> None:
    """The declared checks, plus exactly one of ``train`` / ``training``."""
    channels = list(channels)
    validate_channels(algorithm, definitions, channels, input_mode)
    names = {str(channel.get("ChannelName")) for channel in channels}
    given = [name for name in TRAIN_CHANNELS if name in names]
    if not given:
        raise ValidationException(f"InputDataConfig: {algorithm} needs a 'train' (or "
                                  "'training') channel")
    if len(given) > 1:
        raise ValidationException(f"InputDataConfig: {algorithm} takes its training data from "
                                  "one channel; give 'train' or 'training', not both")


def check_job_channels(algorithm: str, definitions: Sequence[ChannelDefinition],
                       env: TrainingEnvironment) -> str:
    """ClientError for the job's channels as :func:`validate_tabular_channels` sees them;
    the name of the training channel otherwise."""
    try:
        validate_tabular_channels(
            algorithm, definitions,
            [{"ChannelName": name, "ContentType": config.get("ContentType"),
              "InputMode": config.get("TrainingInputMode", "File")}
             for name, config in env.input_data_config.items()], "File")
    except ValidationException as error:
        raise ClientError(error.message) from None
    return next(name for name in TRAIN_CHANNELS if name in env.input_data_config)


def _categorical_index(path: Path, columns: int) -> list[int]:
    """Feature indexes (target excluded) from a ``categorical_index.json``."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ClientError(f"{CATEGORICAL_INDEX} is not valid JSON: {error}") from None
    indexes = document.get("cat_index_list") if isinstance(document, dict) else None
    if not isinstance(indexes, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in indexes):
        raise ClientError(f'{CATEGORICAL_INDEX} must be {{"cat_index_list": [column indexes]}}, '
                          "a list of integers")
    for index in indexes:
        if not 1 <= index <= columns:
            raise ClientError(f"{CATEGORICAL_INDEX}: column index {index} is out of range; the "
                              f"indexes count the target as column 0, so they must be in "
                              f"[1, {columns}]")
    return sorted({index - 1 for index in indexes})


def read_tabular(env: TrainingEnvironment, channel: str
                 ) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
    """``(features, labels, categorical feature indexes or None)`` of every CSV file in
    ``channel`` (target first, no header); ``categorical_index.json`` is not data."""
    from openmaker.algorithms._data import _read_csv, _Stream, combine, data_files

    directory = env.channel_dir(channel)
    if not directory.is_dir():
        raise ClientError(f"channel {channel!r} has no data: {directory} does not exist")
    parts = []
    index_file = None
    for path in data_files(directory):
        if path.name == CATEGORICAL_INDEX:
            index_file = path
            continue
        name = f"channel {channel!r} file {path.relative_to(directory).as_posix()}"
        dataset = _read_csv(_Stream.of_file(path, name), False)
        if dataset is not None:
            parts.append(dataset)
    if not parts:
        raise ClientError(f"channel {channel!r} has no data: no CSV records were found in "
                          f"{directory}")
    dataset = combine(parts, channel)
    if dataset.columns == 0:
        raise ClientError(f"channel {channel!r} has labels but no feature columns")
    labels = np.asarray(dataset.labels, dtype=np.float64)
    if not np.all(np.isfinite(labels)):
        row = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: the target (first column) "
                          "is missing or not a number")
    categorical = None if index_file is None else _categorical_index(index_file, dataset.columns)
    return np.asarray(dataset.features), labels, categorical


def holdout(features: np.ndarray, labels: np.ndarray, seed: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training rows split 80/20 (seeded) when the job has no validation channel."""
    rows = len(labels)
    if rows < 2:
        raise ClientError("channel 'train' has fewer than 2 records; with no validation channel "
                          "20 % of them are held out, so give more records or a validation "
                          "channel")
    order = np.random.default_rng(seed).permutation(rows)
    count = max(1, int(round(rows * VALIDATION_FRACTION)))
    held, kept = np.sort(order[:count]), np.sort(order[count:])
    return features[kept], labels[kept], features[held], labels[held]


def is_classification_labels(labels: np.ndarray) -> bool:
    """The ``auto`` rule: non-negative integer labels with few distinct values."""
    return bool(np.all(labels >= 0) and np.all(labels == np.round(labels))
                and len(np.unique(labels)) <= MAX_AUTO_CLASSES)


def check_class_labels(labels: np.ndarray, channel: str) -> int:
    """The number of classes (max label + 1); ClientError for a label not in 0, 1, ..."""
    bad = (labels < 0) | (labels != np.round(labels))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: classification needs class "
                          f"labels 0, 1, 2, ...; got {labels[row]:g}")
    return max(2, int(labels.max()) + 1)


class TabularPredictor(Predictor):
    """text/csv features in; ``application/json`` (``{"probabilities": [[p0, p1, ...]]}``
    for classification, ``{"prediction": [...]}`` for regression) or ``text/csv`` out."""

    content_types = ("text/csv",)
    accepts = ("application/json", "text/csv")

    def __init__(self, num_features: int, classification: bool) -> None:
        self.num_features = num_features
        self.classification = classification

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (rows x classes) or predictions (rows)."""
        raise NotImplementedError

    def _features(self, body: bytes, content_type: str) -> np.ndarray:
        media = (content_type or "text/csv").split(";", 1)[0].strip().lower()
        if media != "text/csv":
            raise UnsupportedContentType(f"content type {content_type!r} is not supported; use "
                                         "text/csv")
        from openmaker.algorithms._data import sniff_delimiter
        from openmaker.formats.csv import CSVFormatError, read_csv

        try:
            features, _ = read_csv(body, label_size=0, delimiter=sniff_delimiter(body[:4096]),
                                   dtype=np.float64)
        except (CSVFormatError, ValueError) as error:
            raise UnsupportedContentType(f"the request is not valid text/csv: {error}") from None
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        if features.shape[1] != self.num_features:
            raise InferenceError(f"the CSV rows have {features.shape[1]} features; the model "
                                 f"was trained on {self.num_features}")
        return features

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type = negotiate_accept(accept, self.accepts, self.accepts[0])
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        values = self.scores(self._features(body, content_type))
        if accept_type == "application/json":
            key = "probabilities" if self.classification else "prediction"
            return json.dumps({key: values.tolist()}).encode(), accept_type
        rows = values if values.ndim == 2 else values[:, None]
        text = "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows)
        return text.encode(), accept_type


# -- LightGBM -------------------------------------------------------------------------------
CLASSIFICATION_OBJECTIVES = ("binary", "multiclass")
REGRESSION_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "poisson", "tweedie")
BINARY_METRICS = ("binary_logloss", "binary_error", "auc", "average_precision")
MULTICLASS_METRICS = ("multi_logloss", "multi_error", "auc_mu")
REGRESSION_METRICS = ("rmse", "l1", "l2", "huber", "fair")
METRIC_NAMES = (*REGRESSION_METRICS, *BINARY_METRICS, *MULTICLASS_METRICS, "cross_entropy")
_MAXIMIZED = {"auc", "average_precision", "auc_mu"}


def _hp(name: str, kind: str, default: Any, **options: Any) -> Hyperparameter:
    return Hyperparameter(name, kind, default=default, **options)


def _positive(low: float, *, open_low: bool = False) -> Interval:
    return Interval(low, None, low_open=open_low)


HYPERPARAMETERS = HyperparameterSpec("lightgbm", [
    _hp("num_boost_round", "int", 100, range=_positive(1)),
    _hp("early_stopping_rounds", "int", 10, description="an integer (0 or less disables)"),
    _hp("metric", "str", "auto", choices=("auto", *METRIC_NAMES)),
    _hp("learning_rate", "float", 0.1, range=Interval(0, 1, True, True)),
    _hp("num_leaves", "int", 64, range=Interval(1, 131072, True, True)),
    _hp("feature_fraction", "float", 0.9, range=Interval(0, 1, True, False)),
    _hp("bagging_fraction", "float", 0.9, range=Interval(0, 1, True, False)),
    _hp("bagging_freq", "int", 1, range=_positive(0)),
    _hp("max_depth", "int", 6, description="an integer (0 or less: no limit)"),
    _hp("min_data_in_leaf", "int", 3, range=_positive(0)),
    _hp("max_delta_step", "float", 0.0),
    _hp("lambda_l1", "float", 0.0, range=_positive(0)),
    _hp("lambda_l2", "float", 0.0, range=_positive(0)),
    _hp("boosting", "str", "gbdt", choices=("gbdt", "rf", "dart", "goss")),
    _hp("min_gain_to_split", "float", 0.0, range=_positive(0)),
    _hp("scale_pos_weight", "float", 1.0, range=_positive(0, open_low=True)),
    _hp("tree_learner", "str", "serial", choices=("serial", "feature", "data", "voting")),
    _hp("feature_fraction_bynode", "float", 1.0, range=Interval(0, 1, True, False)),
    _hp("is_unbalance", "bool", False),
    _hp("max_bin", "int", 255, range=_positive(2)),
    _hp("tweedie_variance_power", "float", 1.5, range=Interval(1, 2, False, True)),
    _hp("num_threads", "int", 0, range=_positive(0)),
    _hp("verbosity", "int", 1),
    # openmaker's: JumpStart picks the problem type by model id (classification/regression)
    _hp("objective", "str", "auto", choices=("auto", *CLASSIFICATION_OBJECTIVES,
                                             *REGRESSION_OBJECTIVES)),
    _hp("seed", "int", 0, range=_positive(0)),
])


def _metric_definitions() -> list[MetricDefinition]:
    metrics = []
    for name in METRIC_NAMES:
        direction = "Maximize" if name in _MAXIMIZED else "Minimize"
        # SageMaker's names and regexes; the validation value comes first on each line
        metrics.append(MetricDefinition(name, rf"\b{name}: ([0-9.]+)", direction))
        for channel in ("train", "validation"):
            metrics.append(MetricDefinition(f"{channel}:{name}",
                                            rf"{channel}'s {name}: (-?[0-9.]+)", direction))
    return metrics


METRICS = _metric_definitions()


def check_dependencies(values: Mapping[str, Any]) -> None:
    """ValidationException for hyperparameters that contradict each other."""
    objective = values.get("objective", "auto")
    metric = values.get("metric", "auto")
    if objective in REGRESSION_OBJECTIVES and metric in (*BINARY_METRICS, *MULTICLASS_METRICS):
        raise ValidationException(f"HyperParameters.metric: {metric} is a classification metric "
                                  f"and objective is {objective}; use one of "
                                  f"{', '.join(REGRESSION_METRICS)}")
    if objective == "binary" and metric in MULTICLASS_METRICS:
        raise ValidationException(f"HyperParameters.metric: {metric} is a multiclass metric; "
                                  f"for binary use one of {', '.join(BINARY_METRICS)}")
    if objective == "multiclass" and metric in BINARY_METRICS:
        raise ValidationException(f"HyperParameters.metric: {metric} is a binary metric; for "
                                  f"multiclass use one of {', '.join(MULTICLASS_METRICS)}")
    if values.get("is_unbalance") and "scale_pos_weight" in values:
        raise ValidationException("HyperParameters.scale_pos_weight: is_unbalance and "
                                  "scale_pos_weight exclude each other; give one")


def _objective(values: Mapping[str, Any], labels: np.ndarray) -> str:
    objective = values.get("objective", "auto")
    if objective != "auto":
        return objective
    metric = values.get("metric", "auto")
    if metric in REGRESSION_METRICS:
        return "regression"
    if metric in MULTICLASS_METRICS:
        return "multiclass"
    if metric in BINARY_METRICS:
        return "binary"
    if is_classification_labels(labels):
        return "binary" if labels.max() <= 1 else "multiclass"
    return "regression"


_AUTO_METRIC = {"binary": "binary_logloss", "multiclass": "multi_logloss"}


def lightgbm_params(values: Mapping[str, Any], objective: str, num_class: int | None
                    ) -> dict[str, Any]:
    """The lightgbm parameters for the job's hyperparameters (SageMaker's defaults)."""
    def value(name: str) -> Any:
        return values.get(name, HYPERPARAMETERS[name].default)

    metric = value("metric")
    if metric == "auto":
        metric = _AUTO_METRIC.get(objective, "rmse")
    seed = value("seed")
    params: dict[str, Any] = {
        "objective": objective, "metric": metric,
        "verbosity": -1 if value("verbosity") < 1 else 0,
        "seed": seed, "deterministic": True, "force_row_wise": True,
    }
    for name in ("learning_rate", "num_leaves", "feature_fraction", "bagging_fraction",
                 "bagging_freq", "max_depth", "min_data_in_leaf", "max_delta_step", "lambda_l1",
                 "lambda_l2", "boosting", "min_gain_to_split", "tree_learner",
                 "feature_fraction_bynode", "max_bin", "num_threads"):
        params[name] = value(name)
    if objective == "binary":
        params["is_unbalance"] = value("is_unbalance")
        if not params["is_unbalance"]:
            params["scale_pos_weight"] = value("scale_pos_weight")
    if objective == "tweedie":
        params["tweedie_variance_power"] = value("tweedie_variance_power")
    if objective == "multiclass":
        params["num_class"] = num_class
    if params["boosting"] == "rf" and not (params["bagging_freq"] > 0
                                           and params["bagging_fraction"] < 1):
        raise ClientError("HyperParameters.boosting: rf needs bagging (bagging_freq > 0 and "
                          "bagging_fraction < 1)")
    return params


def _format(value: float) -> str:
    return f"{value:.6f}"


def _printer(metric: str, rounds: list[int], quiet: bool = False) -> Any:
    def callback(env: Any) -> None:
        rounds.append(env.iteration + 1)
        if quiet:
            return
        found = {(data, name): result for data, name, result, *_ in env.evaluation_result_list}
        parts = [f"[{env.iteration + 1}]"]
        for channel in ("validation", "train"):
            if (channel, metric) in found:
                parts.append(f"{channel}'s {metric}: {_format(found[channel, metric])}")
        print("\t".join(parts), flush=True)
    return callback


def _class_count(labels: np.ndarray, channel: str) -> int:
    """:func:`check_class_labels` for label values gathered from several hosts."""
    bad = (labels < 0) | (labels != np.round(labels))
    if bad.any():
        raise ClientError(f"channel {channel!r}: classification needs class labels 0, 1, 2, "
                          f"...; got {labels[bad][0]:g}")
    return max(2, int(labels.max()) + 1)


def _decide(values: Mapping[str, Any], labels: np.ndarray, val_labels: np.ndarray,
            channel: str, count: Any = check_class_labels) -> dict[str, Any]:
    """The objective and class count every host trains with."""
    objective = _objective(values, labels)
    num_class = None
    if objective in CLASSIFICATION_OBJECTIVES:
        num_class = max(count(labels, channel), count(val_labels, "validation"))
        if objective == "binary" and num_class > 2:
            raise ClientError(f"objective binary needs labels 0 and 1; the data has {num_class} "
                              "classes (use objective multiclass)")
    return {"objective": objective, "num_class": num_class}


def _read(env: TrainingEnvironment, channel: str) -> tuple[np.ndarray, np.ndarray,
                                                            list[int] | None]:
    try:
        return read_tabular(env, channel)
    except ClientError as error:
        if len(env.hosts) > 1 and _distribution(env, channel) == "ShardedByS3Key":
            raise ClientError(f"{error} (with ShardedByS3Key each host gets whole files; give "
                              f"the channel at least {len(env.hosts)} files with records)"
                              ) from None
        raise


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``; write ``model.pkl`` to the model directory (on the
    first host, when there are several)."""
    try:
        values = HYPERPARAMETERS.parse(env.hyperparameters)
        check_dependencies(values)
    except ValidationException as error:
        raise ClientError(error.message) from None
    train_channel = check_job_channels("lightgbm", CHANNELS, env)
    import joblib
    import lightgbm

    hosts = env.hosts
    count = len(hosts)
    rank = hosts.index(env.current_host) if env.current_host in hosts else 0
    learner = values.get("tree_learner", "serial")
    if count > 1 and learner == "serial":
        learner = "data"
    seed = values.get("seed", 0)
    sharded = count > 1 and _distribution(env, train_channel) == "ShardedByS3Key"
    report: dict[str, Any] = {"error": None}
    features = labels = val_features = val_labels = np.zeros((0, 0))
    categorical = None
    shared_validation = True
    try:
        if learner == "feature" and sharded:
            raise ClientError("HyperParameters.tree_learner: feature needs every host to have "
                              f"all the training data; make channel {train_channel!r} "
                              "FullyReplicated, or use tree_learner data or voting")
        features, labels, categorical = _read(env, train_channel)
        if "validation" in env.input_data_config:
            val_features, val_labels, _ = _read(env, "validation")
            if val_features.shape[1] != features.shape[1]:
                raise ClientError(f"the validation data has {val_features.shape[1]} features, "
                                  f"the training data {features.shape[1]}; they must match")
            shared_validation = _distribution(env, "validation") != "ShardedByS3Key"
        else:
            if rank == 0:
                print("No validation channel: holding out 20 % of the training rows",
                      flush=True)
            features, labels, val_features, val_labels = holdout(features, labels, seed)
            shared_validation = not sharded
        if count > 1 and not sharded and learner != "feature":
            # every host has all the rows: each trains on its own share of them
            features, labels = features[rank::count], labels[rank::count]
    except ClientError as error:
        if count == 1:
            raise
        report["error"] = str(error)
    if count == 1:
        shared = _decide(values, labels, val_labels, train_channel)
    else:
        port = _free_port()
        report.update(port=port, labels=np.unique(labels) if labels.size else
                      np.zeros(0), features=int(features.shape[1]) if features.ndim == 2
                      else 0, categorical=categorical)

        def decide(reports: list[dict[str, Any]], all_val_labels: np.ndarray) -> dict[str, Any]:
            widths = {int(r["features"]) for r in reports}
            if len(widths) > 1:
                raise ClientError("the hosts' training data have different numbers of "
                                  f"features: {', '.join(str(r['features']) for r in reports)}")
            indexes = [r["categorical"] for r in reports if r["categorical"] is not None]
            if any(index != indexes[0] for index in indexes):
                raise ClientError(f"the hosts' {CATEGORICAL_INDEX} files disagree")
            union = np.unique(np.concatenate([np.asarray(r["labels"]) for r in reports]))
            return {**_decide(values, union, all_val_labels, train_channel, _class_count),
                    "categorical": indexes[0] if indexes else None}

        shared = rendezvous(env, report, None if shared_validation
                            else (val_features, val_labels), val_labels, decide)
        categorical = shared["categorical"]
        if not shared_validation:
            val_features = np.asarray(shared["val_features"])
            val_labels = np.asarray(shared["val_labels"])
    params = lightgbm_params(values, shared["objective"], shared["num_class"])
    if count > 1:
        print(f"Host {env.current_host} ({rank + 1} of {count}): {len(labels)} training rows, "
              f"{len(val_labels)} validation rows", flush=True)
        params.update(tree_learner=learner, num_machines=count, machines=shared["machines"],
                      local_listen_port=report["port"], time_out=NETWORK_TIMEOUT_MIN,
                      pre_partition=learner != "feature")
    names = [f"feature_{i}" for i in range(features.shape[1])]
    cat = categorical or "auto"
    if categorical and rank == 0:
        print(f"Categorical features: {', '.join(names[i] for i in categorical)}", flush=True)
    train_set = lightgbm.Dataset(features, labels, feature_name=names, categorical_feature=cat,
                                 free_raw_data=False, params={"verbosity": -1})
    valid_set = lightgbm.Dataset(val_features, val_labels, reference=train_set,
                                 feature_name=names, categorical_feature=cat,
                                 free_raw_data=False)
    rounds: list[int] = []
    callbacks = [_printer(params["metric"], rounds, quiet=rank != 0)]
    stopping = values.get("early_stopping_rounds", 10)
    if stopping > 0:
        callbacks.append(lightgbm.early_stopping(stopping, first_metric_only=True,
                                                 verbose=False))
    try:
        booster = lightgbm.train(params, train_set, num_boost_round=values.get(
            "num_boost_round", 100), valid_sets=[valid_set, train_set],
            valid_names=["validation", "train"], callbacks=callbacks)
    except lightgbm.basic.LightGBMError as error:
        if count > 1:
            raise AlgorithmError(f"distributed lightgbm failed on {env.current_host}: "
                                 f"{error}") from None
        raise ClientError(f"lightgbm refused the job: {error}") from None
    best = booster.best_iteration or booster.current_iteration()
    booster.best_iteration = best
    if rank != 0:
        booster.free_network()
        return
    metric = params["metric"]
    final = {key: dict(scores) for key, scores in booster.best_score.items()}
    if rounds and best < rounds[-1]:
        print(f"Early stopping: best iteration {best}", flush=True)
    validation_value = final.get("validation", {}).get(metric)
    train_value = final.get("train", {}).get(metric)
    if validation_value is not None:
        print(f"validation's {metric}: {_format(validation_value)}"
              + (f"\ttrain's {metric}: {_format(train_value)}" if train_value is not None
                 else ""), flush=True)
    booster.free_dataset()
    if count > 1:
        booster.free_network()
        # the distributed parameters mean nothing to the served model
        for name in ("machines", "num_machines", "local_listen_port", "time_out",
                     "pre_partition"):
            booster.params.pop(name, None)
    env.model_dir.mkdir(parents=True, exist_ok=True)
    temporary = env.model_dir / f".{MODEL_FILE}.tmp"
    joblib.dump(booster, temporary)
    os.replace(temporary, env.model_dir / MODEL_FILE)
# -- several hosts ------------------------------------------------------------------------------
# Each host binds a free port for lightgbm's own network, then reports it to the first host
# at MASTER_ADDR:MASTER_PORT with what the hosts must agree on (label values, feature count,
# categorical features, any failure, and its validation rows where they differ per host);
# the first host answers each with the machine list, the objective, the class count and the
# one validation set every host evaluates, so every host computes the same metrics and early
# stopping stops them all at the same round.
RENDEZVOUS_TIMEOUT_S = int(os.environ.get("OPENMAKER_LIGHTGBM_TIMEOUT", "300"))
NETWORK_TIMEOUT_MIN = 2  # lightgbm's socket time_out, in minutes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _distribution(env: TrainingEnvironment, channel: str) -> str:
    return str(env.input_data_config.get(channel, {}).get("S3DistributionType",
                                                          "FullyReplicated"))


def _connect(env: TrainingEnvironment) -> socket.socket:
    """A connection to the first host, retrying until it listens."""
    assert env.master_addr and env.master_port
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while True:
        try:
            sock = socket.create_connection((env.master_addr, env.master_port), timeout=5)
            sock.settimeout(RENDEZVOUS_TIMEOUT_S)
            return sock
        except OSError:
            if time.monotonic() > deadline:
                raise AlgorithmError(f"could not reach the first host at {env.master_addr}:"
                                     f"{env.master_port} within {RENDEZVOUS_TIMEOUT_S} s"
                                     ) from None
            time.sleep(0.2)


def _blob(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    from openmaker.algorithms.random_cut_forest import dump_arrays

    return dump_arrays(arrays, meta)


def _unblob(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from openmaker.algorithms.random_cut_forest import load_arrays

    return load_arrays(data)


def rendezvous(env: TrainingEnvironment, report: dict[str, Any],
               validation: tuple[np.ndarray, np.ndarray] | None, val_labels: np.ndarray,
               decide: Any) -> dict[str, Any]:
    """Swap ``report`` (this host's ``port``, ``labels``, ``features``, ``categorical``,
    ``error``) and ``validation`` (None where every host has the same rows) with the other
    hosts. On the first host, ``decide(reports, validation labels)`` returns what every
    host shares (or raises ClientError); every host gets that back with ``machines``,
    ``val_features`` and ``val_labels`` added. A host that failed takes part, then raises its
    error."""
    from openmaker.algorithms._cluster import receive_blob, send_blob

    if not env.master_addr or not env.master_port:
        raise AlgorithmError(f"training over {len(env.hosts)} hosts needs MASTER_ADDR and "
                             "MASTER_PORT in the environment")
    labels = report.pop("labels")
    arrays = {"labels": labels}
    if validation is not None:
        arrays.update(val_features=validation[0], val_labels=validation[1])
    report["host"] = env.current_host
    if not env.is_master:
        with _connect(env) as sock:
            send_blob(sock, _blob(arrays, report))
            try:
                answer_arrays, answer = _unblob(receive_blob(sock))
            except (AlgorithmError, OSError, ValueError):
                raise AlgorithmError(f"the first host ({env.hosts[0]}) did not answer; its "
                                     "failure reason says why") from None
        if report.get("error"):
            raise ClientError(report["error"])
        if answer.get("error"):
            raise ClientError(answer["error"])
        answer.update(answer_arrays)
        return answer
    connections: list[tuple[socket.socket, str]] = []
    parts = [(arrays, report)]
    try:
        with socket.create_server(("", env.master_port)) as server:
            server.settimeout(RENDEZVOUS_TIMEOUT_S)
            while len(parts) < len(env.hosts):
                try:
                    connection, (address, *_) = server.accept()
                except TimeoutError:
                    raise AlgorithmError(f"only {len(parts)} of {len(env.hosts)} hosts joined "
                                         f"within {RENDEZVOUS_TIMEOUT_S} s") from None
                connection.settimeout(RENDEZVOUS_TIMEOUT_S)
                connections.append((connection, address))
                parts.append(_unblob(receive_blob(connection)))
        answer: dict[str, Any] = {}
        answer_arrays: dict[str, np.ndarray] = {}
        order = sorted(range(len(parts)), key=lambda i: str(parts[i][1]["host"]))
        failures = [f"{parts[i][1]['host']}: {parts[i][1]['error']}" for i in order
                    if parts[i][1].get("error")]
        try:
            if failures:
                raise ClientError(failures[0])
            for other in parts[1:]:
                other[1]["labels"] = other[0]["labels"]
            report["labels"] = labels
            if validation is not None:
                answer_arrays["val_features"] = np.concatenate(
                    [parts[i][0]["val_features"] for i in order])
                answer_arrays["val_labels"] = np.concatenate(
                    [parts[i][0]["val_labels"] for i in order])
            answer = decide([parts[i][1] for i in order],
                            answer_arrays.get("val_labels", val_labels))
            addresses = [env.master_addr] + [address for _, address in connections]
            answer["machines"] = ",".join(f"{address}:{part[1]['port']}"
                                          for address, part in zip(addresses, parts,
                                                                   strict=True))
        except ClientError as error:
            answer = {"error": str(error)}
        for connection, _ in connections:
            send_blob(connection, _blob(answer_arrays, answer))
    finally:
        for connection, _ in connections:
            connection.close()
    if report.get("error"):
        raise ClientError(report["error"])
    if answer.get("error"):
        raise ClientError(answer["error"])
    answer.update(answer_arrays)
    return answer


class LightGBMPredictor(TabularPredictor):
    """Serves a ``model.pkl`` lightgbm Booster."""

    def __init__(self, booster: Any) -> None:
        objective = str(booster.params.get("objective", "regression"))
        super().__init__(booster.num_feature(), objective in CLASSIFICATION_OBJECTIVES)
        self.booster = booster
        self.objective = objective

    def scores(self, features: np.ndarray) -> np.ndarray:
        predictions = np.asarray(self.booster.predict(features, num_threads=1))
        if self.objective == "binary":
            return np.column_stack([1 - predictions, predictions])
        return predictions


def load_booster(model_dir: str | os.PathLike) -> Any:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ClientError(f"{model_dir} holds no {MODEL_FILE}")
    import joblib

    return joblib.load(path)


CHANNELS = tabular_channels()


class LightGBM(Algorithm):
    """SageMaker's built-in LightGBM (JumpStart script mode), trained by lightgbm."""

    name = "lightgbm"
    repositories = ("lightgbm-classification-model", "lightgbm-regression-model")
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        """SageMaker's tuning objectives (the validation metric), plus ``validation:*``."""
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

    def load(self, model_dir: str | os.PathLike) -> LightGBMPredictor:
        return LightGBMPredictor(load_booster(model_dir))
