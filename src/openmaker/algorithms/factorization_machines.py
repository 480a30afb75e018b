"""SageMaker's built-in Factorization Machines (``factorization-machines:1``), on torch.

Hyperparameters, channels, metric names and inference formats follow
``reference/algorithms.md`` section 8. The model is the second-order factorization machine

    y(x) = w0 + sum_i w_i x_i + 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]

computed from each record's non-zeros only (O(nnz * num_factors) per record), with the
logistic loss (``binary_classifier``, score = sigmoid(y)) or the squared loss
(``regressor``). It is trained by mini-batch Adam with the bias, linear and factor terms'
own learning rates and weight decays; the linear and factor rows a batch does not touch are
not updated (MXNet's lazy sparse update). Several hosts each train on their own shard and
average their parameters (weighted by rows) after every epoch over ``torch.distributed``
gloo. The optional ``test`` channel is scored with SageMaker's metric lines.

The model directory holds ``model_algo-1`` (an MXNet NDArray list: bias ``[1]``, linear
``[feature_dim]``, factors ``[feature_dim, num_factors]``) and ``model_algo-1.json``
(predictor type and sizes). torch is imported only when training.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms._cluster import HostGroup
from openmaker.algorithms._data import read_request_features
from openmaker.algorithms.base import (
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

NAME = "factorization-machines"
MODEL_FILE = "model_algo-1"
METADATA_FILE = "model_algo-1.json"
# SageMaker's FM has no seed hyperparameter; a fixed seed makes jobs repeatable.
SEED = 11
DISTRIBUTED_TIMEOUT_S = int(os.environ.get("OPENMAKER_FM_DISTRIBUTED_TIMEOUT", "600"))
ADAM_BETA1, ADAM_BETA2 = 0.9, 0.999
DEFAULT_EPS = 1e-8
# The reference trains from RecordIO-protobuf only; text/csv (label first) is accepted as
# an openmaker addition so CSV data and the conformance suite's CSV jobs work.
CONTENT_TYPES = ("application/x-recordio-protobuf", "text/csv")
DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"
INIT_METHODS = ("normal", "uniform", "constant")
TERMS = ("bias", "linear", "factors")
# term -> (lr, wd, init sigma) defaults from the reference
TERM_DEFAULTS = {"bias": (0.1, 0.01, 0.01), "linear": (0.001, 0.001, 0.01),
                 "factors": (0.0001, 0.00001, 0.001)}

_POSITIVE_INT = Interval(1, None)
_NON_NEGATIVE = Interval(0, None)


def _term_parameters() -> list[Hyperparameter]:
    parameters = []
    for term in TERMS:
        lr, wd, sigma = TERM_DEFAULTS[term]
        parameters += [
            Hyperparameter(f"{term}_lr", "float", default=lr, range=_NON_NEGATIVE),
            Hyperparameter(f"{term}_wd", "float", default=wd, range=_NON_NEGATIVE),
            Hyperparameter(f"{term}_init_method", "str", default="normal", choices=INIT_METHODS),
            Hyperparameter(f"{term}_init_sigma", "float", default=sigma, range=_NON_NEGATIVE),
            Hyperparameter(f"{term}_init_scale", "float", range=_NON_NEGATIVE),
            Hyperparameter(f"{term}_init_value", "float"),
        ]
    return parameters


HYPERPARAMETERS = HyperparameterSpec(NAME, [
    Hyperparameter("feature_dim", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("num_factors", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("predictor_type", "str", required=True,
                   choices=("binary_classifier", "regressor")),
    Hyperparameter("epochs", "int", default=1, range=_POSITIVE_INT),
    Hyperparameter("mini_batch_size", "int", default=1000, range=_POSITIVE_INT),
    *_term_parameters(),
    Hyperparameter("clip_gradient", "float"),
    # UNVERIFIED: the reference says only "float"; Adam needs eps > 0.
    Hyperparameter("eps", "float", range=Interval(0, None, low_open=True)),
    Hyperparameter("rescale_grad", "float"),
])


def defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the optional hyperparameters' defaults filled in."""
    filled = {p.name: p.default for p in HYPERPARAMETERS.parameters}
    filled.update({k: v for k, v in values.items() if k in HYPERPARAMETERS})
    return filled


