"""SageMaker's built-in k-Nearest Neighbors (``knn:1``), on faiss.

Hyperparameters, channels, metric names, model files and inference formats follow
``reference/algorithms.md`` section 7. Training streams the ``train`` channel through a
reservoir sample of ``sample_size`` points (split evenly across hosts; each host samples
its own shard and the samples are gathered on the first host with ``torch.distributed``
over gloo), optionally reduces the dimension (random sign projection or a fast
Johnson-Lindenstrauss transform), and builds the faiss index ``index_type`` names. The
optional ``test`` channel is scored with the index: ``test accuracy`` (classifier) or
``test mse`` (regressor) in SageMaker's ``#quality_metric`` lines.

The model directory holds ``model_algo-1`` (the serialised faiss index),
``model_algo-1.labels`` (the sample's labels, float32) and ``model_algo-1.json``
(metadata: k, predictor type, dimension reduction with its seed, normalisation).

faiss (and torch, for several hosts) is imported only when training or loading.
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
    NotAcceptable,
    Predictor,
    TrainingEnvironment,
    UnsupportedContentType,
    media_parameters,
    require_one_label_column,
    validate_channels,
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "model_algo-1"
LABELS_FILE = "model_algo-1.labels"
METADATA_FILE = "model_algo-1.json"
MODEL_VERSION = "1.0"
# The sampling and projection seed. SageMaker records its projection seed in the metadata
# and has no seed hyperparameter; a fixed one makes jobs repeatable.
SEED = 3
GATHER_TIMEOUT_S = int(os.environ.get("OPENMAKER_KNN_GATHER_TIMEOUT", "600"))

PQ_M_VALUES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)
INDEX_TYPES = ("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")
INDEX_METRICS = ("L2", "INNER_PRODUCT", "COSINE")
CONTENT_TYPES = ("text/csv", "application/x-recordio-protobuf")
# UNVERIFIED: what SageMaker's k-NN assumes for a channel without a ContentType; the SDK's
# record_set() always sends RecordIO-protobuf.
DEFAULT_CONTENT_TYPE = "application/x-recordio-protobuf"


def _check_nlists(text: str) -> Any:
    if text.lower() == "auto":
        return "auto"
    value = float(text)
    if not value.is_integer() or value < 1:
        raise ValueError
    return int(value)


def _check_pq_m(text: str) -> int:
    value = float(text)
    if not value.is_integer() or int(value) not in PQ_M_VALUES:
        raise ValueError
    return int(value)


_POSITIVE_INT = Interval(1, None)

HYPERPARAMETERS = HyperparameterSpec("knn", [
    Hyperparameter("feature_dim", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("k", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("predictor_type", "str", required=True, choices=("classifier", "regressor")),
    Hyperparameter("sample_size", "int", required=True, range=_POSITIVE_INT),
    Hyperparameter("dimension_reduction_type", "str", choices=("sign", "fjlt")),
    Hyperparameter("dimension_reduction_target", "int", range=_POSITIVE_INT),
    Hyperparameter("index_type", "str", default="faiss.Flat", choices=INDEX_TYPES),
    Hyperparameter("index_metric", "str", default="L2", choices=INDEX_METRICS),
    Hyperparameter("faiss_index_ivf_nlists", "text", default="auto", check=_check_nlists,
                   description="'auto' or a positive integer"),
    Hyperparameter("faiss_index_pq_m", "text", check=_check_pq_m,
                   description=f"one of {', '.join(map(str, PQ_M_VALUES))}"),
    Hyperparameter("mini_batch_size", "int", default=5000, range=_POSITIVE_INT),
])


def check_dependencies(values: Mapping[str, Any]) -> None:
    """ValidationException for values that are valid alone but not together."""
    reduction = values.get("dimension_reduction_type")
    target = values.get("dimension_reduction_target")
    feature_dim = values["feature_dim"]
    if reduction is not None:
        if target is None:
            raise ValidationException(
                "HyperParameters.dimension_reduction_target is required when "
                f"dimension_reduction_type is {reduction} (an integer in [1, feature_dim))")
        if target >= feature_dim:
            raise ValidationException(
                f"HyperParameters.dimension_reduction_target: {target} must be less than "
                f"feature_dim ({feature_dim})")
    elif target is not None:
        raise ValidationException(
            "HyperParameters.dimension_reduction_target is set but dimension_reduction_type "
            "is not; set dimension_reduction_type to sign or fjlt, or remove the target")
    index_type = values.get("index_type", "faiss.Flat")
    metric = values.get("index_metric", "L2")
    if index_type == "faiss.IVFPQ" and metric != "L2":
        raise ValidationException(
            f"HyperParameters.index_metric: {metric} is not supported with faiss.IVFPQ; "
            "use L2 (or another index_type)")


def defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the optional hyperparameters' defaults filled in."""
    filled = {p.name: p.default for p in HYPERPARAMETERS.parameters if p.default is not None}
    filled.update({k: v for k, v in values.items() if k in HYPERPARAMETERS})
    return filled


