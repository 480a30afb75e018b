"""``openmaker.Session`` against real servers on loopback: finding the server (by URL, by
``OPENMAKER_URL``, on the home, or by starting one), the storage helpers, and the boto3
clients it hands out."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.conftest import TREE, write_tree

import openmaker
from openmaker import ServerStartError, Session, StorageEntry


@pytest.fixture
def environment(monkeypatch, tmp_path) -> Path:
    """No OPENMAKER_*/AWS_* variables from the test process; a fresh, empty home. Returns it."""
    for name in list(os.environ):
        if name.startswith(("OPENMAKER_", "AWS_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("OPENMAKER_HOME", str(home))
    return home


@pytest.fixture
def session(server, environment) -> Session:
    return Session(server.url)


@pytest.fixture
def bucket(session) -> str:
    name = f"sdk-{uuid.uuid4().hex[:12]}"
    session.make_bucket(name)
    return name


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- finding the server ---------------------------------------------------------------------
def test_session_uses_the_url_it_is_given(server, environment):
    session = Session(server.url + "/")
    assert session.url == server.url
    assert not session.started_server
    assert session.account_id == "000000000000"


@pytest.mark.parametrize("variable", ["OPENMAKER_URL", "AWS_ENDPOINT_URL"])
def test_session_reads_the_url_from_the_environment(server, environment, monkeypatch,
                                                    variable):
    monkeypatch.setenv(variable, server.url)
    session = Session()
    assert session.url == server.url
    assert not session.started_server
    assert not (environment / "server.json").exists()
    assert isinstance(session.s3.list_buckets()["Buckets"], list)


def test_session_finds_the_server_running_on_its_home(server, environment):
    session = Session(home=server.home, start_server=False)
    assert session.url == server.url
    assert not session.started_server


def test_session_without_a_server_and_start_server_false_raises(environment):
    with pytest.raises(ServerStartError, match="OPENMAKER_URL"):
        Session(start_server=False)
    assert not (environment / "server.json").exists()


def _stop_background_server(pid: int) -> None:
    """SIGTERM a server this process started detached, and reap it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        except ChildProcessError:  # reaped already, or not our child
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def background_home(environment, monkeypatch):
    """A fresh home; whatever server a Session starts on it is stopped at the end."""
    monkeypatch.setenv("OPENMAKER_PORT", "0")  # never take the default port from a real one
    yield environment
    info_path = environment / "server.json"
    if info_path.exists():
        _stop_background_server(json.loads(info_path.read_text())["pid"])


def test_session_starts_a_background_server_and_the_next_session_reuses_it(
        background_home, capsys):
    first = Session()
    announced = capsys.readouterr().err
    assert first.started_server
    assert f"started a server at {first.url}" in announced
    assert str(background_home.resolve()) in announced

    info = json.loads((background_home / "server.json").read_text())
    assert info["url"] == first.url
    os.kill(info["pid"], 0)  # alive
    assert info["pid"] != os.getpid()
    assert first.account_id == "000000000000"
    assert (background_home / "logs" / "server.log").exists()

    second = Session()
    assert second.url == first.url
    assert not second.started_server
    assert capsys.readouterr().err == ""
    assert json.loads((background_home / "server.json").read_text())["pid"] == info["pid"]
    second.make_bucket("shared-by-both")
    assert "shared-by-both" in {b["Name"] for b in first.s3.list_buckets()["Buckets"]}


def test_concurrent_sessions_on_a_fresh_home_share_one_server(background_home, capsys):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        sessions = list(pool.map(lambda _: Session(), range(3)))
    assert len({s.url for s in sessions}) == 1
    assert sum(s.started_server for s in sessions) == 1


def test_background_server_stops_on_sigterm_and_removes_its_record(background_home, capsys):
    Session()
    pid = json.loads((background_home / "server.json").read_text())["pid"]
    _stop_background_server(pid)
    assert not (background_home / "server.json").exists()
    with pytest.raises(ServerStartError):
        Session(start_server=False)


