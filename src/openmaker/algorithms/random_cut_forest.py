"""SageMaker's built-in Random Cut Forest (``randomcutforest:1``): unsupervised anomaly scores.

Hyperparameters, channels, metric names and inference formats follow
``reference/algorithms.md`` section 11. Training reservoir-samples ``num_samples_per_tree``
records of the ``train`` channel for each of ``num_trees`` trees (priority sampling: every
(tree, record) pair draws a uniform key and each tree keeps its smallest keys, which is a
uniform sample without replacement that can be merged across hosts), and builds one random
cut tree per sample as rrcf does (cut dimension chosen in proportion to its span, cut value
uniform within it).

A record's score is the collusive displacement (codisp) rrcf computes for a point inserted
into a tree, in expectation over rrcf's random insertion, averaged over the trees: walking
from the root, the point is cut off at node ``v`` with the probability that a random cut of
``v``'s box extended by the point separates them (rrcf's ``_insert_point_cut``), and its
codisp there is ``max(n(v), max over the path above of n(sibling) / (n(node) + 1))``. Trees
are flat arrays (feature, cut, children, subtree size, bounding boxes) and whole batches are
scored level by level with numpy, every tree at once.

With several hosts each host samples its own shard (``ShardedByS3Key``) and sends its
candidates (keys and records) to the first host over a TCP socket at
``MASTER_ADDR:MASTER_PORT``; the first host keeps each tree's smallest keys of the union
(the same uniform sample one host would draw), builds the forest and writes the model.

The model directory holds ``model_algo-1`` (openmaker's own array file; SageMaker's is an
MXNet-serialised file, which is not reproduced).
"""

from __future__ import annotations

import functools
import io
import json
import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms._cluster import receive_blob, send_blob
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
_MAGIC = b"OMRCF\x01\n"
SEED = 0  # SageMaker's RCF has no seed hyperparameter: every run draws the same trees
CHUNK_ROWS = 8192
# Elements (records x trees x features) one scoring step works on, bounding its memory.
SCORE_BLOCK = 1 << 21
GATHER_TIMEOUT_S = int(os.environ.get("OPENMAKER_RCF_GATHER_TIMEOUT", "600"))

EVAL_METRICS = ("accuracy", "precision_recall_fscore")
CONTENT_TYPES = ("text/csv", "application/x-recordio-protobuf")
REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines",
                 "application/x-recordio-protobuf")
ACCEPTS = ("application/json", "application/jsonlines", "application/x-recordio-protobuf",
           "text/csv")

HYPERPARAMETERS = HyperparameterSpec("randomcutforest", [
    Hyperparameter("feature_dim", "int", required=True, range=Interval(1, 10000)),
    Hyperparameter("num_trees", "int", default=100, range=Interval(50, 1000)),
    Hyperparameter("num_samples_per_tree", "int", default=256, range=Interval(1, 2048)),
    Hyperparameter("eval_metrics", "list", default=list(EVAL_METRICS), choices=EVAL_METRICS),
    # The SDK fixes it at 1000; the container's own rule is unverified, so any size >= 1.
    Hyperparameter("mini_batch_size", "int", default=1000, range=Interval(1, None)),
])

CHANNELS = (
    # no ContentType means RecordIO-protobuf, as for the other first-party algorithms: it is
    # what the SageMaker SDK's record_set uploads (and names no content type for)
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type="application/x-recordio-protobuf"),
    ChannelDefinition("test", content_types=CONTENT_TYPES,
                      default_content_type="application/x-recordio-protobuf"),
)

