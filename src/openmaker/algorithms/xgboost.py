"""SageMaker's built-in XGBoost (algorithm mode), on the installed xgboost (3.x).

Hyperparameters, channels, content types, metric names and inference formats follow
``reference/algorithms.md`` section 5 (the sagemaker-xgboost container, 1.7-1 ... 3.0-5).
Where xgboost 3 dropped or renamed a parameter SageMaker still documents, the value is
accepted and mapped or left out (see ``_REMOVED_IN_XGBOOST_3`` and ``xgboost_params``).

Training prints one line per round, ``[3]#011train-rmse:0.43000#011validation-rmse:0.45000``
(``#011`` is how CloudWatch shows the tab the container prints; it is printed literally so
that SageMaker's own ``#011`` regexes match our logs), saves ``xgboost-model`` (UBJSON) in
the model directory, checkpoints every round when the job has a checkpoint config, and
trains one model across hosts with xgboost's collective (rabit) when there are several.

``xgboost`` itself is imported only when training or loading, so looking the algorithm up
(for validation in the server) stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms.base import (
    TUNING_OBJECTIVE,
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
    require_one_label_column,
    validate_channels,
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "xgboost-model"
CHECKPOINT_PREFIX = "xgboost-checkpoint"
CHECKPOINTS_KEPT = 5
# How long the rabit tracker waits for every host to join (and to leave) before failing.
TRACKER_TIMEOUT_S = int(os.environ.get("OPENMAKER_XGBOOST_TRACKER_TIMEOUT", "600"))

OBJECTIVES = (
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax",
    "multi:softprob", "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear",
    "reg:squarederror", "reg:logistic", "reg:gamma", "reg:pseudohubererror",
    "reg:squaredlogerror", "reg:absoluteerror", "reg:tweedie", "survival:aft", "survival:cox",
)
MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map",
    "ndcg", "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro",
    "recall_micro",
)
MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik",
    "interval-regression-accuracy", "logloss", "mae", "mape", "merror", "mlogloss", "mphe",
    "mse", "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik",
)
# Computed here, not by xgboost (SageMaker's container adds these as a custom feval).
CLASSIFICATION_METRICS = (
    "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "precision",
    "precision_macro", "precision_micro", "recall", "recall_macro", "recall_micro",
)
REGRESSION_METRICS = ("mse", "r2")
CUSTOM_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
_THRESHOLD_METRICS = ("error", "ndcg", "map")  # error@0.7, ndcg@5, map@3 ...
_METRIC_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

GBTREE_UPDATERS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_skmaker", "sync",
                   "refresh", "prune", "grow_quantile_histmaker")
GBLINEAR_UPDATERS = ("shotgun", "coord_descent")

# SageMaker parameters xgboost 3 no longer has: accepted for compatibility, not passed on.
# sketch_eps went with the old approx sketcher (max_bin replaces it); dsplit with column
# splitting by parameter; predictor with the CPU/GPU predictor switch (device= replaced
# it); single_precision_histogram and deterministic_histogram with the old GPU hist;
# lambda_bias with gblinear's separate bias penalty; prob_buffer_row with the external
# memory buffer; use_dask_gpu_training needs GPUs, which openmaker does not run.
_REMOVED_IN_XGBOOST_3 = frozenset({
    "sketch_eps", "dsplit", "predictor", "single_precision_histogram",
    "deterministic_histogram", "lambda_bias", "prob_buffer_row", "use_dask_gpu_training",
})
# Handled by the training loop, not xgboost's params.
_LOOP_PARAMETERS = frozenset({
    "num_round", "early_stopping_rounds", "csv_weights", "eval_metric",
    "save_model_on_termination", "_kfold", "_num_cv_round",
})

CONTENT_TYPES = (
    "text/libsvm", "text/x-libsvm", "libsvm", "text/csv", "csv", "application/x-parquet",
    "parquet", "application/x-recordio-protobuf", "recordio-protobuf",
)
_LIBSVM_TYPES = ("text/libsvm", "text/x-libsvm", "libsvm")
DEFAULT_CONTENT_TYPE = "text/libsvm"


# -- hyperparameters ------------------------------------------------------------------------
def _check_metric(name: str) -> None:
    base, at, threshold = name.partition("@")
    if base not in MAXIMIZE_METRICS and base not in MINIMIZE_METRICS:
        raise ValueError(f"{base!r} is not an evaluation metric SageMaker XGBoost computes")
    if at:
        if base not in _THRESHOLD_METRICS:
            raise ValueError(f"only {', '.join(_THRESHOLD_METRICS)} take an @ threshold")
        float(threshold.rstrip("-"))  # ndcg@3- is upstream's "no positive" variant


def _check_monotone(text: str) -> None:
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise ValueError("write it as a tuple such as (1,0,-1)")
    items = [item.strip() for item in inner[1:-1].split(",") if item.strip()]
    if not items or any(item not in ("-1", "0", "1") for item in items):
        raise ValueError("each entry must be -1, 0 or 1")


def _check_interactions(text: str) -> None:
    try:
        groups = json.loads(text)
    except ValueError:
        raise ValueError("write it as a nested list such as [[0, 1], [2, 3, 4]]") from None
    if not isinstance(groups, list) or not all(
            isinstance(group, list) and all(isinstance(i, int) and i >= 0 for i in group)
            for group in groups):
        raise ValueError("it must be a list of lists of feature indices (integers >= 0)")


_POSITIVE = Interval(0, None, low_open=True)
_NON_NEGATIVE = Interval(0, None)
_UNIT = Interval(0, 1)
_OPEN_UNIT_RIGHT = Interval(0, 1, low_open=True)
_BINARY = Interval(0, 1)


def _hp(name: str, kind: str, **options: Any) -> Hyperparameter:
    return Hyperparameter(name, kind, **options)


HYPERPARAMETERS = HyperparameterSpec("xgboost", [
    _hp("num_round", "int", required=True, range=Interval(1, None),
        description="an integer >= 1"),
    _hp("num_class", "int", range=Interval(2, None)),
    _hp("early_stopping_rounds", "int", range=Interval(1, None)),
    _hp("booster", "str", default="gbtree", choices=("gbtree", "gblinear", "dart")),
    _hp("verbosity", "int", default=1, range=Interval(0, 3)),
    _hp("nthread", "int", range=Interval(1, None)),
    _hp("eta", "float", default=0.3, range=_UNIT, aliases=("learning_rate",)),
    _hp("gamma", "float", default=0, range=_NON_NEGATIVE, aliases=("min_split_loss",)),
    _hp("max_depth", "int", default=6, range=Interval(0, None)),
    _hp("min_child_weight", "float", default=1, range=_NON_NEGATIVE),
    _hp("max_delta_step", "float", default=0, range=_NON_NEGATIVE),
    _hp("subsample", "float", default=1, range=_OPEN_UNIT_RIGHT),
    _hp("sampling_method", "str", default="uniform", choices=("uniform", "gradient_based")),
    _hp("colsample_bytree", "float", default=1, range=_OPEN_UNIT_RIGHT),
    _hp("colsample_bylevel", "float", default=1, range=_OPEN_UNIT_RIGHT),
    _hp("colsample_bynode", "float", default=1, range=_OPEN_UNIT_RIGHT),
    _hp("lambda", "float", default=1, range=_NON_NEGATIVE, aliases=("reg_lambda",)),
    _hp("alpha", "float", default=0, range=_NON_NEGATIVE, aliases=("reg_alpha",)),
    _hp("tree_method", "str", default="auto",
        choices=("auto", "exact", "approx", "hist", "gpu_hist")),
    _hp("sketch_eps", "float", default=0.03, range=Interval(0, 1, True, True)),
    _hp("scale_pos_weight", "float", default=1, range=_POSITIVE),
    _hp("updater", "list", choices=GBTREE_UPDATERS + GBLINEAR_UPDATERS),
    _hp("dsplit", "str", choices=("row", "col")),
    _hp("refresh_leaf", "int", default=1, range=_BINARY),
    _hp("process_type", "str", default="default", choices=("default", "update")),
    _hp("grow_policy", "str", default="depthwise", choices=("depthwise", "lossguide")),
    _hp("max_leaves", "int", default=0, range=Interval(0, None)),
    # SageMaker documents >= 0, but xgboost needs at least 2 bins.
    _hp("max_bin", "int", default=256, range=Interval(2, None)),
    _hp("num_parallel_tree", "int", default=1, range=Interval(1, None)),
    _hp("sample_type", "str", default="uniform", choices=("uniform", "weighted")),
    _hp("normalize_type", "str", default="tree", choices=("tree", "forest")),
    _hp("rate_drop", "float", default=0.0, range=_UNIT),
    _hp("one_drop", "int", default=0, range=_BINARY),
    _hp("skip_drop", "float", default=0.0, range=_UNIT),
    _hp("lambda_bias", "float", default=0, range=_UNIT),
    _hp("tweedie_variance_power", "float", default=1.5, range=Interval(1, 2, True, True)),
    _hp("objective", "str", default="reg:squarederror", choices=OBJECTIVES),
    _hp("eval_metric", "list", check=_check_metric,
        description="a comma-separated list of " + ", ".join(MAXIMIZE_METRICS + MINIMIZE_METRICS)
        + " (error, ndcg and map also as name@threshold)"),
    _hp("base_score", "float", default=0.5, range=_NON_NEGATIVE),
    _hp("seed", "int", default=0, range=Interval(-(2 ** 31), 2 ** 31 - 1)),
    _hp("csv_weights", "int", default=0, range=_BINARY),
    _hp("save_model_on_termination", "bool", default=False),
    _hp("predictor", "str", choices=("auto", "cpu_predictor", "gpu_predictor")),
    _hp("monotone_constraints", "text", check=_check_monotone,
        description="a tuple of -1, 0 and 1 per feature, such as (1,0,-1)"),
    _hp("interaction_constraints", "text", check=_check_interactions,
        description="a nested list of feature indices, such as [[0, 1], [2, 3, 4]]"),
    _hp("single_precision_histogram", "bool", default=False),
    _hp("deterministic_histogram", "bool", default=True),
    _hp("aft_loss_distribution", "str", default="normal",
        choices=("normal", "logistic", "extreme")),
    _hp("aft_loss_distribution_scale", "float", default=1.0, range=_NON_NEGATIVE),
    _hp("use_dask_gpu_training", "bool", default=False),
    _hp("prob_buffer_row", "float", range=Interval(1, None, low_open=True)),
    _hp("_kfold", "int", range=Interval(2, None)),
    _hp("_num_cv_round", "int", range=Interval(1, None)),
])


def _objective(values: Mapping[str, Any]) -> str:
    objective = values.get("objective", "reg:squarederror")
    return "reg:squarederror" if objective == "reg:linear" else objective


def _is_classification(objective: str) -> bool:
    return objective.startswith(("binary:", "multi:"))


def _eval_metrics(values: Mapping[str, Any]) -> list[str]:
    """eval_metric plus the tuning objective's metric (last, so early stopping uses it)."""
    metrics = list(values.get("eval_metric") or [])
    tuning = values.get(TUNING_OBJECTIVE)
    if tuning:
        name = str(tuning).split(":", 1)[-1]
        if name in metrics:
            metrics.remove(name)
        metrics.append(name)
    return metrics


