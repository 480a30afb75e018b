"""SageMaker's built-in IP Insights (``ipinsights:1``), on torch.

Hyperparameters, channels, metric and inference formats follow ``reference/algorithms.md``
section 12. Training data is headerless CSV of ``entity, IP address`` rows. An entity is
hashed (BLAKE2b) into one of ``num_entity_vectors`` embedding rows. An address (IPv4 is
mapped into IPv6 space, ``::ffff:a.b.c.d``) is encoded as the mean of the embeddings of
its byte prefixes (``PREFIX_BYTES``; each prefix hashed into a table sized from the
training data), followed by ``num_ip_encoder_layers`` fully connected ``tanh`` layers.
The score is the dot product of the two vectors; training is a discriminator (logistic
loss, Adam with ``weight_decay``) between observed pairs and, per pair,
``random_negative_sampling_rate`` pairs with a random address and
``shuffled_negative_sampling_rate`` pairs with another row's address.

Several hosts train data-parallel: each reads its own shard (``ShardedByS3Key``) and the
gradients are summed over torch.distributed (gloo) every step. The optional
``validation`` channel (unlabelled pairs, like ``train``) is scored against negatives
drawn the same way: ``validation discriminator_auc`` in SageMaker's ``#quality_metric``
lines.

The model directory holds ``model_algo-1`` (the float32 parameters, back to back) and
``model_algo-1.json`` (their names and shapes, and the encoder's settings). torch is
imported only when training.
"""

from __future__ import annotations

import csv
import hashlib
import io
import ipaddress
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms._cluster import HostGroup
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
    validate_channels,
)
from openmaker.core.errors import ValidationException

MODEL_FILE = "model_algo-1"
METADATA_FILE = "model_algo-1.json"
MODEL_VERSION = "1.0"
# SageMaker's IP Insights has no seed hyperparameter; a fixed one makes jobs repeatable.
SEED = 11
GATHER_TIMEOUT_S = int(os.environ.get("OPENMAKER_IPINSIGHTS_GATHER_TIMEOUT", "600"))
# Prefix lengths (bytes of the 16-byte IPv6 form) that get an embedding each: for IPv4
# (bytes 12-15) the /8, /16, /24 and /32 networks; for IPv6 /16 ... /128.
PREFIX_BYTES = (2, 4, 6, 8, 10, 12, 13, 14, 15, 16)
MIN_IP_BUCKETS = 1 << 10
MAX_IP_BUCKETS = 1 << 22
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"

HYPERPARAMETERS = HyperparameterSpec("ipinsights", [
    Hyperparameter("num_entity_vectors", "int", required=True, range=Interval(1, 250_000_000)),
    Hyperparameter("vector_dim", "int", required=True, range=Interval(4, 4096)),
    Hyperparameter("epochs", "int", default=10, range=Interval(1, None)),
    Hyperparameter("learning_rate", "float", default=0.001, range=Interval(1e-6, 10.0)),
    Hyperparameter("mini_batch_size", "int", default=10_000, range=Interval(1, 500_000)),
    Hyperparameter("num_ip_encoder_layers", "int", default=1, range=Interval(0, 100)),
    Hyperparameter("random_negative_sampling_rate", "int", default=1, range=Interval(0, 500)),
    Hyperparameter("shuffled_negative_sampling_rate", "int", default=1, range=Interval(0, 500)),
    Hyperparameter("weight_decay", "float", default=0.00001, range=Interval(0.0, 10.0)),
    Hyperparameter("batch_metrics_publish_interval", "int", default=1000,
                   range=Interval(1, None)),
])


def check_dependencies(values: Mapping[str, Any]) -> None:
    """ValidationException when the two negative sampling rates do not sum to 1 ... 500."""
    total = values["random_negative_sampling_rate"] + values["shuffled_negative_sampling_rate"]
    if not 1 <= total <= 500:
        raise ValidationException(
            "HyperParameters.random_negative_sampling_rate and "
            "HyperParameters.shuffled_negative_sampling_rate: their sum is "
            f"{total}; it must be in [1, 500] (training needs negative pairs)")


def defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the optional hyperparameters' defaults filled in."""
    filled = {p.name: p.default for p in HYPERPARAMETERS.parameters if p.default is not None}
    filled.update({k: v for k, v in values.items() if k in HYPERPARAMETERS})
    return filled


_VALUE = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"
METRICS = [
    MetricDefinition(
        "validation:discriminator_auc",
        rf"#quality_metric: host=\S+, validation discriminator_auc <score>={_VALUE}",
        "Maximize"),
    # UNVERIFIED: the reference names no train metric; this one is openmaker's.
    MetricDefinition(
        "train:binary_classification_cross_entropy",
        rf"#quality_metric: host=\S+, epoch=\S+, train binary_classification_cross_entropy "
        rf"<loss>={_VALUE}",
        "Minimize"),
    MetricDefinition("train:throughput",
                     rf"#throughput_metric: host=\S+, train throughput={_VALUE} records/second",
                     "Maximize"),
]

CONTENT_TYPES = ("text/csv",)
# The reference: text/csv only, File mode only. FastFile presents the same files.
TRAINING_MODES = ("File", "FastFile")
CHANNELS = (
    ChannelDefinition("train", required=True, content_types=CONTENT_TYPES,
                      default_content_type="text/csv", input_modes=TRAINING_MODES),
    ChannelDefinition("validation", content_types=CONTENT_TYPES,
                      default_content_type="text/csv", input_modes=TRAINING_MODES),
)


# -- encoding entities and addresses -----------------------------------------------------------
def entity_indices(entities: Sequence[str], num_entity_vectors: int) -> np.ndarray:
    """Each entity's embedding row: its BLAKE2b hash modulo ``num_entity_vectors`` (stable
    across processes, unlike ``hash``)."""
    unique, inverse = np.unique(np.asarray(entities, dtype=object).astype(str),
                                return_inverse=True)
    hashed = np.fromiter(
        (int.from_bytes(hashlib.blake2b(e.encode(), digest_size=8).digest(), "little")
         % num_entity_vectors for e in unique), dtype=np.int64, count=len(unique))
    return hashed[inverse.reshape(-1)] if len(unique) else np.zeros(0, dtype=np.int64)


def address_bytes(addresses: Sequence[str]) -> np.ndarray:
    """The 16-byte IPv6 form of each address, IPv4 mapped (``::ffff:a.b.c.d``), as an
    ``(n, 16)`` uint8 array; ValueError naming the first that is not an address."""
    cache: dict[str, bytes] = {}
    packed = []
    for index, text in enumerate(addresses):
        value = cache.get(text)
        if value is None:
            try:
                address = ipaddress.ip_address(text.strip())
            except ValueError:
                raise ValueError(f"record {index + 1}: {text!r} is not an IPv4 or IPv6 "
                                 "address") from None
            value = _V4_MAPPED + address.packed if address.version == 4 else address.packed
            cache[text] = value
        packed.append(value)
    if not packed:
        return np.zeros((0, 16), dtype=np.uint8)
    return np.frombuffer(b"".join(packed), dtype=np.uint8).reshape(-1, 16)


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on uint64 arrays (they wrap on overflow)."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def prefix_hashes(addresses: np.ndarray) -> np.ndarray:
    """The 64-bit hash of each address's prefixes (``PREFIX_BYTES``): ``(n, P)`` uint64."""
    n = len(addresses)
    state = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    columns = []
    data = addresses.astype(np.uint64)
    for position in range(16):
        state = (state ^ data[:, position]) * _FNV_PRIME
        if position + 1 in PREFIX_BYTES:
            columns.append(_mix(state ^ np.uint64(position + 1)))
    return np.stack(columns, axis=1) if n else np.zeros((0, len(PREFIX_BYTES)), np.uint64)


def prefix_indices(addresses: np.ndarray, buckets: int) -> np.ndarray:
    """Each address's prefix embedding rows, ``(n, P)`` int64."""
    return (prefix_hashes(addresses) % np.uint64(buckets)).astype(np.int64)


def ip_buckets_for(unique_prefixes: int) -> int:
    """The prefix table size: a power of two at least twice the distinct prefixes seen."""
    size = MIN_IP_BUCKETS
    while size < 2 * unique_prefixes and size < MAX_IP_BUCKETS:
        size *= 2
    return size


