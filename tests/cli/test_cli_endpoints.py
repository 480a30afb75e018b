"""``openmaker endpoints`` and ``openmaker invoke`` run as real subprocesses against a real
server with a deployed built-in XGBoost endpoint: list, describe (JSON, then the last
hour's metrics from CloudWatch), invoke (text, @file, stdin, accept, target variant),
delete, and clean failures."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xgboost
from tests.conftest import clean_environment, start_server

from openmaker import Model, Session
from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.hosting.metrics import flush_endpoint_metrics, record_instance_usage

XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
BUCKET = "cli-endpoint-models"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A server with one endpoint serving a booster, and the booster."""
    running = start_server(tmp_path_factory.mktemp("cli-endpoints-home"))
    session = Session(running.url, home=tmp_path_factory.mktemp("cli-endpoints-client"))
    session.make_bucket(BUCKET)
    rng = np.random.default_rng(1)
    features = rng.normal(size=(100, 3)).astype(np.float32)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2},
                            xgboost.DMatrix(features, label=features[:, 0] > 0), 5)
    raw = bytes(booster.save_raw(raw_format="ubj"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    session.s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=buffer.getvalue())
    model = Model(XGBOOST_IMAGE, model_data=f"s3://{BUCKET}/model.tar.gz", session=session,
                  name="cli-xgb")
    model.deploy(endpoint_name="cli-xgb", variant_name="blue")
    yield running, session, booster
    running.stop()


def openmaker(server, *args: str, stdin: str | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "openmaker", *args],
        env=clean_environment({"OPENMAKER_URL": server.url}), capture_output=True, text=True,
        timeout=timeout, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout
    for fragment in fragments:
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def expected_scores(booster, rows: list[list[float]]) -> np.ndarray:
    return booster.predict(xgboost.DMatrix(np.array(rows, dtype=np.float32)))


def test_list_and_describe(deployed):
    server, *_ = deployed
    listing = openmaker(server, "endpoints", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "CREATED"]
    row = next(line for line in lines if line.startswith("cli-xgb "))
    assert row.split()[1] == "InService"

    described = openmaker(server, "endpoints", "describe", "cli-xgb")
    assert described.returncode == 0, described.stderr
    endpoint = json.loads(described.stdout)
    assert endpoint["EndpointName"] == "cli-xgb"
    assert endpoint["ProductionVariants"][0]["VariantName"] == "blue"


def test_describe_shows_the_last_hour_of_each_variant(deployed):
    server, *_ = deployed
    for _ in range(3):
        assert openmaker(server, "invoke", "cli-xgb", "--body", "0.5,0.1,-0.2").returncode == 0
    writer = Platform(load_settings(home=server.home))  # as the fleet's monitor would
    try:
        when = datetime.now(UTC) - timedelta(minutes=5)
        for cpu, memory in ((150.0, 10.0), (50.0, 15.0)):  # two instances, one sample
            record_instance_usage(writer, "cli-xgb", "blue", cpu_percent=cpu,
                                  memory_percent=memory, disk_percent=None, when=when)
        flush_endpoint_metrics(writer)
    finally:
        writer.close()

    described = openmaker(server, "endpoints", "describe", "cli-xgb")
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["EndpointName"] == "cli-xgb"  # the JSON alone
    lines = described.stderr.splitlines()
    header = next(line for line in lines if line.startswith("VARIANT"))
    assert header.split() == ["VARIANT", "INVOCATIONS", "4XX", "5XX", "P50_MS", "P99_MS",
                              "CPU%", "MEM%"]
    row = dict(zip(header.split(), next(line for line in lines
                                        if line.startswith("blue ")).split(), strict=True))
    assert int(row["INVOCATIONS"]) >= 3
    assert row["5XX"] == "0"
    assert 0 < float(row["P50_MS"]) <= float(row["P99_MS"])
    # the injected samples, averaged with the ones the fleet's monitor took itself
    assert float(row["CPU%"]) > 0 and float(row["MEM%"]) > 0

    plain = openmaker(server, "endpoints", "describe", "cli-xgb", "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == json.loads(described.stdout)
    assert plain.stderr == ""


def test_invoke_prints_the_body_and_the_variant(deployed, tmp_path):
    server, _, booster = deployed
    answer = openmaker(server, "invoke", "cli-xgb", "--body", "0.5,0.1,-0.2\n-1,0,0",
                       "--content-type", "text/csv")
    assert answer.returncode == 0, answer.stderr
    scores = [float(line) for line in answer.stdout.split()]
    assert np.allclose(scores, expected_scores(booster, [[0.5, 0.1, -0.2], [-1, 0, 0]]),
                       atol=1e-6)
    assert "blue" in answer.stderr

    (tmp_path / "request.json").write_text(json.dumps({"instances": [[0.5, 0.1, -0.2]]}))
    from_file = openmaker(server, "invoke", "cli-xgb", "--body", f"@{tmp_path}/request.json",
                          "--content-type", "application/json", "--accept",
                          "application/json", "--target-variant", "blue")
    assert from_file.returncode == 0, from_file.stderr
    [prediction] = json.loads(from_file.stdout)["predictions"]
    assert prediction["score"] == pytest.approx(
        float(expected_scores(booster, [[0.5, 0.1, -0.2]])[0]), abs=1e-6)

    from_stdin = openmaker(server, "invoke", "cli-xgb", "--body", "@-", stdin="1,1,1\n")
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert float(from_stdin.stdout) == pytest.approx(
        float(expected_scores(booster, [[1, 1, 1]])[0]), abs=1e-6)


def test_invoke_failures_are_one_clean_line(deployed, tmp_path):
    server, *_ = deployed
    assert_clean_failure(openmaker(server, "invoke", "no-such-endpoint", "--body", "1,2,3"),
                         "ValidationError", "no-such-endpoint")
    assert_clean_failure(openmaker(server, "invoke", "cli-xgb", "--body", "1,2,3",
                                   "--target-variant", "green"), "TargetVariant")
    assert_clean_failure(openmaker(server, "invoke", "cli-xgb", "--body", "1,2"),
                         "ModelError")
    assert_clean_failure(openmaker(server, "invoke", "cli-xgb", "--body",
                                   f"@{tmp_path}/missing.csv"), "missing.csv")
    assert_clean_failure(openmaker(server, "endpoints", "describe", "no-such-endpoint"),
                         "ValidationException", "no-such-endpoint")


def test_delete_removes_the_endpoint(deployed):
    server, session, _ = deployed
    Model(XGBOOST_IMAGE, model_data=f"s3://{BUCKET}/model.tar.gz", session=session,
          name="cli-doomed").deploy(endpoint_name="cli-doomed")
    deleted = openmaker(server, "endpoints", "delete", "cli-doomed")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "deleted: cli-doomed"
    listing = openmaker(server, "endpoints", "list")
    assert "cli-doomed" not in listing.stdout
    assert_clean_failure(openmaker(server, "endpoints", "delete", "cli-doomed"),
                         "cli-doomed")
