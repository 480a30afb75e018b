"""The ``openmaker`` command, run as a real subprocess: help, ``server``, ``storage`` against
a running server over loopback, and ``status``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from tests.conftest import (
    TEST_KEY_ID,
    TEST_SECRET,
    TREE,
    clean_environment,
    start_server,
    write_tree,
)

HEAVY_MODULES = ("boto3", "botocore", "uvicorn", "sqlalchemy")


def openmaker(*args: str, env: dict | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``python -m openmaker ARGS`` with a clean environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "openmaker", *args], env=clean_environment(env),
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, code: str) -> None:
    assert result.returncode == 1, result.stderr
    assert code in result.stderr
    assert "Traceback" not in result.stderr


# -- help -----------------------------------------------------------------------------------
def test_entry_point_help_lists_the_commands():
    entry_point = Path(sys.executable).with_name("openmaker")
    if not entry_point.exists():
        pytest.skip(f"no openmaker entry point next to {sys.executable}")
    result = subprocess.run([str(entry_point), "--help"], env=clean_environment(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("server", "storage", "status"):
        assert command in result.stdout


def test_module_help_and_version():
    help_result = openmaker("--help")
    assert help_result.returncode == 0
    assert "storage" in help_result.stdout
    version = openmaker("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("openmaker ")


def test_help_does_not_import_heavy_modules():
    """``--help`` stays fast because nothing heavy is imported to answer it."""
    probe = (
        "import json, sys\n"
        "import openmaker.cli.main as cli\n"
        "for argv in (['--help'], ['server', '--help'], ['storage', 'cp', '--help'],\n"
        "             ['status', '--help']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=clean_environment(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


# -- server ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_records_itself_answers_and_stops_cleanly_on(tmp_path, stop_signal):
    home = tmp_path / "home"
    running = start_server(home)
    try:
        info = json.loads((home / "server.json").read_text())
        assert info["pid"] == running.process.pid
        assert info["url"] == running.url
        assert Path(info["home"]) == home.resolve()
        assert running.client("sts").get_caller_identity()["Account"] == "000000000000"
        assert running.client("s3").list_buckets()["Buckets"] == []
    finally:
        returncode = running.stop(stop_signal, timeout=10)
    assert returncode == 0
    assert not (home / "server.json").exists()


def test_second_server_on_a_port_in_use_exits_with_a_clear_message(server, tmp_path):
    result = openmaker("server", "--home", str(tmp_path / "home"), "--port", str(server.port))
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "server.json").exists()


def test_second_server_on_a_home_with_a_running_server_is_refused(server):
    result = openmaker("server", "--home", str(server.home), "--port", "0")
    assert result.returncode == 2
    assert f"already running on home {server.home}" in result.stderr
    assert json.loads((server.home / "server.json").read_text())["pid"] == server.process.pid


def test_storage_cp_of_a_directory_needs_recursive(storage_env, tmp_path):
    tree = write_tree(tmp_path / "tree")
    result = openmaker("storage", "cp", str(tree), "s3://no-matter/x/", env=storage_env)
    assert result.returncode == 2 and "--recursive" in result.stderr


def test_server_without_keys_refuses_a_non_loopback_host(tmp_path):
    result = openmaker("server", "--home", str(tmp_path / "home"), "--host", "0.0.0.0",
                       "--port", "0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without access keys" in result.stderr
    assert "OPENMAKER_ACCESS_KEY_ID" in result.stderr  # says how to fix it
    assert not (tmp_path / "home" / "server.json").exists()


def test_server_with_keys_may_listen_on_every_address(tmp_path):
    keys = {"OPENMAKER_ACCESS_KEY_ID": TEST_KEY_ID, "OPENMAKER_SECRET_ACCESS_KEY": TEST_SECRET}
    running = start_server(tmp_path / "home", keys, "--host", "0.0.0.0")
    try:
        assert running.url.startswith("http://127.0.0.1:")
        identity = running.client("sts", key_id=TEST_KEY_ID, secret=TEST_SECRET)
        assert identity.get_caller_identity()["Account"] == "000000000000"
    finally:
        assert running.stop(timeout=10) == 0


# -- storage --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage_env(server, tmp_path_factory) -> dict:
    """Environment for `openmaker storage` bound to the shared server."""
    return {"OPENMAKER_URL": server.url,
            "OPENMAKER_HOME": str(tmp_path_factory.mktemp("cli-home"))}


@pytest.fixture(scope="module")
def uploaded(storage_env, server, tmp_path_factory) -> str:
    """A bucket made by `storage mb`, holding TREE under data/ uploaded by `storage cp -r`;
    the tests that use it only read it."""
    name = f"cli-uploaded-{uuid.uuid4().hex[:8]}"
    made = openmaker("storage", "mb", f"s3://{name}", env=storage_env)
    assert made.returncode == 0, made.stderr
    assert f"make_bucket: s3://{name}" in made.stdout
    tree = write_tree(tmp_path_factory.mktemp("tree"))
    result = openmaker("storage", "cp", str(tree), f"s3://{name}/data/", "--recursive",
                       env=storage_env)
    assert result.returncode == 0, result.stderr
    return name


@pytest.fixture
def scratch(s3) -> str:
    """A new bucket holding TREE under data/ (put with boto3), for tests that change it."""
    name = f"cli-scratch-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    for relative, data in TREE.items():
        s3.put_object(Bucket=name, Key=f"data/{relative}", Body=data)
    return name


def keys_in(s3, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_storage_mb_makes_a_bucket_and_refuses_an_existing_one(uploaded, storage_env, s3):
    s3.head_bucket(Bucket=uploaded)  # made by `storage mb` in the fixture
    assert_clean_failure(openmaker("storage", "mb", f"s3://{uploaded}", env=storage_env),
                         "BucketAlreadyOwnedByYou")


def test_storage_cp_recursive_uploads_nested_files(uploaded, s3):
    assert keys_in(s3, uploaded) == {f"data/{relative}" for relative in TREE}
    for relative, data in TREE.items():
        assert s3.get_object(Bucket=uploaded, Key=f"data/{relative}")["Body"].read() == data


def test_storage_ls_rolls_deeper_keys_into_pre_lines(uploaded, storage_env):
    result = openmaker("storage", "ls", f"s3://{uploaded}/data/", env=storage_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"{len(TREE['a.txt'])} s3://{uploaded}/data/a.txt")
    assert lines[1].split() == ["PRE", f"s3://{uploaded}/data/sub/"]


def test_storage_ls_recursive_shows_every_key(uploaded, storage_env):
    result = openmaker("storage", "ls", f"s3://{uploaded}/", "-r", env=storage_env)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[-1]: int(line.split()[-2]) for line in result.stdout.splitlines()}
    assert listed == {f"s3://{uploaded}/data/{relative}": len(data)
                      for relative, data in TREE.items()}
    assert "PRE" not in result.stdout


def test_storage_ls_without_uri_lists_buckets(uploaded, storage_env):
    result = openmaker("storage", "ls", env=storage_env)
    assert result.returncode == 0, result.stderr
    assert f"PRE s3://{uploaded}/" in " ".join(result.stdout.split())


def test_storage_cp_recursive_downloads_into_a_new_directory(uploaded, storage_env, tmp_path):
    target = tmp_path / "fresh" / "copy"
    result = openmaker("storage", "cp", f"s3://{uploaded}/data/", str(target), "-r",
                       env=storage_env)
    assert result.returncode == 0, result.stderr
    written = {p.relative_to(target).as_posix(): p.read_bytes()
               for p in target.rglob("*") if p.is_file()}
    assert written == TREE


def test_storage_cp_downloads_one_object_into_a_directory(uploaded, storage_env, tmp_path):
    result = openmaker("storage", "cp", f"s3://{uploaded}/data/sub/b.txt", f"{tmp_path}/",
                       env=storage_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "b.txt").read_bytes() == TREE["sub/b.txt"]


def test_storage_cp_copies_one_object_between_s3_uris(scratch, storage_env, s3):
    result = openmaker("storage", "cp", f"s3://{scratch}/data/a.txt",
                       f"s3://{scratch}/copied/renamed.txt", env=storage_env)
    assert result.returncode == 0, result.stderr
    body = s3.get_object(Bucket=scratch, Key="copied/renamed.txt")["Body"].read()
    assert body == TREE["a.txt"]


def test_storage_cp_into_an_s3_folder_keeps_the_object_name(scratch, storage_env, s3):
    result = openmaker("storage", "cp", f"s3://{scratch}/data/a.txt",
                       f"s3://{scratch}/folder/", env=storage_env)
    assert result.returncode == 0, result.stderr
    assert keys_in(s3, scratch) >= {"folder/a.txt"}
    assert "folder/" not in keys_in(s3, scratch)


def test_storage_cp_recursive_copies_a_prefix_between_s3_uris(scratch, storage_env, s3):
    result = openmaker("storage", "cp", f"s3://{scratch}/data", f"s3://{scratch}/backup/",
                       "--recursive", env=storage_env)
    assert result.returncode == 0, result.stderr
    for relative, data in TREE.items():
        assert s3.get_object(Bucket=scratch, Key=f"backup/{relative}")["Body"].read() == data


def test_storage_rm_recursive_removes_everything_then_rb_removes_the_bucket(
        scratch, storage_env, s3):
    assert_clean_failure(openmaker("storage", "rb", f"s3://{scratch}", env=storage_env),
                         "BucketNotEmpty")
    removed = openmaker("storage", "rm", f"s3://{scratch}/", "-r", env=storage_env)
    assert removed.returncode == 0, removed.stderr
    assert len(removed.stdout.splitlines()) == len(TREE)
    assert keys_in(s3, scratch) == set()
    dropped = openmaker("storage", "rb", f"s3://{scratch}", env=storage_env)
    assert dropped.returncode == 0, dropped.stderr
    assert scratch not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_storage_rm_removes_one_object(scratch, storage_env, s3):
    result = openmaker("storage", "rm", f"s3://{scratch}/data/a.txt", env=storage_env)
    assert result.returncode == 0, result.stderr
    assert keys_in(s3, scratch) == {"data/sub/b.txt", "data/sub/deeper/c.bin"}


def test_storage_ls_of_a_missing_bucket_fails_with_the_aws_code(storage_env):
    assert_clean_failure(openmaker("storage", "ls", "s3://no-such-bucket/", env=storage_env),
                         "NoSuchBucket")


def test_storage_upload_to_a_missing_bucket_fails_with_the_aws_code(storage_env, tmp_path):
    (tmp_path / "a.txt").write_bytes(TREE["a.txt"])
    result = openmaker("storage", "cp", str(tmp_path / "a.txt"), "s3://no-such-bucket/a.txt",
                       env=storage_env)
    assert_clean_failure(result, "NoSuchBucket")


def test_storage_with_a_malformed_uri_says_what_an_s3_uri_is(storage_env):
    assert_clean_failure(openmaker("storage", "ls", "s3:/bucket", env=storage_env),
                         "expected s3://<bucket>/<key>")


# -- status ---------------------------------------------------------------------------------
def test_status_without_a_server_says_not_running_and_names_the_home(tmp_path):
    home = tmp_path / "idle-home"
    result = openmaker("status", "--home", str(home))
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stdout
    assert str(home.resolve()) in result.stdout
    assert f"sqlite:///{home.resolve() / 'metadata.db'}" in result.stdout


def test_status_reads_the_home_from_openmaker_home(tmp_path):
    home = tmp_path / "env-home"
    result = openmaker("status", "--json", env={"OPENMAKER_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["home"] == str(home.resolve())
    assert status["server"] is None
    assert status["config_file"] is None


def test_status_shows_the_running_server(server):
    result = openmaker("status", "--home", str(server.home))
    assert result.returncode == 0, result.stderr
    assert f"running at {server.url} (pid {server.process.pid})" in result.stdout


def test_status_json_parses_and_names_the_running_server(server):
    result = openmaker("status", "--home", str(server.home), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["server"] == {"url": server.url, "pid": server.process.pid}
    assert status["home"] == str(server.home.resolve())
    assert status["auth"].startswith("none")
    with urllib.request.urlopen(status["server"]["url"] + "/", timeout=10) as response:
        assert response.status == 200  # the URL status reports is the one that answers


def test_status_with_a_bad_config_exits_2_naming_the_setting(tmp_path):
    result = openmaker("status", "--home", str(tmp_path), env={"OPENMAKER_PORT": "abc"})
    assert result.returncode == 2
    assert "OPENMAKER_PORT" in result.stderr
    assert "Traceback" not in result.stderr
