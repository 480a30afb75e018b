"""SageMaker's built-in Linear Learner (``linear-learner:1``), on torch.

Hyperparameters, channels, metric names and inference formats follow
``reference/algorithms.md`` section 4. Training reads the ``train`` channel (this host's
shard), z-scores features (and, for regressors, the label) from the first
``num_point_for_scaler`` rows, and trains ``num_models`` linear models at once: the
weights are one tensor of shape ``(num_models, features, outputs)`` and every mini-batch
updates all of them with one batched matrix product, each with its own learning rate, L2
(``wd``) and L1 where those are ``auto``. Gradients are written out by hand (the models are
linear), so no autograd graph is built. After each epoch the models are scored on the
``validation`` channel (else on the training data); early stopping watches the best
model. The model kept is the best one by ``binary_classifier_model_selection_criteria``
(classifiers' threshold calibrated on the same data) or by the loss. Several hosts average
their models after every epoch over ``torch.distributed`` (gloo).

The model directory holds ``model_algo-1``: a zip with ``additional-params.json``
(predictor type, loss, threshold, shapes) and the weights and bias, in the raw feature
space (the scaling is folded in), as ``.npy`` files.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms._cluster import HostGroup
from openmaker.algorithms._data import read_request_features
from openmaker.algorithms.base import (
    TUNING_OBJECTIVE,
    Algorithm,
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
    media_parameters,
    negotiate_accept,
    require_one_label_column,
    validate_channels,
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "model_algo-1"
SEED = 17  # SageMaker's Linear Learner has no seed hyperparameter; a fixed one repeats jobs
SYNC_TIMEOUT_S = int(os.environ.get("OPENMAKER_LINEAR_LEARNER_SYNC_TIMEOUT", "600"))
# UNVERIFIED: SageMaker's num_models=auto (32 is what its CPU logs show in examples).
AUTO_NUM_MODELS = 32
CONTENT_TYPES = ("text/csv", "application/x-recordio-protobuf")
DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"  # what record_set() sends
PREDICTOR_TYPES = ("binary_classifier", "multiclass_classifier", "regressor")
REGRESSION_LOSSES = ("squared_loss", "absolute_loss", "eps_insensitive_squared_loss",
                     "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss")
LOSSES = ("auto", "logistic", "hinge_loss", "softmax_loss", *REGRESSION_LOSSES)
LEGAL_LOSSES = {
    "regressor": ("auto", *REGRESSION_LOSSES),
    "binary_classifier": ("auto", "logistic", "hinge_loss"),
    # UNVERIFIED: whether multiclass also takes hinge_loss (the reference is unsure)
    "multiclass_classifier": ("auto", "softmax_loss", "hinge_loss"),
}
CRITERIA = ("accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision",
            "loss_function", "f1", "cross_entropy_loss")
OPTIMIZERS = ("auto", "sgd", "adam", "rmsprop")
# defaults for "auto" (UNVERIFIED: SageMaker's own auto values are not documented)
AUTO_LEARNING_RATE = {"adam": 0.01, "rmsprop": 0.01, "sgd": 0.1}
AUTO_LR_STEP = 100
AUTO_LR_FACTOR = 0.99
AUTO_LR_MINIMUM = 1e-5


def _auto_or(kind: type, interval: Interval, extra: tuple[str, ...] = ()) -> Any:
    def check(text: str) -> Any:
        if text.lower() in ("auto", *extra):
            return text.lower()
        value = float(text)
        if not math.isfinite(value) or value not in interval:
            raise ValueError
        if kind is int:
            if not value.is_integer():
                raise ValueError
            return int(value)
        return value
    return check


def _auto_parameter(name: str, kind: type, interval: Interval, extra: tuple[str, ...] = (),
                    default: Any = "auto") -> Hyperparameter:
    number = "an integer" if kind is int else "a number"
    words = " or ".join(f"'{word}'" for word in ("auto", *extra))
    return Hyperparameter(name, "text", default=default, check=_auto_or(kind, interval, extra),
                          description=f"{words}, or {number} in {interval}")


_POSITIVE = Interval(0, None, low_open=True)
_NON_NEGATIVE = Interval(0, None)
_POSITIVE_INT = Interval(1, None)
_UNIT_OPEN = Interval(0, 1, low_open=True, high_open=True)
_UNIT_RIGHT_OPEN = Interval(0, 1, high_open=True)
_AUTO_BOOL = ("auto", "true", "false")


def _tri_state(name: str, default: str) -> Hyperparameter:
    def check(text: str) -> str:
        lowered = text.lower()
        if lowered in ("1", "yes", "t", "y"):
            return "true"
        if lowered in ("0", "no", "f", "n"):
            return "false"
        if lowered not in _AUTO_BOOL:
            raise ValueError
        return lowered
    return Hyperparameter(name, "text", default=default, check=check,
                          description="auto, true or false")


HYPERPARAMETERS = HyperparameterSpec("linear-learner", [
    Hyperparameter("predictor_type", "str", required=True, choices=PREDICTOR_TYPES),
    Hyperparameter("num_classes", "int", range=Interval(3, 1_000_000)),
    _auto_parameter("feature_dim", int, _POSITIVE_INT),
    Hyperparameter("mini_batch_size", "int", default=1000, range=_POSITIVE_INT),
    Hyperparameter("epochs", "int", default=15, range=_POSITIVE_INT),
    Hyperparameter("optimizer", "str", default="auto", choices=OPTIMIZERS),
    Hyperparameter("loss", "str", default="auto", choices=LOSSES),
    _auto_parameter("learning_rate", float, _POSITIVE),
    _auto_parameter("wd", float, _NON_NEGATIVE),
    _auto_parameter("l1", float, _NON_NEGATIVE),
    _auto_parameter("momentum", float, _UNIT_RIGHT_OPEN),
    _auto_parameter("beta_1", float, _UNIT_RIGHT_OPEN),
    _auto_parameter("beta_2", float, _UNIT_RIGHT_OPEN),
    _auto_parameter("bias_lr_mult", float, _POSITIVE),
    _auto_parameter("bias_wd_mult", float, _NON_NEGATIVE),
    Hyperparameter("use_bias", "bool", default=True),
    Hyperparameter("init_method", "str", default="uniform", choices=("uniform", "normal")),
    Hyperparameter("init_scale", "float", default=0.07, range=_POSITIVE),
    Hyperparameter("init_sigma", "float", default=0.01, range=_POSITIVE),
    Hyperparameter("init_bias", "float", default=0.0),
    Hyperparameter("use_lr_scheduler", "bool", default=True),
    _auto_parameter("lr_scheduler_step", int, _POSITIVE_INT),
    _auto_parameter("lr_scheduler_factor", float, _UNIT_OPEN),
    _auto_parameter("lr_scheduler_minimum_lr", float, _POSITIVE),
    _tri_state("normalize_data", "true"),
    _tri_state("normalize_label", "auto"),
    _tri_state("unbias_data", "auto"),
    _tri_state("unbias_label", "auto"),
    Hyperparameter("num_point_for_scaler", "int", default=10_000, range=_POSITIVE_INT),
    _auto_parameter("num_models", int, _POSITIVE_INT),
    _auto_parameter("num_calibration_samples", int, _POSITIVE_INT),
    Hyperparameter("binary_classifier_model_selection_criteria", "str", default="accuracy",
                   choices=CRITERIA),
    Hyperparameter("target_recall", "float", default=0.8, range=_UNIT_OPEN),
    Hyperparameter("target_precision", "float", default=0.8, range=_UNIT_OPEN),
    Hyperparameter("f_beta", "float", default=1.0, range=_POSITIVE),
    _auto_parameter("positive_example_weight_mult", float, _POSITIVE, ("balanced",),
                    default="1.0"),
    Hyperparameter("balance_multiclass_weights", "bool", default=False),
    Hyperparameter("accuracy_top_k", "int", default=3, range=Interval(1, 1_000_000)),
    Hyperparameter("margin", "float", default=1.0, range=_NON_NEGATIVE),
    Hyperparameter("quantile", "float", default=0.5, range=_UNIT_OPEN),
    Hyperparameter("loss_insensitivity", "float", default=0.01, range=_POSITIVE),
    Hyperparameter("huber_delta", "float", default=1.0, range=_NON_NEGATIVE),
    Hyperparameter("early_stopping_patience", "int", default=3, range=_POSITIVE_INT),
    Hyperparameter("early_stopping_tolerance", "float", default=0.001, range=_POSITIVE),
])


def check_dependencies(values: Mapping[str, Any]) -> None:
    """ValidationException for values valid alone but not together."""
    predictor = values["predictor_type"]
    if predictor == "multiclass_classifier" and "num_classes" not in values:
        raise ValidationException(
            "HyperParameters.num_classes is required when predictor_type is "
            "multiclass_classifier (an integer in [3, 1000000])")
    if predictor != "multiclass_classifier" and "num_classes" in values:
        raise ValidationException(
            f"HyperParameters.num_classes is only for multiclass_classifier, but "
            f"predictor_type is {predictor}; remove it")
    loss = values.get("loss", "auto")
    if loss not in LEGAL_LOSSES[predictor]:
        raise ValidationException(
            f"HyperParameters.loss: {loss} is not valid for predictor_type {predictor}; use "
            f"one of {', '.join(LEGAL_LOSSES[predictor])}")


def defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the optional hyperparameters' defaults filled in."""
    filled = {p.name: p.default for p in HYPERPARAMETERS.parameters if p.default is not None}
    filled.update(values)
    for parameter in HYPERPARAMETERS.parameters:  # defaults given as text still need parsing
        if parameter.kind == "text" and isinstance(filled.get(parameter.name), str) \
                and parameter.name not in values:
            filled[parameter.name] = parameter.parse(filled[parameter.name])
    return filled