def check_dependencies(values: Mapping[str, Any]) -> None:
    """The cross-field rules of SageMaker's hyperparameter validation."""
    objective = _objective(values)
    if objective.startswith("multi:") and "num_class" not in values:
        raise ValidationException(
            f"HyperParameters.num_class is required for objective {objective} "
            "(an integer >= 2, the number of classes)")
    if "num_class" in values and "objective" not in values:
        raise ValidationException(
            "HyperParameters.num_class is only used with objective multi:softmax or "
            "multi:softprob; set the objective as well")
    tuning = values.get(TUNING_OBJECTIVE)
    if tuning:
        channel, _, name = str(tuning).partition(":")
        if channel not in ("validation", "train") or not name:
            raise ValidationException(
                f"HyperParameters.{TUNING_OBJECTIVE}: {tuning!r} is not an XGBoost objective "
                "metric; use validation:<metric>, such as validation:auc")
        try:
            _check_metric(name)
        except ValueError as error:
            raise ValidationException(f"HyperParameters.{TUNING_OBJECTIVE}: {error}") from None
    for metric in _eval_metrics(values):
        base = metric.partition("@")[0]
        if base in ("auc", "aucpr") and not objective.startswith(("binary:", "rank:")):
            raise ValidationException(
                f"HyperParameters.eval_metric: {base} needs a binary:* or rank:* objective, "
                f"not {objective}")
        if base in ("aft-nloglik", "interval-regression-accuracy") and objective != "survival:aft":
            raise ValidationException(
                f"HyperParameters.eval_metric: {base} needs objective survival:aft, "
                f"not {objective}")
        if base in CLASSIFICATION_METRICS and not _is_classification(objective):
            raise ValidationException(
                f"HyperParameters.eval_metric: {base} needs a binary:* or multi:* objective, "
                f"not {objective}")
        if base in ("merror", "mlogloss") and not objective.startswith("multi:"):
            raise ValidationException(
                f"HyperParameters.eval_metric: {base} needs a multi:* objective, "
                f"not {objective}")
    booster = values.get("booster", "gbtree")
    for updater in values.get("updater") or []:
        allowed = GBLINEAR_UPDATERS if booster == "gblinear" else GBTREE_UPDATERS
        if updater not in allowed:
            raise ValidationException(
                f"HyperParameters.updater: {updater!r} is not an updater of booster {booster}; "
                f"use {', '.join(allowed)}")
    if values.get("grow_policy") == "lossguide" and values.get("tree_method") == "exact":
        raise ValidationException(
            "HyperParameters.grow_policy: lossguide needs tree_method hist, approx or auto, "
            "not exact")
    for name in ("_kfold", "_num_cv_round"):
        if name in values:
            raise ValidationException(
                f"HyperParameters.{name}: SageMaker's internal k-fold cross-validation is not "
                "supported by openmaker's xgboost; train without it")


