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
        "train": Channel({"part-0": encode(content_type, train_x[:90], train_y[:90]),
                          "part-1": encode(content_type, train_x[90:], train_y[90:])},
                         content_type),
        "validation": Channel({"part-0": encode(content_type, val_x, val_y)}, content_type),
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
    body, returned_type = predictor.predict(encode("text/csv", val_x, None), "text/csv",
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


def _decode(body: bytes, accept: str) -> list[Any]:
    import json

    if accept == "text/csv":
        return [[float(v) for v in line.split(",")] for line in body.decode().splitlines()]
    if accept == "application/json":
        return [p["score"] for p in json.loads(body)["predictions"]]
    if accept == "application/jsonlines":
        return [json.loads(line)["score"] for line in body.decode().splitlines()]
    from openmaker.formats.recordio_protobuf import read_records

    return [r.label["score"].values.tolist() for r in read_records(body)]


def test_every_inference_content_type_and_accept(case: AlgorithmCase,
                                                 trained: dict[str, Path]) -> None:
    predictor = algorithm_of(case).load(trained[case.name])
    _, _, val_x, _ = case.data()
    reference = None
    for content_type in case.inference_content_types:
        for accept in case.accepts:
            body, returned = predictor.predict(encode(content_type, val_x, None), content_type,
                                               accept)
            assert returned == accept
            values = np.asarray(_decode(body, accept), dtype=float).reshape(len(val_x), -1)
            if reference is None:
                reference = values
            np.testing.assert_allclose(values, reference, rtol=1e-5,
                                       err_msg=f"{content_type} -> {accept}")


def test_inference_refuses_bad_requests(case: AlgorithmCase, trained: dict[str, Path]) -> None:
    predictor = algorithm_of(case).load(trained[case.name])
    _, _, val_x, _ = case.data()
    body = encode("text/csv", val_x[:2], None)
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
    body = encode("text/csv", val_x, None)
    assert (algorithm.load(first.model_dir).predict(body, "text/csv", "text/csv")
            == algorithm.load(second.model_dir).predict(body, "text/csv", "text/csv"))


def test_printed_metrics_match_the_published_definitions(jobs: JobRunner,
                                                         case: AlgorithmCase) -> None:
    algorithm = algorithm_of(case)
    result = train_job(jobs, case).check()
    patterns = [(d["Name"], re.compile(d["Regex"])) for d in algorithm.metric_definitions]
    found = {name for line in result.output.splitlines() for name, pattern in patterns
             if (match := pattern.search(line)) and float(match.group(1)) == float(match.group(1))}
    assert any(name.startswith("validation:") for name in found), result.output
    assert any(name.startswith("train:") for name in found), result.output