# -- metrics -----------------------------------------------------------------------------------
_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"
OBJECTIVE_NAMES = {
    "logistic": "binary_classification_cross_entropy", "softmax_loss":
    "multiclass_cross_entropy", "squared_loss": "square_loss", "hinge_loss": "hinge_loss",
}


def _metric(name: str, channel: str, printed: str, kind: str, epoch: bool = False
            ) -> MetricDefinition:
    prefix = r"#quality_metric: host=\S+, " + (r"epoch=\S+, " if epoch else "")
    direction = "Minimize" if kind == "loss" else "Maximize"
    return MetricDefinition(f"{channel}:{name}",
                            rf"{prefix}{channel} {printed} <{kind}>={_VALUE}", direction)


def _metrics() -> list[MetricDefinition]:
    found = []
    for channel in ("train", "validation", "test"):
        if channel == "test":
            found.append(_metric("objective_loss", channel, r"\S+_objective", "loss"))
        else:
            found.append(_metric("objective_loss", channel, r"\S+_objective", "loss", True))
            found.append(_metric("objective_loss:final", channel, r"\S+_objective", "loss"))
        found += [_metric("mse", channel, "mse", "loss"),
                  _metric("absolute_loss", channel, "absolute_loss", "loss"),
                  _metric("binary_classification_accuracy", channel,
                          "binary_classification_accuracy", "score"),
                  _metric("binary_f_beta", channel, r"binary_f_\S+", "score"),
                  _metric("precision", channel, "precision", "score"),
                  _metric("recall", channel, "recall", "score")]
        if channel == "train":
            continue
        found += [_metric("rmse", channel, "rmse", "loss"),
                  _metric("roc_auc_score", channel, "roc_auc_score", "score"),
                  _metric("multiclass_accuracy", channel, "multiclass_accuracy", "score"),
                  _metric("multiclass_top_k_accuracy", channel,
                          r"multiclass_top_k_accuracy_\S+", "score"),
                  _metric("macro_f_beta", channel, r"macro_f_\S+", "score"),
                  _metric("macro_precision", channel, "macro_precision", "score"),
                  _metric("macro_recall", channel, "macro_recall", "score"),
                  _metric("dcg", channel, "dcg", "score")]
    found.append(MetricDefinition("train:progress",
                                  rf"#progress_metric: host=\S+, completed {_VALUE} %",
                                  "Maximize"))
    found.append(MetricDefinition(
        "train:throughput", rf"#throughput_metric: host=\S+, train throughput={_VALUE} "
        "records/second", "Maximize"))
    return found


METRICS = _metrics()

CHANNELS = tuple(ChannelDefinition(name, required=name == "train", content_types=CONTENT_TYPES,
                                   default_content_type=DEFAULT_CONTENT_TYPE,
                                   input_modes=("File", "Pipe", "FastFile"))
                 for name in ("train", "validation", "test"))


def validate_linear_learner_channels(channels: Iterable[Mapping[str, Any]],
                                     input_mode: str) -> None:
    channels = list(channels)
    validate_channels("linear-learner", CHANNELS, channels, input_mode)
    for index, channel in enumerate(channels, start=1):
        distribution = ((channel.get("DataSource") or {}).get("S3DataSource") or {}).get(
            "S3DataDistributionType")
        if channel.get("ChannelName") == "validation" and distribution == "ShardedByS3Key":
            raise ValidationException(
                f"InputDataConfig.{index}.DataSource.S3DataSource.S3DataDistributionType: "
                "linear-learner's 'validation' channel must be FullyReplicated")
    require_one_label_column("linear-learner", channels)