def xgboost_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``xgboost.train`` params for validated SageMaker hyperparameters: only what the
    job set (xgboost's defaults match SageMaker's), renamed where xgboost 3 renamed it."""
    params: dict[str, Any] = {}
    objective = _objective(values)
    for name, value in values.items():
        if (name in _REMOVED_IN_XGBOOST_3 or name in _LOOP_PARAMETERS
                or name.startswith("sagemaker_") or name == TUNING_OBJECTIVE):
            continue
        params[name] = value
    if "objective" in values:
        params["objective"] = objective  # reg:linear was removed; reg:squarederror is it
    if not objective.startswith("multi:"):
        params.pop("num_class", None)
    if objective != "reg:tweedie":
        params.pop("tweedie_variance_power", None)
    if params.get("tree_method") == "gpu_hist":
        # xgboost 2 folded gpu_hist into hist + device=cuda; openmaker trains on CPUs.
        params["tree_method"] = "hist"
    if "updater" in params:
        # distcol and grow_skmaker are gone from xgboost; grow_histmaker is the sketch updater.
        kept = []
        for updater in params["updater"]:
            updater = "grow_histmaker" if updater == "grow_skmaker" else updater
            if updater != "distcol" and updater not in kept:
                kept.append(updater)
        params["updater"] = ",".join(kept)
    native = [m for m in _eval_metrics(values) if m.partition("@")[0] not in CUSTOM_METRICS]
    if native:
        params["eval_metric"] = native
    if "save_model_on_termination" in params:
        del params["save_model_on_termination"]
    return params


# -- metrics ---------------------------------------------------------------------------------
def _metric_regex(channel: str, metric: str) -> str:
    name = re.escape(metric)
    if metric == "tweedie-nloglik":
        name += r"(?:@[0-9.]+)?"  # xgboost names it tweedie-nloglik@<variance power>
    return rf".*\[[0-9]+\].*#011{channel}-{name}:{_METRIC_VALUE}"


METRICS = [
    MetricDefinition(f"{channel}:{metric}", _metric_regex(channel, metric),
                     "Maximize" if metric in MAXIMIZE_METRICS else "Minimize")
    for channel in ("train", "validation")
    for metric in MAXIMIZE_METRICS + MINIMIZE_METRICS
]


def _confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(labels * classes + predicted,
                       minlength=classes * classes).reshape(classes, classes).astype(np.float64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        0.0)


def classification_metric(name: str, confusion: np.ndarray) -> float:
    """One of SageMaker's classification metrics from a confusion matrix (rows: true
    class, columns: predicted), with scikit-learn's definitions."""
    total = confusion.sum()
    true_positive = np.diag(confusion)
    actual = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, actual)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = (actual + predicted) > 0
    binary = confusion.shape[0] == 2
    if name == "accuracy" or name in ("precision_micro", "recall_micro"):
        return float(true_positive.sum() / total) if total else 0.0
    if name == "balanced_accuracy":
        return float(recall[actual > 0].mean()) if (actual > 0).any() else 0.0
    if name in ("f1_binary",) or (binary and name in ("f1", "precision", "recall")):
        return float({"f1": f1, "f1_binary": f1, "precision": precision,
                      "recall": recall}[name][1])
    per_class = {"f1": f1, "f1_macro": f1, "precision": precision,
                 "precision_macro": precision, "recall": recall, "recall_macro": recall}[name]
    return float(per_class[present].mean()) if present.any() else 0.0


