"""Built-in Factorization Machines: real training jobs beating the built-in Linear Learner
(and scikit-learn's linear models) where the label depends on pairwise interactions, the
regressor, sparse RecordIO in Pipe mode, several hosts over ShardedByS3Key, the FM identity,
initialisation methods, bad labels, and the inference response formats."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import scipy.sparse
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import factorization_machines as fm
from openmaker.algorithms import find_algorithm
from openmaker.formats import read_records, write_sparse_records

FIELD = 12  # categories per field
NOISE = 6   # extra dense noise features


def interaction_data(seed: int, rows: int, regression: bool = False
                     ) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """Two one-hot fields (a, b) plus noise; the label is a product of per-category
    factors s_a * t_b, which no linear model of the one-hot features can express."""
    rng = np.random.default_rng(seed)
    # half of each field's categories +1, half -1: every category alone says nothing
    signs = np.repeat([-1.0, 1.0], FIELD // 2)
    factors = np.stack([np.random.default_rng(99 + f).permutation(signs) for f in range(2)])
    a = rng.integers(0, FIELD, rows)
    b = rng.integers(0, FIELD, rows)
    noise = rng.normal(size=(rows, NOISE)).astype(np.float32)
    dense = np.zeros((rows, 2 * FIELD + NOISE), dtype=np.float32)
    dense[np.arange(rows), a] = 1
    dense[np.arange(rows), FIELD + b] = 1
    dense[:, 2 * FIELD:] = noise * 0.1
    product = factors[0, a] * factors[1, b]
    if regression:
        labels = (2.0 * product + rng.normal(scale=0.1, size=rows)).astype(np.float32)
    else:
        labels = (product > 0).astype(np.float32)
    return scipy.sparse.csr_matrix(dense), labels


def sparse_bytes(matrix: scipy.sparse.csr_matrix, labels: np.ndarray | None) -> bytes:
    buffer = io.BytesIO()
    write_sparse_records(buffer, matrix.astype(np.float32),
                         None if labels is None else labels.astype(np.float32))
    return buffer.getvalue()


def metric(output: str, name: str) -> float:
    definition = next(m for m in fm.METRICS if m.name == name)
    values = [float(match.group(1)) for line in output.splitlines()
              if (match := re.search(definition.regex, line))]
    assert values, output
    return values[-1]


def hyperparameters(**extra: str) -> dict[str, str]:
    return {"feature_dim": str(2 * FIELD + NOISE), "num_factors": "4",
            "predictor_type": "binary_classifier", "epochs": "15", "mini_batch_size": "50",
            "bias_lr": "0.05", "linear_lr": "0.05", "factors_lr": "0.05",
            "factors_init_sigma": "0.1", **extra}


def channels(train: tuple, test: tuple, **options) -> dict[str, Channel]:
    half = train[0].shape[0] // 2
    return {
        "train": Channel({"part-0": sparse_bytes(train[0][:half], train[1][:half]),
                          "part-1": sparse_bytes(train[0][half:], train[1][half:])},
                         "application/x-recordio-protobuf", **options),
        "test": Channel({"test": sparse_bytes(*test)}, "application/x-recordio-protobuf"),
    }


def linear_learner_metric(jobs: JobRunner, train: tuple, test: tuple, name: str,
                          predictor_type: str) -> float:
    """``name`` as the built-in Linear Learner reports it, trained on the same channels."""
    result = jobs.run("linear-learner", channels(train, test), {
        "feature_dim": str(2 * FIELD + NOISE), "predictor_type": predictor_type,
        "epochs": "15", "mini_batch_size": "50"}).check()
    definition = next(d for d in find_algorithm("linear-learner").metric_definitions
                      if d["Name"] == name)
    values = [float(match.group(1)) for line in result.output.splitlines()
              if (match := re.search(definition["Regex"], line))]
    assert values, result.output
    return values[-1]


def test_beats_a_linear_model_on_pairwise_interactions(jobs: JobRunner) -> None:
    from sklearn.linear_model import LogisticRegression

    train = interaction_data(1, 1500)
    test = interaction_data(2, 400)
    result = jobs.run("factorization-machines", channels(train, test), hyperparameters()
                      ).check()
    accuracy = metric(result.output, "test:binary_classification_accuracy")
    linear = LogisticRegression(max_iter=1000).fit(train[0], train[1])
    linear_accuracy = float(np.mean(linear.predict(test[0]) == test[1]))
    learner_accuracy = linear_learner_metric(
        jobs, train, test, "test:binary_classification_accuracy", "binary_classifier")
    assert accuracy > 0.95
    assert accuracy > linear_accuracy + 0.2
    assert accuracy > learner_accuracy + 0.2
    assert metric(result.output, "test:binary_f_beta") > 0.9
    assert metric(result.output, "test:binary_classification_cross_entropy") < 0.3

    predictor = find_algorithm("factorization-machines").load(result.model_dir)
    body, _ = predictor.predict(sparse_bytes(test[0], None), "application/x-recordio-protobuf",
                                "application/json")
    predictions = json.loads(body)["predictions"]
    assert set(predictions[0]) == {"score", "predicted_label"}
    labels = np.array([p["predicted_label"] for p in predictions])
    assert float(np.mean(labels == test[1])) == pytest.approx(accuracy, abs=1e-6)
    assert all(isinstance(p["predicted_label"], int) for p in predictions)
    assert all((p["score"] >= 0.5) == (p["predicted_label"] == 1) for p in predictions)


def test_regressor_beats_ridge(jobs: JobRunner) -> None:
    from sklearn.linear_model import Ridge

    train = interaction_data(3, 1500, regression=True)
    test = interaction_data(4, 400, regression=True)
    result = jobs.run("factorization-machines", channels(train, test),
                      hyperparameters(predictor_type="regressor")).check()
    rmse = metric(result.output, "test:rmse")
    ridge = Ridge().fit(train[0], train[1])
    ridge_rmse = float(np.sqrt(np.mean((ridge.predict(test[0]) - test[1]) ** 2)))
    learner_rmse = linear_learner_metric(jobs, train, test, "test:rmse", "regressor")
    assert rmse < 0.5 < min(ridge_rmse, learner_rmse)
    predictor = find_algorithm("factorization-machines").load(result.model_dir)
    body, content_type = predictor.predict(sparse_bytes(test[0][:3], None),
                                           "application/x-recordio-protobuf",
                                           "application/jsonlines")
    assert content_type == "application/jsonlines"
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == 3 and all(set(line) == {"score"} for line in lines)


def test_pipe_mode_and_two_hosts_sharded_by_key(jobs: JobRunner) -> None:
    train = interaction_data(5, 1200)
    test = interaction_data(6, 300)
    data = channels(train, test, distribution="ShardedByS3Key")
    result = jobs.run("factorization-machines", data, hyperparameters(), input_mode="Pipe",
                      instance_count=2).check()
    assert metric(result.output, "test:binary_classification_accuracy") > 0.9
    assert sorted(p.name for p in result.model_dir.iterdir()) == [fm.MODEL_FILE,
                                                                   fm.METADATA_FILE]
    assert not result.layouts[1].model_dir.exists() or \
        not any(result.layouts[1].model_dir.iterdir())


def test_scores_follow_the_fm_identity() -> None:
    rng = np.random.default_rng(0)
    d, k = 7, 3
    model = fm.FMModel(np.array([0.3]), rng.normal(size=d), rng.normal(size=(d, k)),
                       "regressor")
    dense = rng.normal(size=(5, d)) * (rng.random((5, d)) < 0.5)
    expected = [0.3 + row @ model.linear + sum(
        float(model.factors[i] @ model.factors[j]) * row[i] * row[j]
        for i in range(d) for j in range(i + 1, d)) for row in dense]
    np.testing.assert_allclose(model.raw(dense), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.raw(scipy.sparse.csr_matrix(dense)), expected,
                               rtol=1e-4, atol=1e-5)


def test_constant_initialisation_with_zero_learning_rates(jobs: JobRunner) -> None:
    train = interaction_data(7, 100)
    test = interaction_data(8, 50)
    values = hyperparameters(epochs="1", bias_lr="0", linear_lr="0", factors_lr="0",
                             bias_init_method="constant", bias_init_value="0.25",
                             linear_init_method="uniform", linear_init_scale="0.5",
                             factors_init_method="constant", factors_init_value="0.125")
    result = jobs.run("factorization-machines", channels(train, test), values).check()
    model = fm.FMModel.load(result.model_dir)
    assert model.bias.tolist() == [0.25]
    assert np.all(np.abs(model.linear) <= 0.5) and np.std(model.linear) > 0.05
    assert np.all(model.factors == 0.125) and model.factors.shape == (2 * FIELD + NOISE, 4)


def test_binary_labels_must_be_zero_or_one(jobs: JobRunner) -> None:
    train = interaction_data(9, 60)
    bad = (train[0], train[1] * 2)
    result = jobs.run("factorization-machines", channels(bad, bad), hyperparameters())
    assert result.returncode != 0
    assert "0 or 1" in result.failure() and result.failure().startswith("ClientError: ")


def test_sparse_json_request_and_recordio_response() -> None:
    model = fm.FMModel(np.array([0.0]), np.arange(4, dtype=np.float32) / 10,
                       np.ones((4, 2), dtype=np.float32) * 0.5, "binary_classifier")
    predictor = fm.FactorizationMachinesPredictor(model, environ={})
    body = json.dumps({"instances": [
        {"data": {"features": {"keys": [1, 3], "shape": [4], "values": [1, 1]}}},
        {"features": [0, 0, 0, 0]}]}).encode()
    answer, content_type = predictor.predict(body, "application/json", "*/*")
    assert content_type == "application/json"
    raw = 0.1 + 0.3 + 0.5  # linear terms, then v1 . v3 = 2 * 0.25
    expected = float(np.float32(1 / (1 + np.exp(-raw))))
    assert json.loads(answer) == {"predictions": [
        {"score": pytest.approx(expected, rel=1e-6), "predicted_label": 1},
        {"score": 0.5, "predicted_label": 1}]}
    answer, _ = predictor.predict(body, "application/json", "application/x-recordio-protobuf")
    records = read_records(answer)
    assert records[0].label["predicted_label"].values.tolist() == [1.0]
    assert records[0].label["score"].values.tolist() == pytest.approx([expected])
    too_wide = json.dumps({"instances": [{"features": [0] * 5}]}).encode()
    with pytest.raises(fm.InferenceError, match="feature_dim=4"):
        predictor.predict(too_wide, "application/json", "application/json")


def test_metrics_are_sagemakers_tuning_objectives() -> None:
    algorithm = find_algorithm("382416733822.dkr.ecr.us-west-2.amazonaws.com/"
                               "factorization-machines:1")
    assert algorithm is find_algorithm("factorization-machines")
    assert algorithm.objective_metrics() == {
        "test:rmse": "Minimize", "test:binary_classification_accuracy": "Maximize",
        "test:binary_classification_cross_entropy": "Minimize",
        "test:binary_f_beta": "Maximize"}
    line = "#quality_metric: host=algo-1, test binary_f_1.000 <score>=0.75"
    pattern = next(d["Regex"] for d in algorithm.metric_definitions
                   if d["Name"] == "test:binary_f_beta")
    assert re.search(pattern, line).group(1) == "0.75"