# -- several hosts -----------------------------------------------------------------------------
# -- data --------------------------------------------------------------------------------------
def read_rows(env: TrainingEnvironment, channel: str, feature_dim: int | None,
              required: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """``channel``'s rows on this host as dense float32 features and labels."""
    from openmaker.algorithms._data import read_channel
    from openmaker.formats.content_types import parse_content_type

    try:
        data_format = parse_content_type(env.content_type(channel) or DEFAULT_CONTENT_TYPE).format
    except ValueError as error:
        raise ClientError(f"channel {channel!r}: {error}") from None
    dataset = read_channel(env, channel, data_format, require_rows=required)
    if dataset is None:
        return None
    features = dataset.features
    width = dataset.columns
    if feature_dim is not None and (width > feature_dim
                                    or (width != feature_dim and not dataset.is_sparse)):
        raise ClientError(f"channel {channel!r}: the records have {width} features but "
                          f"HyperParameters.feature_dim is {feature_dim}")
    if dataset.is_sparse:
        features = features.tocsr()
        features.resize((features.shape[0], feature_dim or width))
        features = features.toarray()
    features = np.ascontiguousarray(features, dtype=np.float32)
    labels = np.asarray(dataset.labels, dtype=np.float32).reshape(-1)
    if not np.isfinite(features).all():
        row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: a feature is missing or not "
                          "a number; linear-learner needs every feature")
    if not np.isfinite(labels).all():
        row = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: the label is not a number")
    return features, labels


def check_labels(labels: np.ndarray, predictor: str, num_classes: int | None,
                 channel: str) -> None:
    if predictor == "binary_classifier":
        bad = ~np.isin(labels, (0.0, 1.0))
        what = "0 or 1 (binary_classifier)"
    elif predictor == "multiclass_classifier":
        assert num_classes is not None
        bad = (labels != np.round(labels)) | (labels < 0) | (labels >= num_classes)
        what = f"an integer in [0, {num_classes - 1}] (num_classes={num_classes})"
    else:
        return
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ClientError(f"channel {channel!r}, record {row + 1}: label {labels[row]:g} is "
                          f"not valid; labels must be {what}")


# -- losses ------------------------------------------------------------------------------------
@dataclass
class Objective:
    """A loss: per-row values and their gradient with respect to the model outputs."""

    loss: str
    margin: float = 1.0
    quantile: float = 0.5
    insensitivity: float = 0.01
    huber_delta: float = 1.0

    def __call__(self, out: Any, y: Any, gradient: bool = True) -> tuple[Any, Any]:
        """``out`` (models, rows, outputs) and ``y`` (rows,) -> per-row loss (models, rows)
        and d loss / d out (models, rows, outputs) (None without ``gradient``)."""
        import torch

        loss = self.loss
        if loss == "softmax_loss":
            log_p = torch.log_softmax(out, dim=2)
            index = y.long().view(1, -1, 1).expand(out.shape[0], -1, 1)
            value = -log_p.gather(2, index).squeeze(2)
            grad = None
            if gradient:
                grad = log_p.exp()
                grad.scatter_add_(2, index, -torch.ones_like(index, dtype=grad.dtype))
            return value, grad
        if loss == "hinge_loss" and out.shape[2] > 1:  # Crammer-Singer multiclass hinge
            index = y.long().view(1, -1, 1).expand(out.shape[0], -1, 1)
            true = out.gather(2, index)
            margins = out - true + self.margin
            margins.scatter_(2, index, 0.0)
            worst, arg = margins.max(dim=2)
            value = worst.clamp_min(0)
            grad = None
            if gradient:
                grad = torch.zeros_like(out)
                active = (worst > 0).to(out.dtype).unsqueeze(2)
                grad.scatter_(2, arg.unsqueeze(2), active)
                grad.scatter_add_(2, index, -active)
            return value, grad
        z = out[:, :, 0]
        if loss == "logistic":
            value = torch.nn.functional.softplus(z) - y * z
            grad = torch.sigmoid(z) - y if gradient else None
        elif loss == "hinge_loss":
            sign = 2 * y - 1
            active = (self.margin - sign * z) > 0
            value = (self.margin - sign * z).clamp_min(0)
            grad = -sign * active if gradient else None
        else:
            r = z - y
            if loss == "squared_loss":
                value, grad = 0.5 * r * r, r
            elif loss == "absolute_loss":
                value, grad = r.abs(), torch.sign(r)
            elif loss == "eps_insensitive_squared_loss":
                e = (r.abs() - self.insensitivity).clamp_min(0)
                value, grad = 0.5 * e * e, e * torch.sign(r)
            elif loss == "eps_insensitive_absolute_loss":
                e = r.abs() - self.insensitivity
                value, grad = e.clamp_min(0), torch.sign(r) * (e > 0)
            elif loss == "quantile_loss":
                q = self.quantile
                value = torch.where(r >= 0, (1 - q) * r, -q * r)
                grad = torch.where(r >= 0, torch.full_like(r, 1 - q), torch.full_like(r, -q))
            elif loss == "huber_loss":
                d = self.huber_delta
                small = r.abs() <= d
                value = torch.where(small, 0.5 * r * r, d * (r.abs() - 0.5 * d))
                grad = torch.where(small, r, d * torch.sign(r))
            else:
                raise AssertionError(loss)
        return value, (grad.to(out.dtype).unsqueeze(2) if gradient else None)


def _resolve_loss(values: Mapping[str, Any]) -> str:
    loss = values["loss"]
    if loss != "auto":
        return loss
    return {"regressor": "squared_loss", "binary_classifier": "logistic",
            "multiclass_classifier": "softmax_loss"}[values["predictor_type"]]


# -- the models ---------------------------------------------------------------------------------
_GRID_LR = (1.0, 0.3, 3.0, 0.1, 10.0)       # multiples of the base learning rate
_GRID_WD = (0.0, 1e-6, 1e-4, 1e-3, 1e-2)    # L2 values
_GRID_L1 = (0.0, 1e-5, 1e-3)                # L1 values


