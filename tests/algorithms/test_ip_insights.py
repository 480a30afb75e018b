"""IP Insights: real training jobs (``python -m openmaker.algorithms ipinsights``) on
synthetic login data, where each user keeps to a few /24 networks; the discriminator must
tell their logins from random users at random addresses."""

from __future__ import annotations

import ipaddress
import json
import re

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import EmptyRequest, InferenceError, find_algorithm
from openmaker.algorithms.ip_insights import (
    IPInsights,
    address_bytes,
    entity_indices,
    roc_auc,
)
from openmaker.core.errors import ValidationException

HYPERPARAMETERS = {"num_entity_vectors": "600", "vector_dim": "32", "epochs": "6",
                   "mini_batch_size": "500", "learning_rate": "0.02",
                   "random_negative_sampling_rate": "2", "shuffled_negative_sampling_rate": "1",
                   "weight_decay": "0"}


def logins(users: int = 300, per_user: int = 16, seed: int = 0
           ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held-out) logins: each user logs in from 2-3 /24 networks of its own."""
    rng = np.random.default_rng(seed)
    train, held_out = [], []
    for user in range(users):
        networks = rng.integers(1 << 8, 223 << 16, size=rng.integers(2, 4))
        hosts = rng.integers(1, 255, size=per_user + 4)
        chosen = rng.integers(0, len(networks), size=per_user + 4)
        pairs = [(f"user_{user}", str(ipaddress.IPv4Address(int(networks[c]) << 8 | int(h))))
                 for c, h in zip(chosen, hosts, strict=True)]
        train.extend(pairs[:per_user])
        held_out.extend(pairs[per_user:])
    return train, held_out


def random_pairs(count: int, users: int, seed: int = 1) -> list[tuple[str, str]]:
    """Random users at uniformly random IPv4 addresses: the anomalies."""
    rng = np.random.default_rng(seed)
    return [(f"user_{u}", str(ipaddress.IPv4Address(int(a))))
            for u, a in zip(rng.integers(0, users, count),
                            rng.integers(1 << 24, 223 << 24, count), strict=True)]


def csv_bytes(pairs: list[tuple[str, str]]) -> bytes:
    return "".join(f"{e},{a}\n" for e, a in pairs).encode()


# -- the conformance suite's hooks: numeric rows [user, IPv4 as an integer] ------------------
def conformance_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """240 logins of 20 users as ``[user, address]`` rows (labels unused: zeros)."""
    train, held_out = logins(users=20, per_user=9, seed=5)
    def rows(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.array([[int(e.split("_")[1]), int(ipaddress.IPv4Address(a))]
                         for e, a in pairs], dtype=np.int64)
    train_x, val_x = rows(train), rows(held_out)
    return train_x, np.zeros(len(train_x)), val_x, np.zeros(len(val_x))


def conformance_encode(content_type: str, features: np.ndarray,
                       labels: np.ndarray | None) -> bytes:
    """``[user, address]`` rows as ipinsights reads them in ``content_type``."""
    pairs = [[f"user_{int(u)}", str(ipaddress.IPv4Address(int(a)))] for u, a in features]
    media = content_type.split(";")[0]
    if media == "text/csv":
        return csv_bytes([(e, a) for e, a in pairs])
    if media == "application/json":
        return json.dumps({"instances": [{"features": p} for p in pairs]}).encode()
    if media == "application/jsonlines":
        return "".join(json.dumps({"data": {"features": {"values": p}}}) + "\n"
                       for p in pairs).encode()
    raise AssertionError(f"no encoder for {content_type}")


# -- quality ---------------------------------------------------------------------------------
def _auc_line(output: str) -> float:
    found = re.findall(r"#quality_metric: host=\S+, validation discriminator_auc "
                       r"<score>=(\S+)", output)
    assert found, output
    return float(found[-1])


def _scores(predictor, pairs: list[tuple[str, str]]) -> np.ndarray:
    body, _ = predictor.predict(csv_bytes(pairs), "text/csv", "application/json")
    return np.array([p["dot_product"] for p in json.loads(body)["predictions"]])


def test_discriminator_auc_on_synthetic_logins(jobs: JobRunner) -> None:
    train, held_out = logins()
    result = jobs.run("ipinsights", {
        "train": Channel({"part-0": csv_bytes(train[:2000]),
                          "part-1": csv_bytes(train[2000:])}, "text/csv"),
        "validation": Channel({"part-0": csv_bytes(held_out)}, "text/csv"),
    }, HYPERPARAMETERS).check()
    assert _auc_line(result.output) >= 0.9
    predictor = IPInsights().load(result.model_dir)
    anomalies = random_pairs(len(held_out), 300)
    scores = np.concatenate([_scores(predictor, held_out), _scores(predictor, anomalies)])
    labels = np.r_[np.ones(len(held_out)), np.zeros(len(anomalies))]
    assert roc_auc(labels, scores) >= 0.9


def test_two_hosts_train_on_their_shards(jobs: JobRunner) -> None:
    train, held_out = logins(users=100, per_user=16, seed=3)
    half = len(train) // 2
    result = jobs.run("ipinsights", {
        "train": Channel({"part-0": csv_bytes(train[:half]), "part-1": csv_bytes(train[half:])},
                         "text/csv", distribution="ShardedByS3Key"),
        "validation": Channel({"part-0": csv_bytes(held_out)}, "text/csv"),
    }, {**HYPERPARAMETERS, "num_entity_vectors": "200", "learning_rate": "0.1"},
        instance_count=2).check()
    assert f"{half} of {len(train)} training pairs" in result.outputs[0]
    assert f"{len(train) - half} of {len(train)} training pairs" in result.outputs[1]
    assert _auc_line(result.output) >= 0.9
    assert sorted(p.name for p in result.model_dir.iterdir()) == ["model_algo-1",
                                                                   "model_algo-1.json"]


# -- inference formats -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory):
    runner = JobRunner(tmp_path_factory.mktemp("ipinsights"))
    train, _ = logins(users=20, per_user=9, seed=5)
    try:
        result = runner.run("ipinsights", {"train": Channel({"part-0": csv_bytes(train)})},
                            {**HYPERPARAMETERS, "epochs": "2"}).check()
    finally:
        runner.close()
    return IPInsights().load(result.model_dir)


def test_json_response_has_exactly_dot_product(predictor) -> None:
    body, content_type = predictor.predict(
        b'{"instances": [{"data": {"features": {"values": ["user_1", "192.168.1.2"]}}}, '
        b'{"features": ["user_2", "10.10.1.2"]}]}', "application/json", "application/json")
    assert content_type == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 2 and all(set(p) == {"dot_product"} for p in predictions)


def test_verbose_accept_adds_the_embeddings(predictor) -> None:
    request = b"user_1, 192.168.1.2\nuser_2, 2001:db8::1\n"
    plain, _ = predictor.predict(request, "text/csv", "application/json")
    body, content_type = predictor.predict(request, "text/csv", "application/json; verbose=True")
    assert content_type == "application/json"
    predictions = json.loads(body)["predictions"]
    for item, plain_item in zip(predictions, json.loads(plain)["predictions"], strict=True):
        assert set(item) == {"dot_product", "entity_embedding", "ip_embedding"}
        assert len(item["entity_embedding"]) == len(item["ip_embedding"]) == 32
        assert item["dot_product"] == plain_item["dot_product"]
        assert item["dot_product"] == pytest.approx(
            float(np.dot(item["entity_embedding"], item["ip_embedding"])), rel=1e-4, abs=1e-5)
    lines, content_type = predictor.predict(request, "text/csv",
                                            "application/jsonlines; verbose=True")
    assert content_type == "application/jsonlines"
    assert [json.loads(line) for line in lines.decode().splitlines()] == predictions


def test_bad_requests_are_refused(predictor) -> None:
    with pytest.raises(InferenceError, match="not an IPv4 or IPv6 address"):
        predictor.predict(b"user_1,999.1.1.1\n", "text/csv", "application/json")
    with pytest.raises(InferenceError, match="two"):
        predictor.predict(b"user_1\n", "text/csv", "application/json")
    with pytest.raises(InferenceError, match="instances"):
        predictor.predict(b'{"rows": []}', "application/json", "application/json")
    with pytest.raises(EmptyRequest):
        predictor.predict(b'{"instances": []}', "application/json", "application/json")


def test_ipv4_is_mapped_into_ipv6_space() -> None:
    assert (address_bytes(["10.1.2.3"]) == address_bytes(["::ffff:10.1.2.3"])).all()
    assert entity_indices(["a", "b", "a"], 1000).tolist()[0] == \
        entity_indices(["a"], 1000).tolist()[0]


# -- training failures -----------------------------------------------------------------------
def test_rates_summing_to_zero_are_refused_by_name() -> None:
    algorithm = find_algorithm("382416733822.dkr.ecr.us-east-1.amazonaws.com/ipinsights:1")
    assert isinstance(algorithm, IPInsights)
    with pytest.raises(ValidationException, match=r"HyperParameters\.random_negative_sampling"):
        algorithm.validate_hyperparameters({
            "num_entity_vectors": "10", "vector_dim": "8", "random_negative_sampling_rate": "0",
            "shuffled_negative_sampling_rate": "0"})
    with pytest.raises(ValidationException, match=r"HyperParameters\.vector_dim\b"):
        algorithm.validate_hyperparameters({"num_entity_vectors": "10"})


def test_bad_address_fails_the_job_naming_file_and_record(jobs: JobRunner) -> None:
    result = jobs.run("ipinsights", {"train": Channel({"part-0": b"u1,10.0.0.1\nu2,nonsense\n"},
                                                      "text/csv")}, HYPERPARAMETERS)
    assert result.returncode != 0
    failure = result.failure()
    assert failure.startswith("ClientError: ") and "part-0" in failure
    assert "record 2" in failure and "nonsense" in failure