_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"
METRICS = [
    MetricDefinition("test:accuracy", rf"#quality_metric: host=\S+, test accuracy <score>={_VALUE}",
                     "Maximize"),
    MetricDefinition("test:mse", rf"#quality_metric: host=\S+, test mse <loss>={_VALUE}",
                     "Minimize"),
]

CHANNELS = (
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE),
    ChannelDefinition("test", content_types=CONTENT_TYPES,
                      default_content_type=DEFAULT_CONTENT_TYPE),
)


def validate_knn_channels(channels: Iterable[Mapping[str, Any]], input_mode: str) -> None:
    channels = list(channels)
    validate_channels("knn", CHANNELS, channels, input_mode)
    require_one_label_column("knn", channels)


# -- sampling and projection -----------------------------------------------------------------
class Reservoir:
    """A uniform sample of ``capacity`` rows of a stream (Algorithm R, one batch at a time:
    row ``i`` draws a slot in ``[0, i]`` and replaces it when the slot is in the reservoir;
    within a batch the later row wins, as it would one row at a time)."""

    def __init__(self, capacity: int, dim: int, rng: np.random.Generator) -> None:
        self.capacity = capacity
        # grown as rows arrive: sample_size may be far above the rows there are
        self.features = np.zeros((0, dim), dtype=np.float32)
        self.labels = np.zeros(0, dtype=np.float32)
        self.seen = 0
        self.rng = rng

    def _grow(self, size: int) -> None:
        if size <= len(self.labels):
            return
        size = min(self.capacity, max(size, 2 * len(self.labels)))
        features = np.zeros((size, self.features.shape[1]), dtype=np.float32)
        features[:len(self.features)] = self.features
        self.features = features
        self.labels = np.concatenate([self.labels, np.zeros(size - len(self.labels),
                                                            dtype=np.float32)])

    def add(self, features: np.ndarray, labels: np.ndarray) -> None:
        n = len(features)
        fill = max(0, min(self.capacity - self.seen, n))
        if fill:
            self._grow(self.seen + fill)
            self.features[self.seen:self.seen + fill] = features[:fill]
            self.labels[self.seen:self.seen + fill] = labels[:fill]
        if fill < n:
            positions = np.arange(self.seen + fill, self.seen + n, dtype=np.int64)
            slots = np.floor(self.rng.random(len(positions)) * (positions + 1)).astype(np.int64)
            keep = slots < self.capacity
            rows = np.flatnonzero(keep) + fill
            slots = slots[keep]
            if len(slots):
                _, last = np.unique(slots[::-1], return_index=True)
                chosen = len(slots) - 1 - last
                self.features[slots[chosen]] = features[rows[chosen]]
                self.labels[slots[chosen]] = labels[rows[chosen]]
        self.seen += n

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        size = min(self.seen, self.capacity)
        return self.features[:size], self.labels[:size]


