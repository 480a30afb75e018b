"""Fixtures shared by the suite: real `openmaker server` processes on loopback, and boto3
clients bound to them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The SageMaker SDK reports usage to an AWS host unless its defaults config opts out; tests
# reach nothing outside loopback, so every test (and server, and job) runs opted out.
_SDK_CONFIG = Path(tempfile.mkdtemp(prefix="openmaker-sdk-config-")) / "config.yaml"
_SDK_CONFIG.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                       "      TelemetryOptOut: true\n")
os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(_SDK_CONFIG)
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # the SDK's v2 notice

TEST_KEY_ID = "AKIDOPENMAKERTEST"
TEST_SECRET = "openmaker-test-secret"
# a small directory tree for upload/download tests
TREE = {"a.txt": b"alpha\n", "sub/b.txt": b"bravo\n", "sub/deeper/c.bin": bytes(range(256))}


def write_tree(root: Path) -> Path:
    """Write TREE under ``root``."""
    for relative, data in TREE.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@dataclass
class RunningServer:
    url: str
    home: Path
    process: subprocess.Popen
    env: dict = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, service: str, key_id: str = "test", secret: str = "test",
               region: str = "us-east-1", **config):
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            service, endpoint_url=self.url, region_name=region, aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, **config),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def clean_environment(extra: dict | None = None) -> dict:
    """The test process's environment without settings that would redirect the server."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENMAKER_", "AWS_"))}
    env.update(extra or {})
    return env


def start_server(home: Path, env: dict | None = None, *args: str) -> RunningServer:
    from openmaker.api.server import read_server_info

    home.mkdir(parents=True, exist_ok=True)
    environment = clean_environment(env)
    log = open(home / "server-test.log", "ab")  # noqa: SIM115 - kept open for the process
    process = subprocess.Popen(
        [sys.executable, "-m", "openmaker", "server", "--home", str(home), "--port", "0", *args],
        stdout=log, stderr=log, env=environment,
    )
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = read_server_info(home)
        if info is not None and info["pid"] == process.pid:
            return RunningServer(info["url"], home, process, environment)
        if process.poll() is not None:
            raise RuntimeError((home / "server-test.log").read_text())
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("openmaker server did not start within 60 s")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> RunningServer:
    """A server with no access keys (accepts any credentials)."""
    running = start_server(tmp_path_factory.mktemp("home"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory) -> RunningServer:
    """A server that requires SigV4 signatures by TEST_KEY_ID."""
    running = start_server(
        tmp_path_factory.mktemp("auth-home"),
        {"OPENMAKER_ACCESS_KEY_ID": TEST_KEY_ID, "OPENMAKER_SECRET_ACCESS_KEY": TEST_SECRET},
    )
    yield running
    running.stop()


@pytest.fixture
def s3(server):
    return server.client("s3")


@pytest.fixture
def sagemaker(server):
    return server.client("sagemaker")


@pytest.fixture
def bucket(s3, request) -> str:
    """A fresh, empty bucket named after the test."""
    name = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + "-" + \
        format(abs(hash(request.node.nodeid)) % 10**6, "06d")
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    s3.create_bucket(Bucket=name)
    return name
