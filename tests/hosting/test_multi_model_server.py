"""The model server in multi-model mode: models fetched from a real openmaker server's S3
on first use, kept under a memory budget, least recently used evicted."""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import start_server

from openmaker.hosting.model_server import READY_LINE, model_directory_name

FEATURES = 4
BUCKET = "multi-model"
PREFIX = f"s3://{BUCKET}/models/"
TARGETS = ("model-a.tar.gz", "model-b.tar.gz", "model-c.tar.gz")
ROWS = np.random.default_rng(1).random((5, FEATURES))
LOAD_HEADER = "x-openmaker-model-load-seconds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def csv_body(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(str(value) for value in row) for row in rows).encode()


class MultiModelServer:
    """``python -m openmaker.hosting.model_server`` with the multi-model environment."""

    def __init__(self, store, model_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.model_dir = model_dir
        self.log = model_dir.parent / f"model-server-{self.port}.log"
        environ = {key: value for key, value in os.environ.items()
                   if not key.startswith(("SAGEMAKER_", "OPENMAKER_", "SM_", "AWS_"))}
        environ.update({"SM_MODEL_DIR": str(model_dir), "SAGEMAKER_BIND_TO_PORT": str(self.port),
                        "OPENMAKER_ALGORITHM": "xgboost", "OPENMAKER_MULTI_MODEL_PREFIX": PREFIX,
                        "AWS_ENDPOINT_URL": store.url, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                        **env})
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "openmaker.hosting.model_server"], env=environ,
                stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.process.stdout.readline()
        if line.strip() != READY_LINE.format(host="127.0.0.1", port=self.port):
            self.process.kill()
            raise AssertionError(f"no ready line: {line!r}\n{self.log.read_text()}")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            received = {name.lower(): value for name, value in response.getheaders()}
            return response.status, response.read(), received
        finally:
            connection.close()

    def invoke(self, target: str | None, rows: np.ndarray = ROWS):
        headers = {"Content-Type": "text/csv"}
        if target is not None:
            headers["X-Amzn-SageMaker-Target-Model"] = target
        return self.request("POST", "/invocations", csv_body(rows), headers)

    def models(self) -> list[dict]:
        status, body, _ = self.request("GET", "/models")
        assert status == 200
        return json.loads(body)["models"]

    def loads(self, target: str) -> int:
        return self.log.read_text().count(f"loaded model {target} ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


def scores(body: bytes) -> list[float]:
    return [float(value) for value in body.decode().split()]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An openmaker server holding three xgboost models (each trained on another
    feature), an archive that is not one, under PREFIX."""
    import xgboost

    running = start_server(tmp_path_factory.mktemp("multi-model-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    rng = np.random.default_rng(0)
    features = rng.random((200, FEATURES))
    expected, sizes = {}, {}
    for feature, target in enumerate(TARGETS):
        labels = (features[:, feature] > 0.5).astype(float)
        booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                                xgboost.DMatrix(features, label=labels), num_boost_round=10)
        raw = bytes(booster.save_raw("json"))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo("xgboost-model")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
        s3.put_object(Bucket=BUCKET, Key="models/" + target, Body=buffer.getvalue())
        expected[target] = booster.predict(xgboost.DMatrix(ROWS)).tolist()
        sizes[target] = len(raw)
    s3.put_object(Bucket=BUCKET, Key="models/broken.tar.gz", Body=b"not a tar archive")
    running.expected, running.sizes = expected, sizes
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mme(store, tmp_path_factory):
    server = MultiModelServer(store, tmp_path_factory.mktemp("mme") / "model")
    yield server
    server.stop()


def test_each_target_answers_with_its_own_model(mme, store):
    for target in TARGETS:
        status, body, headers = mme.invoke(target)
        assert status == 200, body
        assert scores(body) == pytest.approx(store.expected[target], abs=1e-6)
        assert (mme.model_dir / model_directory_name(target) / "xgboost-model").is_file()
    answers = {target: scores(mme.invoke(target)[1]) for target in TARGETS}
    assert len({tuple(answer) for answer in answers.values()}) == 3


def test_the_loading_request_reports_its_load_time_and_later_ones_do_not(mme):
    target = TARGETS[0]
    first = mme.invoke(target)  # loaded here or by an earlier test
    _, _, headers = mme.invoke(target)
    assert LOAD_HEADER not in headers
    if LOAD_HEADER in first[2]:
        assert float(first[2][LOAD_HEADER]) >= 0


def test_models_lists_the_loaded_models_with_their_size(mme, store):
    for target in TARGETS:
        assert mme.invoke(target)[0] == 200
    listed = {model["modelName"]: model for model in mme.models()}
    assert set(listed) == set(TARGETS)
    for target in TARGETS:
        assert listed[target]["sizeBytes"] == store.sizes[target]
        assert listed[target]["lastUsed"].endswith("Z")
    # least recently used first
    assert [model["modelName"] for model in mme.models()] == list(TARGETS)


def test_a_request_without_a_target_model_is_400(mme):
    status, body, _ = mme.invoke(None)
    assert status == 400
    assert "X-Amzn-SageMaker-Target-Model" in json.loads(body)["error"]


def test_an_unknown_target_is_404_and_not_kept(mme):
    status, body, _ = mme.invoke("missing.tar.gz")
    assert status == 404
    assert json.loads(body) == {"error": f"model missing.tar.gz not found under {PREFIX}"}
    assert "missing.tar.gz" not in {model["modelName"] for model in mme.models()}


def test_a_broken_archive_is_500_and_the_server_stays_up(mme, store):
    status, body, _ = mme.invoke("broken.tar.gz")
    assert status == 500
    assert json.loads(body)["error"] == ("model broken.tar.gz failed to load: ValueError: "
                                         "model.tar.gz: "
                                         f"{PREFIX}broken.tar.gz is not a readable tar archive")
    assert "broken.tar.gz" not in {model["modelName"] for model in mme.models()}
    assert not (mme.model_dir / model_directory_name("broken.tar.gz")).exists()
    assert mme.request("GET", "/ping")[0] == 200
    status, body, _ = mme.invoke(TARGETS[1])
    assert status == 200 and scores(body) == pytest.approx(store.expected[TARGETS[1]], abs=1e-6)
    # not kept: the next request tries again, and fails the same way
    assert mme.invoke("broken.tar.gz")[0] == 500


def test_the_least_recently_used_model_is_evicted_over_the_budget(store, tmp_path):
    sizes = store.sizes
    # any two models fit, three do not
    budget = sum(sizes.values()) - min(sizes.values()) / 2
    server = MultiModelServer(store, tmp_path / "model",
                              OPENMAKER_MULTI_MODEL_MEMORY_MB=str(budget / 1024 / 1024))
    try:
        a, b, c = TARGETS
        assert LOAD_HEADER in server.invoke(a)[2]
        assert LOAD_HEADER in server.invoke(b)[2]
        assert LOAD_HEADER not in server.invoke(a)[2]  # a is now the most recent
        assert LOAD_HEADER in server.invoke(c)[2]  # b, the least recent, goes
        assert [model["modelName"] for model in server.models()] == [a, c]
        assert not (server.model_dir / model_directory_name(b)).exists()
        assert (server.model_dir / model_directory_name(a)).is_dir()
        status, body, headers = server.invoke(b)  # reloaded on its next use
        assert status == 200 and LOAD_HEADER in headers
        assert scores(body) == pytest.approx(store.expected[b], abs=1e-6)
        assert [model["modelName"] for model in server.models()] == [c, b]
        assert server.loads(b) == 2 and server.loads(a) == 1
    finally:
        server.stop()


def test_concurrent_first_requests_load_the_model_once(store, tmp_path):
    server = MultiModelServer(store, tmp_path / "model")
    try:
        target = TARGETS[2]
        answers: list = []
        start = threading.Barrier(8)

        def call() -> None:
            start.wait()
            answers.append(server.invoke(target))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [status for status, _, _ in answers] == [200] * 8
        for _, body, _ in answers:
            assert scores(body) == pytest.approx(store.expected[target], abs=1e-6)
        assert sum(LOAD_HEADER in headers for _, _, headers in answers) == 1
        assert server.loads(target) == 1
        assert [model["modelName"] for model in server.models()] == [target]
    finally:
        server.stop()


def test_a_prefix_that_is_not_s3_fails_at_start(tmp_path):
    port = free_port()
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith(("SAGEMAKER_", "OPENMAKER_", "SM_"))}
    environ.update({"SM_MODEL_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": str(port),
                    "OPENMAKER_MULTI_MODEL_PREFIX": "/local/models/"})
    result = subprocess.run([sys.executable, "-m", "openmaker.hosting.model_server"],
                            env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "OPENMAKER_MULTI_MODEL_PREFIX" in result.stderr.strip().splitlines()[-1]
