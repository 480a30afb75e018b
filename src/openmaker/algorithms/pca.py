"""SageMaker's built-in PCA (``pca:1``): principal components of a stream of records.

Hyperparameters, channels, content types and inference formats follow
``reference/algorithms.md`` section 10. Training reads the ``train`` channel in mini-batches
of ``mini_batch_size`` rows and accumulates statistics that are plain sums, so that hosts
reading ``ShardedByS3Key`` shards combine them with one all-reduce (``torch.distributed``,
gloo, over ``MASTER_ADDR``/``MASTER_PORT``):

* ``regular``: the row count, ``ΣX`` and the scatter matrix ``ΣXᵀX``; the centred scatter
  ``C = ΣXᵀX − n·μμᵀ`` is eigendecomposed exactly (``numpy.linalg.eigh``).
* ``randomized``: the same sums while ``feature_dim`` ≤ ``GRAM_LIMIT`` (the d×d matrix is
  small), decomposed with scikit-learn's ``randomized_svd`` using ``num_components +
  extra_components`` vectors; above it, a one-pass Nyström sketch ``CΩ`` and ``ΩᵀCΩ`` of
  d×k and k×k (Ω a seeded orthonormal d×k matrix), so memory stays O(d·k).

The model directory holds ``model_algo-1``, an MXNet NDArray dict (the format of
``mx.nd.save``) with ``s`` (singular values, ``num_components``), ``v`` (``feature_dim`` ×
``num_components``, one component per column) and, with ``subtract_mean``, ``mean``
(1 × ``feature_dim``). Components are in ascending order of singular value, the order
SageMaker's AWS example notebooks show (the last column is the first principal component).
A projection is ``(x − mean)·v``.

Metrics (openmaker's; SageMaker documents none for PCA): ``train:explained_variance_ratio``,
``train:throughput`` and, with a ``test`` channel, ``test:reconstruction_error`` (mean
squared distance between a test record and its reconstruction from the components).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
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

MODEL_FILE = "model_algo-1"
GRAM_LIMIT = 4096  # randomized mode keeps the d×d scatter matrix up to this feature_dim
SEED = 0  # PCA has no seed hyperparameter; every random draw uses this one
DISTRIBUTED_TIMEOUT_S = int(os.environ.get("OPENMAKER_PCA_DISTRIBUTED_TIMEOUT", "600"))

RECORDIO = "application/x-recordio-protobuf"
CONTENT_TYPES = (RECORDIO, "text/csv")
DEFAULT_CONTENT_TYPE = RECORDIO

HYPERPARAMETERS = HyperparameterSpec("pca", [
    Hyperparameter("feature_dim", "int", required=True, range=Interval(1, None),
                   description="a positive integer (the number of features per record)"),
    Hyperparameter("mini_batch_size", "int", required=True, range=Interval(1, None),
                   description="a positive integer (rows per mini-batch)"),
    Hyperparameter("num_components", "int", required=True, range=Interval(1, None),
                   description="a positive integer, at most feature_dim"),
    Hyperparameter("algorithm_mode", "str", default="regular",
                   choices=("regular", "randomized")),
    Hyperparameter("subtract_mean", "bool", default=True),
    Hyperparameter("extra_components", "int", default=-1, range=Interval(-1, None),
                   description="-1 (meaning max(10, num_components)) or an integer >= 0"),
])

CHANNELS = (
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE),
    ChannelDefinition("test", content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE),
)

METRICS = [
    MetricDefinition("test:reconstruction_error",
                     r"#quality_metric: host=\S+, test reconstruction_error <loss>=(\S+)",
                     "Minimize"),
    MetricDefinition("train:explained_variance_ratio",
                     r"#quality_metric: host=\S+, train explained_variance_ratio <score>=(\S+)",
                     "Maximize"),
    MetricDefinition("train:throughput",
                     r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
                     "Maximize"),
]


def check_dependencies(values: Mapping[str, Any]) -> None:
    """Rules between hyperparameters; ValidationException naming the one at fault."""
    if values["num_components"] > values["feature_dim"]:
        raise ValidationException(
            f"HyperParameters.num_components: {values['num_components']} is more than "
            f"feature_dim ({values['feature_dim']}); num_components must be at most "
            "feature_dim")


def parse_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The job's hyperparameters with SageMaker's defaults filled in."""
    values = HYPERPARAMETERS.parse(raw)
    check_dependencies(values)
    for parameter in HYPERPARAMETERS.parameters:
        values.setdefault(parameter.name, parameter.default)
    return values


