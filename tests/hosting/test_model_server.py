"""The model server as the platform runs it: a real process on loopback."""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from openmaker.hosting.model_server import READY_LINE, extract_model_archive

FEATURES = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, model_dir: Path, env: dict[str, str], *, wait: bool = True) -> None:
        self.port = free_port()
        environ = {key: value for key, value in os.environ.items()
                   if not key.startswith(("SAGEMAKER_", "OPENMAKER_", "SM_"))}
        environ.update({"SM_MODEL_DIR": str(model_dir),
                        "SAGEMAKER_BIND_TO_PORT": str(self.port), **env})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openmaker.hosting.model_server"], env=environ,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        line = self.process.stdout.readline()  # blocks until the line or exit
        expected = READY_LINE.format(host="127.0.0.1", port=self.port)
        if line.strip() != expected:
            self.process.kill()
            raise AssertionError(f"no ready line: {line!r}\n{self.process.stderr.read()}")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, str | None]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type")
        finally:
            connection.close()

    def invoke(self, body: bytes, content_type: str | None = "text/csv",
               accept: str | None = None, **headers: str) -> tuple[int, bytes, str | None]:
        sent = dict(headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        if accept is not None:
            sent["Accept"] = accept
        return self.request("POST", "/invocations", body, sent)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture(scope="module")
def xgboost_model_dir(tmp_path_factory):
    import xgboost

    directory = tmp_path_factory.mktemp("xgboost-model")
    rng = np.random.default_rng(0)
    features = rng.random((200, FEATURES))
    labels = (features[:, 0] > 0.5).astype(float)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3},
                            xgboost.DMatrix(features, label=labels), num_boost_round=10)
    booster.save_model(str(directory / "xgboost-model.json"))
    (directory / "xgboost-model.json").rename(directory / "xgboost-model")
    return directory