def random_addresses(like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random addresses of the same family as each row of ``like``."""
    result = rng.integers(0, 256, size=like.shape, dtype=np.uint8)
    v4 = (like[:, :12] == np.frombuffer(_V4_MAPPED, dtype=np.uint8)).all(axis=1)
    result[v4, :12] = np.frombuffer(_V4_MAPPED, dtype=np.uint8)
    return result


# -- reading the channels ----------------------------------------------------------------------
def parse_pairs(text: str, name: str) -> tuple[list[str], list[str]]:
    """``(entities, addresses)`` of CSV text with two columns per row; blank rows skipped;
    ValueError naming the line otherwise."""
    entities: list[str] = []
    addresses: list[str] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 2:
            raise ValueError(f"{name}, line {number}: {len(row)} columns; ipinsights reads two "
                             "(entity, IP address)")
        entities.append(row[0].strip())
        addresses.append(row[1].strip())
    return entities, addresses


def read_pairs(env: TrainingEnvironment, channel: str) -> tuple[list[str], np.ndarray]:
    """Every ``(entity, address)`` row of ``channel`` on this instance."""
    from openmaker.algorithms._data import channel_streams

    entities: list[str] = []
    addresses: list[np.ndarray] = []
    for stream in channel_streams(env, channel):
        raw = stream.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ClientError(f"{stream.name}: not UTF-8 text ({error})") from None
        try:
            found, texts = parse_pairs(text, stream.name)
            addresses.append(address_bytes(texts))
        except ValueError as error:
            message = str(error)
            if message.startswith("record "):
                message = f"{stream.name}, {message}"
            raise ClientError(message) from None
        entities.extend(found)
    if not addresses:
        return [], np.zeros((0, 16), dtype=np.uint8)
    return entities, np.concatenate(addresses)


# -- the cluster ---------------------------------------------------------------------------------
# -- the model ---------------------------------------------------------------------------------
def parameter_shapes(values: Mapping[str, Any], ip_buckets: int) -> dict[str, tuple[int, ...]]:
    """The model's parameters, in the order ``model_algo-1`` stores them."""
    dim = values["vector_dim"]
    shapes: dict[str, tuple[int, ...]] = {
        "entity_embedding": (values["num_entity_vectors"], dim),
        "ip_prefix_embedding": (ip_buckets, dim),
    }
    for layer in range(values["num_ip_encoder_layers"]):
        shapes[f"ip_encoder.{layer}.weight"] = (dim, dim)
        shapes[f"ip_encoder.{layer}.bias"] = (dim,)
    return shapes


class IPInsightsModel:
    """The trained parameters and the numpy forward pass that serving uses."""

    def __init__(self, parameters: Mapping[str, np.ndarray], metadata: Mapping[str, Any]):
        self.parameters = dict(parameters)
        self.metadata = dict(metadata)
        self.num_entity_vectors = int(metadata["num_entity_vectors"])
        self.ip_buckets = int(metadata["ip_buckets"])
        self.layers = int(metadata["num_ip_encoder_layers"])

    def entity_embeddings(self, entities: Sequence[str]) -> np.ndarray:
        rows = entity_indices(entities, self.num_entity_vectors)
        return self.parameters["entity_embedding"][rows]

    def ip_embeddings(self, addresses: np.ndarray) -> np.ndarray:
        rows = prefix_indices(addresses, self.ip_buckets)
        vectors = self.parameters["ip_prefix_embedding"][rows].mean(axis=1, dtype=np.float32)
        for layer in range(self.layers):
            weight = self.parameters[f"ip_encoder.{layer}.weight"]
            bias = self.parameters[f"ip_encoder.{layer}.bias"]
            vectors = np.tanh(vectors @ weight.T + bias).astype(np.float32)
        return vectors

    def files(self) -> dict[str, bytes]:
        # a list: the metadata's keys are sorted, the parameters keep their order
        shapes = [[name, list(array.shape)] for name, array in self.parameters.items()]
        metadata = {**self.metadata, "parameters": shapes}
        data = b"".join(np.ascontiguousarray(array, dtype="<f4").tobytes()
                        for array in self.parameters.values())
        return {MODEL_FILE: data,
                METADATA_FILE: json.dumps(metadata, indent=1, sort_keys=True).encode()}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> IPInsightsModel:
        metadata = json.loads(files[METADATA_FILE])
        data = files[MODEL_FILE]
        parameters: dict[str, np.ndarray] = {}
        offset = 0
        for name, shape in metadata.pop("parameters"):
            count = int(np.prod(shape))
            parameters[name] = np.frombuffer(data, dtype="<f4", count=count,
                                             offset=offset).reshape(shape).astype(np.float32)
            offset += 4 * count
        if offset != len(data):
            raise ClientError(f"{MODEL_FILE} holds {len(data)} bytes; its metadata describes "
                              f"{offset}")
        return cls(parameters, metadata)


def _torch_module(values: Mapping[str, Any], ip_buckets: int) -> Any:
    import torch

    dim = values["vector_dim"]

    class Network(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.entity_embedding = torch.nn.Parameter(
                torch.randn(values["num_entity_vectors"], dim) * 0.1)
            self.ip_prefix_embedding = torch.nn.Parameter(torch.randn(ip_buckets, dim) * 0.1)
            self.ip_encoder = torch.nn.ModuleList(
                torch.nn.Linear(dim, dim) for _ in range(values["num_ip_encoder_layers"]))

        def encode_ip(self, prefixes: Any) -> Any:
            vectors = torch.nn.functional.embedding(prefixes, self.ip_prefix_embedding
                                                    ).mean(dim=1)
            for layer in self.ip_encoder:
                vectors = torch.tanh(layer(vectors))
            return vectors

        def forward(self, entities: Any, prefixes: Any) -> Any:
            entity = torch.nn.functional.embedding(entities, self.entity_embedding)
            return (entity * self.encode_ip(prefixes)).sum(dim=1)

    return Network()


class _Sampler:
    """Builds each step's pairs: the batch's observed pairs (label 1) followed by its random
    and shuffled negatives (label 0)."""

    def __init__(self, values: Mapping[str, Any], ip_buckets: int) -> None:
        self.random_rate = values["random_negative_sampling_rate"]
        self.shuffled_rate = values["shuffled_negative_sampling_rate"]
        self.ip_buckets = ip_buckets

    def pairs(self, entities: np.ndarray, addresses: np.ndarray, prefixes: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(entities)
        all_entities = [entities]
        all_prefixes = [prefixes]
        if self.random_rate:
            like = np.tile(addresses, (self.random_rate, 1))
            all_entities.append(np.tile(entities, self.random_rate))
            all_prefixes.append(prefix_indices(random_addresses(like, rng), self.ip_buckets))
        for _ in range(self.shuffled_rate):
            all_entities.append(entities)
            all_prefixes.append(prefixes[rng.permutation(n)] if n else prefixes)
        labels = np.zeros(n * (1 + self.random_rate + self.shuffled_rate), dtype=np.float32)
        labels[:n] = 1.0
        return np.concatenate(all_entities), np.concatenate(all_prefixes), labels


class _Adam:
    """Adam with L2 weight decay (torch.optim.Adam's update), written out: importing
    torch.optim loads torch's compiler, seconds of start-up a small job should not pay."""

    def __init__(self, parameters: list[Any], lr: float, weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        import torch

        self.parameters = parameters
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.first = [torch.zeros_like(p) for p in parameters]
        self.second = [torch.zeros_like(p) for p in parameters]
        self.steps = 0

    def step(self) -> None:
        import torch

        self.steps += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1 ** self.steps
        correction2 = 1 - beta2 ** self.steps
        with torch.no_grad():
            for p, m, v in zip(self.parameters, self.first, self.second, strict=True):
                grad = p.grad
                if self.weight_decay:
                    grad = grad + self.weight_decay * p
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denominator = (v / correction2).sqrt_().add_(self.eps)
                p.addcdiv_(m, denominator, value=-self.lr / correction1)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    from scipy.stats import rankdata

    positives = labels > 0.5
    n_pos = int(positives.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _metric(value: float) -> str:
    return f"{value:.6g}"


def train(env: TrainingEnvironment) -> None:
    """Train per the job in ``env``: write the model files to the model directory."""
    try:
        values = defaults(HYPERPARAMETERS.parse(env.hyperparameters))
        check_dependencies(values)
        validate_channels(
            "ipinsights", CHANNELS,
            [{"ChannelName": name, "ContentType": config.get("ContentType"),
              "InputMode": config.get("TrainingInputMode", "File")}
             for name, config in env.input_data_config.items()
             if name in ("train", "validation")], "File")
    except ValidationException as error:
        raise ClientError(error.message) from None
    if "train" not in env.input_data_config:
        raise ClientError("InputDataConfig: ipinsights needs a 'train' channel")
    import torch

    torch.manual_seed(SEED)
    if env.num_cpus:
        torch.set_num_threads(max(1, env.num_cpus))
    cluster = HostGroup(env, timeout_s=GATHER_TIMEOUT_S)
    host = env.current_host
    error: Exception | None = None
    local: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    try:
        names, addresses = read_pairs(env, "train")
        entities = entity_indices(names, values["num_entity_vectors"])
        hashes = prefix_hashes(addresses)
        local = (entities, addresses, hashes)
    except Exception as failure:  # noqa: BLE001 -- every host must learn of it
        error = failure
    cluster.agree(error)
    assert local is not None
    entities, addresses, hashes = local
    counts = cluster.gather((len(entities), int(len(np.unique(hashes)))))
    total_rows = sum(rows for rows, _ in counts)
    if total_rows == 0:
        cluster.close()
        raise ClientError("channel 'train' has no data: no records were found in "
                          f"{env.channel_dir('train')}")
    # Prefixes shared between hosts are counted once per host: the table comes out larger.
    ip_buckets = ip_buckets_for(sum(unique for _, unique in counts))
    prefixes = (hashes % np.uint64(ip_buckets)).astype(np.int64)
    print(f"{host}: {len(entities)} of {total_rows} training pairs; "
          f"{ip_buckets} IP prefix buckets", flush=True)

    validation = None
    if "validation" in env.input_data_config:
        error = None
        try:
            val_names, val_addresses = read_pairs(env, "validation")
            validation = (entity_indices(val_names, values["num_entity_vectors"]),
                          val_addresses, prefix_indices(val_addresses, ip_buckets))
        except Exception as failure:  # noqa: BLE001 -- every host must learn of it
            error = failure
        cluster.agree(error)

    network = _torch_module(values, ip_buckets)
    parameters = list(network.parameters())
    optimizer = _Adam(parameters, values["learning_rate"], values["weight_decay"])
    sampler = _Sampler(values, ip_buckets)
    batch_size = values["mini_batch_size"]
    most_rows = max(rows for rows, _ in counts)
    steps = -(-most_rows // batch_size)
    rng = np.random.default_rng([SEED, cluster.rank])
    for epoch in range(values["epochs"]):
        order = rng.permutation(len(entities))
        loss_total = torch.zeros(2, dtype=torch.float64)
        started = time.perf_counter()
        for step in range(steps):
            # Hosts with fewer rows than the largest shard wrap around their own.
            span = np.arange(step * batch_size, min((step + 1) * batch_size, most_rows))
            rows = order[span % len(order)] if len(order) else order
            batch_entities, batch_prefixes, labels = sampler.pairs(
                entities[rows], addresses[rows], prefixes[rows], rng)
            for p in parameters:
                p.grad = None
            scores = network(torch.from_numpy(batch_entities), torch.from_numpy(batch_prefixes))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                scores, torch.from_numpy(labels), reduction="sum")
            loss.backward()
            count = torch.tensor([float(loss.detach()), float(len(labels))],
                                 dtype=torch.float64)
            grads = torch.cat([p.grad.reshape(-1) if p.grad is not None
                               else torch.zeros(p.numel()) for p in parameters])
            cluster.sum(grads)
            cluster.sum(count)
            loss_total += count
            scale = 1.0 / max(count[1].item(), 1.0)
            offset = 0
            for p in parameters:
                p.grad = (grads[offset:offset + p.numel()] * scale).reshape(p.shape)
                offset += p.numel()
            optimizer.step()
            if (step + 1) % values["batch_metrics_publish_interval"] == 0 and cluster.rank == 0:
                elapsed = max(time.perf_counter() - started, 1e-9)
                print(f"#throughput_metric: host={host}, train throughput="
                      f"{loss_total[1].item() / elapsed:.6g} records/second", flush=True)
        if cluster.rank == 0:
            print(f"#quality_metric: host={host}, epoch={epoch}, train "
                  f"binary_classification_cross_entropy <loss>="
                  f"{_metric(loss_total[0].item() / max(loss_total[1].item(), 1.0))}",
                  flush=True)
            print(f"#progress_metric: host={host}, completed "
                  f"{_metric(100.0 * (epoch + 1) / values['epochs'])} % of epochs", flush=True)

    state = {name: tensor.detach().numpy().astype(np.float32)
             for name, tensor in network.named_parameters()}
    shapes = parameter_shapes(values, ip_buckets)
    model = IPInsightsModel({name: state[name] for name in shapes}, {
        "version": MODEL_VERSION, "num_entity_vectors": values["num_entity_vectors"],
        "vector_dim": values["vector_dim"], "ip_buckets": ip_buckets,
        "num_ip_encoder_layers": values["num_ip_encoder_layers"],
        "prefix_bytes": list(PREFIX_BYTES)})
    if cluster.rank == 0:
        env.model_dir.mkdir(parents=True, exist_ok=True)
        for name, data in model.files().items():
            _write_atomic(env.model_dir / name, data)
    if validation is not None:
        val_entities, val_addresses, val_prefixes = validation
        pair_entities, pair_prefixes, labels = sampler.pairs(
            val_entities, val_addresses, val_prefixes, np.random.default_rng([SEED, 1 << 20]))
        with torch.no_grad():
            scores = network(torch.from_numpy(pair_entities),
                             torch.from_numpy(pair_prefixes)).numpy()
        gathered = cluster.gather((labels, scores))
        if cluster.rank == 0:
            all_labels = np.concatenate([g[0] for g in gathered])
            if len(all_labels) == 0:
                cluster.close()
                raise ClientError("channel 'validation' has no data: no records were found")
            auc = roc_auc(all_labels, np.concatenate([g[1] for g in gathered]))
            print(f"#quality_metric: host={host}, validation discriminator_auc "
                  f"<score>={_metric(auc)}", flush=True)
    cluster.close()


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# -- inference -------------------------------------------------------------------------------
REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines")
# text/csv answers (one dot_product per line) are an openmaker addition; the reference lists
# JSON and JSON Lines responses.
ACCEPTS = ("application/json", "application/jsonlines", "text/csv")


def _instance_pair(index: int, instance: Any) -> tuple[str, str]:
    values = instance
    if isinstance(instance, dict):
        if "features" in instance:
            values = instance["features"]
        else:
            values = ((instance.get("data") or {}).get("features") or {}).get("values")
    if not isinstance(values, list) or len(values) != 2:
        raise InferenceError(
            f"instance {index + 1}: expected {{\"features\": [entity, ip]}} or "
            "{\"data\": {\"features\": {\"values\": [entity, ip]}}}")
    return str(values[0]).strip(), str(values[1]).strip()


class IPInsightsPredictor(Predictor):
    """Serves an IP Insights model: CSV, JSON and JSON Lines pairs in; ``dot_product``
    (plus ``entity_embedding`` and ``ip_embedding`` with ``verbose=True``) out."""

    content_types = REQUEST_TYPES
    accepts = ACCEPTS

    def __init__(self, model: IPInsightsModel, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        self.model = model
        self.default_accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or \
            "application/json"

    def _accept(self, accept: str | None) -> tuple[str, bool]:
        for option in (accept or "").split(","):
            media, parameters = media_parameters(option)
            verbose = parameters.get("verbose", "").lower() in ("true", "1")
            if media in ("", "*/*"):
                default, default_parameters = media_parameters(self.default_accept)
                return default, verbose or \
                    default_parameters.get("verbose", "").lower() in ("true", "1")
            if media in ACCEPTS:
                return media, verbose
        raise NotAcceptable(f"accept type {accept!r} is not supported; use "
                            f"{', '.join(ACCEPTS)} (with '; verbose=True' for embeddings)")

    def _pairs(self, body: bytes, content_type: str) -> tuple[list[str], list[str]]:
        media, _ = media_parameters(content_type or "text/csv")
        if media not in REQUEST_TYPES:
            raise UnsupportedContentType(f"content type {content_type!r} is not supported; "
                                         f"use {', '.join(REQUEST_TYPES)}")
        try:
            text = body.decode("utf-8-sig")
            if media == "text/csv":
                return parse_pairs(text, "the request")
            if media == "application/json":
                document = json.loads(text)
                instances = document.get("instances") if isinstance(document, dict) else None
                if not isinstance(instances, list):
                    raise InferenceError('the request must be {"instances": [...]}')
            else:
                instances = [json.loads(line) for line in text.splitlines() if line.strip()]
        except InferenceError:
            raise
        except (ValueError, TypeError) as error:
            raise InferenceError(f"the request is not valid {media}: {error}") from None
        pairs = [_instance_pair(index, item) for index, item in enumerate(instances)]
        return [e for e, _ in pairs], [a for _, a in pairs]

    def predict(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept_type, verbose = self._accept(accept)
        if not body or not body.strip():
            raise EmptyRequest("the request body is empty")
        entities, texts = self._pairs(body, content_type)
        if not entities:
            raise EmptyRequest("the request has no records")
        try:
            addresses = address_bytes(texts)
        except ValueError as error:
            raise InferenceError(str(error)) from None
        entity_vectors = self.model.entity_embeddings(entities)
        ip_vectors = self.model.ip_embeddings(addresses)
        scores = (entity_vectors * ip_vectors).sum(axis=1, dtype=np.float32)
        return self._encode(scores, entity_vectors, ip_vectors, accept_type, verbose), \
            accept_type

    @staticmethod
    def _encode(scores: np.ndarray, entity_vectors: np.ndarray, ip_vectors: np.ndarray,
                accept: str, verbose: bool) -> bytes:
        if accept == "text/csv":
            return "".join(f"{_number(v)}\n" for v in scores).encode()
        objects = []
        for index, value in enumerate(scores):
            item: dict[str, Any] = {"dot_product": _number(value)}
            if verbose:
                item["entity_embedding"] = [_number(v) for v in entity_vectors[index]]
                item["ip_embedding"] = [_number(v) for v in ip_vectors[index]]
            objects.append(item)
        if accept == "application/json":
            return json.dumps({"predictions": objects}).encode()
        return "".join(json.dumps(item) + "\n" for item in objects).encode()


def _number(value: float) -> float:
    """A float32 as the shortest float reading back to it."""
    return float(str(np.float32(value)))


def load_model(model_dir: str | os.PathLike) -> IPInsightsModel:
    directory = Path(model_dir)
    missing = [name for name in (MODEL_FILE, METADATA_FILE) if not (directory / name).is_file()]
    if missing:
        raise ClientError(f"{directory} holds no {', '.join(missing)} (an ipinsights model "
                          f"has {MODEL_FILE} and {METADATA_FILE})")
    return IPInsightsModel.from_files({name: (directory / name).read_bytes()
                                       for name in (MODEL_FILE, METADATA_FILE)})


class IPInsights(Algorithm):
    """SageMaker's built-in IP Insights."""

    name = "ipinsights"
    repositories = ("ipinsights",)
    hyperparameters = HYPERPARAMETERS
    channels = CHANNELS
    metrics = METRICS

    def objective_metrics(self) -> dict[str, str]:
        return {metric.name: metric.direction for metric in METRICS
                if metric.name != "train:throughput"}

    def validate_hyperparameters(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        values = HYPERPARAMETERS.parse(raw)
        check_dependencies(defaults(values))
        return values

    def validate_channels(self, channels: Iterable[Mapping[str, Any]],
                          input_mode: str = "File") -> None:
        validate_channels(self.name, CHANNELS, channels, input_mode)

    def train(self, env: TrainingEnvironment) -> None:
        train(env)

    def load(self, model_dir: str | os.PathLike) -> IPInsightsPredictor:
        return IPInsightsPredictor(load_model(model_dir))