class _CustomMetrics:
    """SageMaker's container-computed eval metrics as an xgboost ``custom_metric``; the
    statistics are summed across hosts so every host sees the same value (and stops early
    at the same round)."""

    def __init__(self, names: list[str], objective: str, num_class: int | None,
                 distributed: bool) -> None:
        self.names = names
        self.objective = objective
        self.classes = num_class if objective.startswith("multi:") else 2
        self.distributed = distributed

    def _predicted_labels(self, predictions: np.ndarray) -> np.ndarray:
        if predictions.ndim == 2:
            return predictions.argmax(axis=1)
        if self.objective == "binary:logitraw":
            return (predictions > 0).astype(np.int64)
        if self.objective == "binary:logistic":
            return (predictions > 0.5).astype(np.int64)
        return np.rint(predictions).astype(np.int64)

    def _allreduce(self, values: np.ndarray) -> np.ndarray:
        if not self.distributed:
            return values
        from xgboost import collective

        return collective.allreduce(values, collective.Op.SUM).reshape(values.shape)

    def __call__(self, predictions: np.ndarray, dmatrix: Any) -> list[tuple[str, float]]:
        labels = dmatrix.get_label()
        results = []
        if any(name in CLASSIFICATION_METRICS for name in self.names):
            classes = int(self.classes or 2)
            predicted = np.clip(self._predicted_labels(predictions), 0, classes - 1)
            truth = np.clip(np.rint(labels).astype(np.int64), 0, classes - 1)
            confusion = self._allreduce(_confusion(truth, predicted, classes))
        if any(name in REGRESSION_METRICS for name in self.names):
            scores = predictions.reshape(len(labels), -1)[:, 0].astype(np.float64)
            y = labels.astype(np.float64)
            sums = self._allreduce(np.array([len(y), ((scores - y) ** 2).sum(), y.sum(),
                                             (y ** 2).sum()]))
        for name in self.names:
            if name in CLASSIFICATION_METRICS:
                results.append((name, classification_metric(name, confusion)))
            elif name == "mse":
                results.append((name, float(sums[1] / sums[0]) if sums[0] else 0.0))
            else:  # r2
                total = sums[3] - sums[2] ** 2 / sums[0] if sums[0] else 0.0
                results.append((name, float(1 - sums[1] / total) if total > 0 else 0.0))
        return results


# -- labels ----------------------------------------------------------------------------------
def check_labels(labels: np.ndarray, objective: str, num_class: int | None,
                 channel: str) -> None:
    """ClientError naming the first record whose label the objective cannot take."""
    def fail(mask: np.ndarray, rule: str) -> None:
        row = int(np.flatnonzero(mask)[0])
        raise ClientError(
            f"channel {channel!r}, record {row + 1}: label {labels[row]:g} is not valid for "
            f"objective {objective} ({rule})")

    missing = ~np.isfinite(labels)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: the label is missing or not "
                          "a finite number; every record needs a label in its first column")
    if objective in ("binary:logistic", "binary:logitraw", "binary:hinge", "reg:logistic"):
        bad = (labels < 0) | (labels > 1)
        if bad.any():
            fail(bad, "labels must be in [0, 1]")
    elif objective.startswith("multi:"):
        bad = (labels < 0) | (labels >= (num_class or 0)) | (labels != np.floor(labels))
        if bad.any():
            fail(bad, f"labels must be integers in [0, {num_class}), num_class={num_class}")
    elif objective in ("count:poisson", "reg:tweedie"):
        bad = labels < 0
        if bad.any():
            fail(bad, "labels must be >= 0")
    elif objective == "reg:gamma":
        bad = labels <= 0
        if bad.any():
            fail(bad, "labels must be > 0")
    elif objective == "reg:squaredlogerror":
        bad = labels <= -1
        if bad.any():
            fail(bad, "labels must be > -1")


# -- callbacks -------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (temp file, then rename). No fsync: the platform
    copies models and checkpoints to the object store, which is where they become durable;
    an instance that dies before that is a failed (or, for spot, restarted) job anyway."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"{re.escape(CHECKPOINT_PREFIX)}\.([0-9]+)")
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: Path) -> tuple[bytes, int] | None:
    """(model bytes, rounds done) of the newest checkpoint that loads, or None."""
    import xgboost

    for iteration, path in reversed(_checkpoints(directory)):
        data = path.read_bytes()
        try:
            xgboost.Booster().load_model(bytearray(data))
        except xgboost.core.XGBoostError:
            print(f"Skipping unreadable checkpoint {path.name}", file=sys.stderr)
            continue
        return data, iteration + 1
    return None


def _callbacks(start: int, checkpoint_dir: Path | None, is_master: bool,
               stop_requested: list[bool]) -> list[Any]:
    import xgboost

    class SageMakerEvaluationPrinter(xgboost.callback.TrainingCallback):
        """``[round]#011train-<m>:<v>#011validation-<m>:<v>`` per round."""

        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            parts = [f"[{start + epoch}]"]
            for data_name, metrics in evals_log.items():
                for metric, history in metrics.items():
                    value = history[-1]
                    value = value[0] if isinstance(value, tuple) else value
                    parts.append(f"#011{data_name}-{metric}:{value:.5f}")
            print("".join(parts), flush=True)
            return stop_requested[0]

    class Checkpointer(xgboost.callback.TrainingCallback):
        """``xgboost-checkpoint.<round>`` after every round, the last few kept."""

        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            assert checkpoint_dir is not None
            iteration = start + epoch
            _write_atomic(checkpoint_dir / f"{CHECKPOINT_PREFIX}.{iteration}",
                          bytes(model.save_raw(raw_format="ubj")))
            for old, path in _checkpoints(checkpoint_dir):
                if old <= iteration - CHECKPOINTS_KEPT:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            return False

    callbacks: list[Any] = [SageMakerEvaluationPrinter()]
    if checkpoint_dir is not None and is_master:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        callbacks.append(Checkpointer())
    return callbacks