@pytest.fixture(scope="module")
def xgboost_server(xgboost_model_dir):
    server = Server(xgboost_model_dir, {"OPENMAKER_ALGORITHM": "xgboost"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sklearn_model_dir(tmp_path_factory):
    import joblib
    from sklearn.linear_model import LinearRegression

    directory = tmp_path_factory.mktemp("sklearn-model")
    features = np.random.default_rng(0).random((20, 2))
    model = LinearRegression().fit(features, features[:, 0] * 2 + features[:, 1])
    joblib.dump(model, directory / "model.joblib")
    return directory


def with_code(model_dir: Path, tmp_path: Path, source: str, name: str = "inference.py") -> Path:
    """A copy of model_dir with code/<name>."""
    directory = tmp_path / "model"
    directory.mkdir()
    for path in model_dir.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    (directory / "code").mkdir()
    (directory / "code" / name).write_text(textwrap.dedent(source))
    return directory


# -- the built-in XGBoost predictor -----------------------------------------------------
def test_ping_answers_200_with_an_empty_body(xgboost_server):
    assert xgboost_server.request("GET", "/ping")[:2] == (200, b"")


def test_csv_row_is_scored_as_csv_by_default(xgboost_server):
    status, body, content_type = xgboost_server.invoke(b"0.9,0.1,0.2,0.3\n0.1,0.5,0.5,0.5")
    assert (status, content_type) == (200, "text/csv")
    scores = [float(value) for value in body.decode().split()]
    assert scores[0] > 0.5 > scores[1]


def test_libsvm_and_json_requests_and_json_answers(xgboost_server):
    status, body, content_type = xgboost_server.invoke(b"0:0.9 1:0.1 2:0.2 3:0.3", "text/libsvm",
                                                       "application/json")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["predictions"][0]["score"] > 0.5
    status, body, _ = xgboost_server.invoke(
        json.dumps({"instances": [[0.1, 0.5, 0.5, 0.5]]}).encode(), "application/json",
        "text/csv")
    assert status == 200 and float(body) < 0.5


def test_unsupported_content_type_is_415(xgboost_server):
    status, body, content_type = xgboost_server.invoke(b"x", "image/png")
    assert (status, content_type) == (415, "application/json")
    assert "image/png" in json.loads(body)["error"]


def test_unsupported_accept_is_406(xgboost_server):
    status, body, _ = xgboost_server.invoke(b"0.9,0.1,0.2,0.3", "text/csv", "image/png")
    assert status == 406 and "image/png" in json.loads(body)["error"]


def test_empty_request_is_204(xgboost_server):
    assert xgboost_server.invoke(b"")[:2] == (204, b"")


def test_a_bad_request_is_answered_and_the_server_stays_up(xgboost_server):
    status, body, _ = xgboost_server.invoke(b"0.9,0.1")
    assert status == 400 and "features" in json.loads(body)["error"]
    assert xgboost_server.invoke(b"0.9,0.1,0.2,0.3")[0] == 200
    assert xgboost_server.process.poll() is None


def test_execution_parameters_and_unknown_routes(xgboost_server):
    status, body, content_type = xgboost_server.request("GET", "/execution-parameters")
    assert (status, content_type) == (200, "application/json")
    parameters = json.loads(body)
    assert parameters["BatchStrategy"] == "MULTI_RECORD" and parameters["MaxPayloadInMB"] == 6
    assert parameters["MaxConcurrentTransforms"] >= 1
    assert xgboost_server.request("GET", "/nothing")[0] == 404
    assert xgboost_server.request("GET", "/invocations")[0] == 405


def test_payloads_over_the_limit_are_413(xgboost_model_dir):
    server = Server(xgboost_model_dir, {"OPENMAKER_ALGORITHM": "xgboost",
                                        "MAX_CONTENT_LENGTH": "100"})
    try:
        status, body, _ = server.invoke(b"0.9,0.1,0.2,0.3\n" * 10)
        assert status == 413 and "limit is 100 bytes" in json.loads(body)["error"]
        assert server.invoke(b"0.9,0.1,0.2,0.3\n")[0] == 200
    finally:
        server.stop()


def test_several_workers_share_the_port(xgboost_model_dir):
    server = Server(xgboost_model_dir, {"OPENMAKER_ALGORITHM": "xgboost",
                                        "SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    try:
        for _ in range(4):
            assert server.invoke(b"0.9,0.1,0.2,0.3")[0] == 200
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_latency_of_a_one_row_csv_request(xgboost_server):
    """Not an assertion: prints the per-request latency over one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", xgboost_server.port)
    headers = {"Content-Type": "text/csv"}
    timings = []
    for _ in range(300):
        start = time.perf_counter()
        connection.request("POST", "/invocations", b"0.9,0.1,0.2,0.3", headers)
        connection.getresponse().read()
        timings.append(time.perf_counter() - start)
    connection.close()
    timings = sorted(timings[50:])
    print(f"\n1-row csv: p50 {timings[len(timings) // 2] * 1e6:.0f} us, "
          f"p99 {timings[int(len(timings) * 0.99)] * 1e6:.0f} us")


# -- user inference code ----------------------------------------------------------------
HANDLERS = """
import json, os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type, context):
    assert isinstance(body, str)  # application/json arrives decoded
    if content_type != "application/json":
        raise ValueError("only JSON, please")
    input_fn.attributes = context.custom_attributes
    return np.array(json.loads(body)["rows"])

def predict_fn(data, model):
    if data.shape[1] != 2:
        raise RuntimeError("two columns expected")
    return model.predict(data)

def output_fn(prediction, accept):
    document = {"predictions": prediction.tolist(), "attributes": input_fn.attributes}
    return json.dumps(document), "application/vnd.result+json"
"""


def test_user_handlers_answer_with_their_content_type(sklearn_model_dir, tmp_path):
    server = Server(with_code(sklearn_model_dir, tmp_path, HANDLERS), {})
    try:
        status, body, content_type = server.invoke(
            json.dumps({"rows": [[1, 2]]}).encode(), "application/json",
            **{"X-Amzn-SageMaker-Custom-Attributes": "trace=1"})
        assert (status, content_type) == (200, "application/vnd.result+json")
        document = json.loads(body)
        assert document["predictions"] == pytest.approx([4.0])
        assert document["attributes"] == "trace=1"
        # an exception in user code: 500 with the traceback's last line, still up
        status, body, _ = server.invoke(json.dumps({"rows": [[1, 2, 3]]}).encode(),
                                        "application/json")
        assert (status, json.loads(body)) == (500, {"error": "RuntimeError: two columns "
                                                             "expected"})
        assert server.invoke(b"1,2", "text/csv")[0] == 500
        assert server.invoke(json.dumps({"rows": [[0, 0]]}).encode(), "application/json")[0] \
            == 200
    finally:
        server.stop()


TRANSFORM = """
import numpy as np

def model_fn(model_dir):
    import joblib
    return joblib.load(model_dir + "/model.joblib")

def transform_fn(model, body, content_type, accept):
    rows = np.atleast_2d(np.loadtxt(body.splitlines(), delimiter=","))
    return ",".join(f"{value:.1f}" for value in model.predict(rows))
"""


def test_transform_fn_replaces_the_three_handlers(sklearn_model_dir, tmp_path):
    model_dir = with_code(sklearn_model_dir, tmp_path, TRANSFORM, "serve.py")
    server = Server(model_dir, {"SAGEMAKER_PROGRAM": "serve.py",
                                "SAGEMAKER_SUBMIT_DIRECTORY": str(model_dir / "code"),
                                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    try:
        status, body, content_type = server.invoke(b"1,2\n3,0", "text/csv")
        assert (status, body, content_type) == (200, b"4.0,6.0", "text/csv")
    finally:
        server.stop()


def test_default_handlers_serve_model_joblib_without_inference_code(sklearn_model_dir):
    server = Server(sklearn_model_dir, {"OPENMAKER_FRAMEWORK": "sklearn"})
    try:
        status, body, content_type = server.invoke(b"[[1, 2], [3, 0]]", "application/json")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(body) == pytest.approx([4.0, 6.0])
        status, body, content_type = server.invoke(b"1,2\n", "text/csv", "text/csv")
        assert (status, content_type) == (200, "text/csv") and float(body) == pytest.approx(4.0)
        stream = io.BytesIO()
        np.save(stream, np.array([[3.0, 0.0]]))
        status, body, content_type = server.invoke(stream.getvalue(), "application/x-npy",
                                                   "application/x-npy")
        assert (status, content_type) == (200, "application/x-npy")
        assert np.load(io.BytesIO(body)).tolist() == pytest.approx([6.0])
        assert server.invoke(b"x", "image/png")[0] == 415
        assert server.invoke(b"[[1, 2]]", "application/json", "image/png")[0] == 406
    finally:
        server.stop()


SLOW_THEN_BROKEN = """
import time

def model_fn(model_dir):
    time.sleep(1.5)
    raise RuntimeError("weights are corrupt")
"""


def test_a_model_that_fails_to_load_pings_503_then_exits_with_the_reason(sklearn_model_dir,
                                                                          tmp_path):
    server = Server(with_code(sklearn_model_dir, tmp_path, SLOW_THEN_BROKEN), {}, wait=False)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body, _ = server.request("GET", "/ping")
                break
            except ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert status == 503 and json.loads(body)["error"] == "the model is loading"
        assert server.process.wait(30) == 1
        stderr = server.process.stderr.read()
        assert "Traceback" in stderr
        assert stderr.strip().splitlines()[-1] == \
            "openmaker-model-server failed: RuntimeError: weights are corrupt"
        assert server.process.stdout.read() == ""
    finally:
        server.stop()


def test_transform_fn_with_input_fn_is_refused_at_load(sklearn_model_dir, tmp_path):
    source = TRANSFORM + "\ndef input_fn(body, content_type):\n    return body\n"
    server = Server(with_code(sklearn_model_dir, tmp_path, source), {}, wait=False)
    try:
        assert server.process.wait(30) == 1
        assert "define either transform_fn or input_fn" in server.process.stderr.read()
    finally:
        server.stop()


# -- model archives ---------------------------------------------------------------------
def test_model_archives_are_extracted_refusing_escaping_members(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        for name, data in (("xgboost-model", b"m"), ("code/inference.py", b"x = 1\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    extract_model_archive(good, tmp_path / "model")
    assert (tmp_path / "model" / "code" / "inference.py").read_bytes() == b"x = 1\n"
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("../../escape"), io.BytesIO(b""))
    with pytest.raises(ValueError, match="'../../escape' would be extracted outside"):
        extract_model_archive(bad, tmp_path / "other")