# -- storage helpers ------------------------------------------------------------------------
def test_make_bucket_is_idempotent_with_exist_ok(session, bucket):
    session.make_bucket(bucket)
    session.make_bucket(bucket, exist_ok=True)
    with pytest.raises(ClientError) as raised:
        session.make_bucket(bucket, exist_ok=False)
    assert raised.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"


def test_upload_file_into_a_prefix_keeps_its_name(session, bucket, tmp_path):
    (tmp_path / "model.bin").write_bytes(b"weights")
    assert session.upload(tmp_path / "model.bin", f"s3://{bucket}/models/") == [
        f"s3://{bucket}/models/model.bin"]
    body = session.s3.get_object(Bucket=bucket, Key="models/model.bin")["Body"].read()
    assert body == b"weights"


def test_upload_file_to_an_explicit_key(session, bucket, tmp_path):
    (tmp_path / "model.bin").write_bytes(b"weights")
    assert session.upload(str(tmp_path / "model.bin"), f"s3://{bucket}/renamed") == [
        f"s3://{bucket}/renamed"]
    assert session.s3.head_object(Bucket=bucket, Key="renamed")["ContentLength"] == 7


def test_upload_of_a_missing_path_raises_file_not_found(session, bucket, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-file"):
        session.upload(tmp_path / "no-such-file", f"s3://{bucket}/")


def test_upload_directory_keeps_the_relative_layout(session, bucket, tmp_path):
    written = session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data")
    expected = {f"s3://{bucket}/data/{relative}" for relative in TREE}
    assert set(written) == expected
    assert {e.uri for e in session.list(f"s3://{bucket}/", recursive=True)} == expected
    for relative, data in TREE.items():
        assert session.s3.get_object(Bucket=bucket, Key=f"data/{relative}")["Body"].read() \
            == data


def test_list_rolls_deeper_keys_into_prefixes_unless_recursive(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    shallow = session.list(f"s3://{bucket}/data/")
    assert [(e.uri, e.is_prefix) for e in shallow] == [
        (f"s3://{bucket}/data/a.txt", False), (f"s3://{bucket}/data/sub/", True)]
    obj = shallow[0]
    assert isinstance(obj, StorageEntry)
    assert obj.size == len(TREE["a.txt"])
    assert obj.etag == f'"{hashlib.md5(TREE["a.txt"]).hexdigest()}"'
    assert obj.last_modified is not None

    deep = session.list(f"s3://{bucket}/data/", recursive=True)
    assert [e.uri for e in deep] == [f"s3://{bucket}/data/{r}" for r in sorted(TREE)]
    assert not any(e.is_prefix for e in deep)
    assert [e.uri for e in session.list(f"s3://{bucket}")] == [f"s3://{bucket}/data/"]


def test_list_of_s3_root_lists_buckets(session, bucket):
    buckets = session.list("s3://")
    assert f"s3://{bucket}/" in {e.uri for e in buckets}
    assert all(e.is_prefix for e in buckets)


def test_download_one_object_into_a_directory(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    target = tmp_path / "out"
    target.mkdir()
    assert session.download(f"s3://{bucket}/data/sub/b.txt", target) == [target / "b.txt"]
    assert (target / "b.txt").read_bytes() == TREE["sub/b.txt"]


def test_download_one_object_to_a_file_path(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    target = tmp_path / "new" / "dir" / "renamed.bin"
    assert session.download(f"s3://{bucket}/data/sub/deeper/c.bin", target) == [target]
    assert target.read_bytes() == TREE["sub/deeper/c.bin"]


def test_download_prefix_recursively_keeps_the_layout(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    session.s3.put_object(Bucket=bucket, Key="database.csv", Body=b"not under data/")
    target = tmp_path / "copy"
    written = session.download(f"s3://{bucket}/data", target, recursive=True)
    assert sorted(written) == sorted(target / r for r in TREE)
    assert read_tree(target) == TREE


def test_remove_one_object(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    assert session.remove(f"s3://{bucket}/data/a.txt") == [f"s3://{bucket}/data/a.txt"]
    assert {e.uri for e in session.list(f"s3://{bucket}/", recursive=True)} == {
        f"s3://{bucket}/data/sub/b.txt", f"s3://{bucket}/data/sub/deeper/c.bin"}


def test_remove_recursive_deletes_the_folder_and_nothing_beside_it(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    session.s3.put_object(Bucket=bucket, Key="database.csv", Body=b"keep me")
    removed = session.remove(f"s3://{bucket}/data", recursive=True)
    assert set(removed) == {f"s3://{bucket}/data/{r}" for r in TREE}
    assert [e.uri for e in session.list(f"s3://{bucket}/", recursive=True)] == [
        f"s3://{bucket}/database.csv"]


def test_remove_recursive_of_a_bucket_empties_it(session, bucket, tmp_path):
    session.upload(write_tree(tmp_path / "tree"), f"s3://{bucket}/data/")
    session.s3.put_object(Bucket=bucket, Key="top.txt", Body=b"x")
    assert len(session.remove(f"s3://{bucket}/", recursive=True)) == len(TREE) + 1
    assert session.list(f"s3://{bucket}/", recursive=True) == []
    session.s3.delete_bucket(Bucket=bucket)


def test_large_upload_goes_through_multipart(session, bucket, tmp_path):
    data = os.urandom(20 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(data)
    session.upload(tmp_path / "big.bin", f"s3://{bucket}/big.bin")
    etag = session.s3.head_object(Bucket=bucket, Key="big.bin")["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}-\d+"', etag), etag
    session.download(f"s3://{bucket}/big.bin", tmp_path / "back.bin")
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).digest() == \
        hashlib.sha256(data).digest()


# -- clients --------------------------------------------------------------------------------
def test_sagemaker_client_lists_training_jobs(session):
    assert isinstance(session.sagemaker.list_training_jobs()["TrainingJobSummaries"], list)


def test_clients_are_cached_and_bound_to_the_server(session, server):
    assert session.client("s3") is session.s3
    assert session.sagemaker.meta.endpoint_url == server.url
    assert session.sts.meta.region_name == "us-east-1"


def test_account_id_comes_from_the_server(session):
    assert session.account_id == "000000000000"


def test_session_signs_with_the_key_configured_on_its_home(auth_server, environment,
                                                           monkeypatch):
    from tests.conftest import TEST_KEY_ID, TEST_SECRET

    monkeypatch.setenv("OPENMAKER_ACCESS_KEY_ID", TEST_KEY_ID)
    monkeypatch.setenv("OPENMAKER_SECRET_ACCESS_KEY", TEST_SECRET)
    assert Session(auth_server.url).account_id == "000000000000"


# -- the package's public surface -----------------------------------------------------------
def test_package_exports_exactly_the_sdk_names():
    from openmaker import sdk

    assert sorted(openmaker.__all__) == sorted([*sdk.__all__, "__version__"]) == [
        "BytesDeserializer", "CSVDeserializer", "CSVSerializer", "CategoricalParameter",
        "ContinuousParameter", "EndpointDeploymentError", "Estimator", "HyperparameterTuner",
        "HyperparameterTuningJobAnalytics", "IdentitySerializer", "IntegerParameter",
        "JSONDeserializer", "JSONLinesDeserializer", "JSONLinesSerializer", "JSONSerializer",
        "Model", "NumpyDeserializer", "NumpySerializer", "Predictor", "ProcessingInput",
        "ProcessingJobFailedError", "ProcessingOutput", "Processor", "RecordDeserializer",
        "RecordSerializer", "ScriptProcessor", "ServerStartError", "Session", "StorageEntry",
        "StringDeserializer", "TrainingInput", "TrainingJobAnalytics",
        "TrainingJobFailedError", "TransformJobFailedError", "Transformer",
        "TuningJobFailedError", "WarmStartConfig", "WarmStartTypes", "__version__"]
    for name in sdk.__all__:
        assert getattr(openmaker, name) is getattr(sdk, name)
    with pytest.raises(AttributeError):
        _ = openmaker.NoSuchName


def test_import_openmaker_does_not_import_boto3():
    probe = ("import sys, openmaker\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('boto3', 'botocore', 'uvicorn', 'sqlalchemy')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