def sketch_size(num_components: int, extra_components: int, feature_dim: int) -> int:
    """Vectors the randomized mode works with: num_components + extra_components, where
    -1 means max(10, num_components), and never more than feature_dim."""
    extra = max(10, num_components) if extra_components == -1 else extra_components
    return min(num_components + extra, feature_dim)


# -- the model file: MXNet's NDArray list format -------------------------------------------
_LIST_MAGIC = 0x112
_NDARRAY_V2_MAGIC = 0xF993FAC9
_FLOAT32 = 0  # mshadow type flag
_CPU = 1


def encode_ndarray_dict(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``arrays`` as ``mx.nd.save`` writes a dict of float32 dense CPU NDArrays."""
    out = io.BytesIO()
    out.write(struct.pack("<QQQ", _LIST_MAGIC, 0, len(arrays)))
    for array in arrays.values():
        data = np.ascontiguousarray(array, dtype="<f4")
        out.write(struct.pack("<Iii", _NDARRAY_V2_MAGIC, 0, data.ndim))
        out.write(struct.pack(f"<{data.ndim}q", *data.shape))
        out.write(struct.pack("<iii", _CPU, 0, _FLOAT32))
        out.write(data.tobytes())
    out.write(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode()
        out.write(struct.pack("<Q", len(encoded)) + encoded)
    return out.getvalue()


def decode_ndarray_dict(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``mx.nd.save`` file of named float32 dense NDArrays."""
    try:
        magic, _, count = struct.unpack_from("<QQQ", data, 0)
        if magic != _LIST_MAGIC:
            raise ValueError("not an MXNet NDArray file")
        position = 24
        arrays = []
        for _ in range(count):
            array_magic, storage, ndim = struct.unpack_from("<Iii", data, position)
            if array_magic != _NDARRAY_V2_MAGIC or storage != 0:
                raise ValueError("only dense NDArrays (format v2) are supported")
            position += 12
            shape = struct.unpack_from(f"<{ndim}q", data, position)
            position += 8 * ndim
            _, _, type_flag = struct.unpack_from("<iii", data, position)
            position += 12
            if type_flag != _FLOAT32:
                raise ValueError(f"only float32 NDArrays are supported (type {type_flag})")
            size = int(np.prod(shape)) * 4
            arrays.append(np.frombuffer(data, "<f4", int(np.prod(shape)),
                                        position).reshape(shape).astype(np.float32))
            position += size
        (names_count,) = struct.unpack_from("<Q", data, position)
        position += 8
        names = []
        for _ in range(names_count):
            (length,) = struct.unpack_from("<Q", data, position)
            position += 8
            names.append(data[position:position + length].decode())
            position += length
    except (struct.error, UnicodeDecodeError) as error:
        raise ValueError(f"truncated or corrupt NDArray file ({error})") from None
    if len(names) != len(arrays):
        raise ValueError("the NDArray file's arrays are not all named")
    return dict(zip(names, arrays, strict=True))


# -- statistics --------------------------------------------------------------------------
@dataclass
class PCAModel:
    """What training learns: components as columns of ``v`` (ascending singular value),
    singular values ``s``, and the mean (None without subtract_mean)."""

    v: np.ndarray
    s: np.ndarray
    mean: np.ndarray | None
    explained_variance_ratio: float

    def project(self, features: Any) -> np.ndarray:
        if isinstance(features, np.ndarray):
            x = features.astype(np.float64, copy=False)
            if self.mean is not None:
                x = x - self.mean
            return x @ self.v
        projected = np.asarray(features @ self.v)  # sparse: centre after projecting
        if self.mean is not None:
            projected = projected - self.mean @ self.v
        return projected

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        if self.mean is not None:
            arrays["mean"] = self.mean.reshape(1, -1)
        arrays["v"] = self.v
        arrays["s"] = self.s
        return arrays


class PCAStatistics:
    """Sums over mini-batches from which the components follow; all of them add up across
    hosts (``as_vector``/``from_vector``)."""

    def __init__(self, feature_dim: int, num_components: int, mode: str = "regular",
                 extra_components: int = -1, subtract_mean: bool = True) -> None:
        self.feature_dim = feature_dim
        self.num_components = num_components
        self.mode = mode
        self.subtract_mean = subtract_mean
        self.k = sketch_size(num_components, extra_components, feature_dim)
        self.exact = mode == "regular" or feature_dim <= GRAM_LIMIT
        self.n = 0.0
        self.total = np.zeros(feature_dim)
        self.squares = np.zeros(feature_dim)
        if self.exact:
            self.gram = np.zeros((feature_dim, feature_dim))
        else:
            rng = np.random.default_rng(SEED)
            self.omega = np.linalg.qr(rng.standard_normal((feature_dim, self.k)))[0]
            self.y = np.zeros((feature_dim, self.k))  # XᵀXΩ

    def update(self, batch: Any) -> None:
        """Add one mini-batch (dense float array or CSR matrix)."""
        self.n += batch.shape[0]
        if isinstance(batch, np.ndarray):
            x = batch.astype(np.float64, copy=False)
            self.total += x.sum(axis=0)
            if self.exact:
                self.gram += x.T @ x
                return
            self.squares += np.einsum("ij,ij->j", x, x)
            self.y += x.T @ (x @ self.omega)
            return
        self.total += np.asarray(batch.sum(axis=0)).ravel()
        if self.exact:
            self.gram += (batch.T @ batch).toarray()
            return
        self.squares += np.asarray(batch.multiply(batch).sum(axis=0)).ravel()
        self.y += batch.T @ (batch @ self.omega)

    def as_vector(self) -> np.ndarray:
        parts = [np.array([self.n]), self.total, self.squares,
                 (self.gram if self.exact else self.y).ravel()]
        return np.concatenate(parts)

    def load_vector(self, vector: np.ndarray) -> None:
        d = self.feature_dim
        self.n = float(vector[0])
        self.total = vector[1:1 + d].copy()
        self.squares = vector[1 + d:1 + 2 * d].copy()
        rest = vector[1 + 2 * d:]
        if self.exact:
            self.gram = rest.reshape(d, d).copy()
        else:
            self.y = rest.reshape(d, self.k).copy()

    def model(self) -> PCAModel:
        """The components, singular values and mean the sums give."""
        if self.n <= 0:
            raise ClientError("channel 'train' has no records")
        mean = self.total / self.n if self.subtract_mean else None
        if self.exact:
            scatter = self.gram
            if mean is not None:
                scatter = scatter - self.n * np.outer(mean, mean)
            scatter = (scatter + scatter.T) / 2
            total_variance = float(np.trace(scatter))
            values, vectors = self._decompose(scatter)
        else:
            total_variance = float(self.squares.sum()
                                   - (self.n * mean @ mean if mean is not None else 0.0))
            values, vectors = self._nystrom(mean)
        values = np.clip(values, 0.0, None)
        # descending for the sign rule, then ascending as SageMaker stores them
        vectors = _flip_signs(vectors)
        ratio = float(values.sum() / total_variance) if total_variance > 0 else 1.0
        order = np.argsort(values, kind="stable")
        return PCAModel(v=vectors[:, order].astype(np.float32),
                        s=np.sqrt(values[order]).astype(np.float32),
                        mean=None if mean is None else mean.astype(np.float32),
                        explained_variance_ratio=ratio)

    def _decompose(self, scatter: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nc = self.num_components
        if self.mode == "regular":
            values, vectors = np.linalg.eigh(scatter)
            return values[::-1][:nc], vectors[:, ::-1][:, :nc]
        from sklearn.utils.extmath import randomized_svd

        _, values, vt = randomized_svd(scatter, nc, n_oversamples=self.k - nc,
                                       random_state=SEED)
        return values, vt.T

    def _nystrom(self, mean: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        # Stable single-pass Nyström (Tropp et al. 2017): C ≈ Y (ΩᵀY)⁻¹ Yᵀ with Y = CΩ.
        y = self.y
        if mean is not None:
            y = y - self.n * np.outer(mean, mean @ self.omega)
        shift = np.finfo(float).eps * max(np.linalg.norm(y), 1.0) * np.sqrt(self.feature_dim)
        y_shifted = y + shift * self.omega
        core = self.omega.T @ y_shifted
        core = (core + core.T) / 2
        try:
            factor = np.linalg.cholesky(core)
        except np.linalg.LinAlgError:
            values, vectors = np.linalg.eigh(core)
            factor = vectors * np.sqrt(np.clip(values, shift, None))
        b = np.linalg.solve(factor, y_shifted.T).T
        u, sigma, _ = np.linalg.svd(b, full_matrices=False)
        values = sigma ** 2 - shift
        nc = self.num_components
        return values[:nc], u[:, :nc]


def _flip_signs(vectors: np.ndarray) -> np.ndarray:
    """Each component with its largest-magnitude entry positive (scikit-learn's rule), so
    results do not depend on the solver's sign."""
    rows = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[rows, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    return vectors * signs


def fit(batches: Iterable[Any], feature_dim: int, num_components: int, *,
        algorithm_mode: str = "regular", extra_components: int = -1,
        subtract_mean: bool = True) -> PCAModel:
    """Components of the rows in ``batches`` (one process, no channel): what a training
    job computes, for benchmarks and tests."""
    statistics = PCAStatistics(feature_dim, num_components, algorithm_mode, extra_components,
                               subtract_mean)
    for batch in batches:
        statistics.update(batch)
    return statistics.model()


def mini_batches(features: Any, size: int) -> Iterator[Any]:
    for start in range(0, features.shape[0], size):
        yield features[start:start + size]


# -- reading channels ----------------------------------------------------------------------
def _channel_format(env: TrainingEnvironment, channel: str) -> tuple[str, int]:
    """(``csv`` or ``recordio-protobuf``, label columns to drop for CSV)."""
    from openmaker.formats.content_types import parse_content_type

    content_type = env.content_type(channel) or DEFAULT_CONTENT_TYPE
    try:
        parsed = parse_content_type(content_type)
        label_size = parsed.label_size if parsed.format == "csv" else 0
    except ValueError as error:
        raise ClientError(f"channel {channel!r}: {error}") from None
    if parsed.media_type not in CONTENT_TYPES:
        raise ClientError(f"channel {channel!r}: content type {content_type!r} is not "
                          f"supported by pca; use {' or '.join(CONTENT_TYPES)}")
    return parsed.format, label_size


def read_features(env: TrainingEnvironment, channel: str, feature_dim: int) -> Iterator[Any]:
    """The feature matrix of each file (or Pipe-mode stream) of ``channel``: float32 dense
    rows or a CSR matrix, ``feature_dim`` wide; CSV label columns dropped."""
    from openmaker.algorithms._data import channel_streams

    data_format, label_size = _channel_format(env, channel)
    for stream in channel_streams(env, channel):
        if data_format == "csv":
            from openmaker.formats.csv import CSVFormatError, read_csv

            try:
                features, _ = read_csv(stream, label_size=label_size, dtype=np.float32)
            except CSVFormatError as error:
                raise ClientError(str(error)) from None
            if features.shape[0] == 0:
                continue
            if features.shape[1] != feature_dim:
                hint = ""
                if features.shape[1] + label_size == feature_dim and label_size:
                    hint = (f"; the first {label_size} column(s) are taken as the label, use "
                            "ContentType text/csv;label_size=0 when the file has none")
                raise ClientError(f"{stream.name}: records have {features.shape[1]} feature "
                                  f"columns but feature_dim is {feature_dim}{hint}")
            yield features
            continue
        from openmaker.formats.recordio import RecordIOError
        from openmaker.formats.recordio_protobuf import (
            RecordProtobufError,
            read_recordio_protobuf,
        )

        try:
            features, _ = read_recordio_protobuf(stream)
        except (RecordProtobufError, RecordIOError) as error:
            raise ClientError(str(error)) from None
        if features.shape[0] == 0:
            continue
        if isinstance(features, np.ndarray):
            if features.shape[1] != feature_dim:
                raise ClientError(f"{stream.name}: records have {features.shape[1]} features "
                                  f"but feature_dim is {feature_dim}")
            yield features.astype(np.float32, copy=False)
            continue
        if features.shape[1] > feature_dim:
            raise ClientError(f"{stream.name}: a sparse record has shape {features.shape[1]} "
                              f"but feature_dim is {feature_dim}")
        features = features.astype(np.float32)
        features.resize((features.shape[0], feature_dim))
        yield features


# -- distribution ------------------------------------------------------------------------
@contextlib.contextmanager
def _process_group(env: TrainingEnvironment) -> Iterator[bool]:
    """Join the hosts' gloo group; yields whether training is distributed."""
    hosts = env.hosts
    if len(hosts) == 1:
        yield False
        return
    if not env.master_addr or not env.master_port:
        raise AlgorithmError(f"distributed training over {len(hosts)} hosts needs MASTER_ADDR "
                             "and MASTER_PORT in the environment")
    from datetime import timedelta

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://{env.master_addr}:{env.master_port}",
                            rank=hosts.index(env.current_host), world_size=len(hosts),
                            timeout=timedelta(seconds=DISTRIBUTED_TIMEOUT_S))
    try:
        yield True
    finally:
        dist.destroy_process_group()


def _all_reduce(vector: np.ndarray) -> np.ndarray:
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(np.ascontiguousarray(vector, dtype=np.float64))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.numpy()


# -- training --------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``: write ``model_algo-1`` to the model directory."""
    try:
        values = parse_hyperparameters(env.hyperparameters)
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError("InputDataConfig: pca needs a 'train' channel")
    for name in env.input_data_config:
        if name not in ("train", "test"):
            print(f"Channel {name!r} is not read by pca (it reads 'train' and 'test'); "
                  "ignoring it", flush=True)
    d = values["feature_dim"]
    statistics = PCAStatistics(d, values["num_components"], values["algorithm_mode"],
                               values["extra_components"], values["subtract_mean"])
    host = env.current_host
    with _process_group(env) as distributed:
        started = time.perf_counter()
        error = None
        try:
            for features in read_features(env, "train", d):
                for batch in mini_batches(features, values["mini_batch_size"]):
                    statistics.update(batch)
        except ClientError as failure:
            error = str(failure)
        seconds = time.perf_counter() - started
        rows = statistics.n
        if distributed:
            vector = _all_reduce(np.concatenate([[1.0 if error else 0.0],
                                                 statistics.as_vector()]))
            if error is None and vector[0] > 0:
                error = "another host could not read its part of channel 'train'; see its log"
            statistics.load_vector(vector[1:])
        if error is not None:
            raise ClientError(error)
        if statistics.n == 0:
            raise ClientError("channel 'train' has no data: no records were found"
                              + (" in any host's shard" if distributed else ""))
        if rows == 0:
            print(f"{host} has no training data in its shard", flush=True)
        model = statistics.model()
        print(f"#throughput_metric: host={host}, train throughput="
              f"{rows / max(seconds, 1e-9):.1f} records/second", flush=True)
        print(f"#quality_metric: host={host}, train explained_variance_ratio <score>="
              f"{model.explained_variance_ratio:.6g}", flush=True)
        if "test" in env.input_data_config:
            _evaluate(env, model, d)
        if env.is_master:
            env.model_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(env.model_dir / MODEL_FILE, encode_ndarray_dict(model.arrays()))


def _evaluate(env: TrainingEnvironment, model: PCAModel, feature_dim: int) -> None:
    """Print the test channel's mean squared reconstruction error."""
    v = model.v.astype(np.float64)
    total, rows = 0.0, 0
    for features in read_features(env, "test", feature_dim):
        for batch in mini_batches(features, 4096):
            x = batch.toarray() if not isinstance(batch, np.ndarray) else batch
            x = x.astype(np.float64)
            if model.mean is not None:
                x = x - model.mean
            residual = x - (x @ v) @ v.T
            total += float(np.einsum("ij,ij->", residual, residual))
            rows += x.shape[0]
    if rows:
        print(f"#quality_metric: host={env.current_host}, test reconstruction_error <loss>="
              f"{total / rows:.6g}", flush=True)


# -- inference -------------------------------------------------------------------------------
_ACCEPTS = ("application/json", "application/jsonlines", RECORDIO, "text/csv")
_REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines", RECORDIO)


def _short(values: np.ndarray) -> list[float]:
    """float32 results as the shortest floats that read back to them."""
    return [float(str(value)) for value in values.astype(np.float32)]


class PCAPredictor(Predictor):
    """Serves a ``model_algo-1``: CSV, JSON, JSON Lines and RecordIO-protobuf in; JSON
    (``{"projections": [{"projection": [...]}]}``), JSON Lines, RecordIO-protobuf
    (``label["projection"]``) and, as an openmaker extension, CSV out."""

    content_types = _REQUEST_TYPES
    accepts = _ACCEPTS

    def __init__(self, model: PCAModel, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.model = model
        self.feature_dim = int(model.v.shape[0])
        self.model.v = model.v.astype(np.float64)
        if model.mean is not None:
            self.model.mean = model.mean.reshape(-1).astype(np.float64)
        self.default_accept = (environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                               or "application/json")

    def _features(self, body: bytes, content_type: str) -> Any:
        media = (content_type or "text/csv").split(";", 1)[0].strip().lower()
        try:
            if media == "text/csv":
                from openmaker.formats.csv import read_csv

                features, _ = read_csv(body, label_size=0, dtype=np.float32)
            elif media == RECORDIO:
                from openmaker.formats.recordio_protobuf import read_recordio_protobuf

                features, _ = read_recordio_protobuf(body)
            elif media in ("application/json", "application/jsonlines"):
                from openmaker.formats.jsonlines import (
                    read_json_instances,
                    read_jsonlines_instances,
                )

                read = (read_json_instances if media == "application/json"
                        else read_jsonlines_instances)
                features = read(body, dtype=np.float32)
            else:
                raise UnsupportedContentType(
                    f"content type {content_type!r} is not supported; use "
                    f"{', '.join(_REQUEST_TYPES)}")
        except InferenceError:
            raise
        except (ValueError, TypeError) as error:
            raise UnsupportedContentType(f"the request is not valid {media}: {error}") from None
        if features.shape[0] == 0:
            return features
        # every format through float32 (what RecordIO carries), so all give equal answers
        if isinstance(features, np.ndarray):
            features = features.astype(np.float32, copy=False)
            if features.shape[1] != self.feature_dim:
                raise InferenceError(f"the records have {features.shape[1]} features; the "
                                     f"model was trained with feature_dim {self.feature_dim}")
            return features
        if features.shape[1] > self.feature_dim:
            raise InferenceError(f"the request has feature index {features.shape[1] - 1}; the "
                                 f"model was trained with feature_dim {self.feature_dim}")
        features = features.tocsr().astype(np.float32).astype(np.float64)
        features.resize((features.shape[0], self.feature_dim))
        return features

    def _accept(self, accept: str | None) -> str:
        return negotiate_accept(accept, _ACCEPTS, self.default_accept)

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        projections = self.model.project(features).astype(np.float32)
        return _encode(projections, accept_type), accept_type


def _encode(projections: np.ndarray, accept: str) -> bytes:
    if accept == "application/json":
        return json.dumps({"projections": [{"projection": _short(row)}
                                           for row in projections]}).encode()
    if accept == "application/jsonlines":
        return "".join(json.dumps({"projection": _short(row)}) + "\n"
                       for row in projections).encode()
    if accept == RECORDIO:
        from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

        buffer = io.BytesIO()
        write_records(buffer, (Record(features={}, label={"projection": Tensor(row)})
                               for row in projections))
        return buffer.getvalue()
    return "".join(",".join(str(v) for v in _short(row)) + "\n"
                   for row in projections).encode()


def load_model(model_dir: str | os.PathLike) -> PCAModel:
    """The model in ``model_dir``'s ``model_algo-1``."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ClientError(f"{model_dir} holds no {MODEL_FILE}")
    try:
        arrays = decode_ndarray_dict(path.read_bytes())
    except ValueError as error:
        raise ClientError(f"{MODEL_FILE} is not a PCA model: {error}") from None
    if "v" not in arrays or "s" not in arrays:
        raise ClientError(f"{MODEL_FILE} is not a PCA model: it needs arrays 'v' and 's', "
                          f"found {', '.join(arrays) or 'none'}")
    mean = arrays.get("mean")
    return PCAModel(v=arrays["v"], s=arrays["s"].reshape(-1),
                    mean=None if mean is None else mean.reshape(-1),
                    explained_variance_ratio=float("nan"))


class PCA(Algorithm):
    """SageMaker's built-in PCA."""

    name = "pca"
    repositories = ("pca",)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        """None: SageMaker documents no tuning metrics for PCA."""
        return {}

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values = HYPERPARAMETERS.parse(raw)
        check_dependencies(values)
        return values

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        channels = list(channels)
        validate_channels("pca", CHANNELS, channels, input_mode)
        for index, channel in enumerate(channels, start=1):
            content_type = channel.get("ContentType")
            if not content_type:
                continue
            from openmaker.formats.content_types import parse_content_type

            try:
                parse_content_type(content_type)
            except ValueError as error:
                raise ValidationException(
                    f"InputDataConfig.{index}.ContentType: {error}") from None

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> PCAPredictor:
        return PCAPredictor(load_model(model_dir))
