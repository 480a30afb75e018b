"""Built-in Random Cut Forest beyond the conformance suite: scores against rrcf's codisp,
anomaly-detection quality next to rrcf, the test channel's metrics, sparse and Pipe-mode
input, several hosts, data errors and inference formats."""

from __future__ import annotations

import io
import json
import re
import warnings

import numpy as np
import pytest
from tests.algorithms.conftest import Channel, JobRunner

from openmaker.algorithms import InferenceError, find_algorithm
from openmaker.algorithms.random_cut_forest import (
    Forest,
    RandomCutForestPredictor,
    build_forest,
    load_forest,
)
from openmaker.core.errors import ValidationException
from openmaker.formats import read_records, write_csv, write_dense_records, write_sparse_records

ALGORITHM = find_algorithm("randomcutforest")
assert ALGORITHM is not None
HYPERPARAMETERS = {"feature_dim": "4", "num_trees": "50", "num_samples_per_tree": "128"}


def rrcf_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import rrcf
    return rrcf


def csv_bytes(features: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    buffer = io.BytesIO()
    write_csv(buffer, features, labels)
    return buffer.getvalue()


def anomalies(normal: int, outliers: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian records with uniformly scattered outliers (label 1) mixed in."""
    rng = np.random.default_rng(seed)
    inliers = rng.normal(size=(normal, 4))
    scattered = rng.uniform(-6, 6, size=(outliers, 4))
    scattered[np.abs(scattered).max(axis=1) < 3.5, 0] = 5.0  # keep them out of the bulk
    features = np.round(np.vstack([inliers, scattered]), 4).astype(np.float32)
    labels = np.concatenate([np.zeros(normal), np.ones(outliers)])
    order = rng.permutation(len(labels))
    return features[order], labels[order]


def train(jobs: JobRunner, train_x: np.ndarray, *, test: tuple | None = None,
          hyperparameters: dict[str, str] | None = None, **options):
    channels = {"train": Channel({"part-0": csv_bytes(train_x)}, "text/csv;label_size=0")}
    if test is not None:
        channels["test"] = Channel({"part-0": csv_bytes(*test)}, "text/csv;label_size=1")
    return jobs.run("randomcutforest", channels, hyperparameters or HYPERPARAMETERS, **options)


# -- the score is rrcf's codisp ---------------------------------------------------------------
def _forest_of(tree) -> Forest:
    rrcf = rrcf_module()
    arrays: dict[str, list] = {k: [] for k in ("feature", "cut", "left", "right", "size",
                                               "box_min", "box_max")}

    def visit(node) -> int:
        index = len(arrays["feature"])
        for name, value in (("feature", -1), ("cut", 0.0), ("left", -1), ("right", -1),
                            ("size", node.n)):
            arrays[name].append(value)
        if isinstance(node, rrcf.Leaf):
            arrays["box_min"].append(node.x.ravel())
            arrays["box_max"].append(node.x.ravel())
        else:
            arrays["box_min"].append(node.b[0])
            arrays["box_max"].append(node.b[-1])
            arrays["feature"][index], arrays["cut"][index] = node.q, node.p
            arrays["left"][index] = visit(node.l)
            arrays["right"][index] = visit(node.r)
        return index

    visit(tree.root)
    return Forest(
        feature=np.array(arrays["feature"], np.int32), cut=np.array(arrays["cut"]),
        left=np.array(arrays["left"], np.int32), right=np.array(arrays["right"], np.int32),
        size=np.array(arrays["size"], np.int32),
        box_min=np.array(arrays["box_min"], np.float32),
        box_max=np.array(arrays["box_max"], np.float32), roots=np.array([0], np.int32))


def test_score_is_the_expected_codisp_of_an_rrcf_insertion() -> None:
    rrcf = rrcf_module()
    rng = np.random.default_rng(1)
    points = rng.normal(size=(48, 3)).astype(np.float32).astype(np.float64)
    tree = rrcf.RCTree(points, random_state=3)
    forest = _forest_of(tree)
    queries = np.array([[0.2, 0.1, -0.3], [3, 3, 3], points[5]])
    ours = forest.score(queries.astype(np.float32))
    np.random.seed(11)  # rrcf's insertion cuts draw from numpy's global generator
    for query, expected in zip(queries, ours, strict=True):
        draws = []
        for _ in range(1500):
            tree.insert_point(query, index="q")
            draws.append(tree.codisp("q"))
            tree.forget_point("q")
        error = np.std(draws) / np.sqrt(len(draws))
        assert abs(np.mean(draws) - expected) <= 5 * error + 1e-9, (query, expected,
                                                                   np.mean(draws))


def test_trees_hold_every_sampled_point_and_duplicates_score_as_rrcf_does() -> None:
    points = np.array([[0, 0], [0, 0], [1, 1], [2, 0]], dtype=np.float32)
    forest = build_forest([points])
    leaves = forest.feature < 0
    assert forest.size[forest.roots[0]] == 4
    assert sorted(forest.size[leaves].tolist()) == [1, 1, 2]  # the copies share a leaf
    # a copy of a sampled point is cut off beside its leaf, so it scores at least 2
    assert forest.score(np.array([[0, 0]], dtype=np.float32))[0] >= 2
    # a far point is cut off at the root almost surely: codisp = the 4 points displaced
    assert 3.9 < forest.score(np.array([[50, 50]], dtype=np.float32))[0] <= 4.0


# -- quality next to rrcf ---------------------------------------------------------------------
def test_auc_above_0_9_where_rrcf_reaches_it(jobs: JobRunner) -> None:
    from sklearn.metrics import roc_auc_score

    train_x, _ = anomalies(2000, 20, seed=3)
    test_x, test_y = anomalies(300, 15, seed=4)
    result = train(jobs, train_x).check()
    predictor = ALGORITHM.load(result.model_dir)
    body, _ = predictor.predict(csv_bytes(test_x), "text/csv", "application/json")
    ours = np.array([item["score"] for item in json.loads(body)["scores"]])
    ours_auc = roc_auc_score(test_y, ours)

    rrcf = rrcf_module()
    rng = np.random.default_rng(5)
    trees = [rrcf.RCTree(train_x[rng.choice(len(train_x), 128, replace=False)].astype(float),
                         random_state=index) for index in range(50)]
    peer = np.zeros(len(test_x))
    for tree in trees:
        for row, point in enumerate(test_x.astype(float)):
            tree.insert_point(point, index="q")
            peer[row] += tree.codisp("q")
            tree.forget_point("q")
    peer_auc = roc_auc_score(test_y, peer / len(trees))
    assert peer_auc >= 0.9, peer_auc
    print(f"AUC ours {ours_auc:.4f} rrcf {peer_auc:.4f}")
    assert ours_auc >= 0.9, (ours_auc, peer_auc)


def test_training_job_through_the_server_with_the_sdk_image(tmp_path) -> None:
    """A CreateTrainingJob with the image the SageMaker SDK names, a sharded CSV train
    channel (label_size=0) and a labelled test channel: Completed, test:f1 among the final
    metrics, and a model.tar.gz whose model scores the anomalies highest."""
    import tarfile
    import uuid

    from sklearn.metrics import roc_auc_score
    from tests.conftest import start_server
    from tests.training.test_jobs import wait

    train_x, _ = anomalies(1500, 15, seed=12)
    test_x, test_y = anomalies(300, 12, seed=13)
    server = start_server(tmp_path / "home")
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="rcf")
        s3.put_object(Bucket="rcf", Key="train/part-0.csv", Body=csv_bytes(train_x))
        s3.put_object(Bucket="rcf", Key="test/part-0.csv", Body=csv_bytes(test_x, test_y))

        def channel(name: str, content_type: str, distribution: str) -> dict:
            return {"ChannelName": name, "ContentType": content_type, "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://rcf/{name}/",
                                 "S3DataDistributionType": distribution}}}

        name = f"rcf-{uuid.uuid4().hex[:8]}"
        server.client("sagemaker").create_training_job(
            TrainingJobName=name, RoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
            HyperParameters={"feature_dim": "4", "num_trees": "50",
                             "num_samples_per_tree": "128", "mini_batch_size": "1000"},
            AlgorithmSpecification={
                "TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/randomcutforest:1",
                "TrainingInputMode": "File"},
            InputDataConfig=[channel("train", "text/csv;label_size=0", "ShardedByS3Key"),
                             channel("test", "text/csv;label_size=1", "FullyReplicated")],
            OutputDataConfig={"S3OutputPath": "s3://rcf/output"},
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                            "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 300})
        job = wait(server, name, timeout=120)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        final = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
        assert final.get("test:f1", 0) >= 0.5, final
        bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"][len("s3://"):].partition("/")
        archive = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    finally:
        server.stop()
    model_dir = tmp_path / "model"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(model_dir, filter="data")
    predictor = ALGORITHM.load(model_dir)
    body, _ = predictor.predict(csv_bytes(test_x), "text/csv", "application/jsonlines")
    scores = [json.loads(line)["score"] for line in body.splitlines()]
    assert roc_auc_score(test_y, scores) >= 0.9


def test_test_channel_prints_f1_precision_recall_and_accuracy(jobs: JobRunner) -> None:
    train_x, _ = anomalies(1000, 10, seed=6)
    test_x, test_y = anomalies(300, 12, seed=7)
    result = train(jobs, train_x, test=(test_x, test_y)).check()
    found = {}
    for definition in ALGORITHM.metric_definitions:
        for line in result.output.splitlines():
            match = re.search(definition["Regex"], line)
            if match:
                found[definition["Name"]] = float(match.group(1))
    assert {"test:f1", "test:precision", "test:recall", "test:accuracy",
            "train:throughput", "train:progress"} <= set(found), result.output
    assert found["test:f1"] >= 0.5 and found["test:accuracy"] >= 0.9, found


def test_eval_metrics_selects_the_printed_metrics(jobs: JobRunner) -> None:
    train_x, _ = anomalies(400, 4, seed=6)
    test_x, test_y = anomalies(100, 5, seed=7)
    result = train(jobs, train_x, test=(test_x, test_y),
                   hyperparameters={**HYPERPARAMETERS, "eval_metrics": '["accuracy"]'}).check()
    assert "test accuracy <score>=" in result.output
    assert "test f1" not in result.output


# -- input formats and modes ------------------------------------------------------------------
def test_sparse_recordio_in_pipe_mode_trains_the_same_forest_as_dense_csv(
        jobs: JobRunner) -> None:
    import scipy.sparse

    train_x, _ = anomalies(300, 3, seed=8)
    train_x[np.abs(train_x) < 0.5] = 0
    sparse = io.BytesIO()
    write_sparse_records(sparse, scipy.sparse.csr_matrix(train_x))
    pipe = jobs.run("randomcutforest", {"train": Channel(
        {"part-0": sparse.getvalue()}, "application/x-recordio-protobuf")},
        HYPERPARAMETERS, input_mode="Pipe").check()
    dense = train(jobs, train_x).check()
    assert load_forest(pipe.model_dir).arrays().keys() == load_forest(dense.model_dir).arrays(
    ).keys()
    for name, array in load_forest(pipe.model_dir).arrays().items():
        np.testing.assert_array_equal(array, load_forest(dense.model_dir).arrays()[name], name)


def test_two_hosts_sample_both_shards(jobs: JobRunner) -> None:
    rng = np.random.default_rng(9)
    near_zero = np.round(rng.normal(size=(400, 4)), 4)
    near_ten = np.round(rng.normal(10, 1, size=(400, 4)), 4)
    channels = {"train": Channel({"part-0": csv_bytes(near_zero),
                                  "part-1": csv_bytes(near_ten)},
                                 "text/csv;label_size=0", distribution="ShardedByS3Key")}
    result = jobs.run("randomcutforest", channels, HYPERPARAMETERS, instance_count=2,
                      timeout=120).check()
    forest = load_forest(result.model_dir)
    assert not (result.layouts[1].model_dir / "model_algo-1").exists()
    assert forest.size[forest.roots].tolist() == [128] * 50
    scores = forest.score(np.array([[0, 0, 0, 0], [10, 10, 10, 10], [5, 5, 5, 5], [30] * 4],
                                   dtype=np.float32))
    assert scores[0] < scores[2] < scores[3] and scores[1] < scores[2], scores


def test_a_failing_host_fails_every_host_at_once(jobs: JobRunner) -> None:
    rng = np.random.default_rng(10)
    channels = {"train": Channel({"part-0": csv_bytes(np.round(rng.normal(size=(50, 4)), 4)),
                                  "part-1": csv_bytes(np.round(rng.normal(size=(50, 3)), 4))},
                                 "text/csv;label_size=0", distribution="ShardedByS3Key")}
    result = jobs.run("randomcutforest", channels, HYPERPARAMETERS, instance_count=2,
                      timeout=60)
    assert result.returncodes[0] != 0 and result.returncodes[1] != 0
    first = result.failure(0)
    assert first is not None and first.startswith("ClientError: ") and "feature_dim" in first
    assert result.failure(1) is not None


def test_records_of_the_wrong_width_fail_with_a_client_error(jobs: JobRunner) -> None:
    train_x, _ = anomalies(100, 2, seed=1)
    result = train(jobs, train_x[:, :3])
    assert result.returncode != 0
    failure = result.failure()
    assert failure is not None and failure.startswith("ClientError: ")
    assert "feature_dim" in failure


def test_hyperparameter_rules() -> None:
    ALGORITHM.validate_hyperparameters({"feature_dim": "10", "mini_batch_size": "1000",
                                        "eval_metrics": '["accuracy", "precision_recall_fscore"]'})
    for bad, name in (({}, "feature_dim"), ({"feature_dim": "10001"}, "feature_dim"),
                      ({"num_trees": "49"}, "num_trees"), ({"num_trees": "1001"}, "num_trees"),
                      ({"num_samples_per_tree": "2049"}, "num_samples_per_tree"),
                      ({"eval_metrics": "auc"}, "eval_metrics")):
        raw = {"feature_dim": "10", **bad} if bad != {} else {}
        with pytest.raises(ValidationException, match=rf"HyperParameters\.{name}\b"):
            ALGORITHM.validate_hyperparameters(raw)
    assert ALGORITHM.objective_metrics() == {"test:f1": "Maximize"}


# -- inference --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor() -> RandomCutForestPredictor:
    train_x, _ = anomalies(500, 5, seed=2)
    forest = build_forest([train_x[i * 100:(i + 1) * 100] for i in range(5)])
    return RandomCutForestPredictor(forest, environ={})


def test_inference_formats(predictor: RandomCutForestPredictor) -> None:
    rows = np.array([[0, 0, 0, 0], [5, 5, 5, 5]], dtype=np.float32)
    expected = [float(str(np.float32(s))) for s in predictor.forest.score(rows)]
    body, kind = predictor.predict(csv_bytes(rows), "text/csv", "application/json")
    assert kind == "application/json"
    assert json.loads(body) == {"scores": [{"score": s} for s in expected]}
    body, _ = predictor.predict(csv_bytes(rows), "text/csv", "*/*")
    assert json.loads(body)["scores"][1]["score"] == expected[1]
    lines = b"".join(json.dumps({"features": r.tolist()}).encode() + b"\n" for r in rows)
    body, _ = predictor.predict(lines, "application/jsonlines", "application/jsonlines")
    assert [json.loads(line) for line in body.splitlines()] == [{"score": s} for s in expected]
    sparse = json.dumps({"instances": [
        {"data": {"features": {"keys": [], "shape": [4], "values": []}}},
        {"data": {"features": {"keys": [0, 1, 2, 3], "shape": [4], "values": [5, 5, 5, 5]}}}]})
    body, _ = predictor.predict(sparse.encode(), "application/json",
                                "application/x-recordio-protobuf")
    assert [r.label["score"].values.tolist() for r in read_records(body)] == [
        [pytest.approx(s)] for s in expected]
    recordio = io.BytesIO()
    write_dense_records(recordio, rows)
    body, _ = predictor.predict(recordio.getvalue(), "application/x-recordio-protobuf",
                                "text/csv")
    assert [float(v) for v in body.decode().split()] == expected


def test_inference_refuses_rows_of_the_wrong_width(predictor: RandomCutForestPredictor) -> None:
    with pytest.raises(InferenceError, match="trained on 4"):
        predictor.predict(b"1,2,3\n", "text/csv", "application/json")