# -- distribution ----------------------------------------------------------------------------
@contextlib.contextmanager
def _communicator(env: TrainingEnvironment) -> Iterator[bool]:
    """Join the hosts' collective (the first host also runs the tracker); yields whether
    training is distributed."""
    hosts = env.hosts
    if len(hosts) == 1:
        yield False
        return
    if not env.master_addr or not env.master_port:
        raise AlgorithmError(f"distributed training over {len(hosts)} hosts needs MASTER_ADDR "
                             "and MASTER_PORT in the environment")
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    tracker = None
    if env.is_master:
        tracker = RabitTracker(n_workers=len(hosts), host_ip=env.master_addr,
                               port=env.master_port, sortby="task", timeout=TRACKER_TIMEOUT_S)
        tracker.start()
    collective.init(dmlc_communicator="rabit", dmlc_tracker_uri=env.master_addr,
                    dmlc_tracker_port=env.master_port, dmlc_task_id=env.current_host,
                    dmlc_retry=6, dmlc_timeout=TRACKER_TIMEOUT_S)
    # Not a try/finally: after a failure the tracker may be gone, and finalize() would
    # retry reaching it for minutes; the process exits right after anyway.
    yield True
    collective.finalize()
    if tracker is not None:
        tracker.wait_for(TRACKER_TIMEOUT_S)
        tracker.free()


def _agree(distributed: bool, error: str | None, hosts: list[str]) -> str | None:
    """Every host learns the first host's error (by rank), so all stop together."""
    if not distributed:
        return error
    from xgboost import collective

    rank, world = collective.get_rank(), collective.get_world_size()
    first = int(collective.allreduce(np.array([rank if error else world], dtype=np.int32),
                                     collective.Op.MIN)[0])
    if first == world:
        return None
    message = collective.broadcast(error if rank == first else None, first)
    return message if rank == first else f"{hosts[first]}: {message}"


def _share(distributed: bool, value: Any) -> Any:
    """The master's ``value`` on every host."""
    if not distributed:
        return value
    from xgboost import collective

    return collective.broadcast(value if collective.get_rank() == 0 else None, 0)


# -- training --------------------------------------------------------------------------------
def _data_format(env: TrainingEnvironment, channel: str) -> str:
    from openmaker.formats.content_types import parse_content_type

    return parse_content_type(env.content_type(channel) or DEFAULT_CONTENT_TYPE).format


def _model_channel_bytes(env: TrainingEnvironment) -> bytes:
    """The booster in the ``model`` channel: a ``model.tar.gz`` from an earlier job, or
    the model file itself."""
    from openmaker.algorithms._data import data_files

    files = data_files(env.channel_dir("model")) if "model" in env.input_data_config else []
    if not files:
        raise ClientError("the model channel is empty: give it the model.tar.gz of an "
                          "earlier XGBoost job (or its xgboost-model file)")
    path = next((f for f in files if f.name == MODEL_FILE), files[0])
    data = path.read_bytes()
    with contextlib.suppress(tarfile.TarError, OSError, EOFError):
        import io

        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            member = next((m for m in members if Path(m.name).name == MODEL_FILE),
                          members[0] if len(members) == 1 else None)
            if member is None:
                raise ClientError(f"the model channel's {path.name} holds no {MODEL_FILE}")
            extracted = archive.extractfile(member)
            assert extracted is not None
            data = extracted.read()
    import xgboost

    try:
        xgboost.Booster().load_model(bytearray(data))
    except xgboost.core.XGBoostError:
        raise ClientError(f"the model channel's {path.name} is not an XGBoost model this "
                          "version can load (UBJSON/JSON; pickled models are not read)") from None
    return data


