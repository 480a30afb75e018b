"""Running built-in algorithm instances for real: an ``opt/ml`` tree per instance laid out by
the training contract, channels delivered from a local object store in File, Pipe or
FastFile mode, and ``python -m openmaker.algorithms <name>`` as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from openmaker.storage.local import LocalObjectStore
from openmaker.training.channels import deliver_channel
from openmaker.training.contract import InstanceLayout, training_environment, write_config

BUCKET = "data"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/algo-test"
RUN_TIMEOUT = 180


@dataclass
class Channel:
    """One channel of a test job: its objects (key under the channel -> bytes)."""

    objects: Mapping[str, bytes]
    content_type: str | None = None
    input_mode: str | None = None
    distribution: str = "FullyReplicated"
    record_wrapper: str | None = None


@dataclass
class Result:
    layouts: list[InstanceLayout]
    returncodes: list[int]
    outputs: list[str]
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> InstanceLayout:
        return self.layouts[0]

    @property
    def returncode(self) -> int:
        return self.returncodes[0]

    @property
    def output(self) -> str:
        return self.outputs[0]

    @property
    def model_dir(self) -> Path:
        return self.layout.model_dir

    def failure(self, index: int = 0) -> str | None:
        path = self.layouts[index].failure_file
        return path.read_text() if path.is_file() else None

    def check(self) -> Result:
        for code, output, index in zip(self.returncodes, self.outputs,
                                       range(len(self.layouts)), strict=True):
            assert code == 0, f"instance {index + 1} failed ({code}): {self.failure(index)}\n" \
                              f"{output[-3000:]}"
        return self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JobRunner:
    """Lays out and runs a training job's instances under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = LocalObjectStore(tmp_path / "storage", fsync=False)
        self.store.create_bucket(BUCKET)
        self.jobs = 0

    def close(self) -> None:
        self.store.close()

    def request(self, channels: Mapping[str, Channel], hyperparameters: Mapping[str, str],
                input_mode: str, instance_count: int, name: str) -> dict[str, Any]:
        config = []
        for channel_name, channel in channels.items():
            prefix = f"{name}/{channel_name}/"
            for key, body in channel.objects.items():
                self.store.put_object(BUCKET, prefix + key, body)
            entry: dict[str, Any] = {
                "ChannelName": channel_name,
                "DataSource": {"S3DataSource": {
                    "S3Uri": f"s3://{BUCKET}/{prefix}", "S3DataType": "S3Prefix",
                    "S3DataDistributionType": channel.distribution}},
            }
            if channel.content_type:
                entry["ContentType"] = channel.content_type
            if channel.input_mode:
                entry["InputMode"] = channel.input_mode
            if channel.record_wrapper:
                entry["RecordWrapperType"] = channel.record_wrapper
            config.append(entry)
        return {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingImage": "xgboost",
                                       "TrainingInputMode": input_mode},
            "HyperParameters": dict(hyperparameters),
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": instance_count,
                               "VolumeSizeInGB": 1},
            "InputDataConfig": config,
        }

    def run(self, algorithm: str, channels: Mapping[str, Channel],
            hyperparameters: Mapping[str, str], *, input_mode: str = "File",
            instance_count: int = 1, checkpoint_dir: Path | None = None,
            work_dir: Path | None = None, extra_env: Mapping[str, str] | None = None,
            timeout: float = RUN_TIMEOUT) -> Result:
        self.jobs += 1
        name = f"job-{self.jobs}"
        request = self.request(channels, hyperparameters, input_mode, instance_count, name)
        work = work_dir or self.tmp_path / "work" / name
        layouts = [InstanceLayout(work, index) for index in range(1, instance_count + 1)]
        env_extra = dict(extra_env or {})
        if instance_count > 1:
            env_extra.setdefault("MASTER_ADDR", "127.0.0.1")
            env_extra.setdefault("MASTER_PORT", str(free_port()))
        processes = []
        with contextlib.ExitStack() as stack:
            for layout in layouts:
                layout.create(channels)
                write_config(layout, request)
                if checkpoint_dir is not None:
                    (layout.input_config_dir / "checkpointconfig.json").write_text(json.dumps(
                        {"LocalPath": str(checkpoint_dir), "S3Uri": "s3://data/checkpoints"}))
                for entry in request["InputDataConfig"]:
                    delivered = deliver_channel(self.store, entry, layout,
                                                instance_count=instance_count,
                                                job_input_mode=input_mode)
                    if delivered is not None:
                        stack.callback(delivered.stop)
                env = training_environment(layout, request, job_arn=ARN)
                env.update(env_extra)
                env["PATH"] = os.environ.get("PATH", "")
                env["PYTHONWARNINGS"] = "error::DeprecationWarning:openmaker"
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "openmaker.algorithms", algorithm],
                    cwd=layout.code_dir, env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, text=True))
            outputs, codes = [], []
            for process in processes:
                try:
                    output, _ = process.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    for other in processes:
                        other.kill()
                    partial = [other.communicate()[0] for other in processes]
                    raise AssertionError(f"instances still running after {timeout} s; their "
                                         f"output:\n" + "\n---\n".join(partial)) from None
                outputs.append(output)
                codes.append(process.returncode)
        return Result(layouts, codes, outputs, request)


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[JobRunner]:
    runner = JobRunner(tmp_path)
    yield runner
    runner.close()