def model_settings(values: Mapping[str, Any], num_models: int) -> dict[str, np.ndarray]:
    """Per-model learning rate, wd and l1: a hyperparameter the job set is shared by all
    models; an ``auto`` one varies over a grid (model 0 has the plain default), the way
    SageMaker trains its models with different optimisation settings."""
    optimizer = "adam" if values["optimizer"] == "auto" else values["optimizer"]
    index = np.arange(num_models)
    lr = values["learning_rate"]
    if lr == "auto":
        lr = AUTO_LEARNING_RATE[optimizer] * np.asarray(_GRID_LR)[index % len(_GRID_LR)]
    wd = values["wd"]
    if wd == "auto":
        wd = np.asarray(_GRID_WD)[(index // len(_GRID_LR)) % len(_GRID_WD)]
    l1 = values["l1"]
    if l1 == "auto":
        l1 = np.asarray(_GRID_L1)[(index // (len(_GRID_LR) * len(_GRID_WD))) % len(_GRID_L1)]
    return {name: np.broadcast_to(np.asarray(value, dtype=np.float64), (num_models,)).copy()
            for name, value in (("lr", lr), ("wd", wd), ("l1", l1))}


class Optimizer:
    """SGD with momentum, Adam or RMSProp over all models' tensors at once, each model
    with its own learning rate; ``wd`` as L2 in the gradient, ``l1`` as a proximal step."""

    def __init__(self, kind: str, params: list[Any], lr: Any, wd: Any, l1: Any,
                 lr_mults: list[float], wd_mults: list[float], values: Mapping[str, Any]
                 ) -> None:
        import torch

        self.kind = "adam" if kind == "auto" else kind
        self.params = params
        self.lr = lr  # (models,)
        self.wd, self.l1 = wd, l1
        self.lr_mults, self.wd_mults = lr_mults, wd_mults
        self.momentum = 0.0 if values["momentum"] == "auto" else values["momentum"]
        self.beta_1 = 0.9 if values["beta_1"] == "auto" else values["beta_1"]
        self.beta_2 = 0.999 if values["beta_2"] == "auto" else values["beta_2"]
        self.state = [torch.zeros_like(p) for p in params]
        self.state2 = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def step(self, grads: list[Any]) -> None:
        import torch

        self.steps += 1
        for i, (param, grad) in enumerate(zip(self.params, grads, strict=True)):
            shape = (-1,) + (1,) * (param.dim() - 1)
            lr = (self.lr * self.lr_mults[i]).view(shape)
            wd = (self.wd * self.wd_mults[i]).view(shape)
            grad = grad + wd * param
            if self.kind == "sgd":
                if self.momentum:
                    self.state[i].mul_(self.momentum).add_(grad)
                    grad = self.state[i]
                param.sub_(lr * grad)
            elif self.kind == "adam":
                m, v = self.state[i], self.state2[i]
                m.mul_(self.beta_1).add_(grad, alpha=1 - self.beta_1)
                v.mul_(self.beta_2).addcmul_(grad, grad, value=1 - self.beta_2)
                correction = math.sqrt(1 - self.beta_2 ** self.steps) / (
                    1 - self.beta_1 ** self.steps)
                param.sub_(lr * correction * m / (v.sqrt() + 1e-8))
            else:  # rmsprop
                v = self.state2[i]
                v.mul_(0.9).addcmul_(grad, grad, value=0.1)
                param.sub_(lr * grad / (v.sqrt() + 1e-8))
            if i == 0:  # L1 on the weights only
                l1 = (self.l1 * lr.view(-1)).view(shape)
                param.copy_(torch.sign(param) * (param.abs() - l1).clamp_min(0))


@dataclass
class LinearModel:
    """One trained model in the raw feature space: ``score = f(x @ weight + bias)``."""

    predictor_type: str
    loss: str
    weight: np.ndarray  # (features, outputs), float32
    bias: np.ndarray    # (outputs,)
    threshold: float = 0.5
    label_scale: tuple[float, float] = (0.0, 1.0)  # regressors: mean, std folded in already

    def raw(self, features: Any) -> np.ndarray:
        out = features @ self.weight
        return np.asarray(out, dtype=np.float64) + self.bias

    def scores(self, features: Any) -> np.ndarray:
        """Probabilities for logistic / softmax, raw outputs otherwise."""
        out = self.raw(features)
        if self.loss == "logistic":
            return 1.0 / (1.0 + np.exp(-out[:, 0]))
        if self.loss == "softmax_loss":
            shifted = np.exp(out - out.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        if self.predictor_type == "multiclass_classifier":
            return out
        return out[:, 0]

    def labels(self, scores: np.ndarray) -> np.ndarray:
        if self.predictor_type == "binary_classifier":
            return (scores > self.threshold).astype(np.int64)
        return np.argmax(scores, axis=1)

    def files(self) -> dict[str, bytes]:
        metadata = {"predictor_type": self.predictor_type, "loss": self.loss,
                    "threshold": self.threshold, "feature_dim": int(self.weight.shape[0]),
                    "outputs": int(self.weight.shape[1]), "version": "1.0"}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in (("additional-params.json",
                                json.dumps(metadata, indent=2, sort_keys=True).encode()),
                               ("weight.npy", _npy(self.weight)), ("bias.npy", _npy(self.bias))):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        return {MODEL_FILE: buffer.getvalue()}

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                metadata = json.loads(archive.read("additional-params.json"))
                weight = np.load(io.BytesIO(archive.read("weight.npy")))
                bias = np.load(io.BytesIO(archive.read("bias.npy")))
        except (zipfile.BadZipFile, KeyError, ValueError) as error:
            raise ClientError(f"{MODEL_FILE} is not a linear-learner model: {error}") from None
        return cls(metadata["predictor_type"], metadata["loss"], weight.astype(np.float32),
                   bias.astype(np.float32), float(metadata["threshold"]))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype="<f4"))
    return buffer.getvalue()


# -- binary calibration ------------------------------------------------------------------------
def calibrate(scores: np.ndarray, labels: np.ndarray, criterion: str, values: Mapping[str, Any]
              ) -> tuple[np.ndarray, np.ndarray]:
    """For each model's ``scores`` (models, rows): (best value of ``criterion`` over
    thresholds, that threshold). Thresholds are the midpoints between sorted scores."""
    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    positive = labels[order].astype(np.float64)  # (models, rows)
    tp = np.cumsum(positive, axis=1)
    fp = np.cumsum(1 - positive, axis=1)
    total_pos = max(float(labels.sum()), 1e-12)
    total = labels.size
    # predicting positive for the first j+1 rows; also "none positive" as a column 0
    tp = np.concatenate([np.zeros((len(scores), 1)), tp], axis=1)
    fp = np.concatenate([np.zeros((len(scores), 1)), fp], axis=1)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-12), 1.0)
    recall = tp / total_pos
    if criterion == "accuracy":
        objective = (tp + (total - total_pos - fp)) / total
    elif criterion in ("f_beta", "f1"):
        beta2 = 1.0 if criterion == "f1" else values["f_beta"] ** 2
        objective = np.where(tp > 0, (1 + beta2) * precision * recall /
                             np.maximum(beta2 * precision + recall, 1e-12), 0.0)
    elif criterion == "precision_at_target_recall":
        objective = np.where(recall >= values["target_recall"], precision, -1.0)
    else:  # recall_at_target_precision
        objective = np.where(precision >= values["target_precision"], recall, -1.0)
    # a cut is only possible between different scores
    distinct = np.concatenate([np.ones((len(scores), 1), bool),
                               sorted_scores[:, :-1] != sorted_scores[:, 1:],
                               np.ones((len(scores), 1), bool)], axis=1)
    objective = np.where(distinct, objective, -np.inf)
    best = np.argmax(objective, axis=1)
    padded = np.concatenate([sorted_scores[:, :1] + 1.0, sorted_scores,
                             sorted_scores[:, -1:] - 1.0], axis=1)
    rows = np.arange(len(scores))
    thresholds = (padded[rows, best] + padded[rows, best + 1]) / 2
    return objective[rows, best], thresholds


# -- training ----------------------------------------------------------------------------------
class Trainer:
    """All ``num_models`` models of one job, trained together."""

    def __init__(self, values: Mapping[str, Any], feature_dim: int, num_models: int,
                 cluster: HostGroup) -> None:
        import torch

        self.values = values
        self.cluster = cluster
        self.predictor = values["predictor_type"]
        self.loss = _resolve_loss(values)
        self.objective = Objective(self.loss, values["margin"], values["quantile"],
                                   values["loss_insensitivity"], values["huber_delta"])
        self.outputs = values["num_classes"] if self.predictor == "multiclass_classifier" else 1
        self.models = num_models
        self.generator = torch.Generator().manual_seed(SEED)
        shape = (num_models, feature_dim, self.outputs)
        if values["init_method"] == "uniform":
            weight = (torch.rand(shape, generator=self.generator, dtype=torch.float32) * 2 - 1
                      ) * values["init_scale"]
        else:
            weight = torch.randn(shape, generator=self.generator) * values["init_sigma"]
        bias = torch.full((num_models, self.outputs), float(values["init_bias"]))
        self.weight, self.bias = weight, bias
        settings = model_settings(values, num_models)
        self.settings = settings
        self.base_lr = torch.tensor(settings["lr"], dtype=torch.float32)
        bias_lr = 1.0 if values["bias_lr_mult"] == "auto" else values["bias_lr_mult"]
        bias_wd = 0.0 if values["bias_wd_mult"] == "auto" else values["bias_wd_mult"]
        self.optimizer = Optimizer(values["optimizer"], [weight, bias],
                                   self.base_lr.clone(),
                                   torch.tensor(settings["wd"], dtype=torch.float32),
                                   torch.tensor(settings["l1"], dtype=torch.float32),
                                   [1.0, bias_lr], [1.0, bias_wd], values)
        self.use_bias = values["use_bias"]
        if not self.use_bias:
            bias.zero_()

    def outputs_of(self, x: Any) -> Any:
        """(models, rows, outputs): one matrix product for every model."""
        models, dim, outputs = self.weight.shape
        flat = self.weight.permute(1, 0, 2).reshape(dim, models * outputs)
        out = (x @ flat).view(-1, models, outputs).permute(1, 0, 2)
        return out + self.bias.unsqueeze(1)

    def row_losses(self, x: Any, y: Any, weight: Any) -> Any:
        """Weighted per-model loss sum over the rows, and the weight sum."""
        value, _ = self.objective(self.outputs_of(x), y, gradient=False)
        return (value * weight).sum(dim=1)

    def epoch(self, x: Any, y: Any, w: Any, batch_size: int) -> Any:
        """One pass over this host's rows in a seeded order; the summed weighted loss of
        each model (models,)."""
        import torch

        rows = x.shape[0]
        order = torch.randperm(rows, generator=self.generator)
        threads = torch.get_num_threads()
        models, dim, outputs = self.weight.shape
        if batch_size * dim * models * outputs < 1 << 23:
            # small products: one thread avoids the synchronisation that costs more
            torch.set_num_threads(1)
        try:
            return self._epoch(x, y, w, batch_size, order)
        finally:
            torch.set_num_threads(threads)

    def _epoch(self, x: Any, y: Any, w: Any, batch_size: int, order: Any) -> Any:
        import torch

        rows = x.shape[0]
        models, dim, outputs = self.weight.shape
        total = torch.zeros(self.models, dtype=torch.float64)
        values = self.values
        for start in range(0, rows, batch_size):
            index = order[start:start + batch_size]
            xb, yb, wb = x[index], y[index], w[index]
            out = self.outputs_of(xb)
            value, grad = self.objective(out, yb)
            total += (value * wb).sum(dim=1, dtype=torch.float64)
            grad = grad * (wb / wb.sum()).view(1, -1, 1)
            grad_flat = grad.permute(1, 0, 2).reshape(len(index), models * outputs)
            grad_w = (xb.T @ grad_flat).view(dim, models, outputs).permute(1, 0, 2)
            grad_b = grad.sum(dim=1) if self.use_bias else torch.zeros_like(self.bias)
            self.optimizer.step([grad_w, grad_b])
            if values["use_lr_scheduler"]:
                step = AUTO_LR_STEP if values["lr_scheduler_step"] == "auto" else \
                    values["lr_scheduler_step"]
                if self.optimizer.steps % step == 0:
                    factor = AUTO_LR_FACTOR if values["lr_scheduler_factor"] == "auto" else \
                        values["lr_scheduler_factor"]
                    floor = AUTO_LR_MINIMUM if values["lr_scheduler_minimum_lr"] == "auto" \
                        else values["lr_scheduler_minimum_lr"]
                    self.optimizer.lr.mul_(factor).clamp_(min=floor)
        return total

    def average(self) -> None:
        """Average the models over the hosts (after each epoch)."""
        if self.cluster.size > 1:
            for tensor in (self.weight, self.bias):
                self.cluster.sum(tensor)
                tensor.div_(self.cluster.size)


def _print(line: str) -> None:
    print(line, flush=True)


def _objective_name(loss: str) -> str:
    return OBJECTIVE_NAMES.get(loss, loss) + "_objective"


def evaluation_metrics(model: LinearModel, features: np.ndarray, labels: np.ndarray,
                       values: Mapping[str, Any], objective: Objective,
                       label_scale: tuple[float, float]) -> list[tuple[str, str, float]]:
    """(printed name, loss|score, value) for ``model`` on labelled rows."""
    import torch

    raw = model.raw(features)
    predictor = model.predictor_type
    mean, std = label_scale
    target = (labels - mean) / std if predictor == "regressor" else labels
    scaled = (raw - mean) / std if predictor == "regressor" else raw
    value, _ = objective(torch.from_numpy(scaled[None]).double(),
                         torch.from_numpy(target).double(), gradient=False)
    found = [(_objective_name(model.loss), "loss", float(value.mean()))]
    if predictor == "regressor":
        errors = raw[:, 0] - labels
        mse = float(np.mean(errors ** 2))
        found += [("mse", "loss", mse), ("rmse", "loss", math.sqrt(mse)),
                  ("absolute_loss", "loss", float(np.mean(np.abs(errors))))]
        return found
    scores = model.scores(features)
    predicted = model.labels(scores)
    if predictor == "binary_classifier":
        truth = labels.astype(np.int64)
        tp = float(np.sum((predicted == 1) & (truth == 1)))
        fp = float(np.sum((predicted == 1) & (truth == 0)))
        fn = float(np.sum((predicted == 0) & (truth == 1)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        beta2 = values["f_beta"] ** 2
        f_beta = ((1 + beta2) * precision * recall / (beta2 * precision + recall)
                  if precision + recall else 0.0)
        found += [("binary_classification_accuracy", "score", float(np.mean(predicted == truth))),
                  (f"binary_f_{values['f_beta']:.3f}", "score", f_beta),
                  ("precision", "score", precision), ("recall", "score", recall),
                  ("roc_auc_score", "score", _roc_auc(scores, truth))]
        return found
    truth = labels.astype(np.int64)
    k = min(values["accuracy_top_k"], scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    classes = scores.shape[1]
    precisions, recalls = [], []
    for c in range(classes):
        tp = np.sum((predicted == c) & (truth == c))
        predicted_c, actual_c = np.sum(predicted == c), np.sum(truth == c)
        precisions.append(tp / predicted_c if predicted_c else 0.0)
        recalls.append(tp / actual_c if actual_c else 0.0)
    macro_p, macro_r = float(np.mean(precisions)), float(np.mean(recalls))
    beta2 = values["f_beta"] ** 2
    macro_f = ((1 + beta2) * macro_p * macro_r / (beta2 * macro_p + macro_r)
               if macro_p + macro_r else 0.0)
    rank = np.argmax(np.argsort(-scores, axis=1, kind="stable") == truth[:, None], axis=1)
    found += [("multiclass_accuracy", "score", float(np.mean(predicted == truth))),
              (f"multiclass_top_k_accuracy_{k}", "score",
               float(np.mean((top == truth[:, None]).any(axis=1)))),
              (f"macro_f_{values['f_beta']:.3f}", "score", macro_f),
              ("macro_precision", "score", macro_p), ("macro_recall", "score", macro_r),
              ("dcg", "score", float(np.mean(1.0 / np.log2(rank + 2))))]
    return found


def _roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    positives, negatives = int(truth.sum()), int(len(truth) - truth.sum())
    if not positives or not negatives:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[truth == 1].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``; write ``model_algo-1`` to the model directory."""
    try:
        values = defaults(HYPERPARAMETERS.parse(env.hyperparameters))
        check_dependencies(values)
        validate_linear_learner_channels(
            [{"ChannelName": name, "ContentType": config.get("ContentType"),
              "InputMode": config.get("TrainingInputMode", "File")}
             for name, config in env.input_data_config.items()
             if name in ("train", "validation", "test")], "File")
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError("InputDataConfig: linear-learner needs a 'train' channel")
    import torch

    torch.manual_seed(SEED)
    if env.num_cpus:
        torch.set_num_threads(env.num_cpus)
    cluster = HostGroup(env, timeout_s=SYNC_TIMEOUT_S)
    feature_dim = None if values["feature_dim"] == "auto" else values["feature_dim"]
    predictor = values["predictor_type"]
    num_classes = values.get("num_classes")
    error: Exception | None = None
    train_rows = validation = test = None
    try:
        train_rows = read_rows(env, "train", feature_dim, required=cluster.size == 1)
        if train_rows is not None:
            check_labels(train_rows[1], predictor, num_classes, "train")
        for name in ("validation", "test"):
            if name in env.input_data_config:
                rows = read_rows(env, name, feature_dim or (
                    train_rows[0].shape[1] if train_rows is not None else None), required=False)
                if rows is not None:
                    check_labels(rows[1], predictor, num_classes, name)
                if name == "validation":
                    validation = rows
                else:
                    test = rows
    except Exception as failure:  # noqa: BLE001 -- every host must learn of it
        error = failure
    cluster.agree(error)
    widths = {w for w in cluster.gather(None if train_rows is None else train_rows[0].shape[1])
              if w is not None}
    if not widths:
        raise ClientError("channel 'train' has no data: no records were found on any host")
    if len(widths) > 1:
        raise ClientError(f"channel 'train': the hosts' records have different numbers of "
                          f"features ({', '.join(map(str, sorted(widths)))})")
    width = widths.pop()
    if train_rows is None:
        train_rows = (np.zeros((0, width), np.float32), np.zeros(0, np.float32))
    features, labels = train_rows
    model = fit(env, values, cluster, features, labels, validation)
    if cluster.rank == 0:
        env.model_dir.mkdir(parents=True, exist_ok=True)
        for name, data in model.files().items():
            temporary = env.model_dir / f".{name}.tmp"
            temporary.write_bytes(data)
            os.replace(temporary, env.model_dir / name)
    report(env, values, cluster, model, "test", test)
    cluster.close()


def _scaler(features: np.ndarray, labels: np.ndarray, values: Mapping[str, Any],
            cluster: HostGroup) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(feature mean, feature std, label mean, label std) from the first
    ``num_point_for_scaler`` rows of every host (sums combined over the hosts)."""
    import torch

    sample = features[:values["num_point_for_scaler"]].astype(np.float64)
    sample_labels = labels[:values["num_point_for_scaler"]].astype(np.float64)
    sums = torch.from_numpy(np.concatenate([
        [len(sample), sample_labels.sum(), (sample_labels ** 2).sum()],
        sample.sum(axis=0), (sample ** 2).sum(axis=0)]))
    sums = cluster.sum(sums).numpy()
    count = max(sums[0], 1.0)
    dim = features.shape[1]
    mean = sums[3:3 + dim] / count
    variance = np.maximum(sums[3 + dim:] / count - mean ** 2, 0)
    std = np.sqrt(variance)
    std = np.where(std > 1e-8, std, 1.0)
    label_mean = sums[1] / count
    label_std = math.sqrt(max(sums[2] / count - label_mean ** 2, 0)) or 1.0
    normalize = values["normalize_data"] != "false"
    unbias = values["unbias_data"] == "true" or (values["unbias_data"] == "auto" and normalize)
    if not normalize:
        std = np.ones(dim)
    if not unbias:
        mean = np.zeros(dim)
    regressor = values["predictor_type"] == "regressor"
    normalize_label = regressor and values["normalize_label"] != "false"
    unbias_label = regressor and (values["unbias_label"] == "true" or
                                  (values["unbias_label"] == "auto" and normalize_label))
    return (mean, std, label_mean if unbias_label else 0.0,
            label_std if normalize_label else 1.0)


def fit(env: TrainingEnvironment, values: dict[str, Any], cluster: HostGroup,
        features: np.ndarray, labels: np.ndarray,
        validation: tuple[np.ndarray, np.ndarray] | None) -> LinearModel:
    """Train the models, keep the best one, print the per-epoch and final metrics."""
    import torch

    host = env.current_host
    predictor = values["predictor_type"]
    num_models = values["num_models"]
    if num_models == "auto":
        num_models = AUTO_NUM_MODELS
    if TUNING_OBJECTIVE in values:  # tuning searches the settings itself
        num_models = 1
    mean, std, label_mean, label_std = _scaler(features, labels, values, cluster)
    trainer = Trainer(values, features.shape[1], num_models, cluster)

    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)

    def scaled(x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return (torch.from_numpy((x - mean32) / std32),
                torch.from_numpy(((y - label_mean) / label_std).astype(np.float32)))

    x, y = scaled(features, labels)
    weights = torch.ones(len(labels), dtype=torch.float32)
    if predictor == "binary_classifier":
        mult = values["positive_example_weight_mult"]
        if mult in ("auto", "balanced"):
            counts = cluster.sum(torch.tensor([float(labels.sum()), float(len(labels))],
                                              dtype=torch.float64))
            positives, total = float(counts[0]), float(counts[1])
            mult = (total - positives) / positives if positives else 1.0
        weights = torch.where(y > 0.5, torch.tensor(float(mult)), weights)
    elif predictor == "multiclass_classifier" and values["balance_multiclass_weights"]:
        counts = cluster.sum(torch.bincount(y.long(), minlength=trainer.outputs).double())
        per_class = counts.sum() / (trainer.outputs * counts.clamp_min(1))
        weights = per_class[y.long()].float()
    # the held-out rows that score epochs, pick the model and calibrate the threshold
    held_out = validation
    if held_out is None:
        held_out = (features[:values["num_point_for_scaler"]],
                    labels[:values["num_point_for_scaler"]])
    held_channel = "validation" if validation is not None else "train"
    if values["num_calibration_samples"] != "auto":
        held_out = (held_out[0][:values["num_calibration_samples"]],
                    held_out[1][:values["num_calibration_samples"]])
    hx, hy = scaled(*held_out)
    hw = torch.ones(len(hy))
    best_loss = torch.full((num_models,), math.inf, dtype=torch.float64)
    best_weight, best_bias = trainer.weight.clone(), trainer.bias.clone()
    objective_name = _objective_name(trainer.loss)
    epochs = values["epochs"]
    watched_best, stale = math.inf, 0
    started = time.perf_counter()
    rows_seen = 0
    for epoch in range(epochs):
        total = trainer.epoch(x, y, weights, values["mini_batch_size"])
        sums = cluster.sum(torch.cat([total, torch.tensor([float(weights.sum())],
                                                          dtype=torch.float64)]))
        train_loss = sums[:-1] / max(float(sums[-1]), 1e-12)
        rows_seen += int(len(y))
        trainer.average()
        with torch.no_grad():
            held_loss = (trainer.row_losses(hx, hy, hw) / max(len(hy), 1)).double()
            if held_channel == "train" and cluster.size > 1:
                held_loss = cluster.sum(held_loss) / cluster.size
        better = held_loss < best_loss
        best_loss = torch.where(better, held_loss, best_loss)
        best_weight[better] = trainer.weight[better]
        best_bias[better] = trainer.bias[better]
        leader = int(torch.argmin(held_loss))
        if cluster.rank == 0:
            _print(f"#quality_metric: host={host}, epoch={epoch}, train {objective_name} "
                   f"<loss>={float(train_loss[leader]):.6g}")
            if validation is not None:
                _print(f"#quality_metric: host={host}, epoch={epoch}, validation "
                       f"{objective_name} <loss>={float(held_loss[leader]):.6g}")
            _print(f"#progress_metric: host={host}, completed "
                   f"{100 * (epoch + 1) / epochs:.4g} % of epochs")
        watched = float(held_loss.min())
        if watched < watched_best - values["early_stopping_tolerance"] * abs(watched_best) \
                or not math.isfinite(watched_best):
            watched_best, stale = watched, 0
        else:
            stale += 1
            if stale >= values["early_stopping_patience"]:
                if cluster.rank == 0:
                    _print(f"early stopping after epoch {epoch}: the {held_channel} loss "
                           f"improved less than early_stopping_tolerance for "
                           f"{values['early_stopping_patience']} epochs")
                break
    elapsed = max(time.perf_counter() - started, 1e-9)
    if cluster.rank == 0:
        _print(f"#throughput_metric: host={host}, train throughput="
               f"{rows_seen * cluster.size / elapsed:.6g} records/second")
    models = [_unscaled(best_weight[i], best_bias[i], mean, std, label_mean, label_std,
                        predictor, trainer.loss) for i in range(num_models)]
    chosen = _select(models, best_loss.numpy(), held_out, values)
    chosen.label_scale = (label_mean, label_std)
    if cluster.rank == 0:
        _print(f"selected model {chosen_index(models, chosen)} of {num_models} on the "
               f"{held_channel} data (lr {trainer.settings['lr'][chosen_index(models, chosen)]:g}"
               f", wd {trainer.settings['wd'][chosen_index(models, chosen)]:g}, l1 "
               f"{trainer.settings['l1'][chosen_index(models, chosen)]:g})")
    for name, rows in (("train", (features, labels)), ("validation", validation)):
        report(env, values, cluster, chosen, name, rows, final=True)
    return chosen


def fit_arrays(features: np.ndarray, labels: np.ndarray, hyperparameters: Mapping[str, str],
               validation: tuple[np.ndarray, np.ndarray] | None = None) -> LinearModel:
    """The model a one-host job with these hyperparameters (strings, as the API carries
    them) trains on in-memory rows: the same code ``train`` runs after reading channels."""
    values = defaults(HYPERPARAMETERS.parse(hyperparameters))
    check_dependencies(values)
    env = TrainingEnvironment.from_root(Path(os.devnull).parent / "nonexistent-opt-ml")
    cluster = HostGroup.alone(env.current_host)
    return fit(env, values, cluster, np.ascontiguousarray(features, dtype=np.float32),
               np.asarray(labels, dtype=np.float32), validation)


def chosen_index(models: list[LinearModel], chosen: LinearModel) -> int:
    return next(i for i, m in enumerate(models) if m is chosen)


def _unscaled(weight: Any, bias: Any, mean: np.ndarray, std: np.ndarray, label_mean: float,
              label_std: float, predictor: str, loss: str) -> LinearModel:
    """A model on scaled features and label rewritten for raw features and label."""
    w = weight.double().numpy() / std[:, None]
    b = bias.double().numpy() - mean @ w
    w, b = w * label_std, b * label_std + label_mean
    threshold = 0.5 if loss == "logistic" else 0.0
    return LinearModel(predictor, loss, w.astype(np.float32), b.astype(np.float32), threshold)


def _select(models: list[LinearModel], losses: np.ndarray,
            held_out: tuple[np.ndarray, np.ndarray], values: Mapping[str, Any]
            ) -> LinearModel:
    """The best model: binary classifiers by the selection criterion with a calibrated
    threshold, everything else (and ``loss_function``) by the held-out loss."""
    criterion = values["binary_classifier_model_selection_criteria"]
    if values["predictor_type"] != "binary_classifier" or criterion in (
            "loss_function", "cross_entropy_loss") or len(held_out[1]) == 0:
        return models[int(np.argmin(losses))]
    features, labels = held_out
    scores = np.stack([m.scores(features) for m in models])
    achieved, thresholds = calibrate(scores, labels, criterion, values)
    # ties go to the lower loss
    order = np.lexsort((losses, -achieved))
    best = int(order[0])
    models[best].threshold = float(thresholds[best])
    return models[best]


def report(env: TrainingEnvironment, values: Mapping[str, Any], cluster: HostGroup,
           model: LinearModel, channel: str, rows: tuple[np.ndarray, np.ndarray] | None,
           final: bool = False) -> None:
    """Print ``model``'s metrics on ``channel`` (every host's rows of it, gathered)."""
    if channel not in env.input_data_config:
        return
    if channel != "test" or cluster.size == 1:
        # validation is FullyReplicated; train metrics are the first host's shard's
        gathered = [rows]
    else:
        gathered = cluster.gather(rows)
    if cluster.rank != 0:
        return
    parts = [part for part in gathered if part is not None]
    if not parts:
        raise ClientError(f"channel {channel!r} has no data: no records were found")
    features = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    objective = Objective(model.loss, values["margin"], values["quantile"],
                          values["loss_insensitivity"], values["huber_delta"])
    for name, kind, value in evaluation_metrics(model, features, labels, values, objective,
                                                model.label_scale):
        _print(f"#quality_metric: host={env.current_host}, {channel} {name} <{kind}>="
               f"{value:.6g}")


# -- inference -------------------------------------------------------------------------------
REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines",
                 "application/x-recordio-protobuf")
ACCEPTS = ("application/json", "application/jsonlines", "application/x-recordio-protobuf",
           "text/csv")


class LinearLearnerPredictor(Predictor):
    """Serves a Linear Learner model: ``score`` (and ``predicted_label`` for classifiers)
    in JSON, JSON Lines, RecordIO-protobuf and CSV (``predicted_label,score...`` per line;
    an openmaker addition)."""

    content_types = REQUEST_TYPES
    accepts = ACCEPTS

    def __init__(self, model: LinearModel, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.model = model
        # UNVERIFIED: the response type SageMaker's Linear Learner picks for Accept */*.
        self.default_accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or \
            "application/json"

    def _accept(self, accept: str | None) -> str:
        return negotiate_accept(accept, ACCEPTS, media_parameters(self.default_accept)[0])

    def _features(self, body: bytes, content_type: str) -> Any:
        media, parameters = media_parameters(content_type or "text/csv")
        features = read_request_features(body, content_type, media, parameters, REQUEST_TYPES)
        dim = self.model.weight.shape[0]
        if not isinstance(features, np.ndarray):
            if features.shape[1] > dim:
                raise InferenceError(f"the request has feature index {features.shape[1] - 1}; "
                                     f"the model was trained on {dim} features")
            features = features.tocsr().astype(np.float32)
            features.resize((features.shape[0], dim))
            return features
        if features.shape[0] and features.shape[1] != dim:
            raise InferenceError(f"the rows have {features.shape[1]} features; the model was "
                                 f"trained on {dim}")
        if features.size and not np.isfinite(features).all():
            raise InferenceError("a feature is missing or not a number")
        return features.astype(np.float32, copy=False)

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        scores = self.model.scores(features).astype(np.float32)
        labels = None if self.model.predictor_type == "regressor" else self.model.labels(scores)
        return self._encode(scores, labels, accept_type), accept_type

    @staticmethod
    def _encode(scores: np.ndarray, labels: np.ndarray | None, accept: str) -> bytes:
        if accept == "text/csv":
            lines = []
            for index, score in enumerate(scores):
                fields = [] if labels is None else [str(int(labels[index]))]
                fields += [_number(v) for v in np.atleast_1d(score)]
                lines.append(",".join(map(str, fields)) + "\n")
            return "".join(lines).encode()
        if accept == "application/x-recordio-protobuf":
            from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

            def records() -> Iterator[Record]:
                for index, score in enumerate(scores):
                    label = {"score": Tensor(np.atleast_1d(score).astype(np.float32))}
                    if labels is not None:
                        label["predicted_label"] = Tensor(
                            np.asarray([labels[index]], dtype=np.float32))
                    yield Record(features={}, label=label)

            buffer = io.BytesIO()
            write_records(buffer, records())
            return buffer.getvalue()
        objects = []
        for index, score in enumerate(scores):
            item: dict[str, Any] = {"score": _number(score) if np.ndim(score) == 0
                                    else [_number(v) for v in score]}
            if labels is not None:
                item["predicted_label"] = int(labels[index])
            objects.append(item)
        if accept == "application/json":
            return json.dumps({"predictions": objects}).encode()
        return "".join(json.dumps(item) + "\n" for item in objects).encode()


def _number(value: Any) -> float:
    """A float32 as the shortest float reading back to it."""
    return float(str(np.float32(value)))


def load_model(model_dir: str | os.PathLike) -> LinearModel:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ClientError(f"{model_dir} holds no {MODEL_FILE} (a linear-learner model)")
    return LinearModel.from_bytes(path.read_bytes())


class LinearLearner(Algorithm):
    """SageMaker's built-in Linear Learner."""

    name = "linear-learner"
    repositories = ("linear-learner",)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values = HYPERPARAMETERS.parse(raw)
        check_dependencies(values)
        return values

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        validate_linear_learner_channels(channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> LinearLearnerPredictor:
        return LinearLearnerPredictor(load_model(model_dir))