def _dmatrix(dataset: Any, objective: str, nthread: int | None, width: int | None = None
             ) -> Any:
    import xgboost

    features = dataset.features
    if width is not None and features.shape[1] != width:
        if dataset.is_sparse and features.shape[1] < width:
            features = features.copy()
            features.resize((features.shape[0], width))
        else:
            raise ClientError(f"the validation data has {features.shape[1]} features, the "
                              f"training data {width}; they must have the same columns")
    matrix = xgboost.DMatrix(features, label=dataset.labels, weight=dataset.weights,
                             qid=dataset.qid, missing=np.nan, nthread=nthread or -1)
    if objective == "survival:aft":
        # Single labels mean exact (uncensored) survival times.
        matrix.set_float_info("label_lower_bound", dataset.labels)
        matrix.set_float_info("label_upper_bound", dataset.labels)
    return matrix


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``: write ``xgboost-model`` to the model directory."""
    try:
        values = HYPERPARAMETERS.parse(env.hyperparameters)
        check_dependencies(values)
        validate_xgboost_channels(
            [{"ChannelName": name, "ContentType": config.get("ContentType"),
              "InputMode": config.get("TrainingInputMode", "File")}
             for name, config in env.input_data_config.items()], "File")
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError("InputDataConfig: xgboost needs a 'train' channel")
    objective = _objective(values)
    num_class = values.get("num_class")
    has_validation = "validation" in env.input_data_config
    if "early_stopping_rounds" in values and not has_validation:
        raise ClientError("HyperParameters.early_stopping_rounds needs a 'validation' channel "
                          "to watch; add one or remove early_stopping_rounds")
    params = xgboost_params(values)
    metrics = _eval_metrics(values)
    custom = [m for m in metrics if m in CUSTOM_METRICS]
    num_round = values["num_round"]
    stop_requested = [False]
    if values.get("save_model_on_termination"):
        def request_stop(signum: int, frame: Any) -> None:
            stop_requested[0] = True

        signal.signal(signal.SIGTERM, request_stop)

    import xgboost

    with _communicator(env) as distributed:
        error = None
        try:
            train_data = _load(env, "train", objective, num_class, values)
            validation_data = (_load(env, "validation", objective, num_class, values)
                               if has_validation else None)
            start_model: bytes | None = None
            start = 0
            if env.is_master:
                found = latest_checkpoint(env.checkpoint_dir) if env.checkpoint_dir else None
                if found is not None:
                    start_model, start = found
                    print(f"Resuming from checkpoint: {start} of {num_round} rounds done",
                          flush=True)
                elif "model" in env.input_data_config:
                    start_model = _model_channel_bytes(env)
                    print("Warm start from the model channel", flush=True)
        except ClientError as failure:
            error = str(failure)
        error = _agree(distributed, error, env.hosts)
        if error is not None:
            raise ClientError(error)
        start_model, start = _share(distributed, (start_model, start))

        if distributed:
            # Hosts whose shard is empty still take part; they need the feature count.
            from xgboost import collective

            rows, width = (int(v) for v in collective.allreduce(
                np.array([train_data.rows, train_data.columns], dtype=np.int64),
                collective.Op.MAX))
            if rows == 0:
                raise ClientError("channel 'train' has no data on any host: no records were "
                                  "found in any shard")
            if train_data.rows == 0:
                print(f"{env.current_host} has no training data in its shard; it takes part "
                      "without rows", flush=True)
            for dataset in (train_data, validation_data):
                if dataset is not None and dataset.rows == 0:
                    dataset.features = np.zeros((0, width), dtype=np.float32)
        nthread = values.get("nthread")
        dtrain = _dmatrix(train_data, objective, nthread)
        evals = [(dtrain, "train")]
        if validation_data is not None:
            evals.append((_dmatrix(validation_data, objective, nthread,
                                   width=dtrain.num_col()), "validation"))
        callbacks = _callbacks(start, env.checkpoint_dir, env.is_master, stop_requested)
        if "early_stopping_rounds" in values:
            last = metrics[-1] if metrics else None
            callbacks.append(xgboost.callback.EarlyStopping(
                rounds=values["early_stopping_rounds"], metric_name=last,
                data_name="validation",
                maximize=None if last is None else last.partition("@")[0] in MAXIMIZE_METRICS,
                save_best=False))
        booster = None
        if start_model is not None:
            booster = xgboost.Booster(params)
            booster.load_model(bytearray(start_model))
        rounds = max(num_round - start, 0)
        try:
            booster = xgboost.train(
                params, dtrain, num_boost_round=rounds, evals=evals, verbose_eval=False,
                xgb_model=booster, callbacks=callbacks,
                custom_metric=(_CustomMetrics(custom, objective, num_class, distributed)
                               if custom else None))
        except xgboost.core.XGBoostError as failure:
            raise AlgorithmError(f"xgboost failed: {_first_line(str(failure))}") from None
        if env.is_master:
            env.model_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(env.model_dir / MODEL_FILE, bytes(booster.save_raw(raw_format="ubj")))


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # xgboost errors start with "[time] path:line: message" followed by a stack trace.
    head = lines[0] if lines else text
    return re.sub(r"^\[[0-9:]+\] \S+: ", "", head)


def _load(env: TrainingEnvironment, channel: str, objective: str, num_class: int | None,
          values: Mapping[str, Any]) -> Any:
    from openmaker.algorithms._data import read_channel

    data_format = _data_format(env, channel)
    dataset = read_channel(env, channel, data_format,
                           csv_weights=bool(values.get("csv_weights")),
                           require_rows=len(env.hosts) == 1)
    if dataset is None:  # a host whose shard is empty (more hosts than files)
        from openmaker.algorithms._data import Dataset

        return Dataset(np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.float32))
    if dataset.columns == 0:
        raise ClientError(f"channel {channel!r} has labels but no feature columns")
    assert dataset.labels is not None
    check_labels(dataset.labels, objective, num_class, channel)
    if dataset.weights is not None and ((dataset.weights < 0)
                                        | ~np.isfinite(dataset.weights)).any():
        row = int(np.flatnonzero((dataset.weights < 0) | ~np.isfinite(dataset.weights))[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: instance weight "
                          f"{dataset.weights[row]:g} is not valid (weights must be >= 0)")
    return dataset


# -- channels --------------------------------------------------------------------------------
CHANNELS = (
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE,
                      mode_limits={t: ("File", "FastFile") for t in _LIBSVM_TYPES}),
    ChannelDefinition("validation", content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE,
                      mode_limits={t: ("File", "FastFile") for t in _LIBSVM_TYPES}),
    ChannelDefinition("model", input_modes=("File", "FastFile")),
)


def validate_xgboost_channels(channels: Iterable[Mapping[str, Any]], input_mode: str) -> None:
    channels = list(channels)
    validate_channels("xgboost", CHANNELS, channels, input_mode)
    require_one_label_column("xgboost", channels, skip=("model",))


# -- inference -------------------------------------------------------------------------------
_ACCEPTS = ("text/csv", "application/json", "application/jsonlines",
            "application/x-recordio-protobuf")
_REQUEST_TYPES = ("text/csv", "text/libsvm", "text/x-libsvm", "application/x-recordio-protobuf",
                  "application/json", "application/jsonlines")
_OUTPUT_KEYS = ("predicted_label", "labels", "probability", "probabilities", "raw_score",
                "raw_scores", "predicted_score")
_CLASS_KEYS = ("predicted_label", "labels", "raw_score", "raw_scores")


def _allowed_keys(objective: str) -> tuple[str, ...]:
    if objective in ("binary:logistic", "multi:softprob"):
        return _CLASS_KEYS + ("probability", "probabilities")
    if objective in ("binary:logitraw", "binary:hinge", "multi:softmax"):
        return _CLASS_KEYS
    return ("predicted_score",)


# Requests of up to this many rows are predicted on one thread (xgboost's thread pool costs
# more than it saves on a few rows); larger ones on every core.
SMALL_REQUEST_ROWS = 64
# CSV bodies up to this size are split in Python rather than by the general CSV reader.
SMALL_CSV_BYTES = 64 * 1024


def _small_csv(body: bytes) -> np.ndarray | None:
    """A small comma-separated body of numbers as a float32 matrix, split directly (about
    10 us for a 50-feature row against about 100 us through pyarrow); None when it is not
    plainly that -- another delimiter, quotes, empty cells, ragged rows, anything float()
    rejects -- so the general reader handles it and reports its errors."""
    if len(body) > SMALL_CSV_BYTES or b'"' in body or b"_" in body:
        return None
    lines = [line for line in body.split(b"\n") if line.strip()]
    if not lines or b"," not in lines[0]:
        return None  # one column, or a tab/semicolon/pipe delimiter: the general reader
    rows = [line.split(b",") for line in lines]
    width = len(rows[0])
    if any(len(row) != width for row in rows):
        return None
    try:
        return np.array([[float(cell) for cell in row] for row in rows], dtype=np.float32)
    except ValueError:
        return None


def _short(value: float) -> float:
    """A float32 result as the shortest float that reads back to it (0.43, not 0.4300000071)."""
    return float(str(np.float32(value)))


def _csv_scores(predictions: np.ndarray) -> bytes:
    """One score per line, exactly as the per-record path writes them (``str`` of
    :func:`_short`), formatted by pyarrow's vectorised float-to-string cast: 1M scores in
    about 0.15 s against 2 s one by one (batch transform sends whole files). The cast
    writes some values differently from Python's ``repr`` -- integers without ``.0``,
    exponents below 1e-4 and from 1e15 on -- so those go through :func:`_short`."""
    import pyarrow as pa

    scores = np.ascontiguousarray(predictions, dtype=np.float32)
    texts = pa.array(scores).cast(pa.string()).to_pylist()
    magnitude = np.abs(scores)
    with np.errstate(invalid="ignore"):
        different = ~((magnitude >= 1e-4) & (magnitude < 1e15)) | (scores == np.trunc(scores))
    for index in np.flatnonzero(different & np.isfinite(scores)):
        texts[index] = str(_short(scores[index]))
    return ("\n".join(texts) + "\n").encode()


class XGBoostPredictor(Predictor):
    """Serves an ``xgboost-model``: CSV, LibSVM, RecordIO-protobuf, JSON and JSON Lines in;
    CSV, JSON, JSON Lines and RecordIO-protobuf out, as SageMaker's container answers."""

    content_types = _REQUEST_TYPES
    accepts = _ACCEPTS

    def __init__(self, booster: Any, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.booster = booster
        config = json.loads(booster.save_config())
        learner = config["learner"]
        self.objective = learner["objective"]["name"]
        self.num_class = int(learner["learner_model_param"].get("num_class", 0) or 0)
        self.num_features = booster.num_features()
        # Small requests on one thread; large ones on a copy with xgboost's default (every
        # core), made on the first large request.
        booster.set_param({"nthread": 1})
        self._batch_booster: Any = None
        best = booster.attr("best_iteration")
        self.iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
        self.default_accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "text/csv"
        selected = environ.get("SAGEMAKER_INFERENCE_OUTPUT", "")
        self.output_keys = [key.strip() for key in selected.split(",") if key.strip()]
        allowed = _allowed_keys(self.objective)
        for key in self.output_keys:
            if key not in allowed:
                raise ValueError(f"SAGEMAKER_INFERENCE_OUTPUT: {key!r} is not available for "
                                 f"objective {self.objective}; use {', '.join(allowed)}")

    # request decoding
    def _features(self, body: bytes, content_type: str) -> Any:
        media = (content_type or "text/csv").split(";", 1)[0].strip().lower()
        try:
            if media == "text/csv":
                small = _small_csv(body)
                if small is not None:
                    return self._dense(small, "CSV")
                from openmaker.algorithms._data import sniff_delimiter
                from openmaker.formats.csv import read_csv

                features, _ = read_csv(body, label_size=0, delimiter=sniff_delimiter(body[:4096]),
                                       dtype=np.float32)
                return self._dense(features, "CSV")
            if media in ("text/libsvm", "text/x-libsvm"):
                return self._sparse(self._libsvm(body))
            if media == "application/x-recordio-protobuf":
                from openmaker.formats.recordio_protobuf import read_recordio_protobuf

                features, _ = read_recordio_protobuf(body)
                return (self._dense(features.astype(np.float32), "RecordIO-protobuf")
                        if isinstance(features, np.ndarray) else self._sparse(features))
            if media in ("application/json", "application/jsonlines"):
                from openmaker.formats.jsonlines import (
                    read_json_instances,
                    read_jsonlines_instances,
                )

                read = read_json_instances if media == "application/json" else \
                    read_jsonlines_instances
                features = read(body)
                return (self._dense(features, "JSON") if isinstance(features, np.ndarray)
                        else self._sparse(features))
        except InferenceError:
            raise
        except (ValueError, TypeError) as error:
            raise UnsupportedContentType(f"the request is not valid {media}: {error}") from None
        raise UnsupportedContentType(f"content type {content_type!r} is not supported; use "
                                     f"{', '.join(_REQUEST_TYPES)}")

    def _libsvm(self, body: bytes) -> Any:
        from openmaker.formats.libsvm import read_libsvm

        lines = []
        for line in body.split(b"\n"):
            tokens = line.split(b"#", 1)[0].split()
            if tokens and b":" in tokens[0]:
                line = b"0 " + line  # labels are optional at inference
            lines.append(line)
        features, _ = read_libsvm(b"\n".join(lines), zero_based=True, dtype=np.float32)
        return features

    def _dense(self, features: np.ndarray, what: str) -> np.ndarray:
        if features.shape[0] and features.shape[1] != self.num_features:
            raise InferenceError(f"the {what} rows have {features.shape[1]} features; the model "
                                 f"was trained on {self.num_features}")
        return features

    def _sparse(self, features: Any) -> Any:
        if features.shape[1] > self.num_features:
            raise InferenceError(f"the request has feature index {features.shape[1] - 1}; the "
                                 f"model was trained on {self.num_features} features")
        features = features.tocsr().astype(np.float32)
        features.resize((features.shape[0], self.num_features))
        return features

    def _accept(self, accept: str | None) -> str:
        return negotiate_accept(accept, _ACCEPTS, self.default_accept)

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        import xgboost

        accept_type = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        try:
            predictions, margins = self._predict(features)
        except xgboost.core.XGBoostError as error:
            raise InferenceError(f"prediction failed: {_first_line(str(error))}") from None
        if accept_type == "text/csv" and not self.output_keys and predictions.ndim == 1:
            return _csv_scores(predictions), accept_type
        records = (self._selected(predictions, margins) if self.output_keys
                   else [{"score": self._score(row)} for row in predictions])
        return self._encode(records, predictions, accept_type), accept_type

    def _predict(self, features: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (and, for multi:softmax with selected outputs, the margins):
        ``inplace_predict`` (no DMatrix) on the one-thread booster for small requests, on
        the every-core copy for large ones; boosters inplace_predict cannot serve go
        through a DMatrix."""
        import xgboost

        booster = self.booster
        if features.shape[0] > SMALL_REQUEST_ROWS:
            if self._batch_booster is None:
                batch = booster.copy()
                batch.set_param({"nthread": 0})  # xgboost's default: every core
                self._batch_booster = batch
            booster = self._batch_booster
        want_margins = bool(self.output_keys) and self.objective == "multi:softmax"
        try:
            predictions = booster.inplace_predict(
                features, iteration_range=self.iteration_range, missing=np.nan,
                validate_features=False)
            margins = booster.inplace_predict(
                features, iteration_range=self.iteration_range, missing=np.nan,
                predict_type="margin", validate_features=False) if want_margins else None
            return predictions, margins
        except xgboost.core.XGBoostError:
            pass  # e.g. gblinear: the DMatrix path below
        matrix = xgboost.DMatrix(features, missing=np.nan)
        predictions = booster.predict(matrix, validate_features=False,
                                      iteration_range=self.iteration_range)
        margins = booster.predict(matrix, output_margin=True, validate_features=False,
                                  iteration_range=self.iteration_range) if want_margins else None
        return predictions, margins

    @staticmethod
    def _score(row: Any) -> Any:
        if np.ndim(row):
            return [_short(v) for v in row]
        return _short(row)

    def _selected(self, predictions: np.ndarray, margins: np.ndarray | None
                  ) -> list[dict[str, Any]]:
        records = []
        objective = self.objective
        classes = list(range(self.num_class)) if objective.startswith("multi:") else [0, 1]
        for index, row in enumerate(predictions):
            record: dict[str, Any] = {}
            if objective == "multi:softprob":
                probabilities = [_short(v) for v in row]
                label = int(np.argmax(row))
                raw, raw_all = probabilities[label], probabilities
            elif objective == "multi:softmax":
                label = int(row)
                raw_all = [_short(v) for v in margins[index]] if margins is not None else []
                raw = raw_all[label] if raw_all else _short(row)
                probabilities = []
            elif objective.startswith("binary:"):
                score = _short(row)
                label = (int(score > 0) if objective == "binary:logitraw"
                         else int(score > 0.5) if objective == "binary:logistic" else int(score))
                raw, raw_all = score, [_short(1 - score), score]
                probabilities = [_short(1 - score), score]
            else:
                record["predicted_score"] = _short(row)
                records.append({k: record[k] for k in self.output_keys})
                continue
            record.update(predicted_label=label, labels=classes, raw_score=raw,
                          raw_scores=raw_all)
            if probabilities:
                record["probability"] = max(probabilities) if objective.startswith("multi:") \
                    else probabilities[1]
                record["probabilities"] = probabilities
            records.append({key: record[key] for key in self.output_keys})
        return records

    def _encode(self, records: list[dict[str, Any]], predictions: np.ndarray,
                accept: str) -> bytes:
        if accept == "application/json":
            return json.dumps({"predictions": records}).encode()
        if accept == "application/jsonlines":
            return "".join(json.dumps(record) + "\n" for record in records).encode()
        if accept == "application/x-recordio-protobuf":
            import io

            from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

            buffer = io.BytesIO()
            write_records(buffer, (
                Record(features={}, label={
                    key: Tensor(np.asarray(value if isinstance(value, list) else [value],
                                           dtype=np.float32))
                    for key, value in record.items()})
                for record in records))
            return buffer.getvalue()
        lines = []
        for record in records:
            cells = []
            for value in record.values():
                if isinstance(value, list) and not self.output_keys:
                    cells.extend(str(v) for v in value)  # multi:softprob: one row per record
                elif isinstance(value, list):
                    cells.append('"' + json.dumps(value) + '"')
                else:
                    cells.append(str(value))
            lines.append(",".join(cells))
        return ("\n".join(lines) + "\n").encode()


def _import_xgboost_for_serving() -> None:
    """Import xgboost without scikit-learn: xgboost imports it when it is installed (about
    0.7 s, most of a model server's start) only for its scikit-learn wrappers, which the
    predictor never uses. A model server or transform job starts that much sooner."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment] - makes "import sklearn" fail
    try:
        import xgboost  # noqa: F401
    finally:
        if sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]


def load_booster(model_dir: str | os.PathLike) -> Any:
    """The booster in ``model_dir`` (``xgboost-model``, else its only file)."""
    import xgboost

    directory = Path(model_dir)
    path = directory / MODEL_FILE
    if not path.is_file():
        files = [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []
        if len(files) != 1:
            raise ClientError(f"{directory} holds no {MODEL_FILE}")
        path = files[0]
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(path.read_bytes()))
    except xgboost.core.XGBoostError:
        raise ClientError(f"{path.name} is not an XGBoost model this version can load "
                          "(UBJSON or JSON)") from None
    return booster


class XGBoost(Algorithm):
    """SageMaker's built-in XGBoost."""

    name = "xgboost"
    repositories = ("sagemaker-xgboost", "xgboost")
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        """The tuning objectives SageMaker lists: ``validation:<metric>``."""
        return {m.name: m.direction for m in self.metrics if m.name.startswith("validation:")}

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values = HYPERPARAMETERS.parse(raw)
        check_dependencies(values)
        return values

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        validate_xgboost_channels(channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> XGBoostPredictor:
        _import_xgboost_for_serving()
        return XGBoostPredictor(load_booster(model_dir))
