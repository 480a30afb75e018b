"""The SageMaker Python SDK v2, unmodified, training against openmaker: only
``AWS_ENDPOINT_URL`` (plus any credentials) and the session's default bucket are set."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile

import numpy as np
import pytest
from tests.conftest import start_server

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "sdk-default-bucket"

TRAIN_SKLEARN = '''
import argparse, os
import joblib, numpy as np
from sklearn.linear_model import LogisticRegression
parser = argparse.ArgumentParser()
parser.add_argument("--max_iter", type=int, default=100)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
parser.add_argument("--train", default=os.environ["SM_CHANNEL_TRAIN"])
args = parser.parse_args()
data = np.loadtxt(os.path.join(args.train, "train.csv"), delimiter=",")
model = LogisticRegression(max_iter=args.max_iter).fit(data[:, 1:], data[:, 0])
print(f"train_accuracy={model.score(data[:, 1:], data[:, 0]):.4f}")
joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
'''
TRAIN_XGBOOST = '''
import argparse, os
import xgboost as xgb
parser = argparse.ArgumentParser()
parser.add_argument("--num_round", type=int)
parser.add_argument("--max_depth", type=int)
args = parser.parse_args()
train = xgb.DMatrix(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")
                    + "?format=csv&label_column=0")
booster = xgb.train({"max_depth": args.max_depth, "objective": "binary:logistic"}, train,
                    args.num_round, evals=[(train, "train")])
booster.save_model(os.path.join(os.environ["SM_MODEL_DIR"], "xgboost-model"))
'''
TRAIN_PYTORCH = '''
import argparse, os
import numpy as np, torch
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
args = parser.parse_args()
data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
x = torch.tensor(data[:, 1:], dtype=torch.float32)
y = torch.tensor(data[:, :1], dtype=torch.float32)
model = torch.nn.Linear(x.shape[1], 1)
optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
for epoch in range(args.epochs):
    optimiser.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    optimiser.step()
    print(f"epoch={epoch} loss={loss.item():.4f}")
torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"))
'''


@contextlib.contextmanager
def sdk_session(home, bucket: str):
    """A server on ``home`` and a SageMaker SDK session reaching it as a user would: only
    ``AWS_ENDPOINT_URL`` (and any credentials) set, ``bucket`` as the default bucket, and a
    200-row CSV (label first) uploaded under ``data/train/``. Yields ``(session, the data's
    prefix URI, features, labels)``."""
    running = start_server(home)
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update({"AWS_ENDPOINT_URL": running.url, "AWS_ACCESS_KEY_ID": "anything",
                       "AWS_SECRET_ACCESS_KEY": "anything", "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        import boto3
        import sagemaker

        session = sagemaker.Session(boto_session=boto3.Session(), default_bucket=bucket)
        rng = np.random.default_rng(0)
        features = rng.normal(size=(200, 4))
        labels = (features[:, 0] > 0).astype(float)
        rows = "".join(",".join(f"{v:.5g}" for v in row) + "\n"
                       for row in np.column_stack([labels, features]))
        data = session.upload_string_as_file_body(rows, session.default_bucket(),
                                                  "data/train/train.csv")
        yield session, data.rsplit("/", 1)[0] + "/", features, labels
    finally:
        os.environ.clear()
        os.environ.update(saved)
        running.stop()


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    with sdk_session(tmp_path_factory.mktemp("sdk-home"), BUCKET) as (session, data, _, _):
        yield session, data


def model_files(session, uri: str) -> list[str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = session.boto_session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return sorted(tar.getnames())


@pytest.mark.timeout(180)
def test_estimator_with_the_built_in_xgboost_image(sdk, capsys):
    import sagemaker
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    session, data = sdk
    image = sagemaker.image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    estimator = Estimator(image, ROLE, instance_count=1, instance_type="ml.m5.large",
                          sagemaker_session=session,
                          hyperparameters={"objective": "binary:logistic", "num_round": 10,
                                           "eval_metric": "auc"})
    estimator.fit({"train": TrainingInput(data, content_type="text/csv"),
                   "validation": TrainingInput(data, content_type="text/csv")})
    job = estimator.latest_training_job.describe()
    assert job["TrainingJobStatus"] == "Completed"
    assert model_files(session, estimator.model_data) == ["xgboost-model"]
    assert "validation-auc" in capsys.readouterr().out  # the SDK tailed the job's log
    analytics = estimator.training_job_analytics.dataframe()
    assert "validation:auc" in set(analytics["metric_name"])


@pytest.mark.timeout(180)
def test_sklearn_estimator_runs_the_entry_point(sdk, tmp_path):
    from sagemaker.sklearn import SKLearn

    session, data = sdk
    (tmp_path / "train.py").write_text(TRAIN_SKLEARN)
    estimator = SKLearn(entry_point="train.py", source_dir=str(tmp_path),
                        framework_version="1.2-1", role=ROLE, instance_count=1,
                        instance_type="ml.m5.large", sagemaker_session=session,
                        hyperparameters={"max_iter": 50})
    estimator.fit({"train": data}, logs=False)
    assert model_files(session, estimator.model_data) == ["model.joblib"]


@pytest.mark.timeout(180)
def test_xgboost_framework_estimator_runs_the_entry_point(sdk, tmp_path):
    from sagemaker.xgboost import XGBoost

    session, data = sdk
    (tmp_path / "train.py").write_text(TRAIN_XGBOOST)
    estimator = XGBoost(entry_point="train.py", source_dir=str(tmp_path),
                        framework_version="1.7-1", role=ROLE, instance_count=1,
                        instance_type="ml.m5.large", sagemaker_session=session,
                        hyperparameters={"num_round": 5, "max_depth": 3})
    estimator.fit({"train": data}, logs=False)
    assert model_files(session, estimator.model_data) == ["xgboost-model"]


@pytest.mark.timeout(180)
def test_pytorch_estimator_runs_the_entry_point(sdk, tmp_path):
    from sagemaker.pytorch import PyTorch

    session, data = sdk
    (tmp_path / "train.py").write_text(TRAIN_PYTORCH)
    estimator = PyTorch(entry_point="train.py", source_dir=str(tmp_path),
                        framework_version="2.1", py_version="py310", role=ROLE,
                        instance_count=1, instance_type="ml.m5.large",
                        sagemaker_session=session, hyperparameters={"epochs": 3})
    estimator.fit({"train": data}, logs=False)
    assert model_files(session, estimator.model_data) == ["model.pth"]