def _fwht(data: np.ndarray) -> np.ndarray:
    """The (unnormalised) Walsh-Hadamard transform of each row; the width is a power of 2."""
    rows, width = data.shape
    half = 1
    while half < width:
        blocks = data.reshape(rows, width // (2 * half), 2, half)
        data = np.stack((blocks[:, :, 0] + blocks[:, :, 1],
                         blocks[:, :, 0] - blocks[:, :, 1]), axis=2).reshape(rows, width)
        half *= 2
    return data


class Projection:
    """The dimension reduction in the metadata: ``sign`` multiplies by a random +-1 matrix
    (scaled by 1/sqrt(target)); ``fjlt`` is the subsampled randomised Hadamard transform
    (random signs, Walsh-Hadamard, ``target`` coordinates kept, scaled by 1/sqrt(target)).
    Both are regenerated from the seed (uniform doubles of numpy's PCG64)."""

    def __init__(self, kind: str, seed: int, input_dim: int, target_dim: int) -> None:
        self.kind, self.seed = kind, seed
        self.input_dim, self.target_dim = input_dim, target_dim
        rng = np.random.default_rng(seed)
        scale = np.float32(1 / math.sqrt(target_dim))
        if kind == "sign":
            signs = np.where(rng.random((input_dim, target_dim)) < 0.5, -1.0, 1.0)
            self.matrix = (signs * scale).astype(np.float32)
        elif kind == "fjlt":
            self.padded = 1 << max(0, (input_dim - 1).bit_length())
            self.signs = np.where(rng.random(self.padded) < 0.5, -1.0, 1.0).astype(np.float32)
            self.coordinates = np.sort(np.argsort(rng.random(self.padded), kind="stable")
                                       [:target_dim])
            self.scale = scale
        else:
            raise ValueError(f"unknown dimension reduction {kind!r}")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if self.kind == "sign":
            return features @ self.matrix
        padded = np.zeros((len(features), self.padded), dtype=np.float32)
        padded[:, :self.input_dim] = features
        padded *= self.signs
        return np.ascontiguousarray(_fwht(padded)[:, self.coordinates] * self.scale)

    def metadata(self) -> dict[str, Any]:
        return {"type": self.kind, "seed": self.seed, "target_dim": self.target_dim,
                "input_dim": self.input_dim}


class IndexInput:
    """Turns feature rows into the vectors the index holds: projected, L2-normalised for
    COSINE, zero-padded to the index's dimension (IVFPQ needs a multiple of m)."""

    def __init__(self, metadata: Mapping[str, Any]) -> None:
        reduction = metadata.get("dimension_reduction")
        self.projection = (Projection(reduction["type"], int(reduction["seed"]),
                                      int(reduction["input_dim"]), int(reduction["target_dim"]))
                           if reduction else None)
        self.normalize = bool(metadata.get("normalize"))
        self.index_dim = int(metadata["index_dim"])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        vectors = np.asarray(features, dtype=np.float32)
        if self.projection is not None:
            vectors = self.projection(vectors)
        if self.normalize:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1)
        if vectors.shape[1] < self.index_dim:
            vectors = np.pad(vectors, ((0, 0), (0, self.index_dim - vectors.shape[1])))
        return np.ascontiguousarray(vectors, dtype=np.float32)


