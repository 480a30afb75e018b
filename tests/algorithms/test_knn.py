"""Built-in k-NN: quality against scikit-learn on its bundled digits (real training jobs),
the regressor, sparse and Pipe-mode input, several hosts, the index types and dimension
reductions, reservoir sampling, voting, and the verbose response formats."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import find_algorithm, knn
from openmaker.core.errors import ValidationException
from openmaker.formats import read_records, write_csv, write_dense_records, write_sparse_records


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    features = features.astype(np.float32)
    labels = labels.astype(np.float32)
    return features[:1347], labels[:1347], features[1347:], labels[1347:]


def csv_bytes(features: np.ndarray, labels: np.ndarray | None) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, features, labels)
    return buffer.getvalue()


def recordio_bytes(features, labels) -> bytes:
    buffer = io.BytesIO()
    if isinstance(features, np.ndarray):
        write_dense_records(buffer, features.astype(np.float32), labels.astype(np.float32))
    else:
        write_sparse_records(buffer, features, labels.astype(np.float32))
    return buffer.getvalue()


def metric(output: str, name: str) -> float:
    definition = next(m for m in knn.METRICS if m.name == name)
    values = [float(match.group(1)) for line in output.splitlines()
              if (match := re.search(definition.regex, line))]
    assert values, output
    return values[-1]


def hyperparameters(**extra: str) -> dict[str, str]:
    return {"feature_dim": "64", "k": "5", "predictor_type": "classifier",
            "sample_size": "5000", **extra}


def test_flat_index_matches_scikit_learn_on_digits(jobs: JobRunner, digits) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    train_x, train_y, test_x, test_y = digits
    reference = KNeighborsClassifier(n_neighbors=5).fit(train_x, train_y)
    expected = reference.predict(test_x)
    channels = {
        "train": Channel({"part-0.csv": csv_bytes(train_x[:700], train_y[:700]),
                          "part-1.csv": csv_bytes(train_x[700:], train_y[700:])}, "text/csv"),
        "test": Channel({"test.csv": csv_bytes(test_x, test_y)}, "text/csv"),
    }
    result = jobs.run("knn", channels, hyperparameters(index_type="faiss.Flat")).check()
    accuracy = metric(result.output, "test:accuracy")
    assert accuracy == pytest.approx(float(np.mean(expected == test_y)), abs=1e-6)
    assert accuracy > 0.95

    predictor = find_algorithm("knn").load(result.model_dir)
    body, _ = predictor.predict(csv_bytes(test_x, None), "text/csv", "application/json")
    predicted = [p["predicted_label"] for p in json.loads(body)["predictions"]]
    np.testing.assert_array_equal(predicted, expected)
    metadata = json.loads((result.model_dir / knn.METADATA_FILE).read_text())
    assert metadata["k"] == 5 and metadata["predictor_type"] == "classifier"
    assert metadata["normalize"] is False and metadata["version"] == "1.0"
    labels = np.fromfile(result.model_dir / knn.LABELS_FILE, dtype="<f4")
    assert sorted(labels) == sorted(train_y)


def test_regressor_reports_the_mse_of_scikit_learn(jobs: JobRunner) -> None:
    from sklearn.datasets import make_regression
    from sklearn.neighbors import KNeighborsRegressor

    features, target = make_regression(n_samples=300, n_features=5, noise=5, random_state=3)
    features = features.astype(np.float32)
    target = target.astype(np.float32)
    reference = KNeighborsRegressor(n_neighbors=4).fit(features[:240], target[:240])
    expected = float(np.mean((reference.predict(features[240:]) - target[240:]) ** 2))
    channels = {
        "train": Channel({"train.pbr": recordio_bytes(features[:240], target[:240])},
                         "application/x-recordio-protobuf"),
        "test": Channel({"test.pbr": recordio_bytes(features[240:], target[240:])},
                        "application/x-recordio-protobuf"),
    }
    result = jobs.run("knn", channels, {"feature_dim": "5", "k": "4",
                                        "predictor_type": "regressor",
                                        "sample_size": "1000"}).check()
    assert metric(result.output, "test:mse") == pytest.approx(expected, rel=1e-4)


def test_sparse_recordio_in_pipe_mode_and_sample_size(jobs: JobRunner, digits) -> None:
    import scipy.sparse

    train_x, train_y, test_x, test_y = digits
    sparse = scipy.sparse.csr_matrix(train_x)
    channels = {"train": Channel({"train.pbr": recordio_bytes(sparse, train_y)},
                                 "application/x-recordio-protobuf")}
    result = jobs.run("knn", channels, hyperparameters(sample_size="400", mini_batch_size="97"),
                      input_mode="Pipe").check()
    assert "sampled 400 of 1347" in result.output
    labels = np.fromfile(result.model_dir / knn.LABELS_FILE, dtype="<f4")
    assert len(labels) == 400
    predictor = find_algorithm("knn").load(result.model_dir)
    body, _ = predictor.predict(csv_bytes(test_x, None), "text/csv", "text/csv")
    predicted = np.array([float(line) for line in body.decode().splitlines()])
    assert np.mean(predicted == test_y) > 0.85


def test_two_hosts_sample_their_shards_into_one_index(jobs: JobRunner, digits) -> None:
    train_x, train_y, test_x, test_y = digits
    parts = np.array_split(np.arange(len(train_x)), 4)
    train = {f"part-{i}.csv": csv_bytes(train_x[rows], train_y[rows])
             for i, rows in enumerate(parts)}
    channels = {
        "train": Channel(train, "text/csv", distribution="ShardedByS3Key"),
        "test": Channel({"a.csv": csv_bytes(test_x[:200], test_y[:200]),
                         "b.csv": csv_bytes(test_x[200:], test_y[200:])}, "text/csv",
                        distribution="ShardedByS3Key"),
    }
    result = jobs.run("knn", channels, hyperparameters(), instance_count=2).check()
    assert any("sampled" in output and "of 6" in output for output in result.outputs)
    labels = np.fromfile(result.model_dir / knn.LABELS_FILE, dtype="<f4")
    assert len(labels) == len(train_x)  # both shards, whole
    assert not (result.layouts[1].model_dir / knn.MODEL_FILE).exists()
    from sklearn.neighbors import KNeighborsClassifier

    expected = KNeighborsClassifier(5).fit(train_x, train_y).predict(test_x)
    assert metric(result.outputs[0], "test:accuracy") == pytest.approx(
        float(np.mean(expected == test_y)), abs=1e-6)

    capped = jobs.run("knn", channels, hyperparameters(sample_size="301"),
                      instance_count=2).check()
    assert len(np.fromfile(capped.model_dir / knn.LABELS_FILE, dtype="<f4")) == 301


@pytest.mark.parametrize("extra", [
    {"index_type": "faiss.IVFFlat"},
    {"index_type": "faiss.IVFFlat", "faiss_index_ivf_nlists": "16", "index_metric": "COSINE"},
    {"index_type": "faiss.IVFPQ", "faiss_index_pq_m": "16"},
    {"index_type": "faiss.IVFPQ", "dimension_reduction_type": "fjlt",
     "dimension_reduction_target": "30"},  # padded to 32 for the default m
    {"dimension_reduction_type": "sign", "dimension_reduction_target": "32"},
    {"dimension_reduction_type": "fjlt", "dimension_reduction_target": "32"},
    {"index_metric": "COSINE"},
], ids=lambda extra: "-".join(extra.values()))
def test_index_types_and_dimension_reductions(digits, extra: dict[str, str]) -> None:
    train_x, train_y, test_x, test_y = digits
    values = knn.defaults(knn.KNN().validate_hyperparameters(hyperparameters(**extra)))
    model = knn.build_model(train_x, train_y, values, threads=1)
    predictions, distances, _ = model.search(test_x)
    assert np.mean(predictions == test_y) > 0.85
    files = model.files()
    again = knn.build_model(train_x, train_y, values, threads=1).files()
    assert files == again
    loaded = knn.NeighbourModel.from_files(files)
    np.testing.assert_array_equal(loaded.search(test_x)[0], predictions)
    metadata = json.loads(files[knn.METADATA_FILE])
    if "dimension_reduction_type" in extra:
        assert metadata["dimension_reduction"] == {
            "type": extra["dimension_reduction_type"], "seed": knn.SEED,
            "target_dim": int(extra["dimension_reduction_target"]), "input_dim": 64}
    if extra.get("index_metric") != "COSINE":  # L2: ascending squared distances
        assert (np.diff(distances, axis=1) >= 0).all()


def test_projections_roughly_preserve_distances() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 200)).astype(np.float32)
    original = np.linalg.norm(points[:, None] - points[None], axis=2)
    for kind in ("sign", "fjlt"):
        projected = knn.Projection(kind, 5, 200, 100)(points)
        assert projected.shape == (50, 100)
        reduced = np.linalg.norm(projected[:, None] - projected[None], axis=2)
        mask = original > 0
        ratio = reduced[mask] / original[mask]
        assert 0.6 < ratio.min() and ratio.max() < 1.4 and abs(ratio.mean() - 1) < 0.05


def test_reservoir_sample_is_uniform_and_repeatable() -> None:
    counts = np.zeros(100)
    for seed in range(2000):
        reservoir = knn.Reservoir(10, 1, np.random.default_rng(seed))
        for start in range(0, 100, 7):
            rows = np.arange(start, min(start + 7, 100), dtype=np.float32)
            reservoir.add(rows[:, None], rows)
        features, labels = reservoir.sample()
        assert len(set(labels.tolist())) == 10
        np.testing.assert_array_equal(features[:, 0], labels)
        counts[labels.astype(int)] += 1
    assert np.abs(counts / 2000 - 0.1).max() < 0.03  # each row kept with probability 10/100
    first, second = (knn.Reservoir(5, 1, np.random.default_rng(1)) for _ in range(2))
    for reservoir in (first, second):
        reservoir.add(np.arange(50, dtype=np.float32)[:, None], np.arange(50, dtype=np.float32))
    np.testing.assert_array_equal(first.sample()[1], second.sample()[1])
    small = knn.Reservoir(10, 1, np.random.default_rng(1))
    small.add(np.ones((3, 1), dtype=np.float32), np.arange(3, dtype=np.float32))
    assert len(small.sample()[1]) == 3


def test_vote_breaks_ties_towards_the_smallest_label() -> None:
    labels = np.array([[3, 1, 3, 1, 2], [2, 2, 0, 0, 5], [7, 7, 7, 1, 1]], dtype=np.float32)
    valid = np.ones_like(labels, dtype=bool)
    np.testing.assert_array_equal(knn.vote(labels, valid), [1, 0, 7])
    valid[2, :3] = False  # only the two 1s count
    np.testing.assert_array_equal(knn.vote(labels, valid), [1, 0, 1])
    np.testing.assert_allclose(knn.average(labels, valid), [2.0, 1.8, 1.0])


def test_verbose_responses_carry_neighbour_labels_and_distances(digits) -> None:
    train_x, train_y, test_x, _ = digits
    values = knn.defaults(knn.KNN().validate_hyperparameters(hyperparameters(k="3")))
    predictor = knn.KNNPredictor(knn.build_model(train_x, train_y, values))
    request = json.dumps({"instances": [{"features": row.tolist()} for row in test_x[:4]]})
    body, kind = predictor.predict(request.encode(), "application/json",
                                   "application/json; verbose=true")
    assert kind == "application/json"
    predictions = json.loads(body)["predictions"]
    assert set(predictions[0]) == {"predicted_label", "distances", "labels"}
    for item in predictions:
        assert len(item["labels"]) == len(item["distances"]) == 3
        assert item["distances"] == sorted(item["distances"])
        assert isinstance(item["predicted_label"], float)
    plain, _ = predictor.predict(request.encode(), "application/json", "application/json")
    assert json.loads(plain)["predictions"][0] == {
        "predicted_label": predictions[0]["predicted_label"]}
    lines, kind = predictor.predict(csv_bytes(test_x[:4], None), "text/csv",
                                    "application/jsonlines;verbose=true")
    assert kind == "application/jsonlines"
    assert [json.loads(line) for line in lines.decode().splitlines()] == predictions
    records, kind = predictor.predict(csv_bytes(test_x[:4], None), "text/csv",
                                      "application/x-recordio-protobuf; verbose=true")
    assert kind == "application/x-recordio-protobuf"
    for record, item in zip(read_records(records), predictions, strict=True):
        assert set(record.label) == {"predicted_label", "distances", "labels"}
        assert record.label["predicted_label"].values.tolist() == [item["predicted_label"]]
        assert record.label["labels"].values.tolist() == item["labels"]
    labelled, _ = predictor.predict(csv_bytes(test_x[:4], np.zeros(4)), "text/csv; label_size=1",
                                    "application/json")
    assert json.loads(labelled) == json.loads(plain)
    with pytest.raises(knn.InferenceError, match="63 features"):
        predictor.predict(csv_bytes(test_x[:2, :63], None), "text/csv", "application/json")


def test_dependent_hyperparameters_are_checked_by_name() -> None:
    algorithm = knn.KNN()
    base = {"feature_dim": "10", "k": "3", "predictor_type": "classifier", "sample_size": "50"}
    for change, pattern in [
        ({"dimension_reduction_type": "fjlt", "dimension_reduction_target": "10"},
         r"HyperParameters\.dimension_reduction_target: 10 must be less than feature_dim"),
        ({"dimension_reduction_target": "4"}, r"HyperParameters\.dimension_reduction_target"),
        ({"index_type": "faiss.IVFPQ", "index_metric": "COSINE"}, r"HyperParameters\.index_metric"),
        ({"faiss_index_ivf_nlists": "0"}, r"HyperParameters\.faiss_index_ivf_nlists"),
    ]:
        with pytest.raises(ValidationException, match=pattern):
            algorithm.validate_hyperparameters({**base, **change})
    for name in ("feature_dim", "k", "predictor_type", "sample_size"):
        with pytest.raises(ValidationException, match=rf"HyperParameters\.{name} is required"):
            algorithm.validate_hyperparameters({k: v for k, v in base.items() if k != name})
    values = algorithm.validate_hyperparameters({**base, "faiss_index_ivf_nlists": "auto",
                                                 "faiss_index_pq_m": "8"})
    assert values["faiss_index_ivf_nlists"] == "auto" and values["faiss_index_pq_m"] == 8
    with pytest.raises(ValidationException, match="label_size=1"):
        algorithm.validate_channels([{"ChannelName": "train",
                                      "ContentType": "text/csv;label_size=0"}])
    with pytest.raises(ValidationException, match="'validation'"):
        algorithm.validate_channels([{"ChannelName": "train"}, {"ChannelName": "validation"}])


def test_wrong_feature_dim_fails_the_job_with_a_client_error(jobs: JobRunner, digits) -> None:
    train_x, train_y, _, _ = digits
    channels = {"train": Channel({"a.csv": csv_bytes(train_x[:50], train_y[:50])}, "text/csv")}
    result = jobs.run("knn", channels, hyperparameters(feature_dim="60"))
    assert result.returncode != 0
    assert result.failure().startswith("ClientError: ")
    assert "feature_dim is 60" in result.failure()


def test_training_jobs_through_the_server(tmp_path, digits) -> None:
    """CreateTrainingJob with the SDK's knn image: two instances, sharded train and test,
    test:accuracy in FinalMetricDataList; bad hyperparameters refused by name."""
    from botocore.exceptions import ClientError
    from sklearn.neighbors import KNeighborsClassifier
    from tests.conftest import start_server
    from tests.training.test_jobs import read_tar, wait

    train_x, train_y, test_x, test_y = digits
    running = start_server(tmp_path / "home")
    try:
        s3 = running.client("s3")
        s3.create_bucket(Bucket="knn")
        for index, rows in enumerate(np.array_split(np.arange(len(train_x)), 2)):
            s3.put_object(Bucket="knn", Key=f"train/part-{index}.csv",
                          Body=csv_bytes(train_x[rows], train_y[rows]))
        s3.put_object(Bucket="knn", Key="test/test.csv", Body=csv_bytes(test_x, test_y))

        def channel(name: str, distribution: str) -> dict:
            return {"ChannelName": name, "ContentType": "text/csv", "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://knn/{name}/",
                                 "S3DataDistributionType": distribution}}}

        def create(name: str, hps: dict[str, str]) -> None:
            running.client("sagemaker").create_training_job(
                TrainingJobName=name, RoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
                HyperParameters=hps,
                AlgorithmSpecification={
                    "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/knn:1",
                    "TrainingInputMode": "File"},
                InputDataConfig=[channel("train", "ShardedByS3Key"),
                                 channel("test", "FullyReplicated")],
                OutputDataConfig={"S3OutputPath": "s3://knn/output"},
                ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 2,
                                "VolumeSizeInGB": 5},
                StoppingCondition={"MaxRuntimeInSeconds": 300})

        create("knn-digits", hyperparameters())
        job = wait(running, "knn-digits", timeout=120)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        names = {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
        assert names == {"test:accuracy", "test:mse"}
        final = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        expected = KNeighborsClassifier(5).fit(train_x, train_y).predict(test_x)
        assert final["test:accuracy"] == pytest.approx(float(np.mean(expected == test_y)),
                                                       abs=1e-5)
        files = read_tar(running, job["ModelArtifacts"]["S3ModelArtifacts"])
        assert sorted(name.removeprefix("./") for name in files) == sorted(
            [knn.MODEL_FILE, knn.LABELS_FILE, knn.METADATA_FILE])
        with pytest.raises(ClientError, match=r"HyperParameters\.index_type"):
            create("knn-bad", hyperparameters(index_type="faiss.LSH"))
    finally:
        running.stop()


def test_a_host_with_an_empty_shard_takes_part(jobs: JobRunner, digits) -> None:
    train_x, train_y, _, _ = digits
    channels = {"train": Channel({"only.csv": csv_bytes(train_x[:300], train_y[:300])},
                                 "text/csv", distribution="ShardedByS3Key")}
    result = jobs.run("knn", channels, hyperparameters(sample_size="1000"),
                      instance_count=2).check()
    assert len(np.fromfile(result.model_dir / knn.LABELS_FILE, dtype="<f4")) == 300


def test_a_bad_shard_stops_every_host_with_its_error(jobs: JobRunner, digits) -> None:
    train_x, train_y, _, _ = digits
    channels = {"train": Channel({"a.csv": csv_bytes(train_x[:50], train_y[:50]),
                                  "b.csv": csv_bytes(train_x[:50, :60], train_y[:50])},
                                 "text/csv", distribution="ShardedByS3Key")}
    result = jobs.run("knn", channels, hyperparameters(), instance_count=2, timeout=60)
    assert result.returncodes == [2, 2]
    failures = [result.failure(index) for index in range(2)]
    assert all(f.startswith("ClientError: ") and "feature_dim is 64" in f for f in failures)
    assert any(f.startswith("ClientError: algo-") for f in failures)  # the other host's