_SCORE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
METRICS = [
    MetricDefinition("test:f1", rf"#quality_metric: host=\S+, test f1 <score>={_SCORE}",
                     "Maximize"),
    MetricDefinition("test:precision",
                     rf"#quality_metric: host=\S+, test precision <score>={_SCORE}", "Maximize"),
    MetricDefinition("test:recall",
                     rf"#quality_metric: host=\S+, test recall <score>={_SCORE}", "Maximize"),
    MetricDefinition("test:accuracy",
                     rf"#quality_metric: host=\S+, test accuracy <score>={_SCORE}", "Maximize"),
    MetricDefinition("train:progress", rf"#progress_metric: host=\S+, completed {_SCORE} %"),
    MetricDefinition("train:throughput",
                     rf"#throughput_metric: host=\S+, train throughput={_SCORE} records/second",
                     "Maximize"),
]


# -- the forest ------------------------------------------------------------------------------
@dataclass
class Forest:
    """Random cut trees as flat arrays over all trees' nodes. ``feature`` is -1 at a leaf;
    ``left``/``right`` are global node indices; ``roots`` the first node of each tree."""

    feature: np.ndarray   # int32 (nodes,)
    cut: np.ndarray       # float64 (nodes,)
    left: np.ndarray      # int32 (nodes,)
    right: np.ndarray     # int32 (nodes,)
    size: np.ndarray      # int32 (nodes,): points under the node (duplicates counted)
    box_min: np.ndarray   # float32 (nodes, features)
    box_max: np.ndarray   # float32 (nodes, features)
    roots: np.ndarray     # int32 (trees,)

    @property
    def num_features(self) -> int:
        return int(self.box_min.shape[1])

    @property
    def num_trees(self) -> int:
        return int(self.roots.shape[0])

    @functools.cached_property
    def box_span(self) -> np.ndarray:
        """Each node's bounding-box span summed over the features (float64 (nodes,))."""
        return (self.box_max - self.box_min).sum(axis=1, dtype=np.float64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in
                ("feature", "cut", "left", "right", "size", "box_min", "box_max", "roots")}

    def score(self, points: np.ndarray) -> np.ndarray:
        """Mean expected codisp of each row of ``points`` (float64 (rows,))."""
        points = np.asarray(points, dtype=np.float32)
        rows = points.shape[0]
        out = np.empty(rows, dtype=np.float64)
        block = max(1, SCORE_BLOCK // max(1, self.num_trees * self.num_features))
        for start in range(0, rows, block):
            out[start:start + block] = self._score_block(points[start:start + block])
        return out

    def _score_block(self, points: np.ndarray) -> np.ndarray:
        trees, rows = self.num_trees, points.shape[0]
        # one walker per (tree, record), all trees at once
        record = np.tile(np.arange(rows), trees)
        node = np.repeat(self.roots, rows).astype(np.int64)
        alive = np.ones(node.shape[0])           # probability of not being cut off yet
        worst = np.zeros(node.shape[0])          # max n(sibling) / (n(node) + 1) so far
        total = np.zeros(node.shape[0])
        walker = np.arange(node.shape[0])
        while walker.size:
            q = points[record[walker]]
            # the box's span once extended by the point; its own span is stored, summed in
            # the same order, so a point inside the box extends it by exactly 0
            span = (np.maximum(self.box_max[node], q) - np.minimum(self.box_min[node], q)
                    ).sum(axis=1, dtype=np.float64)
            extension = np.maximum(span - self.box_span[node], 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                cut_off = np.where(span > 0, extension / span, 0.0)
            size = self.size[node].astype(np.float64)
            total[walker] += alive[walker] * cut_off * np.maximum(size, worst[walker])
            alive[walker] *= 1.0 - cut_off
            leaf = self.feature[node] < 0
            # reaching a leaf uncut means a copy of its point, which rrcf's insertion
            # still cuts off beside the leaf (its cut lands on the point itself)
            ends = walker[leaf]
            total[ends] += alive[ends] * np.maximum(size[leaf], worst[ends])
            inner = ~leaf
            walker, node, q = walker[inner], node[inner], q[inner]
            features = self.feature[node]
            go_left = q[np.arange(node.shape[0]), features] <= self.cut[node]
            child = np.where(go_left, self.left[node], self.right[node])
            sibling = np.where(go_left, self.right[node], self.left[node])
            ratio = self.size[sibling] / (self.size[child] + 1.0)
            worst[walker] = np.maximum(worst[walker], ratio)
            node = child.astype(np.int64)
        return total.reshape(trees, rows).mean(axis=0)


def build_tree(points: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One random cut tree of ``points`` (rrcf's cuts), as local flat arrays."""
    feature: list[int] = []
    cut: list[float] = []
    left: list[int] = []
    right: list[int] = []
    size: list[int] = []
    box_min: list[np.ndarray] = []
    box_max: list[np.ndarray] = []

    def new_node(members: np.ndarray) -> int:
        feature.append(-1)
        cut.append(0.0)
        left.append(-1)
        right.append(-1)
        size.append(int(members.shape[0]))
        subset = points[members]
        box_min.append(subset.min(axis=0))
        box_max.append(subset.max(axis=0))
        return len(feature) - 1

    stack = [(new_node(np.arange(points.shape[0])), np.arange(points.shape[0]))]
    while stack:
        index, members = stack.pop()
        spans = (box_max[index] - box_min[index]).astype(np.float64)
        total = spans.sum()
        if members.shape[0] < 2 or not total > 0:
            continue  # a leaf: one point, or copies of one point
        values = points[members]
        while True:
            dimension = int(np.searchsorted(np.cumsum(spans), rng.random() * total,
                                            side="right"))
            dimension = min(dimension, spans.shape[0] - 1)
            if spans[dimension] <= 0:
                continue
            value = float(rng.uniform(box_min[index][dimension], box_max[index][dimension]))
            goes_left = values[:, dimension] <= value
            if 0 < goes_left.sum() < members.shape[0]:
                break
        feature[index] = dimension
        cut[index] = value
        left_members, right_members = members[goes_left], members[~goes_left]
        left[index] = new_node(left_members)
        right[index] = new_node(right_members)
        stack.append((right[index], right_members))
        stack.append((left[index], left_members))
    return {
        "feature": np.asarray(feature, dtype=np.int32),
        "cut": np.asarray(cut, dtype=np.float64),
        "left": np.asarray(left, dtype=np.int32),
        "right": np.asarray(right, dtype=np.int32),
        "size": np.asarray(size, dtype=np.int32),
        "box_min": np.asarray(box_min, dtype=np.float32).reshape(len(feature), -1),
        "box_max": np.asarray(box_max, dtype=np.float32).reshape(len(feature), -1),
    }


def build_forest(samples: list[np.ndarray], seed: int = SEED) -> Forest:
    """One tree per sample, joined into one :class:`Forest`."""
    trees = [build_tree(sample, np.random.default_rng([seed, 1, index]))
             for index, sample in enumerate(samples)]
    offsets = np.cumsum([0] + [tree["feature"].shape[0] for tree in trees])
    joined: dict[str, Any] = {}
    for name in ("feature", "cut", "size", "box_min", "box_max"):
        joined[name] = np.concatenate([tree[name] for tree in trees])
    for name in ("left", "right"):
        joined[name] = np.concatenate([
            np.where(tree[name] >= 0, tree[name] + offset, -1)
            for tree, offset in zip(trees, offsets[:-1], strict=True)]).astype(np.int32)
    return Forest(roots=offsets[:-1].astype(np.int32), **joined)


# -- the model file --------------------------------------------------------------------------
def dump_arrays(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """Arrays and a JSON header in one deterministic byte string."""
    header: dict[str, Any] = {"meta": dict(meta), "arrays": []}
    payloads = []
    offset = 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).tobytes()
        header["arrays"].append({"name": name, "dtype": array.dtype.str,
                                 "shape": list(array.shape), "offset": offset})
        payloads.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True).encode()
    return _MAGIC + struct.pack("<Q", len(head)) + head + b"".join(payloads)


def load_arrays(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not data.startswith(_MAGIC):
        raise ValueError("not an openmaker Random Cut Forest model")
    start = len(_MAGIC)
    (length,) = struct.unpack("<Q", data[start:start + 8])
    header = json.loads(data[start + 8:start + 8 + length])
    base = start + 8 + length
    arrays = {}
    for entry in header["arrays"]:
        dtype = np.dtype(entry["dtype"])
        count = int(np.prod(entry["shape"])) if entry["shape"] else 1
        arrays[entry["name"]] = np.frombuffer(
            data, dtype=dtype, count=count, offset=base + entry["offset"]
        ).reshape(entry["shape"])
    return arrays, header["meta"]


def save_forest(forest: Forest, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    blob = dump_arrays(forest.arrays(), {"algorithm": "randomcutforest", "version": 1})
    temporary = directory / f".{MODEL_FILE}.tmp"
    temporary.write_bytes(blob)
    os.replace(temporary, directory / MODEL_FILE)


def load_forest(model_dir: str | os.PathLike) -> Forest:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ClientError(f"{model_dir} holds no {MODEL_FILE}")
    try:
        arrays, _ = load_arrays(path.read_bytes())
        return Forest(**arrays)
    except (ValueError, KeyError, TypeError) as error:
        raise ClientError(f"{path.name} is not a Random Cut Forest model: {error}") from None


# -- reading channels ------------------------------------------------------------------------
def _label_size(env: TrainingEnvironment, channel: str, default: int) -> tuple[str, int]:
    from openmaker.formats.content_types import parse_content_type

    text = env.content_type(channel) or "application/x-recordio-protobuf"
    try:
        parsed = parse_content_type(text)
        if parsed.media_type not in CONTENT_TYPES:
            raise ValueError(f"{text!r} is not supported; use {' or '.join(CONTENT_TYPES)}")
        size = parsed.label_size if "label_size" in parsed.parameters else default
    except ValueError as error:
        raise ClientError(f"channel {channel!r}: {error}") from None
    return parsed.format, size


def iter_channel(env: TrainingEnvironment, channel: str, label_size: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``(dense float32 features, labels or None)`` per chunk of ``channel`` on this host."""
    from openmaker.algorithms._data import channel_streams, sniff_delimiter
    from openmaker.formats.csv import CSVFormatError, iter_csv_batches
    from openmaker.formats.recordio import RecordIOError
    from openmaker.formats.recordio_protobuf import RecordProtobufError, read_recordio_protobuf

    data_format, label_size = _label_size(env, channel, label_size)
    for stream in channel_streams(env, channel):
        try:
            if data_format == "csv":
                delimiter = sniff_delimiter(stream.peek(1 << 16))
                batches: Any = iter_csv_batches(stream, label_size=label_size,
                                                delimiter=delimiter, dtype=np.float32)
            else:
                features, labels = read_recordio_protobuf(stream)
                batches = [(features, labels)] if features.shape[0] else []
            for features, labels in batches:
                for start in range(0, features.shape[0], CHUNK_ROWS):
                    part = features[start:start + CHUNK_ROWS]
                    dense = (np.asarray(part, dtype=np.float32) if isinstance(part, np.ndarray)
                             else part.toarray().astype(np.float32))
                    yield (np.ascontiguousarray(dense), None if labels is None
                           else np.asarray(labels[start:start + CHUNK_ROWS], dtype=np.float64))
        except (CSVFormatError, RecordIOError, RecordProtobufError) as error:
            raise ClientError(str(error)) from None


class Reservoir:
    """Each tree's ``size`` records with the smallest uniform keys seen so far."""

    def __init__(self, trees: int, size: int, width: int, rng: np.random.Generator) -> None:
        self.trees, self.size, self.width, self.rng = trees, size, width, rng
        self.rows = np.zeros((0, width), dtype=np.float32)
        self.keys = np.zeros((trees, 0))
        self.seen = 0

    def add(self, rows: np.ndarray, keys: np.ndarray | None = None) -> None:
        if keys is None:
            keys = self.rng.random((self.trees, rows.shape[0]))
        self.seen += rows.shape[0]
        pool = np.concatenate([self.rows, rows])
        pool_keys = np.concatenate([self.keys, keys], axis=1)
        if pool.shape[0] <= self.size:
            self.rows, self.keys = pool, pool_keys
            return
        chosen = np.argpartition(pool_keys, self.size - 1, axis=1)[:, :self.size]
        kept = np.unique(chosen)
        self.rows, self.keys = pool[kept], pool_keys[:, kept]

    def samples(self) -> list[np.ndarray]:
        count = min(self.size, self.rows.shape[0])
        order = np.argsort(self.keys, axis=1, kind="stable")[:, :count]
        return [self.rows[np.sort(row)] for row in order]


# -- several hosts ---------------------------------------------------------------------------
def gather_reservoirs(env: TrainingEnvironment, reservoir: Reservoir,
                      error: ClientError | None = None) -> Reservoir | None:
    """On the first host, every host's candidates merged into one reservoir; None on the
    others (after sending theirs). A host that failed (``error``) still takes part, so
    that every host stops with the failure instead of waiting for it."""
    hosts = env.hosts
    if len(hosts) == 1:
        if error is not None:
            raise error
        return reservoir
    if not env.master_addr or not env.master_port:
        raise AlgorithmError(f"training over {len(hosts)} hosts needs MASTER_ADDR and "
                             "MASTER_PORT in the environment")
    if not env.is_master:
        blob = dump_arrays({"rows": reservoir.rows, "keys": reservoir.keys},
                           {"seen": reservoir.seen, "host": env.current_host,
                            "error": None if error is None else str(error)})
        answer = _send_to_master(env, blob)
        if error is not None:
            raise error
        if answer != b"k":
            raise AlgorithmError(f"the first host ({hosts[0]}) failed; its failure reason "
                                 "says why")
        return None
    received: list[bytes] = []
    with socket.create_server(("", env.master_port)) as server:
        server.settimeout(GATHER_TIMEOUT_S)
        while len(received) < len(hosts) - 1:
            try:
                connection, _ = server.accept()
            except TimeoutError:
                raise AlgorithmError(f"only {len(received) + 1} of {len(hosts)} hosts sent "
                                     f"their sample within {GATHER_TIMEOUT_S} s") from None
            with connection:
                connection.settimeout(GATHER_TIMEOUT_S)
                received.append(receive_blob(connection))
                connection.sendall(b"k" if error is None else b"e")
    if error is not None:
        raise error
    parts = [load_arrays(blob) for blob in received]
    for _, meta in sorted(parts, key=lambda part: str(part[1].get("host"))):
        if meta.get("error"):
            raise ClientError(f"{meta.get('host')}: {meta['error']}")
    # merge in a fixed order (by host), so the model does not depend on arrival order
    parts.sort(key=lambda part: str(part[1].get("host")))
    merged = Reservoir(reservoir.trees, reservoir.size, reservoir.width, reservoir.rng)
    merged.add(reservoir.rows, reservoir.keys)
    merged.seen = reservoir.seen
    for arrays, meta in parts:
        merged.add(np.asarray(arrays["rows"]), np.asarray(arrays["keys"]))
        merged.seen += int(meta["seen"]) - arrays["rows"].shape[0]
    return merged


def _send_to_master(env: TrainingEnvironment, blob: bytes) -> bytes:
    """Send ``blob`` to the first host (retrying until it listens); its one-byte answer."""
    assert env.master_addr and env.master_port
    deadline = time.monotonic() + GATHER_TIMEOUT_S
    while True:
        try:
            with socket.create_connection((env.master_addr, env.master_port),
                                          timeout=GATHER_TIMEOUT_S) as sock:
                send_blob(sock, blob)
                return sock.recv(1)
        except OSError:
            if time.monotonic() > deadline:
                raise AlgorithmError(f"could not reach the first host at "
                                     f"{env.master_addr}:{env.master_port}") from None
            time.sleep(0.2)


# -- training --------------------------------------------------------------------------------
def _host(env: TrainingEnvironment) -> str:
    return env.current_host


def classification_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the 3-sigma rule (score > mean + 3 sd) against
    labels (1 = anomaly)."""
    threshold = scores.mean() + 3 * scores.std()
    predicted = scores > threshold
    actual = labels > 0.5
    true_positive = float(np.sum(predicted & actual))
    precision = true_positive / predicted.sum() if predicted.sum() else 0.0
    recall = true_positive / actual.sum() if actual.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(predicted == actual)), "precision": float(precision),
            "recall": float(recall), "f1": float(f1)}


def train(env: TrainingEnvironment) -> None:
    try:
        values = HYPERPARAMETERS.parse(env.hyperparameters)
    except ValidationException as error:
        raise ClientError(str(error)) from None
    feature_dim = values["feature_dim"]
    trees = values.get("num_trees", 100)
    per_tree = values.get("num_samples_per_tree", 256)
    eval_metrics = values.get("eval_metrics", list(EVAL_METRICS))
    host = _host(env)
    started = time.monotonic()
    index = env.hosts.index(host) if host in env.hosts else 0
    reservoir = Reservoir(trees, per_tree, feature_dim,
                          np.random.default_rng([SEED, 0, index]))
    error = None
    try:
        # SageMaker reads label_size=1 when the type has none: train data says label_size=0
        for features, _ in iter_channel(env, "train", label_size=1):
            if features.shape[1] != feature_dim:
                raise ClientError(f"channel 'train': the records have {features.shape[1]} "
                                  f"features but HyperParameters.feature_dim is {feature_dim}")
            reservoir.add(features)
    except ClientError as failure:
        error = failure
    else:
        elapsed = max(time.monotonic() - started, 1e-9)
        print(f"#throughput_metric: host={host}, train throughput="
              f"{reservoir.seen / elapsed:.1f} records/second", flush=True)
    merged = gather_reservoirs(env, reservoir, error)
    if merged is None:
        return
    if merged.rows.shape[0] == 0:
        raise ClientError("channel 'train' has no data: no records were found")
    forest = build_forest(merged.samples())
    print(f"#progress_metric: host={host}, completed 100 % of epochs", flush=True)
    print(f"built {trees} trees of {min(per_tree, merged.seen)} records each from "
          f"{merged.seen} records", flush=True)
    save_forest(forest, env.model_dir)
    if "test" in env.input_data_config:
        _evaluate(env, forest, eval_metrics, host)


def _evaluate(env: TrainingEnvironment, forest: Forest, eval_metrics: list[str],
              host: str) -> None:
    scores, labels = [], []
    for features, chunk_labels in iter_channel(env, "test", label_size=1):
        if features.shape[1] != forest.num_features:
            raise ClientError(f"channel 'test': the records have {features.shape[1]} features "
                              f"but the model has {forest.num_features}")
        if chunk_labels is None:
            raise ClientError("channel 'test': the records have no label; the test channel "
                              "needs one per record (text/csv;label_size=1: 1 = anomaly)")
        scores.append(forest.score(features))
        labels.append(chunk_labels.reshape(-1))
    if not scores:
        raise ClientError("channel 'test' has no data: no records were found")
    result = classification_metrics(np.concatenate(labels), np.concatenate(scores))
    names = []
    if "accuracy" in eval_metrics:
        names.append("accuracy")
    if "precision_recall_fscore" in eval_metrics:
        names += ["precision", "recall", "f1"]
    for name in names:
        print(f"#quality_metric: host={host}, test {name} <score>={result[name]}", flush=True)


# -- inference -------------------------------------------------------------------------------
def _short(value: float) -> float:
    return float(str(np.float32(value)))


class RandomCutForestPredictor(Predictor):
    """Scores records: CSV, JSON, JSON Lines and RecordIO-protobuf in; JSON
    ``{"scores": [{"score": ...}]}``, JSON Lines, RecordIO-protobuf (``label["score"]``) or
    CSV (one score per line) out."""

    content_types = REQUEST_TYPES
    accepts = ACCEPTS

    def __init__(self, forest: Forest, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.forest = forest
        self.default_accept = (environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                               or "application/json")

    def _accept(self, accept: str | None) -> str:
        return negotiate_accept(accept, ACCEPTS, self.default_accept)

    def _features(self, body: bytes, content_type: str) -> np.ndarray:
        media = (content_type or "text/csv").split(";", 1)[0].strip().lower()
        if media not in REQUEST_TYPES:
            raise UnsupportedContentType(f"content type {content_type!r} is not supported; use "
                                         f"{', '.join(REQUEST_TYPES)}")
        try:
            if media == "text/csv":
                from openmaker.algorithms._data import sniff_delimiter
                from openmaker.formats.csv import read_csv

                features, _ = read_csv(body, label_size=0, delimiter=sniff_delimiter(body[:4096]),
                                       dtype=np.float32)
            elif media == "application/x-recordio-protobuf":
                from openmaker.formats.recordio_protobuf import read_recordio_protobuf

                features, _ = read_recordio_protobuf(body)
            else:
                from openmaker.formats.jsonlines import (
                    read_json_instances,
                    read_jsonlines_instances,
                )

                read = read_json_instances if media == "application/json" else \
                    read_jsonlines_instances
                features = read(body)
        except (ValueError, TypeError) as error:
            raise InferenceError(f"the request is not valid {media}: {error}") from None
        width = self.forest.num_features
        if not isinstance(features, np.ndarray):  # sparse: widen to the model's features
            if features.shape[1] > width:
                raise InferenceError(f"the request has feature index {features.shape[1] - 1}; "
                                     f"the model was trained on {width} features")
            features = features.tocsr()
            features.resize((features.shape[0], width))
            features = features.toarray()
        elif features.shape[0] and features.shape[1] != width:
            raise InferenceError(f"the rows have {features.shape[1]} features; the model was "
                                 f"trained on {width}")
        return np.asarray(features, dtype=np.float32)

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        features = self._features(body, content_type)
        if features.shape[0] == 0:
            raise EmptyRequest("the request has no records")
        scores = [_short(value) for value in self.forest.score(features)]
        return self._encode(scores, accept_type), accept_type

    @staticmethod
    def _encode(scores: list[float], accept: str) -> bytes:
        if accept == "application/json":
            return json.dumps({"scores": [{"score": s} for s in scores]}).encode()
        if accept == "application/jsonlines":
            return "".join(json.dumps({"score": s}) + "\n" for s in scores).encode()
        if accept == "application/x-recordio-protobuf":
            from openmaker.formats.recordio_protobuf import Record, Tensor, write_records

            buffer = io.BytesIO()
            write_records(buffer, (Record(features={}, label={
                "score": Tensor(np.asarray([s], dtype=np.float32))}) for s in scores))
            return buffer.getvalue()
        return "".join(f"{s}\n" for s in scores).encode()


class RandomCutForest(Algorithm):
    """SageMaker's built-in Random Cut Forest."""

    name = "randomcutforest"
    repositories = ("randomcutforest",)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        """The tuning objective SageMaker lists for RCF: ``test:f1``."""
        return {"test:f1": "Maximize"}

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> RandomCutForestPredictor:
        return RandomCutForestPredictor(load_forest(model_dir))


__all__ = ["Forest", "RandomCutForest", "RandomCutForestPredictor", "build_forest"]