# -- neighbours to predictions ----------------------------------------------------------------
def vote(neighbour_labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The most common label of each row's valid neighbours; a tie goes to the smallest
    label (the reference names no rule). NaN for a row with no neighbour."""
    classes, codes = np.unique(neighbour_labels, return_inverse=True)
    codes = codes.reshape(neighbour_labels.shape)
    rows = neighbour_labels.shape[0]
    counts = np.zeros((rows, max(len(classes), 1)), dtype=np.int64)
    row_index = np.broadcast_to(np.arange(rows)[:, None], codes.shape)
    np.add.at(counts, (row_index[valid], codes[valid]), 1)
    result = classes[np.argmax(counts, axis=1)].astype(np.float32) if len(classes) else \
        np.zeros(rows, dtype=np.float32)
    result[~valid.any(axis=1)] = np.nan
    return result


def average(neighbour_labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The mean label of each row's valid neighbours (NaN for a row with none)."""
    total = np.where(valid, neighbour_labels, 0).sum(axis=1, dtype=np.float64)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


class NeighbourModel:
    """A loaded or freshly built k-NN model: index, labels and metadata."""

    def __init__(self, index: Any, labels: np.ndarray, metadata: Mapping[str, Any]) -> None:
        self.index = index
        self.labels = labels
        self.metadata = dict(metadata)
        self.k = int(metadata["k"])
        self.predictor_type = metadata["predictor_type"]
        self.feature_dim = int(metadata["feature_dim"])
        self.inputs = IndexInput(metadata)

    def search(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predictions, distances, neighbour labels) for dense rows of ``feature_dim``;
        missing neighbours (fewer than k points) have label NaN and distance NaN."""
        distances, ids = self.index.search(self.inputs(features), self.k)
        valid = ids >= 0
        neighbour_labels = np.where(valid, self.labels[np.clip(ids, 0, None)], np.nan)
        combine = vote if self.predictor_type == "classifier" else average
        predictions = combine(np.where(valid, neighbour_labels, 0), valid)
        distances = np.where(valid, distances, np.nan).astype(np.float32)
        return predictions, distances, neighbour_labels.astype(np.float32)

    def files(self) -> dict[str, bytes]:
        import faiss

        metadata = json.dumps(self.metadata, indent=2, sort_keys=True).encode()
        return {MODEL_FILE: faiss.serialize_index(self.index).tobytes(),
                LABELS_FILE: self.labels.astype("<f4").tobytes(),
                METADATA_FILE: metadata}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> NeighbourModel:
        import faiss

        metadata = json.loads(files[METADATA_FILE])
        index = faiss.deserialize_index(np.frombuffer(files[MODEL_FILE], dtype=np.uint8))
        labels = np.frombuffer(files[LABELS_FILE], dtype="<f4").astype(np.float32)
        if len(labels) != index.ntotal:
            raise ClientError(f"{LABELS_FILE} has {len(labels)} labels for {index.ntotal} "
                              "indexed points")
        return cls(index, labels, metadata)


def _pq_m(requested: int | None, dim: int) -> int:
    if requested is not None:
        return requested
    # UNVERIFIED: SageMaker's default m; the largest allowed m with >= 2 dimensions each.
    return max(m for m in PQ_M_VALUES if m <= max(1, dim // 2))


def build_model(features: np.ndarray, labels: np.ndarray, values: Mapping[str, Any],
                threads: int | None = None) -> NeighbourModel:
    """The faiss index ``values`` describes, over the sampled points."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    feature_dim = values["feature_dim"]
    metadata: dict[str, Any] = {
        "k": values["k"], "predictor_type": values["predictor_type"],
        "normalize": values["index_metric"] == "COSINE", "version": MODEL_VERSION,
        "feature_dim": feature_dim, "index_type": values["index_type"],
        "index_metric": values["index_metric"],
    }
    dim = feature_dim
    if values.get("dimension_reduction_type"):
        dim = values["dimension_reduction_target"]
        metadata["dimension_reduction"] = {
            "type": values["dimension_reduction_type"], "seed": SEED, "target_dim": dim,
            "input_dim": feature_dim}
    index_type = values["index_type"]
    metric = (faiss.METRIC_L2 if values["index_metric"] == "L2"
              else faiss.METRIC_INNER_PRODUCT)
    points = len(features)
    index_dim = dim
    m = None
    if index_type == "faiss.IVFPQ":
        m = _pq_m(values.get("faiss_index_pq_m"), dim)
        index_dim = -(-dim // m) * m  # padded with zeros to a multiple of m
        metadata["faiss_index_pq_m"] = m
    metadata["index_dim"] = index_dim
    vectors = IndexInput(metadata)(features)
    if index_type == "faiss.Flat":
        index = faiss.IndexFlat(index_dim, metric)
    else:
        nlists = values.get("faiss_index_ivf_nlists", "auto")
        nlist = max(1, int(math.sqrt(points))) if nlists == "auto" else int(nlists)
        if nlist > points:
            raise ClientError(f"HyperParameters.faiss_index_ivf_nlists: {nlist} lists need at "
                              f"least as many sampled points, but the sample has {points}; "
                              "lower it or raise sample_size")
        quantizer = faiss.IndexFlat(index_dim, metric)
        if index_type == "faiss.IVFFlat":
            index = faiss.IndexIVFFlat(quantizer, index_dim, nlist, metric)
        else:
            # faiss wants 39 training points per centroid: fewer code bits for small samples.
            nbits = max(1, min(8, int(math.log2(max(points / 39, 2)))))
            metadata["faiss_index_pq_nbits"] = nbits
            index = faiss.IndexIVFPQ(quantizer, index_dim, nlist, m, nbits)
        index.cp.seed = SEED
        try:
            index.train(vectors)
        except RuntimeError as error:
            message = str(error).strip().splitlines()[-1] if str(error).strip() else "failed"
            raise ClientError(f"faiss could not train the {index_type} index on {points} "
                              f"sampled points: {message}; raise sample_size, lower "
                              "faiss_index_ivf_nlists or use faiss.Flat") from None
        # UNVERIFIED: SageMaker's nprobe; sqrt(nlist) lists are probed per query.
        index.nprobe = min(nlist, max(1, round(math.sqrt(nlist))))
        metadata["faiss_index_ivf_nlists"] = nlist
        metadata["nprobe"] = index.nprobe
    index.add(vectors)
    return NeighbourModel(index, labels.astype(np.float32), metadata)


# -- reading channels --------------------------------------------------------------------------
def _data_format(env: TrainingEnvironment, channel: str) -> str:
    from openmaker.formats.content_types import parse_content_type

    return parse_content_type(env.content_type(channel) or DEFAULT_CONTENT_TYPE).format


def iter_batches(env: TrainingEnvironment, channel: str, feature_dim: int, batch_size: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Dense float32 batches of at most ``batch_size`` rows of ``channel``, file by file,
    checked against ``feature_dim`` (sparse rows are widened to it)."""
    from openmaker.algorithms._data import READERS, channel_streams

    data_format = _data_format(env, channel)
    for stream in channel_streams(env, channel):
        dataset = READERS[data_format](stream, False) if data_format == "csv" else \
            READERS[data_format](stream)
        if dataset is None:
            continue
        if dataset.labels is None:
            raise ClientError(f"{stream.name}: the records have no label; knn needs one per "
                              "record")
        width = dataset.columns
        if width > feature_dim or (width != feature_dim and not dataset.is_sparse):
            raise ClientError(f"{stream.name}: the records have {width} features but "
                              f"HyperParameters.feature_dim is {feature_dim}")
        labels = dataset.labels.astype(np.float32)
        if not np.isfinite(labels).all():
            row = int(np.flatnonzero(~np.isfinite(labels))[0])
            raise ClientError(f"{stream.name}, record {row + 1}: the label is not a number")
        for start in range(0, dataset.rows, batch_size):
            rows = dataset.features[start:start + batch_size]
            if dataset.is_sparse:
                rows = rows.tocsr()
                rows.resize((rows.shape[0], feature_dim))
                rows = rows.toarray()
            rows = np.ascontiguousarray(rows, dtype=np.float32)
            if not np.isfinite(rows).all():
                row = start + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
                raise ClientError(f"{stream.name}, record {row + 1}: a feature is missing or "
                                  "not a number; knn needs every feature")
            yield rows, labels[start:start + batch_size]


# -- several hosts -----------------------------------------------------------------------------
# -- training ----------------------------------------------------------------------------------
def _host_sample_size(sample_size: int, rank: int, hosts: int) -> int:
    return sample_size // hosts + (1 if rank < sample_size % hosts else 0)


def _score(model: NeighbourModel, env: TrainingEnvironment, values: Mapping[str, Any]
           ) -> tuple[float, int]:
    """(sum of correct predictions or of squared errors, rows) over this host's test data."""
    total, rows = 0.0, 0
    batch = 0
    for features, labels in iter_batches(env, "test", values["feature_dim"],
                                         values["mini_batch_size"]):
        predictions, _, _ = model.search(features)
        if model.predictor_type == "classifier":
            value = float(np.sum(predictions == labels))
            name = "accuracy"
        else:
            value = float(np.sum((predictions.astype(np.float64) - labels) ** 2))
            name = "mse"
        total += value
        rows += len(labels)
        batch += 1
        print(f"#test_score ({env.current_host}, batch {batch}) : ('{name}', "
              f"{value / len(labels):.6g})", flush=True)
    return total, rows


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``: write the model files to the model directory."""
    try:
        values = defaults(HYPERPARAMETERS.parse(env.hyperparameters))
        check_dependencies(values)
        # Channels other than train and test are ignored here (the API refuses them).
        validate_knn_channels(
            [{"ChannelName": name, "ContentType": config.get("ContentType"),
              "InputMode": config.get("TrainingInputMode", "File")}
             for name, config in env.input_data_config.items() if name in ("train", "test")],
            "File")
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError("InputDataConfig: knn needs a 'train' channel")
    cluster = HostGroup(env, timeout_s=GATHER_TIMEOUT_S)
    error: Exception | None = None
    sample: tuple[np.ndarray, np.ndarray] | None = None
    try:
        capacity = _host_sample_size(values["sample_size"], cluster.rank, cluster.size)
        reservoir = Reservoir(capacity, values["feature_dim"],
                              np.random.default_rng([SEED, cluster.rank]))
        for features, labels in iter_batches(env, "train", values["feature_dim"],
                                             values["mini_batch_size"]):
            reservoir.add(features, labels)
        sample = reservoir.sample()
        print(f"{env.current_host}: sampled {len(sample[0])} of {reservoir.seen} training "
              "records", flush=True)
    except Exception as failure:  # noqa: BLE001 -- every host must learn of it
        error = failure
    cluster.agree(error)
    samples = cluster.gather(sample)
    model_files = None
    if cluster.rank == 0:
        features = np.concatenate([s[0] for s in samples])
        labels = np.concatenate([s[1] for s in samples])
        if len(features) == 0:
            error = ClientError("channel 'train' has no data: no records were found")
        else:
            try:
                model = build_model(features, labels, values, env.num_cpus)
                model_files = model.files()
            except Exception as failure:  # noqa: BLE001 -- every host must learn of it
                error = failure
    cluster.agree(error if cluster.rank == 0 else None)
    model_files = cluster.broadcast(model_files)
    assert model_files is not None
    if cluster.rank == 0:
        env.model_dir.mkdir(parents=True, exist_ok=True)
        for name, data in model_files.items():
            _write_atomic(env.model_dir / name, data)
        print(f"built {values['index_type']} over {len(features)} points", flush=True)
    if "test" in env.input_data_config:
        model = NeighbourModel.from_files(model_files)
        error = None
        scored = (0.0, 0)
        try:
            scored = _score(model, env, values)
        except Exception as failure:  # noqa: BLE001 -- every host must learn of it
            error = failure
        cluster.agree(error)
        totals = cluster.gather(scored)
        total = sum(t for t, _ in totals)
        rows = sum(n for _, n in totals)
        if cluster.rank == 0:
            if rows == 0:
                raise ClientError("channel 'test' has no data: no records were found")
            if model.predictor_type == "classifier":
                print(f"#quality_metric: host={env.current_host}, test accuracy "
                      f"<score>={total / rows:.6g}", flush=True)
            else:
                print(f"#quality_metric: host={env.current_host}, test mse "
                      f"<loss>={total / rows:.6g}", flush=True)
    cluster.close()


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# -- inference -------------------------------------------------------------------------------
REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines",
                 "application/x-recordio-protobuf")
# text/csv answers are an openmaker addition (one predicted_label per line); the reference
# lists JSON, JSON Lines and RecordIO-protobuf responses.
ACCEPTS = ("application/json", "application/jsonlines", "application/x-recordio-protobuf",
           "text/csv")


class KNNPredictor(Predictor):
    """Serves a k-NN model: CSV, JSON, JSON Lines and RecordIO-protobuf in;
    ``predicted_label`` (plus ``distances`` and ``labels`` with ``verbose=true``) out."""

    content_types = REQUEST_TYPES
    accepts = ACCEPTS

    def __init__(self, model: NeighbourModel, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.model = model
        # UNVERIFIED: the response type SageMaker's k-NN picks for Accept */*.
        self.default_accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or \
            "application/json"

    def _accept(self, accept: str | None) -> tuple[str, bool]:
        for option in (accept or "").split(","):
            media, parameters = media_parameters(option)
            verbose = parameters.get("verbose", "").lower() in ("true", "1")
            if media in ("", "*/*"):
                default, default_parameters = media_parameters(self.default_accept)
                return default, verbose or default_parameters.get("verbose", "") == "true"
            if media in ACCEPTS:
                return media, verbose
        raise NotAcceptable(f"accept type {accept!r} is not supported; use "
                            f"{', '.join(ACCEPTS)} (with '; verbose=true' for neighbours)")

    def _features(self, body: bytes, content_type: str) -> np.ndarray:
        media, parameters = media_parameters(content_type or "text/csv")
        if media == "text/csv":
            encoding = parameters.get("encoding", "utf-8")
            if encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "ascii"):
                try:
                    body = body.decode(encoding).encode()
                except (LookupError, ValueError) as error:
                    raise UnsupportedContentType(
                        f"the request is not valid {media}: {error}") from None
        features = read_request_features(body, content_type, media, parameters, REQUEST_TYPES)
        return self._dense(features)

    def _dense(self, features: Any) -> np.ndarray:
        dim = self.model.feature_dim
        if not isinstance(features, np.ndarray):
            if features.shape[1] > dim:
                raise InferenceError(f"the request has feature index {features.shape[1] - 1}; "
                                     f"the model was trained on {dim} features")
            features = features.tocsr()
            features.resize((features.shape[0], dim))
            features = features.toarray()
        if features.shape[0] and features.shape[1] != dim:
            raise InferenceError(f"the rows have {features.shape[1]} features; the model was "
                                 f"trained on {dim}")
        features = features.astype(np.float32, copy=False)
        if features.size and not np.isfinite(features).all():
            raise InferenceError("a feature is missing or not a number; knn needs every feature")
        return features

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type, verbose = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        predictions, distances, labels = self.model.search(features)
        return self._encode(predictions, distances, labels, accept_type, verbose), accept_type

    @staticmethod
    def _encode(predictions: np.ndarray, distances: np.ndarray, labels: np.ndarray,
                accept: str, verbose: bool) -> bytes:
        if accept == "text/csv":
            return "".join(f"{_number(v)}\n" for v in predictions).encode()
        if accept == "application/x-recordio-protobuf":
            from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

            def records() -> Iterator[Record]:
                for index, value in enumerate(predictions):
                    label = {"predicted_label": Tensor(np.asarray([value], dtype=np.float32))}
                    if verbose:
                        label["distances"] = Tensor(distances[index].astype(np.float32))
                        label["labels"] = Tensor(labels[index].astype(np.float32))
                    yield Record(features={}, label=label)

            buffer = io.BytesIO()
            write_records(buffer, records())
            return buffer.getvalue()
        objects = []
        for index, value in enumerate(predictions):
            item: dict[str, Any] = {"predicted_label": _number(value)}
            if verbose:
                item["distances"] = [_number(v) for v in distances[index]]
                item["labels"] = [_number(v) for v in labels[index]]
            objects.append(item)
        if accept == "application/json":
            return json.dumps({"predictions": objects}).encode()
        return "".join(json.dumps(item) + "\n" for item in objects).encode()


def _number(value: float) -> float | None:
    """A float32 as the shortest float reading back to it (labels print as 2.0); None for
    a missing neighbour."""
    if not np.isfinite(value):
        return None
    return float(str(np.float32(value)))


def load_model(model_dir: str | os.PathLike) -> NeighbourModel:
    directory = Path(model_dir)
    missing = [name for name in (MODEL_FILE, LABELS_FILE, METADATA_FILE)
               if not (directory / name).is_file()]
    if missing:
        raise ClientError(f"{directory} holds no {', '.join(missing)} (a knn model has "
                          f"{MODEL_FILE}, {LABELS_FILE} and {METADATA_FILE})")
    return NeighbourModel.from_files({name: (directory / name).read_bytes()
                                      for name in (MODEL_FILE, LABELS_FILE, METADATA_FILE)})


class KNN(Algorithm):
    """SageMaker's built-in k-Nearest Neighbors."""

    name = "knn"
    repositories = ("knn",)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values = HYPERPARAMETERS.parse(raw)
        check_dependencies(values)
        return values

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        validate_knn_channels(channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> KNNPredictor:
        return KNNPredictor(load_model(model_dir))