_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"
METRICS = [
    MetricDefinition("test:rmse", rf"#quality_metric: host=\S+, test rmse <loss>={_VALUE}",
                     "Minimize"),
    MetricDefinition("test:binary_classification_accuracy",
                     rf"#quality_metric: host=\S+, test binary_classification_accuracy "
                     rf"<score>={_VALUE}", "Maximize"),
    MetricDefinition("test:binary_classification_cross_entropy",
                     rf"#quality_metric: host=\S+, test binary_classification_cross_entropy "
                     rf"<loss>={_VALUE}", "Minimize"),
    MetricDefinition("test:binary_f_beta",
                     rf"#quality_metric: host=\S+, test binary_f_\S+ <score>={_VALUE}",
                     "Maximize"),
]

CHANNELS = (
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE),
    ChannelDefinition("test", content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE),
)


def validate_fm_channels(channels: Iterable[Mapping[str, Any]], input_mode: str) -> None:
    channels = list(channels)
    validate_channels(NAME, CHANNELS, channels, input_mode)
    require_one_label_column(NAME, channels)


# -- the model -------------------------------------------------------------------------------------
class FMModel:
    """Learned parameters (float32): ``bias`` [1], ``linear`` [d], ``factors`` [d, k]."""

    def __init__(self, bias: np.ndarray, linear: np.ndarray, factors: np.ndarray,
                 predictor_type: str) -> None:
        self.bias = np.asarray(bias, dtype=np.float32).reshape(1)
        self.linear = np.asarray(linear, dtype=np.float32).reshape(-1)
        self.factors = np.asarray(factors, dtype=np.float32)
        self.predictor_type = predictor_type
        self.feature_dim = len(self.linear)

    def raw(self, features: Any) -> np.ndarray:
        """y(x) for each row (dense array or CSR matrix of ``feature_dim`` columns)."""
        linear = np.asarray(features @ self.linear.astype(np.float64)).reshape(-1)
        xv = np.asarray(features @ self.factors.astype(np.float64))
        if isinstance(features, np.ndarray):
            squares: Any = features.astype(np.float64) ** 2
        else:
            squares = features.multiply(features)
        x2v2 = np.asarray(squares @ (self.factors.astype(np.float64) ** 2))
        interaction = 0.5 * (xv * xv - x2v2).sum(axis=1)
        return float(self.bias[0]) + linear + interaction

    def scores(self, features: Any) -> np.ndarray:
        raw = self.raw(features)
        if self.predictor_type == "binary_classifier":
            raw = 1.0 / (1.0 + np.exp(-np.clip(raw, -80, 80)))
        return raw.astype(np.float32)

    def save(self, model_dir: Path) -> None:
        from openmaker.algorithms.kmeans import write_ndarray_list

        model_dir.mkdir(parents=True, exist_ok=True)
        write_ndarray_list(model_dir / MODEL_FILE, [self.bias, self.linear, self.factors])
        metadata = {"predictor_type": self.predictor_type, "feature_dim": self.feature_dim,
                    "num_factors": int(self.factors.shape[1]), "version": "1.0"}
        (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> FMModel:
        from openmaker.algorithms.kmeans import read_ndarray_list

        directory = Path(model_dir)
        missing = [n for n in (MODEL_FILE, METADATA_FILE) if not (directory / n).is_file()]
        if missing:
            raise ClientError(f"{directory} holds no {', '.join(missing)} (a {NAME} model has "
                              f"{MODEL_FILE} and {METADATA_FILE})")
        metadata = json.loads((directory / METADATA_FILE).read_text())
        try:
            bias, linear, factors = read_ndarray_list((directory / MODEL_FILE).read_bytes())
        except ValueError as error:
            raise ClientError(f"{directory / MODEL_FILE}: {error}") from None
        return cls(bias, linear, factors, metadata["predictor_type"])


# -- several hosts ---------------------------------------------------------------------------------
# -- reading channels ------------------------------------------------------------------------------
def read_rows(env: TrainingEnvironment, channel: str, feature_dim: int,
              predictor_type: str) -> tuple[Any, np.ndarray] | None:
    """This host's rows of ``channel`` as (CSR matrix of ``feature_dim`` columns, float32
    labels), or None when it has none; ClientError for data that does not fit the job."""
    import scipy.sparse

    from openmaker.algorithms._data import read_channel
    from openmaker.formats.content_types import parse_content_type

    data_format = parse_content_type(env.content_type(channel) or DEFAULT_CONTENT_TYPE).format
    if data_format not in ("recordio-protobuf", "csv"):
        raise ClientError(f"channel {channel!r}: {NAME} reads {', '.join(CONTENT_TYPES)}")
    dataset = read_channel(env, channel, data_format, require_rows=False)
    if dataset is None:
        return None
    width = dataset.columns
    if width > feature_dim or (width != feature_dim and not dataset.is_sparse):
        raise ClientError(f"channel {channel!r}: the records have {width} features but "
                          f"HyperParameters.feature_dim is {feature_dim}")
    matrix = scipy.sparse.csr_matrix(dataset.features, dtype=np.float32)
    matrix.resize((matrix.shape[0], feature_dim))
    matrix.eliminate_zeros()
    if not np.isfinite(matrix.data).all():
        row = int(np.searchsorted(matrix.indptr, np.flatnonzero(~np.isfinite(matrix.data))[0],
                                  side="right")) - 1
        raise ClientError(f"channel {channel!r}, record {row + 1}: a feature is not a number")
    labels = np.asarray(dataset.labels, dtype=np.float32).reshape(-1)
    bad = ~np.isfinite(labels)
    if predictor_type == "binary_classifier":
        bad |= (labels != 0) & (labels != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        need = "0 or 1 for a binary_classifier" if predictor_type == "binary_classifier" \
            else "a number"
        raise ClientError(f"channel {channel!r}, record {row + 1}: the label "
                          f"{labels[row]!r} is not valid; it must be {need}")
    return matrix, labels


# -- training ---------------------------------------------------------------------------------
def _initial(term: str, shape: tuple[int, ...], values: Mapping[str, Any], generator: Any) -> Any:
    import torch

    method = values[f"{term}_init_method"]
    if method == "normal":
        return torch.randn(shape, generator=generator, dtype=torch.float32) * \
            values[f"{term}_init_sigma"]
    if method == "uniform":
        # UNVERIFIED: SageMaker's scale when none is given; the sigma default stands in.
        scale = values[f"{term}_init_scale"]
        scale = TERM_DEFAULTS[term][2] if scale is None else scale
        return (torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1) * scale
    value = values[f"{term}_init_value"]
    return torch.full(shape, 0.0 if value is None else float(value), dtype=torch.float32)


class _Trainer:
    """Mini-batch Adam over the three terms, with lazy row updates for linear and factors."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        import torch

        self.values = values
        generator = torch.Generator().manual_seed(SEED)
        d, k = values["feature_dim"], values["num_factors"]
        self.params = {"bias": _initial("bias", (1,), values, generator),
                       "linear": _initial("linear", (d, 1), values, generator),
                       "factors": _initial("factors", (d, k), values, generator)}
        for param in self.params.values():
            param.requires_grad_(True)
        self.moments = {name: (torch.zeros_like(p, requires_grad=False),
                               torch.zeros_like(p, requires_grad=False))
                        for name, p in self.params.items()}
        self.step = 0
        self.binary = values["predictor_type"] == "binary_classifier"
        self.eps = values["eps"] if values["eps"] is not None else DEFAULT_EPS

    def forward(self, indptr: Any, indices: Any, data: Any, rows: int,
                params: Mapping[str, Any]) -> Any:
        import torch
        import torch.nn.functional as F  # noqa: N812

        row_of = torch.repeat_interleave(torch.arange(rows), indptr[1:] - indptr[:-1])
        linear = torch.zeros(rows).index_add_(
            0, row_of, F.embedding(indices, params["linear"], sparse=True).squeeze(1) * data)
        xv = F.embedding(indices, params["factors"], sparse=True) * data[:, None]
        k = params["factors"].shape[1]
        sums = torch.zeros(rows, k).index_add_(0, row_of, xv)
        squares = torch.zeros(rows, k).index_add_(0, row_of, xv * xv)
        return params["bias"] + linear + 0.5 * (sums * sums - squares).sum(dim=1)

    def batch(self, matrix: Any, labels: np.ndarray) -> float:
        """One Adam step on a CSR batch; returns the batch's summed loss."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        rows = matrix.shape[0]
        indptr = torch.from_numpy(matrix.indptr.astype(np.int64))
        indices = torch.from_numpy(matrix.indices.astype(np.int64))
        data = torch.from_numpy(matrix.data.astype(np.float32))
        target = torch.from_numpy(labels)
        # The leaves are the parameters themselves: their embedding gradients are sparse,
        # so a batch never touches all feature_dim rows.
        raw = self.forward(indptr, indices, data, rows, self.params)
        if self.binary:
            loss = F.binary_cross_entropy_with_logits(raw, target, reduction="sum")
        else:
            loss = ((raw - target) ** 2).sum() * 0.5
        loss.backward()
        self.step += 1
        rescale = self.values["rescale_grad"]
        rescale = 1.0 / rows if rescale is None else rescale
        with torch.no_grad():
            for name, param in self.params.items():
                self._update(name, param.grad, rescale)
                param.grad = None
        return float(loss.detach()) * (1.0 if self.binary else 2.0)

    def _update(self, name: str, grad: Any, rescale: float) -> None:
        import torch

        weight = self.params[name]
        first, second = self.moments[name]
        lr, wd = self.values[f"{name}_lr"], self.values[f"{name}_wd"]
        clip = self.values["clip_gradient"]
        if grad.is_sparse:
            grad = grad.coalesce()
            rows = grad.indices()[0]
            g = grad.values() * rescale
        else:
            rows = None
            g = grad * rescale
        if clip is not None and clip >= 0:
            g = g.clamp(-clip, clip)
        def taken(tensor: Any) -> Any:
            return tensor if rows is None else tensor.index_select(0, rows)

        current = taken(weight)
        g = g + wd * current
        m = taken(first) * ADAM_BETA1 + (1 - ADAM_BETA1) * g
        v = taken(second) * ADAM_BETA2 + (1 - ADAM_BETA2) * g * g
        correction1 = 1 - ADAM_BETA1 ** self.step
        correction2 = 1 - ADAM_BETA2 ** self.step
        updated = current - lr * (m / correction1) / (torch.sqrt(v / correction2) + self.eps)
        if rows is None:
            first.copy_(m)
            second.copy_(v)
            weight.copy_(updated)
        else:
            first.index_copy_(0, rows, m)
            second.index_copy_(0, rows, v)
            weight.index_copy_(0, rows, updated)

    def model(self) -> FMModel:
        bias, linear, factors = (self.params[name].detach().numpy() for name in TERMS)
        return FMModel(bias, linear.reshape(-1), factors, self.values["predictor_type"])


def _metric(value: float) -> str:
    return f"{value:.6g}"


def _score_sums(model: FMModel, rows: tuple[Any, np.ndarray] | None) -> np.ndarray:
    """[rows, squared error, log loss, correct, true pos, false pos, false neg] sums."""
    sums = np.zeros(7, dtype=np.float64)
    if rows is None:
        return sums
    matrix, labels = rows
    scores = model.scores(matrix).astype(np.float64)
    labels = labels.astype(np.float64)
    sums[0] = len(labels)
    sums[1] = float(np.sum((scores - labels) ** 2))
    if model.predictor_type == "binary_classifier":
        p = np.clip(scores, 1e-12, 1 - 1e-12)
        sums[2] = float(-np.sum(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
        predicted = scores >= 0.5
        truth = labels == 1
        sums[3] = float(np.sum(predicted == truth))
        sums[4] = float(np.sum(predicted & truth))
        sums[5] = float(np.sum(predicted & ~truth))
        sums[6] = float(np.sum(~predicted & truth))
    return sums


def _print_metrics(host: str, prefix: str, sums: np.ndarray, binary: bool) -> None:
    rows = sums[0]
    if binary:
        tp, fp, fn = sums[4], sums[5], sums[6]
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        print(f"#quality_metric: host={host}, {prefix} binary_classification_accuracy "
              f"<score>={_metric(sums[3] / rows)}", flush=True)
        print(f"#quality_metric: host={host}, {prefix} binary_classification_cross_entropy "
              f"<loss>={_metric(sums[2] / rows)}", flush=True)
        print(f"#quality_metric: host={host}, {prefix} binary_f_1.000 <score>={_metric(f1)}",
              flush=True)
    else:
        print(f"#quality_metric: host={host}, {prefix} rmse "
              f"<loss>={_metric(math.sqrt(sums[1] / rows))}", flush=True)


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``: write the model files to the model directory."""
    try:
        values = defaults(HYPERPARAMETERS.parse(env.hyperparameters))
        validate_fm_channels(
            [{"ChannelName": name, "ContentType": config.get("ContentType"),
              "InputMode": config.get("TrainingInputMode", "File")}
             for name, config in env.input_data_config.items() if name in ("train", "test")],
            "File")
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError(f"InputDataConfig: {NAME} needs a 'train' channel")
    import torch

    torch.set_num_threads(1)  # summation order fixed: the same job gives the same model
    cluster = HostGroup(env, timeout_s=DISTRIBUTED_TIMEOUT_S)
    binary = values["predictor_type"] == "binary_classifier"
    error: Exception | None = None
    data = None
    try:
        data = read_rows(env, "train", values["feature_dim"], values["predictor_type"])
    except Exception as failure:  # noqa: BLE001 -- every host must learn of it
        error = failure
    cluster.agree(error)
    own_rows = 0 if data is None else data[0].shape[0]
    total_rows = torch.tensor([float(own_rows)], dtype=torch.float64)
    cluster.sum(total_rows)
    if total_rows.item() == 0:
        cluster.close()
        raise ClientError("channel 'train' has no data: no records were found")
    trainer = _Trainer(values)
    rng = np.random.default_rng([SEED, cluster.rank])
    batch_size = values["mini_batch_size"]
    epochs = values["epochs"]
    for epoch in range(epochs):
        loss_sum = 0.0
        if data is not None:
            matrix, labels = data
            order = rng.permutation(own_rows)
            for start in range(0, own_rows, batch_size):
                chosen = np.sort(order[start:start + batch_size])
                loss_sum += trainer.batch(matrix[chosen], labels[chosen])
        if cluster.joined:
            weight = own_rows / total_rows.item()
            with torch.no_grad():
                for param in trainer.params.values():
                    param.mul_(weight)
                    cluster.sum(param.data)
        totals = torch.tensor([loss_sum, float(own_rows)], dtype=torch.float64)
        cluster.sum(totals)
        mean = totals[0].item() / totals[1].item()
        if cluster.rank == 0:
            if binary:
                print(f"#quality_metric: host={env.current_host}, epoch={epoch}, train "
                      f"binary_classification_cross_entropy_objective <loss>={_metric(mean)}",
                      flush=True)
            else:
                print(f"#quality_metric: host={env.current_host}, epoch={epoch}, train "
                      f"rmse_objective <loss>={_metric(math.sqrt(mean))}", flush=True)
            print(f"#progress_metric: host={env.current_host}, completed "
                  f"{_metric(100 * (epoch + 1) / epochs)} % of epochs", flush=True)
    model = trainer.model()
    if cluster.rank == 0:
        model.save(env.model_dir)
    if "test" in env.input_data_config:
        error = None
        test = None
        try:
            test = read_rows(env, "test", values["feature_dim"], values["predictor_type"])
        except Exception as failure:  # noqa: BLE001 -- every host must learn of it
            error = failure
        cluster.agree(error)
        # Every metric is a ratio of sums, so a replicated test channel scores the same.
        sums = torch.from_numpy(_score_sums(model, test))
        cluster.sum(sums)
        if cluster.rank == 0:
            if sums[0].item() == 0:
                cluster.close()
                raise ClientError("channel 'test' has no data: no records were found")
            _print_metrics(env.current_host, "test", sums.numpy(), binary)
    cluster.close()


# -- inference -------------------------------------------------------------------------------------
# text/csv requests and answers are an openmaker addition (the reference: FM takes no CSV).
REQUEST_TYPES = ("application/json", "application/jsonlines",
                 "application/x-recordio-protobuf", "text/csv")
ACCEPTS = ("application/json", "application/jsonlines", "application/x-recordio-protobuf",
           "text/csv")


def _number(value: float) -> float:
    """A float32 as the shortest float that reads back to it."""
    return float(str(np.float32(value)))


class FactorizationMachinesPredictor(Predictor):
    """Serves an FM model: ``score`` (and ``predicted_label`` for a binary classifier)."""

    content_types = REQUEST_TYPES
    accepts = ACCEPTS

    def __init__(self, model: FMModel, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.model = model
        self.binary = model.predictor_type == "binary_classifier"
        # UNVERIFIED: the response type SageMaker's FM picks for Accept */*.
        self.default_accept = media_parameters(environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                                     or "application/json")[0]

    def _accept(self, accept: str | None) -> str:
        return negotiate_accept(accept, ACCEPTS, self.default_accept)

    def _features(self, body: bytes, content_type: str) -> Any:
        import scipy.sparse

        media, parameters = media_parameters(content_type or "application/json")
        features = read_request_features(body, content_type, media, parameters, REQUEST_TYPES)
        dim = self.model.feature_dim
        if features.shape[0] == 0:
            return features
        if features.shape[1] > dim or (isinstance(features, np.ndarray)
                                       and features.shape[1] != dim):
            raise InferenceError(f"the records have {features.shape[1]} features; the model "
                                 f"was trained on feature_dim={dim}")
        matrix = scipy.sparse.csr_matrix(features, dtype=np.float32)
        matrix.resize((matrix.shape[0], dim))
        if not np.isfinite(matrix.data).all():
            raise InferenceError("a feature is missing or not a number")
        return matrix

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        return self._encode(self.model.scores(features), accept_type), accept_type

    def _encode(self, scores: np.ndarray, accept: str) -> bytes:
        labels = (scores >= 0.5).astype(np.int64) if self.binary else None
        if accept == "text/csv":
            if labels is None:
                return "".join(f"{_number(s)}\n" for s in scores).encode()
            return "".join(f"{_number(s)},{int(p)}\n" for s, p in zip(scores, labels,
                                                                     strict=True)).encode()
        if accept == "application/x-recordio-protobuf":
            from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

            def records() -> Iterator[Record]:
                for index, score in enumerate(scores):
                    label = {"score": Tensor(np.asarray([score], dtype=np.float32))}
                    if labels is not None:
                        label["predicted_label"] = Tensor(
                            np.asarray([labels[index]], dtype=np.float32))
                    yield Record(features={}, label=label)

            buffer = io.BytesIO()
            write_records(buffer, records())
            return buffer.getvalue()
        objects: list[dict[str, Any]] = []
        for index, score in enumerate(scores):
            item: dict[str, Any] = {"score": _number(score)}
            if labels is not None:
                item["predicted_label"] = int(labels[index])
            objects.append(item)
        if accept == "application/json":
            return json.dumps({"predictions": objects}).encode()
        return "".join(json.dumps(item) + "\n" for item in objects).encode()


class FactorizationMachines(Algorithm):
    """SageMaker's built-in Factorization Machines."""

    name = NAME
    repositories = (NAME,)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        validate_fm_channels(channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> FactorizationMachinesPredictor:
        return FactorizationMachinesPredictor(FMModel.load(model_dir))
