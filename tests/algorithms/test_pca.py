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


# -- through the server ------------------------------------------------------------------------
def test_training_job_through_the_server(tmp_path, digits: np.ndarray) -> None:
    """What the SageMaker SDK's PCA estimator sends: the ``pca:1`` image, RecordIO shards
    (``record_set``) sharded over two instances; a bad hyperparameter refused at create."""
    import tarfile
    import time
    import uuid

    from botocore.exceptions import ClientError
    from tests.conftest import start_server
    from tests.training.test_jobs import wait

    server = start_server(tmp_path / "home")
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="pca")
        for index, shard in enumerate(np.array_split(digits, 2)):
            s3.put_object(Bucket="pca", Key=f"train/matrix_{index}.pbr", Body=_recordio(shard))
        name = f"pca-{uuid.uuid4().hex[:8]}"
        request = {
            "TrainingJobName": name, "RoleArn": "arn:aws:iam::000000000000:role/SageMakerRole",
            "HyperParameters": {"feature_dim": "64", "num_components": "5",
                                "mini_batch_size": "500", "subtract_mean": "True"},
            "AlgorithmSpecification": {
                "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/pca:1",
                "TrainingInputMode": "File"},
            "InputDataConfig": [{"ChannelName": "train", "ContentType": RECORDIO,
                                 "DataSource": {"S3DataSource": {
                                     "S3DataType": "S3Prefix", "S3Uri": "s3://pca/train/",
                                     "S3DataDistributionType": "ShardedByS3Key"}}}],
            "OutputDataConfig": {"S3OutputPath": "s3://pca/output"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2,
                               "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}}
        sagemaker = server.client("sagemaker")
        with pytest.raises(ClientError, match=r"HyperParameters\.algorithm_mode"):
            sagemaker.create_training_job(**{**request, "TrainingJobName": f"{name}-bad",
                                             "HyperParameters": {**request["HyperParameters"],
                                                                 "algorithm_mode": "exact"}})
        sagemaker.create_training_job(**request)
        job = wait(server, name, timeout=120)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        final = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
        assert 0 < final.get("train:explained_variance_ratio", 0) < 1, final
        bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"][len("s3://"):].partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            assert [m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()] \
                == [MODEL_FILE]
            member = next(m for m in tar.getmembers() if m.name.endswith(MODEL_FILE))
            model = decode_ndarray_dict(tar.extractfile(member).read())
        expected = fit(mini_batches(digits, 500), 64, 5)
        np.testing.assert_allclose(model["s"], expected.s, rtol=1e-5)

        # served by an endpoint on the same image
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=request["RoleArn"],
                               PrimaryContainer={"Image": request["AlgorithmSpecification"][
                                   "TrainingImage"], "ModelDataUrl": f"s3://{bucket}/{key}"})
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
            {"VariantName": "primary", "ModelName": name, "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1}])
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
        deadline = time.monotonic() + 90
        while (status := sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]) \
                not in ("InService", "Failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == "InService"
        response = server.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, ContentType="text/csv", Accept="application/json",
            Body=_csv(digits[:3]))
        projections = json.loads(response["Body"].read())["projections"]
        np.testing.assert_allclose([p["projection"] for p in projections],
                                   expected.project(digits[:3]), rtol=1e-4, atol=1e-4)
    finally:
        server.stop()
