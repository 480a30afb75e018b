"""Built-in K-Means: clustering quality against scikit-learn through a real training job,
several hosts with sharded data, sparse and Pipe-mode input, the model file, and the
inference response formats of SageMaker's K-Means."""

from __future__ import annotations

import io
import json
import re
import struct

import numpy as np
import pytest
import scipy.sparse
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import ClientError, find_algorithm
from openmaker.algorithms.kmeans import (
    MODEL_FILE,
    KMeansConfig,
    KMeansPredictor,
    fit,
    read_ndarray_list,
    write_ndarray_list,
)
from openmaker.core.errors import ValidationException
from openmaker.formats import read_records, write_csv, write_dense_records, write_sparse_records


def _csv(features: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, features)
    return buffer.getvalue()


def _inertia(features: np.ndarray, centers: np.ndarray) -> float:
    distances = ((features[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return float(distances.min(axis=1).sum())


def _metrics(output: str) -> dict[str, float]:
    algorithm = find_algorithm("kmeans")
    assert algorithm is not None
    found = {}
    for definition in algorithm.metric_definitions:
        for line in output.splitlines():
            match = re.search(definition["Regex"], line)
            if match:
                found[definition["Name"]] = float(match.group(1))
    return found


def _blobs(rows: int = 300, seed: int = 3) -> np.ndarray:
    from sklearn.datasets import make_blobs

    features, _ = make_blobs(rows, 5, centers=4, random_state=seed)
    return np.round(features, 4).astype(np.float32)


def test_digits_inertia_within_two_percent_of_scikit_learn(jobs: JobRunner) -> None:
    from sklearn.cluster import KMeans as SKLearnKMeans
    from sklearn.datasets import load_digits

    digits = load_digits().data.astype(np.float32)
    result = jobs.run("kmeans", {
        "train": Channel({"part-0": _csv(digits[:900]), "part-1": _csv(digits[900:])},
                         "text/csv;label_size=0"),
        "test": Channel({"part-0": _csv(digits)}, "text/csv;label_size=0"),
    }, {"feature_dim": "64", "k": "10", "eval_metrics": '["msd", "ssd"]'}).check()
    centers = read_ndarray_list((result.model_dir / MODEL_FILE).read_bytes())[0]
    assert centers.shape == (10, 64)
    ours = _inertia(digits.astype(np.float64), centers.astype(np.float64))
    peer = SKLearnKMeans(n_clusters=10, n_init=10, random_state=0).fit(digits).inertia_
    assert ours <= peer * 1.02, (ours, peer)
    metrics = _metrics(result.output)
    assert metrics["test:ssd"] == pytest.approx(ours, rel=1e-4)
    assert metrics["test:msd"] == pytest.approx(ours / len(digits), rel=1e-4)
    assert metrics["train:msd"] == pytest.approx(ours / len(digits), rel=1e-4)


def test_two_hosts_with_sharded_data_combine_their_centres(jobs: JobRunner) -> None:
    features = _blobs(400)
    result = jobs.run("kmeans", {
        "train": Channel({"part-0": _csv(features[:200]), "part-1": _csv(features[200:])},
                         "text/csv;label_size=0", distribution="ShardedByS3Key"),
        "test": Channel({"part-0": _csv(features)}, "text/csv;label_size=0"),
    }, {"feature_dim": "5", "k": "4", "mini_batch_size": "64"}, instance_count=2).check()
    assert sorted(p.name for p in result.layouts[0].model_dir.iterdir()) == [MODEL_FILE]
    assert not (result.layouts[1].model_dir / MODEL_FILE).exists()
    centers = read_ndarray_list((result.model_dir / MODEL_FILE).read_bytes())[0]
    single = fit(features, KMeansConfig(feature_dim=5, k=4, mini_batch_size=64))
    assert _inertia(features, centers) <= _inertia(features, single) * 1.02
    # the first host reports for the job; train msd is over both shards
    assert "train msd" in result.outputs[0] and "train msd" not in result.outputs[1]
    metrics = _metrics(result.outputs[0])
    assert metrics["train:msd"] == pytest.approx(metrics["test:msd"], rel=1e-4)


def test_a_failing_host_fails_every_host(jobs: JobRunner) -> None:
    features = _blobs(100)
    result = jobs.run("kmeans", {
        "train": Channel({"part-0": _csv(features), "part-1": b"1,2,3\n"},
                         "text/csv;label_size=0", distribution="ShardedByS3Key"),
    }, {"feature_dim": "5", "k": "2"}, instance_count=2)
    assert result.returncodes[0] != 0 and result.returncodes[1] != 0
    for index in range(2):
        failure = result.failure(index)
        assert failure is not None and failure.startswith("ClientError: ")
        assert "feature_dim" in failure


def test_sparse_recordio_in_pipe_mode(jobs: JobRunner) -> None:
    features = _blobs(200)
    features[features < 0] = 0
    buffer = io.BytesIO()
    write_sparse_records(buffer, scipy.sparse.csr_matrix(features))
    dense = io.BytesIO()
    write_dense_records(dense, features)
    config = {"feature_dim": "5", "k": "3", "mini_batch_size": "50"}
    sparse_job = jobs.run("kmeans", {
        "train": Channel({"part-0": buffer.getvalue()}, "application/x-recordio-protobuf")},
        config, input_mode="Pipe").check()
    dense_job = jobs.run("kmeans", {
        "train": Channel({"part-0": dense.getvalue()}, "application/x-recordio-protobuf")},
        config).check()
    sparse_centers = read_ndarray_list((sparse_job.model_dir / MODEL_FILE).read_bytes())[0]
    dense_centers = read_ndarray_list((dense_job.model_dir / MODEL_FILE).read_bytes())[0]
    np.testing.assert_allclose(sparse_centers, dense_centers, rtol=1e-4, atol=1e-4)


def test_csv_without_label_size_takes_the_first_column_as_label(jobs: JobRunner) -> None:
    features = _blobs(60)
    result = jobs.run("kmeans", {"train": Channel({"part-0": _csv(features)}, "text/csv")},
                      {"feature_dim": "5", "k": "2"})
    assert result.returncode != 0
    failure = result.failure()
    assert failure is not None and failure.startswith("ClientError: ")
    assert "4 features" in failure and "label_size=0" in failure


def test_hyperparameters_take_sagemaker_spellings() -> None:
    algorithm = find_algorithm("kmeans")
    assert algorithm is not None
    config = KMeansConfig.from_hyperparameters({
        "feature_dim": "5", "k": "3", "extra_center_factor": "4",
        "local_lloyd_num_trials": "auto", "eval_metrics": '["ssd", "msd"]',
        "init_method": "kmeans++", "half_life_time_size": "0"})
    assert config.centers == 12 and config.eval_metrics == ("ssd", "msd")
    assert KMeansConfig.from_hyperparameters({"feature_dim": "5", "k": "3"}).centers == 30
    with pytest.raises(ValidationException, match=r"HyperParameters\.k is required"):
        algorithm.validate_hyperparameters({"feature_dim": "5"})
    with pytest.raises(ValidationException, match=r"HyperParameters\.local_lloyd_num_trials"):
        algorithm.validate_hyperparameters({"feature_dim": "5", "k": "2",
                                            "local_lloyd_num_trials": "many"})
    assert algorithm.objective_metrics() == {"test:msd": "Minimize", "test:ssd": "Minimize"}


def test_decay_and_kmeans_plus_plus_streaming_still_cluster() -> None:
    features = _blobs(600)
    base = _inertia(features, fit(features, KMeansConfig(feature_dim=5, k=4)))
    for options in ({"half_life_time_size": 100, "mini_batch_size": 50, "epochs": 3},
                    {"init_method": "kmeans++", "local_lloyd_init_method": "random"}):
        centers = fit(features, KMeansConfig(feature_dim=5, k=4, **options))
        assert _inertia(features, centers) <= base * 1.05, options


def test_model_file_is_an_mxnet_ndarray_list(tmp_path) -> None:
    centers = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / MODEL_FILE
    write_ndarray_list(path, [centers])
    data = path.read_bytes()
    assert struct.unpack_from("<QQQ", data) == (0x112, 0, 1)
    assert struct.unpack_from("<Ii", data, 24) == (0xF993FAC9, 0)
    assert struct.unpack_from("<iqq", data, 32) == (2, 2, 3)
    assert len(data) == 24 + 8 + 4 + 16 + 12 + centers.nbytes + 8
    np.testing.assert_array_equal(read_ndarray_list(data)[0], centers)
    with pytest.raises(ClientError):
        find_algorithm("kmeans").load(tmp_path / "missing")  # type: ignore[union-attr]


def test_inference_response_formats() -> None:
    predictor = KMeansPredictor(np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32),
                                environ={})
    csv_body = b"0,1\n3,4\n"
    body, kind = predictor.predict(csv_body, "text/csv", "application/json")
    assert kind == "application/json"
    assert json.loads(body) == {"predictions": [
        {"closest_cluster": 0.0, "distance_to_cluster": 1.0},
        {"closest_cluster": 1.0, "distance_to_cluster": 0.0}]}
    body, _ = predictor.predict(csv_body, "text/csv", "text/csv")
    assert body == b"0.0,1.0\n1.0,0.0\n"
    body, _ = predictor.predict(csv_body, "text/csv", "application/jsonlines")
    assert [json.loads(line) for line in body.splitlines()] == [
        {"distance_to_cluster": 1.0, "closest_cluster": 0.0},
        {"distance_to_cluster": 0.0, "closest_cluster": 1.0}]
    body, _ = predictor.predict(csv_body, "text/csv", "application/x-recordio-protobuf")
    records = read_records(body)
    assert [r.label["closest_cluster"].values.tolist() for r in records] == [[0.0], [1.0]]
    assert [r.label["distance_to_cluster"].values.tolist() for r in records] == [[1.0], [0.0]]
    assert all(not r.features for r in records)
    sparse = json.dumps({"instances": [
        {"data": {"features": {"keys": [1], "shape": [2], "values": [1.0]}}}]}).encode()
    body, _ = predictor.predict(sparse, "application/json", "*/*")
    assert json.loads(body)["predictions"][0]["distance_to_cluster"] == 1.0
    body, _ = predictor.predict(b"9,3,4\n", "text/csv;label_size=1", "text/csv")
    assert body == b"1.0,0.0\n"
    with pytest.raises(Exception, match="3 features"):
        predictor.predict(b"1,2,3\n", "text/csv", "text/csv")


def test_training_job_through_the_server_with_the_sagemaker_image(tmp_path) -> None:
    import uuid

    from botocore.exceptions import ClientError as BotoClientError
    from tests.conftest import start_server
    from tests.training.test_jobs import read_tar, wait

    features = _blobs(300)
    server = start_server(tmp_path / "home")
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="kmeans")
        s3.put_object(Bucket="kmeans", Key="train/data.csv", Body=_csv(features))
        sagemaker = server.client("sagemaker")

        def create(hyperparameters: dict[str, str]) -> str:
            name = f"kmeans-{uuid.uuid4().hex[:8]}"
            data = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://kmeans/train/",
                                     "S3DataDistributionType": "FullyReplicated"}}
            sagemaker.create_training_job(
                TrainingJobName=name, RoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
                HyperParameters=hyperparameters,
                AlgorithmSpecification={
                    "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
                    "TrainingInputMode": "File"},
                InputDataConfig=[
                    {"ChannelName": channel, "ContentType": "text/csv;label_size=0",
                     "DataSource": data} for channel in ("train", "test")],
                OutputDataConfig={"S3OutputPath": "s3://kmeans/output"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                "VolumeSizeInGB": 1},
                StoppingCondition={"MaxRuntimeInSeconds": 120})
            return name

        with pytest.raises(BotoClientError, match=r"HyperParameters\.init_method"):
            create({"feature_dim": "5", "k": "4", "init_method": "forgy"})
        job = wait(server, create({"feature_dim": "5", "k": "4",
                                   "eval_metrics": '["msd", "ssd"]'}), timeout=120)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        files = read_tar(server, job["ModelArtifacts"]["S3ModelArtifacts"])
        centers = read_ndarray_list(files[MODEL_FILE])[0]
        inertia = _inertia(features, centers)
        assert final["test:ssd"] == pytest.approx(inertia, rel=1e-3)
        assert final["test:msd"] == pytest.approx(inertia / len(features), rel=1e-3)
    finally:
        server.stop()
