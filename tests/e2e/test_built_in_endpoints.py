"""Every built-in algorithm end to end through the server: CreateTrainingJob on its
SageMaker image (or bare name), CreateModel from the job's artifact, an endpoint, and an
InvokeEndpoint answered in the algorithm's own response JSON."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from tests.conftest import start_server
from tests.hosting.test_endpoints import deploy

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "built-ins"
REGISTRY = "382416733822.dkr.ecr.us-east-1.amazonaws.com"


def _labelled(rows: int = 200) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(1)
    features = rng.normal(size=(rows, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(float)
    table = np.column_stack([labels, features])
    body = "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in table).encode()
    return body, b"0.5,0.5,0.1,-0.2\n"


def _unlabelled() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(2)
    features = np.concatenate([rng.normal(loc, 1, size=(100, 4)) for loc in (-4, 4)])
    body = "".join(",".join(f"{v:.5f}" for v in row) + "\n" for row in features).encode()
    return body, b"4.1,3.9,4.0,4.2\n"


def _logins() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(3)
    lines = [f"user{u},10.{u}.{rng.integers(0, 3)}.{rng.integers(1, 255)}"
             for u in range(50) for _ in range(8)]
    return ("\n".join(lines) + "\n").encode(), b"user7,10.7.1.9\n"


# name, image, hyperparameters, data, training content type, channels, response key
CASES = [
    ("linear-learner", f"{REGISTRY}/linear-learner:1",
     {"predictor_type": "binary_classifier", "feature_dim": "4", "epochs": "3"},
     _labelled, "text/csv", ("train",), "predictions"),
    ("kmeans", f"{REGISTRY}/kmeans:1", {"k": "2", "feature_dim": "4"},
     _unlabelled, "text/csv;label_size=0", ("train",), "predictions"),
    ("pca", f"{REGISTRY}/pca:1",
     {"feature_dim": "4", "num_components": "2", "mini_batch_size": "50"},
     _unlabelled, "text/csv;label_size=0", ("train",), "projections"),
    ("knn", f"{REGISTRY}/knn:1",
     {"feature_dim": "4", "k": "3", "predictor_type": "classifier", "sample_size": "150"},
     _labelled, "text/csv", ("train",), "predictions"),
    ("randomcutforest", f"{REGISTRY}/randomcutforest:1",
     {"feature_dim": "4", "num_trees": "50", "num_samples_per_tree": "32"},
     _unlabelled, "text/csv;label_size=0", ("train",), "scores"),
    ("factorization-machines", f"{REGISTRY}/factorization-machines:1",
     {"feature_dim": "4", "num_factors": "2", "predictor_type": "binary_classifier"},
     _labelled, "text/csv", ("train",), "predictions"),
    ("ipinsights", f"{REGISTRY}/ipinsights:1",
     {"num_entity_vectors": "100", "vector_dim": "8", "epochs": "2"},
     _logins, "text/csv", ("train",), "predictions"),
    ("lightgbm", "lightgbm", {"num_boost_round": "10", "num_threads": "1"},
     _labelled, "text/csv", ("train", "validation"), "probabilities"),
    ("catboost", "catboost", {"iterations": "10", "thread_count": "1"},
     _labelled, "text/csv", ("train", "validation"), "probabilities"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("built-ins-home"))
    running.client("s3").create_bucket(Bucket=BUCKET)
    yield running
    running.stop()


def _train(server, name: str, image: str, hyperparameters: dict, body: bytes,
           content_type: str, channels: tuple[str, ...]) -> dict:
    s3, sagemaker = server.client("s3"), server.client("sagemaker")
    job = f"{name}-{uuid.uuid4().hex[:8]}"
    config = []
    for channel in channels:
        s3.put_object(Bucket=BUCKET, Key=f"{job}/{channel}/data.csv", Body=body)
        config.append({"ChannelName": channel, "ContentType": content_type,
                       "DataSource": {"S3DataSource": {
                           "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{job}/{channel}/",
                           "S3DataDistributionType": "FullyReplicated"}}})
    sagemaker.create_training_job(
        TrainingJobName=job, RoleArn=ROLE, HyperParameters=hyperparameters,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        InputDataConfig=config, OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                        "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 300})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described = sagemaker.describe_training_job(TrainingJobName=job)
        if described["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return described
        time.sleep(0.2)
    raise AssertionError(f"{job} did not end")


@pytest.mark.parametrize(("name", "image", "hyperparameters", "data", "content_type",
                          "channels", "key"), CASES, ids=[case[0] for case in CASES])
def test_train_deploy_and_invoke(server, name, image, hyperparameters, data, content_type,
                                 channels, key):
    body, request = data()
    job = _train(server, name, image, hyperparameters, body, content_type, channels)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    sagemaker = server.client("sagemaker")
    model = f"m-{job['TrainingJobName']}"[:63]
    sagemaker.create_model(ModelName=model, ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": image, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]})
    endpoint = deploy(server, [{"VariantName": "main", "ModelName": model}])
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        answer = server.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=endpoint, Body=request, ContentType="text/csv",
            Accept="application/json")
        payload = json.loads(answer["Body"].read())
        assert key in payload and len(payload[key]) == 1, payload
    finally:
        sagemaker.delete_endpoint(EndpointName=endpoint)
