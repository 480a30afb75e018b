"""SageMaker's built-in K-Means (``kmeans:1``): web-scale mini-batch k-means that keeps
``k × extra_center_factor`` centres while streaming over the ``train`` channel, then a
local Lloyd (weighted k-means on those centres) that reduces them to ``k``.

The model is ``model_algo-1``, an MXNet NDArray list file holding one float32 array of
shape ``(k, feature_dim)``, as SageMaker writes it (readable by ``mx.nd.load``). Hosting
answers ``closest_cluster`` and ``distance_to_cluster`` per record.

SageMaker's K-Means has no seed hyperparameter; it is deterministic for given data and
hyperparameters, so a fixed seed (:data:`SEED`, plus the host's rank) drives every random
choice here. Several hosts (``ShardedByS3Key``) each stream their shard, then exchange
their centres over ``torch.distributed`` (gloo, at ``MASTER_ADDR``/``MASTER_PORT``) and
all run the same reduction; the first host writes the model.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import struct
import time
from collections.abc import Mapping
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
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "model_algo-1"
SEED = 1234
AUTO_EXTRA_CENTER_FACTOR = 10
AUTO_LLOYD_TRIALS = 10
DISTRIBUTED_TIMEOUT_S = int(os.environ.get("OPENMAKER_KMEANS_TIMEOUT", "600"))

_POSITIVE_INT = Interval(1, None)


def _auto_or_positive_int(text: str) -> str | int:
    if text.lower() == "auto":
        return "auto"
    number = float(text)
    if not number.is_integer() or number < 1:
        raise ValueError
    return int(number)


HYPERPARAMETERS = HyperparameterSpec("kmeans", [
    Hyperparameter("feature_dim", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("k", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("epochs", "int", 1, range=_POSITIVE_INT),
    Hyperparameter("mini_batch_size", "int", 5000, range=_POSITIVE_INT),
    Hyperparameter("init_method", "str", "random", choices=("random", "kmeans++")),
    Hyperparameter("extra_center_factor", "text", "auto", check=_auto_or_positive_int,
                   description="auto or a positive integer"),
    Hyperparameter("half_life_time_size", "int", 0, range=Interval(0, None)),
    Hyperparameter("local_lloyd_init_method", "str", "kmeans++",
                   choices=("random", "kmeans++")),
    Hyperparameter("local_lloyd_max_iter", "int", 300, range=_POSITIVE_INT),
    Hyperparameter("local_lloyd_num_trials", "text", "auto", check=_auto_or_positive_int,
                   description="auto or a positive integer"),
    Hyperparameter("local_lloyd_tol", "float", 0.0001, range=Interval(0, 1)),
    Hyperparameter("eval_metrics", "list", ["msd"], choices=("msd", "ssd")),
    # Sent by the SageMaker SDK's KMeans estimator on every job (True) and accepted by
    # SageMaker's container, though undocumented. Sparse records give the same centres
    # here either way, so it changes nothing (UNVERIFIED: what SageMaker does with False).
    Hyperparameter("force_dense", "bool", True),
])

CONTENT_TYPES = ("application/x-recordio-protobuf", "text/csv")
CHANNELS = (
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type="application/x-recordio-protobuf",
                      input_modes=("File", "Pipe", "FastFile")),
    ChannelDefinition("test", content_types=CONTENT_TYPES,
                      default_content_type="application/x-recordio-protobuf",
                      input_modes=("File", "Pipe", "FastFile")),
)

_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
METRICS = (
    MetricDefinition("test:msd", rf"#quality_metric: host=\S+, test msd <loss>={_VALUE}"),
    MetricDefinition("test:ssd", rf"#quality_metric: host=\S+, test ssd <loss>={_VALUE}"),
    MetricDefinition("train:msd", rf"#quality_metric: host=\S+, train msd <loss>={_VALUE}"),
    MetricDefinition("train:progress", rf"#progress_metric: host=\S+, completed {_VALUE} %"),
    MetricDefinition("train:throughput",
                     rf"#throughput_metric: host=\S+, train throughput={_VALUE} records/second"),
)
TUNING_OBJECTIVES = ("test:msd", "test:ssd")


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class KMeansConfig:
    """The job's hyperparameters with SageMaker's defaults filled in."""

    feature_dim: int
    k: int
    epochs: int = 1
    mini_batch_size: int = 5000
    init_method: str = "random"
    extra_center_factor: int | str = "auto"
    half_life_time_size: int = 0
    local_lloyd_init_method: str = "kmeans++"
    local_lloyd_max_iter: int = 300
    local_lloyd_num_trials: int | str = "auto"
    local_lloyd_tol: float = 0.0001
    eval_metrics: tuple[str, ...] = ("msd",)
    force_dense: bool = True  # accepted; sparse and dense records give the same centres

    @classmethod
    def from_hyperparameters(cls, raw: Mapping[str, Any]) -> KMeansConfig:
        values = HYPERPARAMETERS.parse(raw)
        known = {name: value for name, value in values.items() if name in HYPERPARAMETERS}
        if "eval_metrics" in known:
            known["eval_metrics"] = tuple(dict.fromkeys(known["eval_metrics"]))
        return cls(**known)

    @property
    def centers(self) -> int:
        """How many centres the streaming phase keeps: k × extra_center_factor."""
        factor = (AUTO_EXTRA_CENTER_FACTOR if self.extra_center_factor == "auto"
                  else int(self.extra_center_factor))
        return self.k * factor

    @property
    def trials(self) -> int:
        return (AUTO_LLOYD_TRIALS if self.local_lloyd_num_trials == "auto"
                else int(self.local_lloyd_num_trials))


# -- the algorithm, on arrays -----------------------------------------------------------------
def _row_norms(features: Any) -> np.ndarray:
    if isinstance(features, np.ndarray):
        return np.einsum("ij,ij->i", features, features, dtype=np.float64)
    return np.asarray(features.multiply(features).sum(axis=1), dtype=np.float64).ravel()


def _closest(features: Any, centers: np.ndarray, norms: np.ndarray | None = None,
             block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Index of the closest centre and the squared distance to it, per row (in blocks, so
    the row × centre matrix stays small)."""
    rows = features.shape[0]
    labels = np.empty(rows, dtype=np.int64)
    distances = np.empty(rows, dtype=np.float64)
    centers = np.ascontiguousarray(centers, dtype=np.float32)
    center_norms = np.einsum("ij,ij->i", centers, centers, dtype=np.float64)
    if norms is None:
        norms = _row_norms(features)
    for start in range(0, rows, block):
        end = min(rows, start + block)
        part = features[start:end]
        product = np.asarray(part @ centers.T, dtype=np.float64)
        product *= -2.0
        product += center_norms[None, :]
        nearest = np.argmin(product, axis=1)
        labels[start:end] = nearest
        best = product[np.arange(end - start), nearest] + norms[start:end]
        distances[start:end] = np.maximum(best, 0.0)
    return labels, distances


