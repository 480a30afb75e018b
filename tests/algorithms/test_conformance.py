"""Every built-in algorithm through the same checks (``base.py``'s contract): each accepted
content type trains in File, Pipe and FastFile mode (or is refused where SageMaker refuses
it), the model directory and ``model.tar.gz`` layout, every inference content type and
accept type, bad hyperparameters refused by name, and determinism under a seed.

A new algorithm is added by adding an :class:`AlgorithmCase` to ``CASES``.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner
from tests.algorithms.test_ip_insights import conformance_data, conformance_encode

from openmaker.algorithms import Algorithm, EmptyRequest, NotAcceptable, find_algorithm
from openmaker.algorithms.base import UnsupportedContentType
from openmaker.core.errors import ValidationException
from openmaker.formats import (
    write_csv,
    write_dense_records,
    write_libsvm,
    write_parquet,
)

MODES = ("File", "Pipe", "FastFile")


def encode(content_type: str, features: np.ndarray, labels: np.ndarray | None) -> bytes:
    """Training (or, with no labels, inference) data in ``content_type``."""
    buffer = io.BytesIO()
    media = content_type.split(";")[0]
    if media == "text/csv":
        write_csv(buffer, features, labels)
    elif media in ("text/libsvm", "text/x-libsvm"):
        write_libsvm(buffer, features, labels if labels is not None else np.zeros(len(features)))
    elif media == "application/x-parquet":
        write_parquet(buffer, features, labels)
    elif media == "application/x-recordio-protobuf":
        write_dense_records(buffer, features.astype(np.float32),
                            None if labels is None else labels.astype(np.float32))
    elif media == "application/json":
        import json

        return json.dumps({"instances": [{"features": row.tolist()} for row in features]}
                          ).encode()
    elif media == "application/jsonlines":
        import json

        return "".join(json.dumps({"features": row.tolist()}) + "\n" for row in features
                       ).encode()
    else:
        raise AssertionError(f"no encoder for {content_type}")
    return buffer.getvalue()


def _binary_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    features, labels = make_classification(n_samples=240, n_features=6, n_informative=4,
                                           random_state=7)
    features = np.round(features, 4)
    return features[:180], labels[:180].astype(float), features[180:], labels[180:].astype(float)


@dataclass
class AlgorithmCase:
    """How the suite exercises one algorithm."""

    name: str
    hyperparameters: dict[str, str]
    data: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    training_content_types: list[str]
    # (content type, input mode) pairs SageMaker refuses
    refused: set[tuple[str, str]]
    model_files: list[str]
    inference_content_types: list[str]
    accepts: list[str]
    bad_hyperparameters: list[tuple[dict[str, str], str]]
    repositories: list[str] = field(default_factory=list)
    # the held-out channel the job gets and its metrics' prefix ("validation", "test")
    evaluation_channel: str = "validation"
    # the response fields _decode compares across formats, in CSV's column order
    prediction_keys: tuple[str, ...] = ("score",)
    # whether the algorithm prints train:<metric> lines (KNN, K-Means, PCA ... do not)
    train_metrics: bool = True
    # training/inference bodies from data()'s rows (ipinsights: entity, IP address pairs)
    encoder: Callable[[str, np.ndarray, np.ndarray | None], bytes] = encode

    def __str__(self) -> str:
        return self.name


CASES = [
    AlgorithmCase(
        name="xgboost",
        hyperparameters={"num_round": "4", "objective": "binary:logistic", "max_depth": "3",
                         "eval_metric": "auc", "seed": "3"},
        data=_binary_data,
        training_content_types=["text/csv", "text/libsvm", "application/x-parquet",
                                "application/x-recordio-protobuf"],
        refused={("text/libsvm", "Pipe")},
        model_files=["xgboost-model"],
        inference_content_types=["text/csv", "text/libsvm", "application/x-recordio-protobuf",
                                 "application/json", "application/jsonlines"],
        accepts=["text/csv", "application/json", "application/jsonlines",
                 "application/x-recordio-protobuf"],
        bad_hyperparameters=[
            ({"eta": "1.5"}, "eta"),
            ({"max_depth": "-1"}, "max_depth"),
            ({"subsample": "0"}, "subsample"),
            ({"objective": "reg:nonsense"}, "objective"),
            ({"num_round": "zero"}, "num_round"),
            ({"eval_metric": "nonsense"}, "eval_metric"),
            ({"etaa": "0.1"}, "etaa"),
        ],
        repositories=["sagemaker-xgboost", "xgboost",
                      "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"],
    ),
    AlgorithmCase(
        name="knn",
        hyperparameters={"feature_dim": "6", "k": "5", "predictor_type": "classifier",
                         "sample_size": "150", "index_type": "faiss.IVFFlat"},
        data=_binary_data,
        training_content_types=["text/csv", "application/x-recordio-protobuf"],
        refused=set(),
        model_files=["model_algo-1", "model_algo-1.json", "model_algo-1.labels"],
        inference_content_types=["text/csv", "application/json", "application/jsonlines",
                                 "application/x-recordio-protobuf"],
        accepts=["application/json", "application/jsonlines",
                 "application/x-recordio-protobuf", "text/csv"],
        bad_hyperparameters=[
            ({"k": "0"}, "k"),
            ({"predictor_type": "ranker"}, "predictor_type"),
            ({"sample_size": "-5"}, "sample_size"),
            ({"index_type": "faiss.HNSW"}, "index_type"),
            ({"index_metric": "L1"}, "index_metric"),
            ({"faiss_index_pq_m": "5"}, "faiss_index_pq_m"),
            ({"dimension_reduction_type": "sign"}, "dimension_reduction_target"),
            ({"kk": "3"}, "kk"),
        ],
        repositories=["knn", "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1"],
        evaluation_channel="test",
        prediction_keys=("predicted_label",),
        train_metrics=False,
    ),
    AlgorithmCase(
        name="kmeans",
        hyperparameters={"feature_dim": "6", "k": "3", "mini_batch_size": "50", "epochs": "2",
                         "eval_metrics": '["msd", "ssd"]'},
        data=_binary_data,
        # text/csv with no label_size: the first column is a label, dropped
        training_content_types=["text/csv", "application/x-recordio-protobuf"],
        refused=set(),
        model_files=["model_algo-1"],
        inference_content_types=["text/csv", "application/json", "application/jsonlines",
                                 "application/x-recordio-protobuf"],
        accepts=["text/csv", "application/json", "application/jsonlines",
                 "application/x-recordio-protobuf"],
        bad_hyperparameters=[
            ({"k": "0"}, "k"),
            ({"feature_dim": "six"}, "feature_dim"),
            ({"init_method": "kmeans--"}, "init_method"),
            ({"extra_center_factor": "0"}, "extra_center_factor"),
            ({"local_lloyd_tol": "1.5"}, "local_lloyd_tol"),
            ({"eval_metrics": '["mse"]'}, "eval_metrics"),
            ({"kk": "3"}, "kk"),
        ],
        repositories=["kmeans", "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"],
        evaluation_channel="test",
        prediction_keys=("closest_cluster", "distance_to_cluster"),
    ),
    AlgorithmCase(
        name="pca",
        hyperparameters={"feature_dim": "6", "num_components": "3", "mini_batch_size": "50",
                         "algorithm_mode": "randomized"},
        data=_binary_data,
        # text/csv with no label_size: the first column is a label, dropped
        training_content_types=["text/csv", "application/x-recordio-protobuf"],
        refused=set(),
        model_files=["model_algo-1"],
        inference_content_types=["text/csv", "application/json", "application/jsonlines",
                                 "application/x-recordio-protobuf"],
        # application/json answers {"projections": ...}: checked in test_pca.py
        accepts=["text/csv", "application/jsonlines", "application/x-recordio-protobuf"],
        bad_hyperparameters=[
            ({"num_components": "0"}, "num_components"),
            ({"feature_dim": "six"}, "feature_dim"),
            ({"mini_batch_size": "-5"}, "mini_batch_size"),
            ({"algorithm_mode": "exact"}, "algorithm_mode"),
            ({"subtract_mean": "maybe"}, "subtract_mean"),
            ({"extra_components": "-2"}, "extra_components"),
            ({"num_components": "7"}, "num_components"),
            ({"num_componets": "3"}, "num_componets"),
        ],
        repositories=["pca", "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1"],
        evaluation_channel="test",
        prediction_keys=("projection",),
    ),
    AlgorithmCase(
        name="randomcutforest",
        hyperparameters={"feature_dim": "6", "num_trees": "50", "num_samples_per_tree": "32"},
        data=_binary_data,
        # text/csv with no label_size: the first column is a label, dropped
        training_content_types=["text/csv", "application/x-recordio-protobuf"],
        refused=set(),
        model_files=["model_algo-1"],
        inference_content_types=["text/csv", "application/json", "application/jsonlines",
                                 "application/x-recordio-protobuf"],
        # application/json answers {"scores": ...}: checked in test_random_cut_forest.py
        accepts=["text/csv", "application/jsonlines", "application/x-recordio-protobuf"],
        bad_hyperparameters=[
            ({"num_trees": "49"}, "num_trees"),
            ({"feature_dim": "0"}, "feature_dim"),
            ({"num_samples_per_tree": "2049"}, "num_samples_per_tree"),
            ({"eval_metrics": '["auc"]'}, "eval_metrics"),
            ({"num_tree": "100"}, "num_tree"),
        ],
        repositories=["randomcutforest",
                      "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1"],
        evaluation_channel="test",
        prediction_keys=("score",),
    ),
    AlgorithmCase(
        name="factorization-machines",
        hyperparameters={"feature_dim": "6", "num_factors": "4",
                         "predictor_type": "binary_classifier", "epochs": "3",
                         "mini_batch_size": "32", "bias_lr": "0.1", "linear_lr": "0.05",
                         "factors_lr": "0.02"},
        data=_binary_data,
        # text/csv is an openmaker addition (SageMaker's FM reads RecordIO-protobuf only)
        training_content_types=["application/x-recordio-protobuf", "text/csv"],
        refused=set(),
        model_files=["model_algo-1", "model_algo-1.json"],
        inference_content_types=["application/json", "application/jsonlines",
                                 "application/x-recordio-protobuf", "text/csv"],
        accepts=["application/json", "application/jsonlines",
                 "application/x-recordio-protobuf", "text/csv"],
        bad_hyperparameters=[
            ({"num_factors": "0"}, "num_factors"),
            ({"predictor_type": "multiclass_classifier"}, "predictor_type"),
            ({"feature_dim": "six"}, "feature_dim"),
            ({"bias_init_method": "xavier"}, "bias_init_method"),
            ({"factors_lr": "-1"}, "factors_lr"),
            ({"epochs": "0"}, "epochs"),
            ({"num_factor": "4"}, "num_factor"),
        ],
        repositories=["factorization-machines",
                      "382416733822.dkr.ecr.us-east-1.amazonaws.com/factorization-machines:1"],
        evaluation_channel="test",
        prediction_keys=("score", "predicted_label"),
        train_metrics=False,
    ),
    AlgorithmCase(
        name="lightgbm",
        hyperparameters={"num_boost_round": "20", "early_stopping_rounds": "5",
                         "metric": "auc", "num_leaves": "8", "min_data_in_leaf": "5",
                         "num_threads": "1"},
        data=_binary_data,
        training_content_types=["text/csv"],
        refused={("text/csv", "Pipe")},
        model_files=["model.pkl"],
        inference_content_types=["text/csv"],
        # application/json answers {"probabilities": ...}: checked in test_lightgbm.py
        accepts=["text/csv"],
        bad_hyperparameters=[
            ({"learning_rate": "1.5"}, "learning_rate"),
            ({"num_leaves": "1"}, "num_leaves"),
            ({"bagging_fraction": "0"}, "bagging_fraction"),
            ({"boosting": "xgb"}, "boosting"),
            ({"metric": "mape"}, "metric"),
            ({"num_boost_round": "zero"}, "num_boost_round"),
            ({"num_leafs": "8"}, "num_leafs"),
        ],
        repositories=["lightgbm", "lightgbm-classification-model"],
        prediction_keys=("probabilities",),
    ),
    AlgorithmCase(
        name="catboost",
        hyperparameters={"iterations": "20", "early_stopping_rounds": "5", "depth": "3",
                         "learning_rate": "0.3", "eval_metric": "Logloss",
                         "thread_count": "1", "random_seed": "3"},
        data=_binary_data,
        training_content_types=["text/csv"],
        refused={("text/csv", "Pipe")},
        model_files=["model"],
        inference_content_types=["text/csv"],
        # application/json answers {"probabilities": ...}: checked in test_catboost.py
        accepts=["text/csv"],
        bad_hyperparameters=[
            ({"learning_rate": "1.5"}, "learning_rate"),
            ({"depth": "17"}, "depth"),
            ({"rsm": "0"}, "rsm"),
            ({"grow_policy": "Oblivious"}, "grow_policy"),
            ({"eval_metric": "Nonsense"}, "eval_metric"),
            ({"thread_count": "0"}, "thread_count"),
            ({"iteration": "8"}, "iteration"),
        ],
        repositories=["catboost", "catboost-classification-model"],
        prediction_keys=("probabilities",),
    ),
    AlgorithmCase(
        name="linear-learner",
        hyperparameters={"predictor_type": "binary_classifier", "feature_dim": "6",
                         "mini_batch_size": "30", "epochs": "5", "num_models": "4"},
        data=_binary_data,
        training_content_types=["text/csv", "application/x-recordio-protobuf"],
        refused=set(),
        model_files=["model_algo-1"],
        inference_content_types=["text/csv", "application/json", "application/jsonlines",
                                 "application/x-recordio-protobuf"],
        accepts=["application/json", "application/jsonlines",
                 "application/x-recordio-protobuf", "text/csv"],
        bad_hyperparameters=[
            ({"predictor_type": "ranker"}, "predictor_type"),
            ({"epochs": "0"}, "epochs"),
            ({"optimizer": "adagrad"}, "optimizer"),
            ({"loss": "squared_loss"}, "loss"),
            ({"learning_rate": "0"}, "learning_rate"),
            ({"binary_classifier_model_selection_criteria": "auc"},
             "binary_classifier_model_selection_criteria"),
            ({"positive_example_weight_mult": "heavy"}, "positive_example_weight_mult"),
            ({"epoch": "3"}, "epoch"),
        ],
        repositories=["linear-learner",
                      "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"],
        prediction_keys=("predicted_label", "score"),
    ),
    AlgorithmCase(
        name="ipinsights",
        hyperparameters={"num_entity_vectors": "50", "vector_dim": "8", "epochs": "2",
                         "mini_batch_size": "60", "learning_rate": "0.01"},
        data=conformance_data,
        training_content_types=["text/csv"],
        refused={("text/csv", "Pipe")},  # the reference: File mode only
        model_files=["model_algo-1", "model_algo-1.json"],
        inference_content_types=["text/csv", "application/json", "application/jsonlines"],
        accepts=["application/json", "application/jsonlines", "text/csv"],
        bad_hyperparameters=[
            ({"vector_dim": "2"}, "vector_dim"),
            ({"num_entity_vectors": "0"}, "num_entity_vectors"),
            ({"epochs": "0"}, "epochs"),
            ({"learning_rate": "20"}, "learning_rate"),
            ({"mini_batch_size": "500001"}, "mini_batch_size"),
            ({"num_ip_encoder_layers": "101"}, "num_ip_encoder_layers"),
            ({"random_negative_sampling_rate": "0", "shuffled_negative_sampling_rate": "0"},
             "random_negative_sampling_rate"),
            ({"weight_decay": "-1"}, "weight_decay"),
            ({"vector_dims": "8"}, "vector_dims"),
        ],
        repositories=["ipinsights", "382416733822.dkr.ecr.us-east-1.amazonaws.com/ipinsights:1"],
        encoder=conformance_encode,
        prediction_keys=("dot_product",),
    ),
]


@pytest.fixture(params=CASES, ids=str)
def case(request: pytest.FixtureRequest) -> AlgorithmCase:
    return request.param


def algorithm_of(case: AlgorithmCase) -> Algorithm:
    algorithm = find_algorithm(case.name)
    assert algorithm is not None and algorithm.name == case.name
    return algorithm


def train_job(jobs: JobRunner, case: AlgorithmCase, content_type: str = "text/csv",
              mode: str = "File", hyperparameters: dict[str, str] | None = None):
    train_x, train_y, val_x, val_y = case.data()
    channels = {
        "train": Channel({"part-0": case.encoder(content_type, train_x[:90], train_y[:90]),
                          "part-1": case.encoder(content_type, train_x[90:], train_y[90:])},
                         content_type),
        case.evaluation_channel: Channel({"part-0": case.encoder(content_type, val_x, val_y)},
                                         content_type),
    }
    return jobs.run(case.name, channels, hyperparameters or case.hyperparameters,
                    input_mode=mode)


# -- lookup ----------------------------------------------------------------------------------
def test_found_by_name_and_image_repository(case: AlgorithmCase) -> None:
    algorithm = algorithm_of(case)
    for reference in case.repositories:
        assert find_algorithm(reference) is algorithm
    assert find_algorithm("no-such-algorithm") is None


def test_declares_metric_definitions_that_compile(case: AlgorithmCase) -> None:
    algorithm = algorithm_of(case)
    definitions = algorithm.metric_definitions
    assert definitions and all(set(d) == {"Name", "Regex"} for d in definitions)
    for definition in definitions:
        assert re.compile(definition["Regex"]).groups >= 1
    assert set(algorithm.objective_metrics().values()) <= {"Maximize", "Minimize"}


# -- training in every content type and mode ---------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("content_index", range(4))
def test_each_content_type_trains_in_each_mode(jobs: JobRunner, case: AlgorithmCase,
                                               content_index: int, mode: str) -> None:
    if content_index >= len(case.training_content_types):
        pytest.skip("the algorithm has fewer content types")
    content_type = case.training_content_types[content_index]
    algorithm = algorithm_of(case)
    channel = {"ChannelName": "train", "ContentType": content_type, "InputMode": mode}
    if (content_type, mode) in case.refused:
        with pytest.raises(ValidationException, match=f"(?s)'train'.*{mode}"):
            algorithm.validate_channels([channel], mode)
        result = train_job(jobs, case, content_type, mode)
        assert result.returncode != 0
        assert result.failure().startswith("ClientError: ")
        return
    algorithm.validate_channels([channel], mode)
    result = train_job(jobs, case, content_type, mode).check()
    assert sorted(p.name for p in result.model_dir.iterdir()) == case.model_files
    predictor = algorithm.load(result.model_dir)
    _, _, val_x, _ = case.data()
    body, returned_type = predictor.predict(case.encoder("text/csv", val_x, None), "text/csv",
                                            "text/csv")
    assert returned_type == "text/csv"
    assert len(body.decode().strip().splitlines()) == len(val_x)


def test_model_tar_layout(jobs: JobRunner, case: AlgorithmCase, tmp_path: Path) -> None:
    from openmaker.training.runner import tar_directory

    result = train_job(jobs, case).check()
    archive = tmp_path / "model.tar.gz"
    tar_directory(result.model_dir, archive)
    with tarfile.open(archive) as tar:
        names = sorted(m.name.removeprefix("./") for m in tar.getmembers() if m.isfile())
    assert names == case.model_files


# -- inference -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    models: dict[str, Path] = {}
    runner = JobRunner(tmp_path_factory.mktemp("trained"))
    try:
        for case in CASES:
            models[case.name] = train_job(runner, case).check().model_dir
    finally:
        runner.close()
    return models


def _decode(body: bytes, accept: str, keys: tuple[str, ...] = ("score",)) -> list[Any]:
    """Each record's ``keys`` fields (CSV: the whole row)."""
    import json

    if accept == "text/csv":
        return [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
    if accept == "application/json":
        return [[p[key] for key in keys] for p in json.loads(body)["predictions"]]
    if accept == "application/jsonlines":
        return [[json.loads(line)[key] for key in keys] for line in body.decode().splitlines()]
    from openmaker.formats.recordio_protobuf import read_records

    return [[r.label[key].values.tolist() for key in keys] for r in read_records(body)]


def test_every_inference_content_type_and_accept(case: AlgorithmCase,
                                                 trained: dict[str, Path]) -> None:
    predictor = algorithm_of(case).load(trained[case.name])
    _, _, val_x, _ = case.data()
    reference = None
    for content_type in case.inference_content_types:
        for accept in case.accepts:
            body, returned = predictor.predict(case.encoder(content_type, val_x, None),
                                               content_type, accept)
            assert returned == accept
            values = np.asarray(_decode(body, accept, case.prediction_keys),
                                dtype=float).reshape(len(val_x), -1)
            if reference is None:
                reference = values
            np.testing.assert_allclose(values, reference, rtol=1e-5,
                                       err_msg=f"{content_type} -> {accept}")


def test_inference_refuses_bad_requests(case: AlgorithmCase, trained: dict[str, Path]) -> None:
    predictor = algorithm_of(case).load(trained[case.name])
    _, _, val_x, _ = case.data()
    body = case.encoder("text/csv", val_x[:2], None)
    with pytest.raises(NotAcceptable) as refused:
        predictor.predict(body, "text/csv", "image/png")
    assert refused.value.status == 406
    with pytest.raises(UnsupportedContentType) as unsupported:
        predictor.predict(body, "image/png", "text/csv")
    assert unsupported.value.status == 415
    with pytest.raises(EmptyRequest):
        predictor.predict(b"", "text/csv", "text/csv")


# -- hyperparameters ---------------------------------------------------------------------------
def test_bad_hyperparameters_are_refused_by_name(case: AlgorithmCase) -> None:
    algorithm = algorithm_of(case)
    algorithm.validate_hyperparameters(case.hyperparameters)
    for change, name in case.bad_hyperparameters:
        with pytest.raises(ValidationException, match=rf"HyperParameters\.{name}\b"):
            algorithm.validate_hyperparameters({**case.hyperparameters, **change})


def test_bad_hyperparameter_fails_the_job_with_a_client_error(jobs: JobRunner,
                                                              case: AlgorithmCase) -> None:
    change, name = case.bad_hyperparameters[0]
    result = train_job(jobs, case, hyperparameters={**case.hyperparameters, **change})
    assert result.returncode != 0
    failure = result.failure()
    assert failure is not None and failure.startswith("ClientError: ")
    assert f"HyperParameters.{name}" in failure


def test_sagemaker_keys_are_accepted(case: AlgorithmCase) -> None:
    algorithm_of(case).validate_hyperparameters({
        **case.hyperparameters, "sagemaker_region": '"us-east-1"',
        "sagemaker_container_log_level": "20", "sagemaker_job_name": '"job"'})


# -- determinism -----------------------------------------------------------------------------
def test_same_seed_gives_the_same_model(jobs: JobRunner, case: AlgorithmCase) -> None:
    first = train_job(jobs, case).check()
    second = train_job(jobs, case).check()
    for name in case.model_files:
        assert (first.model_dir / name).read_bytes() == (second.model_dir / name).read_bytes()
    algorithm = algorithm_of(case)
    _, _, val_x, _ = case.data()
    body = case.encoder("text/csv", val_x, None)
    assert (algorithm.load(first.model_dir).predict(body, "text/csv", "text/csv")
            == algorithm.load(second.model_dir).predict(body, "text/csv", "text/csv"))


def test_printed_metrics_match_the_published_definitions(jobs: JobRunner,
                                                         case: AlgorithmCase) -> None:
    algorithm = algorithm_of(case)
    result = train_job(jobs, case).check()
    patterns = [(d["Name"], re.compile(d["Regex"])) for d in algorithm.metric_definitions]
    found = {name for line in result.output.splitlines() for name, pattern in patterns
             if (match := pattern.search(line)) and float(match.group(1)) == float(match.group(1))}
    assert any(name.startswith(f"{case.evaluation_channel}:") for name in found), result.output
    if case.train_metrics:
        assert any(name.startswith("train:") for name in found), result.output
