"""Built-in PCA: real training jobs (``python -m openmaker.algorithms pca`` over channels
delivered from the object store) checked against scikit-learn's PCA on the bundled digits
data, plus the response formats, the model file, several hosts and the failures."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import find_algorithm
from openmaker.algorithms.base import InferenceError
from openmaker.algorithms.pca import (
    MODEL_FILE,
    PCAStatistics,
    decode_ndarray_dict,
    encode_ndarray_dict,
    fit,
    mini_batches,
    sketch_size,
)
from openmaker.core.errors import ValidationException
from openmaker.formats import write_csv, write_dense_records
from openmaker.formats.recordio_protobuf import read_records, write_sparse_records

CSV0 = "text/csv;label_size=0"
RECORDIO = "application/x-recordio-protobuf"


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


def _csv(features: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, features)
    return buffer.getvalue()


def _recordio(features: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_dense_records(buffer, features.astype(np.float32))
    return buffer.getvalue()


def _split(data: np.ndarray, parts: int, encode) -> dict[str, bytes]:
    return {f"part-{i}": encode(chunk) for i, chunk in enumerate(np.array_split(data, parts))}


def _train(jobs: JobRunner, data: np.ndarray, hyperparameters: dict[str, str], *,
           content_type: str = CSV0, mode: str = "File", instances: int = 1,
           distribution: str = "FullyReplicated", parts: int = 3, test: np.ndarray | None = None):
    encode = _csv if content_type.startswith("text/csv") else _recordio
    channels = {"train": Channel(_split(data, parts, encode), content_type,
                                 distribution=distribution)}
    if test is not None:
        channels["test"] = Channel({"part-0": encode(test)}, content_type)
    return jobs.run("pca", channels, hyperparameters, input_mode=mode,
                    instance_count=instances)


def _hyperparameters(features: np.ndarray, components: int, **extra: str) -> dict[str, str]:
    return {"feature_dim": str(features.shape[1]), "num_components": str(components),
            "mini_batch_size": "200", **extra}


def _model(result) -> dict[str, np.ndarray]:
    return decode_ndarray_dict((result.model_dir / MODEL_FILE).read_bytes())


def _explained_variance(model: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """Descending, as scikit-learn reports it (the model stores ascending)."""
    return (model["s"].astype(np.float64) ** 2 / (rows - 1))[::-1]


# -- quality against scikit-learn --------------------------------------------------------
def test_regular_mode_matches_scikit_learn_exactly(jobs: JobRunner, digits: np.ndarray) -> None:
    from sklearn.decomposition import PCA

    result = _train(jobs, digits, _hyperparameters(digits, 10), test=digits[:100]).check()
    model = _model(result)
    reference = PCA(n_components=10, svd_solver="full").fit(digits)
    np.testing.assert_allclose(_explained_variance(model, len(digits)),
                               reference.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(model["mean"].ravel(), reference.mean_, rtol=1e-5, atol=1e-6)
    # the same components (up to sign), stored as columns, last = first principal component
    components = model["v"][:, ::-1].T
    overlap = np.abs(np.sum(components * reference.components_, axis=1))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-4)
    assert np.all(np.diff(model["s"]) >= 0)
    assert "test reconstruction_error <loss>=" in result.output
    assert "train explained_variance_ratio <score>=" in result.output


def test_randomized_mode_is_within_one_percent_of_scikit_learn(jobs: JobRunner,
                                                               digits: np.ndarray) -> None:
    from sklearn.decomposition import PCA

    result = _train(jobs, digits, _hyperparameters(digits, 8, algorithm_mode="randomized",
                                                   extra_components="12"),
                    content_type=RECORDIO, mode="Pipe").check()
    reference = PCA(n_components=8, svd_solver="randomized", random_state=0).fit(digits)
    np.testing.assert_allclose(_explained_variance(_model(result), len(digits)),
                               reference.explained_variance_, rtol=0.01)


def test_projection_matches_scikit_learn_transform(jobs: JobRunner, digits: np.ndarray) -> None:
    from sklearn.decomposition import PCA

    result = _train(jobs, digits, _hyperparameters(digits, 5)).check()
    predictor = find_algorithm("pca").load(result.model_dir)
    body, content_type = predictor.predict(_csv(digits[:20]), "text/csv", "application/json")
    assert content_type == "application/json"
    document = json.loads(body)
    assert list(document) == ["projections"]
    assert all(list(item) == ["projection"] for item in document["projections"])
    ours = np.array([item["projection"] for item in document["projections"]])[:, ::-1]
    expected = PCA(n_components=5, svd_solver="full").fit(digits).transform(digits[:20])
    signs = np.sign(np.sum(ours * expected, axis=0))
    np.testing.assert_allclose(ours * signs, expected, atol=2e-3)


def test_without_subtract_mean_the_components_are_the_uncentred_ones(
        jobs: JobRunner, digits: np.ndarray) -> None:
    result = _train(jobs, digits, _hyperparameters(digits, 4, subtract_mean="False")).check()
    model = _model(result)
    assert "mean" not in model
    singular = np.linalg.svd(digits.astype(np.float64), compute_uv=False)[:4]
    np.testing.assert_allclose(model["s"][::-1], singular, rtol=1e-4)


# -- formats -------------------------------------------------------------------------------
def test_every_response_format(jobs: JobRunner, digits: np.ndarray) -> None:
    result = _train(jobs, digits, _hyperparameters(digits, 3)).check()
    predictor = find_algorithm("pca").load(result.model_dir)
    rows = digits[:4]
    body, _ = predictor.predict(_csv(rows), "text/csv", "application/json")
    expected = np.array([p["projection"] for p in json.loads(body)["projections"]])
    assert expected.shape == (4, 3)

    lines, kind = predictor.predict(_csv(rows), "text/csv", "application/jsonlines")
    assert kind == "application/jsonlines"
    np.testing.assert_allclose([json.loads(line)["projection"] for line in
                                lines.decode().splitlines()], expected)
    records, kind = predictor.predict(_csv(rows), "text/csv", RECORDIO)
    assert kind == RECORDIO
    decoded = read_records(records)
    assert all(not record.features and list(record.label) == ["projection"]
               for record in decoded)
    assert decoded[0].label["projection"].values.dtype == np.float32
    np.testing.assert_allclose([r.label["projection"].values for r in decoded], expected)
    assert predictor.predict(_csv(rows), "text/csv", "*/*")[1] == "application/json"

    sparse = {"instances": [{"data": {"features": {
        "keys": np.flatnonzero(row).tolist(), "shape": [64],
        "values": row[np.flatnonzero(row)].tolist()}}} for row in rows]}
    body, _ = predictor.predict(json.dumps(sparse).encode(), "application/json",
                                "application/json")
    np.testing.assert_allclose([p["projection"] for p in json.loads(body)["projections"]],
                               expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(InferenceError, match="feature_dim 64"):
        predictor.predict(_csv(rows[:, :10]), "text/csv", "application/json")


def test_sparse_recordio_training_equals_dense(jobs: JobRunner, digits: np.ndarray) -> None:
    import scipy.sparse

    buffer = io.BytesIO()
    write_sparse_records(buffer, scipy.sparse.csr_matrix(digits))
    sparse = jobs.run("pca", {"train": Channel({"part-0": buffer.getvalue()}, RECORDIO)},
                      _hyperparameters(digits, 4)).check()
    dense = _train(jobs, digits, _hyperparameters(digits, 4), content_type=RECORDIO).check()
    np.testing.assert_allclose(_model(sparse)["s"], _model(dense)["s"], rtol=1e-5)


def test_model_file_is_an_mxnet_ndarray_dict() -> None:
    arrays = {"mean": np.arange(3, dtype=np.float32).reshape(1, 3),
              "v": np.ones((3, 2), dtype=np.float32), "s": np.array([1.5, 2.5], np.float32)}
    data = encode_ndarray_dict(arrays)
    # mx.nd.save's list magic 0x112, a reserved word, then the count
    assert data[:24] == (0x112).to_bytes(8, "little") + bytes(8) + (3).to_bytes(8, "little")
    decoded = decode_ndarray_dict(data)
    assert list(decoded) == ["mean", "v", "s"]
    for name, array in arrays.items():
        np.testing.assert_array_equal(decoded[name], array)


# -- several hosts -----------------------------------------------------------------------------
def test_sharded_hosts_train_the_single_host_model(jobs: JobRunner, digits: np.ndarray) -> None:
    hyperparameters = _hyperparameters(digits, 6)
    single = _train(jobs, digits, hyperparameters, parts=4).check()
    sharded = _train(jobs, digits, hyperparameters, parts=4, instances=2,
                     distribution="ShardedByS3Key").check()
    assert not (sharded.layouts[1].model_dir / MODEL_FILE).exists()
    for name in ("s", "mean"):
        np.testing.assert_allclose(_model(sharded)[name], _model(single)[name], rtol=1e-5)
    assert all("records/second" in output for output in sharded.outputs)


# -- failures ------------------------------------------------------------------------------------
def test_csv_with_a_label_column_counted_in_feature_dim_says_how_to_fix(
        jobs: JobRunner, digits: np.ndarray) -> None:
    result = _train(jobs, digits, _hyperparameters(digits, 3), content_type="text/csv")
    assert result.returncode != 0
    failure = result.failure()
    assert failure.startswith("ClientError: ") and "label_size=0" in failure


def test_bad_hyperparameters_are_refused_by_name() -> None:
    algorithm = find_algorithm("382416733822.dkr.ecr.us-west-2.amazonaws.com/pca:1")
    assert algorithm is not None and algorithm.name == "pca"
    base = {"feature_dim": "10", "num_components": "3", "mini_batch_size": "100"}
    algorithm.validate_hyperparameters(base)
    for missing in base:
        with pytest.raises(ValidationException, match=rf"HyperParameters\.{missing} is required"):
            algorithm.validate_hyperparameters({k: v for k, v in base.items() if k != missing})
    with pytest.raises(ValidationException, match=r"HyperParameters\.num_components.*at most"):
        algorithm.validate_hyperparameters({**base, "num_components": "11"})
    algorithm.validate_hyperparameters({**base, "subtract_mean": "false",
                                        "algorithm_mode": "randomized",
                                        "extra_components": "0"})


def test_validation_channel_is_refused_at_the_api() -> None:
    algorithm = find_algorithm("pca")
    with pytest.raises(ValidationException, match="'validation'"):
        algorithm.validate_channels([{"ChannelName": "train"}, {"ChannelName": "validation"}])
    with pytest.raises(ValidationException, match="ContentType"):
        algorithm.validate_channels([{"ChannelName": "train", "ContentType": "text/libsvm"}])


# -- the randomized sketch for wide data ---------------------------------------------------------
def test_sketch_size_follows_extra_components() -> None:
    assert sketch_size(5, -1, 100) == 15
    assert sketch_size(20, -1, 100) == 40
    assert sketch_size(5, 0, 100) == 5
    assert sketch_size(5, -1, 8) == 8


def test_wide_randomized_mode_recovers_low_rank_structure(monkeypatch) -> None:
    from openmaker.algorithms import pca

    monkeypatch.setattr(pca, "GRAM_LIMIT", 16)  # take the d×k sketch path at d=64
    rng = np.random.default_rng(3)
    data = (rng.standard_normal((3000, 6)) * [9, 7, 5, 4, 3, 2]) @ rng.standard_normal((6, 64))
    data += 0.01 * rng.standard_normal(data.shape) + 5
    statistics = PCAStatistics(64, 4, "randomized")
    assert not statistics.exact
    model = fit(mini_batches(data.astype(np.float32), 250), 64, 4,
                algorithm_mode="randomized")
    centred = data - data.mean(axis=0)
    expected = np.linalg.svd(centred, compute_uv=False)[:4]
    np.testing.assert_allclose(model.s[::-1], expected, rtol=1e-3)