def _assign(features: Any, centers: np.ndarray, half_norms: np.ndarray) -> np.ndarray:
    """Index of the closest centre per row: the largest x·c - |c|²/2 (float32; no
    distances, which the streaming phase does not need)."""
    scores = np.asarray(features @ centers.T)
    scores -= half_norms[None, :]
    return np.argmax(scores, axis=1)


def _cluster_sums(features: Any, labels: np.ndarray, n_centers: int) -> np.ndarray:
    """Per-centre sum of the rows assigned to it (an indicator-matrix product: no loop)."""
    import scipy.sparse

    rows = features.shape[0]
    indicator = scipy.sparse.csr_matrix(
        (np.ones(rows, dtype=np.float32), (labels, np.arange(rows))), shape=(n_centers, rows))
    sums = indicator @ features
    return np.asarray(sums.toarray() if scipy.sparse.issparse(sums) else sums,
                      dtype=np.float64)


def _dense_rows(features: Any, rows: np.ndarray | slice) -> np.ndarray:
    part = features[rows]
    if not isinstance(part, np.ndarray):
        part = part.toarray()
    return np.asarray(part, dtype=np.float32)


def stream_centers(features: Any, config: KMeansConfig, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The streaming phase: ``(centres, weights)`` of ``config.centers`` centres after
    ``config.epochs`` passes of mini-batch k-means (Sculley 2010, per-centre learning rate
    1/count), point weights halving every ``half_life_time_size`` points when it is set.
    Centres no point reached have weight 0."""
    rows = features.shape[0]
    n_centers = config.centers
    batch = config.mini_batch_size
    weights = np.zeros(n_centers, dtype=np.float64)
    if rows == 0:
        return np.zeros((n_centers, config.feature_dim), dtype=np.float32), weights
    sample_rows = min(rows, max(batch, n_centers))
    if config.init_method == "kmeans++" and sample_rows > n_centers:
        from sklearn.cluster import kmeans_plusplus

        # scikit-learn's k-means++ takes the sparse rows as they are
        centers, _ = kmeans_plusplus(features[:sample_rows], n_centers,
                                     random_state=int(rng.integers(2**31 - 1)))
        if not isinstance(centers, np.ndarray):
            centers = centers.toarray()
    else:
        chosen = rng.choice(sample_rows, size=min(n_centers, sample_rows), replace=False)
        centers = _dense_rows(features, np.sort(chosen))
    centers = np.asarray(centers, dtype=np.float64)
    if centers.shape[0] < n_centers:  # fewer rows than centres: the rest stay unused
        centers = np.vstack([centers, np.zeros((n_centers - centers.shape[0], centers.shape[1]))])
    decay = 0.5 ** (batch / config.half_life_time_size) if config.half_life_time_size else 1.0
    for _epoch in range(config.epochs):
        for start in range(0, rows, batch):
            end = min(rows, start + batch)
            part = features[start:end]
            centers32 = centers.astype(np.float32)
            half_norms = 0.5 * np.einsum("ij,ij->i", centers32, centers32)
            labels = _assign(part, centers32, half_norms)
            counts = np.bincount(labels, minlength=n_centers).astype(np.float64)
            sums = _cluster_sums(part, labels, n_centers)
            weights *= decay
            hit = counts > 0
            total = weights[hit] + counts[hit]
            centers[hit] = (centers[hit] * weights[hit, None] + sums[hit]) / total[:, None]
            weights[hit] = total
    return centers.astype(np.float32), weights


def reduce_centers(centers: np.ndarray, weights: np.ndarray, config: KMeansConfig,
                   rng: np.random.Generator) -> np.ndarray:
    """The local Lloyd: weighted k-means of the streamed centres down to ``k``, best of
    ``local_lloyd_num_trials`` starts."""
    from sklearn.cluster import KMeans as SKLearnKMeans

    live = weights > 0
    centers, weights = centers[live], weights[live]
    k = config.k
    if centers.shape[0] <= k:
        # Too few distinct centres to reduce (fewer data rows than k): repeat the last.
        if centers.shape[0] == 0:
            raise ClientError("the train channel has no records to cluster")
        extra = np.repeat(centers[-1:], k - centers.shape[0], axis=0)
        return np.vstack([centers, extra]).astype(np.float32)
    init = "k-means++" if config.local_lloyd_init_method == "kmeans++" else "random"
    model = SKLearnKMeans(n_clusters=k, init=init, n_init=config.trials,
                          max_iter=config.local_lloyd_max_iter, tol=config.local_lloyd_tol,
                          random_state=int(rng.integers(2**31 - 1)), algorithm="lloyd")
    model.fit(centers.astype(np.float64), sample_weight=weights)
    return np.asarray(model.cluster_centers_, dtype=np.float32)


def fit(features: Any, config: KMeansConfig, seed: int = SEED) -> np.ndarray:
    """The ``(k, feature_dim)`` centres for ``features`` on one host."""
    rng = np.random.default_rng(seed)
    centers, weights = stream_centers(features, config, rng)
    return reduce_centers(centers, weights, config, rng)


# -- the MXNet NDArray list file ----------------------------------------------------------------
_LIST_MAGIC = 0x112
_NDARRAY_V2_MAGIC = 0xF993FAC9
_CPU = 1
_FLOAT32 = 0


def write_ndarray_list(path: Path, arrays: list[np.ndarray]) -> None:
    """``mx.nd.save(path, arrays)``'s bytes for dense float32 CPU arrays."""
    out = io.BytesIO()
    out.write(struct.pack("<QQQ", _LIST_MAGIC, 0, len(arrays)))
    for array in arrays:
        array = np.ascontiguousarray(array, dtype="<f4")
        out.write(struct.pack("<Ii", _NDARRAY_V2_MAGIC, 0))  # magic, default storage
        out.write(struct.pack("<i", array.ndim))
        out.write(struct.pack(f"<{array.ndim}q", *array.shape))
        out.write(struct.pack("<iii", _CPU, 0, _FLOAT32))
        out.write(array.tobytes())
    out.write(struct.pack("<Q", 0))  # no names: a list, not a dict
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(out.getvalue())
    os.replace(temporary, path)


def read_ndarray_list(data: bytes) -> list[np.ndarray]:
    """The arrays of an MXNet NDArray list file (dense float32, as K-Means writes)."""
    try:
        magic, _, count = struct.unpack_from("<QQQ", data, 0)
        if magic != _LIST_MAGIC:
            raise ValueError("not an MXNet NDArray file")
        offset = 24
        arrays = []
        for _ in range(count):
            array_magic, storage = struct.unpack_from("<Ii", data, offset)
            offset += 8
            if array_magic != _NDARRAY_V2_MAGIC or storage != 0:
                raise ValueError("only dense NDArrays (format v2) are supported")
            (ndim,) = struct.unpack_from("<i", data, offset)
            offset += 4
            shape = struct.unpack_from(f"<{ndim}q", data, offset)
            offset += 8 * ndim
            _, _, type_flag = struct.unpack_from("<iii", data, offset)
            offset += 12
            if type_flag != _FLOAT32:
                raise ValueError(f"only float32 arrays are supported, found type {type_flag}")
            size = int(np.prod(shape)) * 4
            arrays.append(np.frombuffer(data, "<f4", int(np.prod(shape)), offset)
                          .reshape(shape).astype(np.float32))
            offset += size
        return arrays
    except struct.error:
        raise ValueError("truncated MXNet NDArray file") from None


# -- reading channels ---------------------------------------------------------------------------
def _label_size(content_type: str, channel: str) -> int:
    from openmaker.formats.content_types import parse_content_type

    parameters = parse_content_type(content_type).parameters
    raw = parameters.get("label_size", "1")
    if not raw.isdigit():
        raise ClientError(f"channel {channel!r}: ContentType {content_type!r} has label_size="
                          f"{raw!r}; give a whole number (label_size=0 for rows of features only)")
    return int(raw)


def read_features(env: TrainingEnvironment, channel: str, feature_dim: int, *,
                  allow_empty: bool = False) -> Any:
    """Every row of ``channel`` on this instance: a float32 array or CSR matrix of
    ``feature_dim`` columns (CSV labels, ``label_size`` columns first, and RecordIO labels
    are dropped); None when there are no rows and ``allow_empty``."""
    import scipy.sparse

    from openmaker.algorithms._data import channel_streams
    from openmaker.formats.csv import CSVFormatError, read_csv
    from openmaker.formats.recordio import RecordIOError
    from openmaker.formats.recordio_protobuf import RecordProtobufError, read_recordio_protobuf

    content_type = env.content_type(channel) or "application/x-recordio-protobuf"
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in CONTENT_TYPES:
        raise ClientError(f"channel {channel!r}: ContentType {content_type!r} is not supported "
                          f"by kmeans; use {' or '.join(CONTENT_TYPES)} "
                          "(text/csv;label_size=0 for rows of features only)")
    label_size = _label_size(content_type, channel) if media == "text/csv" else 0
    parts: list[Any] = []
    for stream in channel_streams(env, channel):
        try:
            if media == "text/csv":
                features, _ = read_csv(stream, label_size=label_size, dtype=np.float32)
            else:
                features, _ = read_recordio_protobuf(stream)
        except (CSVFormatError, RecordProtobufError, RecordIOError) as error:
            raise ClientError(str(error)) from None
        if features.shape[0] == 0:
            continue
        width = features.shape[1]
        if isinstance(features, np.ndarray):
            if width != feature_dim:
                hint = ""
                if media == "text/csv" and label_size and width + label_size == feature_dim:
                    hint = (f" (label_size={label_size} takes the first column(s) as labels; "
                            "use ContentType text/csv;label_size=0 for rows of features only)")
                raise ClientError(f"{stream.name}: the records have {width} features but "
                                  f"HyperParameters.feature_dim is {feature_dim}{hint}")
            parts.append(np.ascontiguousarray(features, dtype=np.float32))
        else:
            if width > feature_dim:
                raise ClientError(f"{stream.name}: the records have feature index "
                                  f"{width - 1} but HyperParameters.feature_dim is "
                                  f"{feature_dim}")
            matrix = features.tocsr().astype(np.float32)
            matrix.resize((matrix.shape[0], feature_dim))
            parts.append(matrix)
    if not parts:
        if allow_empty:
            return None
        raise ClientError(f"channel {channel!r} has no data: no records were found")
    if len(parts) == 1:
        return parts[0]
    if any(not isinstance(part, np.ndarray) for part in parts):
        return scipy.sparse.vstack([scipy.sparse.csr_matrix(p) for p in parts], format="csr")
    return np.concatenate(parts)


# -- distribution -------------------------------------------------------------------------------
class _Collective:
    """The hosts' process group (gloo), or a stand-in for one host."""

    def __init__(self, env: TrainingEnvironment) -> None:
        self.hosts = env.hosts
        self.rank = self.hosts.index(env.current_host) if env.current_host in self.hosts else 0
        self.world = len(self.hosts)
        self.group = None
        if self.world > 1:
            if not env.master_addr or not env.master_port:
                raise AlgorithmError(f"training over {self.world} hosts needs MASTER_ADDR and "
                                     "MASTER_PORT in the environment")
            import torch.distributed as dist

            dist.init_process_group(
                "gloo", init_method=f"tcp://{env.master_addr}:{env.master_port}",
                rank=self.rank, world_size=self.world,
                timeout=datetime.timedelta(seconds=DISTRIBUTED_TIMEOUT_S))
            self.group = dist

    def gather(self, array: np.ndarray) -> list[np.ndarray]:
        """Every host's ``array`` (same shape on each), in rank order."""
        if self.group is None:
            return [array]
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(array))
        out = [torch.empty_like(tensor) for _ in range(self.world)]
        self.group.all_gather(out, tensor)
        return [t.numpy() for t in out]

    def sum(self, array: np.ndarray) -> np.ndarray:
        return np.sum(self.gather(array), axis=0)

    def first_error(self, error: str | None) -> str | None:
        """The first failing host's error, on every host, so they stop together."""
        if self.group is None:
            return error
        encoded = (error or "").encode()[:900]
        buffer = np.zeros(1024, dtype=np.uint8)
        buffer[0] = 1 if error else 0
        buffer[1:3] = np.frombuffer(len(encoded).to_bytes(2, "little"), dtype=np.uint8)
        buffer[3:3 + len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
        for rank, other in enumerate(self.gather(buffer)):
            if other[0]:
                length = int.from_bytes(other[1:3].tobytes(), "little")
                message = other[3:3 + length].tobytes().decode(errors="replace")
                return message if rank == self.rank else f"{self.hosts[rank]}: {message}"
        return None

    def close(self) -> None:
        if self.group is not None:
            self.group.destroy_process_group()


# -- training -----------------------------------------------------------------------------------
def _metric(value: float) -> str:
    return f"{value:.6g}"


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``: write ``model_algo-1`` to the model directory."""
    try:
        config = KMeansConfig.from_hyperparameters(env.hyperparameters)
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError("InputDataConfig: kmeans needs a 'train' channel")
    host = env.current_host
    collective = _Collective(env)
    started = time.perf_counter()
    error = None
    features: Any = None
    try:
        features = read_features(env, "train", config.feature_dim,
                                 allow_empty=collective.world > 1)
    except ClientError as failure:
        error = str(failure)
    error = collective.first_error(error)
    if error is not None:
        raise ClientError(error)
    rows = 0 if features is None else features.shape[0]
    rng = np.random.default_rng(SEED + collective.rank)
    if features is None:
        features = np.zeros((0, config.feature_dim), dtype=np.float32)
    centers, weights = stream_centers(features, config, rng)
    print(f"#progress_metric: host={host}, completed 100 % of epochs", flush=True)
    all_centers = collective.gather(centers)
    all_weights = collective.gather(weights)
    total_rows = int(collective.sum(np.array([rows], dtype=np.int64))[0])
    if total_rows == 0:
        raise ClientError("channel 'train' has no data on any host: no records were found")
    # Every host reduces the same gathered centres with the same seed: same model on each.
    reduce_rng = np.random.default_rng(SEED)
    final = reduce_centers(np.concatenate(all_centers), np.concatenate(all_weights), config,
                           reduce_rng)
    elapsed = max(time.perf_counter() - started, 1e-9)
    ssd = float(_closest(features, final)[1].sum()) if rows else 0.0
    ssd = float(collective.sum(np.array([ssd], dtype=np.float64))[0])
    if collective.rank == 0:
        print(f"#throughput_metric: host={host}, train throughput="
              f"{total_rows * config.epochs / elapsed:.1f} records/second", flush=True)
        print(f"#quality_metric: host={host}, train msd <loss>={_metric(ssd / total_rows)}",
              flush=True)
    if "test" in env.input_data_config:
        test = read_features(env, "test", config.feature_dim)
        distances = _closest(test, final)[1]
        values = {"msd": float(distances.mean()), "ssd": float(distances.sum())}
        if collective.rank == 0:
            for name in config.eval_metrics:
                print(f"#quality_metric: host={host}, test {name} <loss>="
                      f"{_metric(values[name])}", flush=True)
    if collective.rank == 0:
        env.model_dir.mkdir(parents=True, exist_ok=True)
        write_ndarray_list(env.model_dir / MODEL_FILE, [final])
    collective.close()


# -- inference ----------------------------------------------------------------------------------
_ACCEPTS = ("application/json", "application/jsonlines", "text/csv",
            "application/x-recordio-protobuf")
_REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines",
                  "application/x-recordio-protobuf")


def _short(value: float) -> float:
    """A float32 result as the shortest float that reads back to it."""
    return float(str(np.float32(value)))


class KMeansPredictor(Predictor):
    """Serves ``model_algo-1``: per record, the closest centre's index and the Euclidean
    distance to it."""

    content_types = _REQUEST_TYPES
    accepts = _ACCEPTS

    def __init__(self, centers: np.ndarray, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.centers = np.ascontiguousarray(centers, dtype=np.float32)
        self.feature_dim = int(self.centers.shape[1])
        self.default_accept = (environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                               or "application/json")

    def _accept(self, accept: str | None) -> str:
        return negotiate_accept(accept, _ACCEPTS, self.default_accept)

    def _features(self, body: bytes, content_type: str) -> Any:
        media, *raw_parameters = (content_type or "text/csv").split(";")
        media = media.strip().lower()
        parameters = dict(part.strip().split("=", 1) for part in raw_parameters if "=" in part)
        try:
            if media == "text/csv":
                from openmaker.formats.csv import read_csv

                label_size = int(parameters.get("label_size", "0"))
                features, _ = read_csv(body, label_size=label_size, dtype=np.float32)
            elif media == "application/x-recordio-protobuf":
                from openmaker.formats.recordio_protobuf import read_recordio_protobuf

                features, _ = read_recordio_protobuf(body)
            elif media in ("application/json", "application/jsonlines"):
                from openmaker.formats.jsonlines import (
                    read_json_instances,
                    read_jsonlines_instances,
                )

                read = (read_json_instances if media == "application/json"
                        else read_jsonlines_instances)
                features = read(body)
            else:
                raise UnsupportedContentType(f"content type {content_type!r} is not "
                                             f"supported; use {', '.join(_REQUEST_TYPES)}")
        except InferenceError:
            raise
        except (ValueError, TypeError) as error:
            raise UnsupportedContentType(f"the request is not valid {media}: {error}") from None
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        width = features.shape[1]
        if isinstance(features, np.ndarray):
            if width != self.feature_dim:
                raise InferenceError(f"the records have {width} features; the model was "
                                     f"trained on {self.feature_dim}")
            return features.astype(np.float32, copy=False)
        if width > self.feature_dim:
            raise InferenceError(f"the request has feature index {width - 1}; the model was "
                                 f"trained on {self.feature_dim} features")
        matrix = features.tocsr().astype(np.float32)
        matrix.resize((matrix.shape[0], self.feature_dim))
        return matrix

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        clusters, squared = _closest(features, self.centers)
        distances = np.sqrt(squared).astype(np.float32)
        return self._encode(clusters, distances, accept_type), accept_type

    @staticmethod
    def _encode(clusters: np.ndarray, distances: np.ndarray, accept: str) -> bytes:
        if accept == "application/x-recordio-protobuf":
            from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

            buffer = io.BytesIO()
            write_records(buffer, (
                Record(features={}, label={
                    "closest_cluster": Tensor(np.array([cluster], dtype=np.float32)),
                    "distance_to_cluster": Tensor(np.array([distance], dtype=np.float32))})
                for cluster, distance in zip(clusters, distances, strict=True)))
            return buffer.getvalue()
        pairs = [(float(cluster), _short(distance))
                 for cluster, distance in zip(clusters, distances, strict=True)]
        if accept == "text/csv":
            return "".join(f"{c!r},{d!r}\n" for c, d in pairs).encode()
        if accept == "application/jsonlines":
            return "".join(json.dumps({"distance_to_cluster": d, "closest_cluster": c}) + "\n"
                           for c, d in pairs).encode()
        return json.dumps({"predictions": [
            {"closest_cluster": c, "distance_to_cluster": d} for c, d in pairs]}).encode()


def load_centers(model_dir: str | os.PathLike) -> np.ndarray:
    """The ``(k, feature_dim)`` centres in ``model_dir`` (``model_algo-1``, else its only
    file)."""
    directory = Path(model_dir)
    path = directory / MODEL_FILE
    if not path.is_file():
        files = [p for p in directory.iterdir() if p.is_file()] if directory.is_dir() else []
        if len(files) != 1:
            raise ClientError(f"{directory} holds no {MODEL_FILE}")
        path = files[0]
    try:
        arrays = read_ndarray_list(path.read_bytes())
    except ValueError as error:
        raise ClientError(f"{path.name}: {error}") from None
    if not arrays or arrays[0].ndim != 2:
        raise ClientError(f"{path.name}: expected one 2-D array of centres")
    return arrays[0]


class KMeans(Algorithm):
    """SageMaker's built-in K-Means."""

    name = "kmeans"
    repositories = ("kmeans",)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        """The tuning objectives SageMaker lists for K-Means: test:msd and test:ssd."""
        return {m.name: m.direction for m in self.metrics if m.name in TUNING_OBJECTIVES}

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> KMeansPredictor:
        return KMeansPredictor(load_centers(model_dir))


__all__ = ["KMeans", "KMeansConfig", "KMeansPredictor", "fit", "read_ndarray_list",
           "write_ndarray_list"]
