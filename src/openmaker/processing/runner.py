"""Runs one processing job out of process: lays out each instance's tree, delivers its
inputs, starts one process per instance on the compute backend with the job's command,
streams their output to CloudWatch Logs (``/aws/sagemaker/ProcessingJobs``, stream
``<job>/algo-<n>-<epoch seconds>``), uploads its outputs and moves its record through
``InProgress`` -> ``Completed`` | ``Failed`` | (``Stopping`` ->) ``Stopped``.

The command runs with a Python environment of its own (``work/<job>/python``: a virtual
environment that sees every package the server has, so ``pip install -r requirements.txt``
installs into the job only) whose ``bin`` is first on ``PATH`` and holds ``python``,
``python3``, ``pip``, ``pip3`` and ``smspark-submit``. Container paths reach the job's tree
as :mod:`openmaker.processing.contract` explains.

Stopping (StopProcessingJob or ``MaxRuntimeInSeconds``) sends SIGTERM to every process
group, then SIGKILL after ten seconds (the doc's SIGINT/SIGKILL wording is UNVERIFIED,
``reference/platform.md`` open question 9). A job past its ``MaxRuntimeInSeconds`` ends
``Stopped`` with a ``FailureReason`` saying so, as SageMaker documents that the job "is
stopped" when its stopping condition is met.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmaker.compute import (
    DEFAULT_STOP_GRACE_SECONDS,
    ComputeError,
    ProcessSpec,
    open_compute_backend,
)
from openmaker.compute.local import MINIMAL_PATH
from openmaker.core import errors
from openmaker.core.platform import Platform
from openmaker.core.resources import Record
from openmaker.processing.contract import (
    ProcessingLayout,
    command_line,
    exit_message,
    instance_count,
    script_to_translate,
    translate_argument,
    translate_script,
    write_config,
)
from openmaker.processing.images import processing_image
from openmaker.processing.inputs import deliver_input
from openmaker.processing.outputs import ContinuousUpload, s3_outputs, upload_outputs
from openmaker.training.requirements import create_job_environment
from openmaker.training.runner import (
    LOOPBACK,
    MAX_FAILURE_REASON,
    BackgroundJobRunner,
    exit_failure_reason,
)

log = logging.getLogger(__name__)

RESOURCE_TYPE = "processing-job"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
TAIL_LINES = 40
POLL_SECONDS = 0.2
TERMINAL = ("Completed", "Failed", "Stopped")
PATHMAP_DIR = Path(__file__).with_name("pathmap")


def now() -> datetime:
    return datetime.now(UTC)


def finish(record: Record, status: str) -> None:
    """Move ``record`` to the terminal ``status``."""
    when = now()
    record["ProcessingJobStatus"] = status
    record["ProcessingEndTime"] = when
    record["LastModifiedTime"] = when


class StopRequested(Exception):
    """StopProcessingJob arrived before the processes started."""


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def job_python_environment(env_dir: Path) -> Path:
    """Create the job's Python environment and the commands it puts on ``PATH``; its bin
    directory."""
    python = create_job_environment(env_dir)
    bin_dir = python.parent
    for name in ("pip", "pip3"):
        _write_executable(bin_dir / name, f'#!/bin/sh\nexec "{python}" -m pip "$@"\n')
    _write_executable(bin_dir / "smspark-submit",
                      f'#!/bin/sh\nexec "{python}" -m openmaker.processing.spark "$@"\n')
    return bin_dir


class ProcessingJobRunner(BackgroundJobRunner):
    """Runs one processing job in a background thread of the server process."""

    resource_type = RESOURCE_TYPE
    status_field = "ProcessingJobStatus"
    thread_prefix = "openmaker-process"

    def __init__(self, platform: Platform, job_name: str, *, server_url: str,
                 credentials: tuple[str, str], region: str,
                 on_done: Callable[[str], None] | None = None) -> None:
        super().__init__(platform, job_name)
        self.server_url = server_url
        self.credentials = credentials
        self.region = region
        self.on_done = on_done
        self._lock = threading.Lock()
        self._pending: dict[str, list[str]] = collections.defaultdict(list)
        self._tails: dict[str, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=TAIL_LINES))
        self._streams: dict[str, str] = {}
        self._failed_host: str | None = None  # the first host seen exiting non-zero

    # -- record -------------------------------------------------------------------------
    def _end(self, status: str, *, failure: str | None = None,
             message: str | None = None) -> None:
        def change(record: Record) -> None:
            if record["ProcessingJobStatus"] in TERMINAL:
                return
            finish(record, status)
            if failure is not None:
                record["FailureReason"] = failure[:MAX_FAILURE_REASON]
            if message:
                record["ExitMessage"] = message

        self._update(change)

    # -- the job ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._run_job()
        except StopRequested:
            self._end("Stopped")
        except Exception as exc:  # any fault must still end the job's lifecycle
            client = isinstance(exc, errors.AwsError) and exc.sender_fault
            if not client:
                log.exception("processing job %s failed", self.job_name)
            prefix = "ClientError" if client else "InternalServerError"
            text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._end("Failed", failure=f"{prefix}: {text}")
        finally:
            self._flush_logs()
            if self.on_done is not None:
                self.on_done(self.job_name)

    def _run_job(self) -> None:
        record = self.platform.resources.get(RESOURCE_TYPE, self.job_name).record
        image = processing_image(record["AppSpecification"]["ImageUri"])
        count = instance_count(record)
        work_dir = self.platform.settings.work_dir / self.job_name
        layouts = [ProcessingLayout(work_dir, index) for index in range(1, count + 1)]
        stamp = int(time.time())
        for layout in layouts:
            self._streams[layout.host] = f"{self.job_name}/{layout.host}-{stamp}"
        bin_dir = job_python_environment(work_dir / "python")
        pipes: list[Any] = []
        continuous: ContinuousUpload | None = None
        try:
            for layout in layouts:
                self._prepare(layout, record, count, pipes)
            if self._stop.is_set():
                raise StopRequested
            specs = [ProcessSpec(name=layout.host,
                                 argv=self._argv(layout, record, image.entrypoint),
                                 cwd=layout.base, env=self._environment(layout, record, bin_dir))
                     for layout in layouts]
            continuous = ContinuousUpload(self.platform.objects, s3_outputs(record, "Continuous"),
                                          layouts).start()
            codes, timed_out = self._execute(record, specs)
        finally:
            for pipe in pipes:
                pipe.stop()
            if continuous is not None:
                continuous.stop()  # the last sync: what the job wrote reaches S3
        self._finish(record, layouts, codes, timed_out)

    def _prepare(self, layout: ProcessingLayout, record: Record, count: int,
                 pipes: list[Any]) -> None:
        """Lay out one instance: config files, inputs at their LocalPaths, output dirs."""
        layout.create()
        write_config(layout, record)
        for processing_input in record.get("ProcessingInputs") or []:
            if self._stop.is_set():
                raise StopRequested
            if processing_input.get("AppManaged") or not processing_input.get("S3Input"):
                continue  # the application fetches an app-managed input itself
            pipe = deliver_input(self.platform.objects, processing_input, layout,
                                 instance_count=count)
            if pipe is not None:
                pipes.append(pipe)
        for output in (record.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            local = (output.get("S3Output") or {}).get("LocalPath")
            if local:
                layout.container_path(local).mkdir(parents=True, exist_ok=True)

    def _argv(self, layout: ProcessingLayout, record: Record,
              image_entrypoint: tuple[str, ...]) -> list[str]:
        argv = [translate_argument(argument, layout)
                for argument in command_line(record["AppSpecification"], image_entrypoint)]
        script = script_to_translate(argv, layout)
        if script is not None:
            translate_script(script, layout)
        return argv

    def _environment(self, layout: ProcessingLayout, record: Record,
                     bin_dir: Path) -> dict[str, str]:
        env = {str(k): str(v) for k, v in (record.get("Environment") or {}).items()}
        key_id, secret = self.credentials
        hosts = [f"algo-{n}" for n in range(1, instance_count(record) + 1)]
        python_path = [str(PATHMAP_DIR), *filter(None, [env.get("PYTHONPATH")])]
        env.update({
            "PATH": os.pathsep.join([str(bin_dir), env.get("PATH") or MINIMAL_PATH]),
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "OPENMAKER_OPT_ML_ROOT": str(layout.root),
            "OPENMAKER_HOST_ADDRESSES": json.dumps({host: LOOPBACK for host in hosts}),
            # Scripts reach this server for S3, Logs and SageMaker through boto3.
            "AWS_ENDPOINT_URL": self.server_url,
            "S3_ENDPOINT_URL": self.server_url,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        })
        return env

    def _execute(self, record: Record, specs: list[ProcessSpec]
                 ) -> tuple[dict[str, int], bool]:
        def started(record: Record) -> None:
            record.setdefault("ProcessingStartTime", now())
            record["LastModifiedTime"] = now()

        self._update(started)
        limit = (record.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        backend = open_compute_backend(self.platform.settings)
        try:
            handle = backend.start(self.job_name, specs, self._on_output,
                                   max_runtime_seconds=limit)
        except ComputeError as exc:
            raise errors.ValidationException(
                f"AppSpecification.ContainerEntrypoint: the command could not be started: "
                f"{exc}") from None
        self._handle = handle
        while True:
            codes = handle.wait(timeout=POLL_SECONDS)
            self._flush_logs()
            if codes is not None:
                break
            if self._stop.is_set():
                handle.stop(DEFAULT_STOP_GRACE_SECONDS)
                continue
            failed = [host for host, code in handle.exit_codes.items() if code not in (None, 0)]
            if failed:
                # One failed host fails the job; it, not the hosts stopped for it, is named.
                self._failed_host = self._failed_host or failed[0]
                handle.stop(DEFAULT_STOP_GRACE_SECONDS)
        self._flush_logs()
        return codes, handle.timed_out

    def _finish(self, record: Record, layouts: list[ProcessingLayout],
                codes: dict[str, int], timed_out: bool) -> None:
        try:
            message = exit_message(layouts)
        except UnicodeDecodeError:
            self._end("Failed", failure="ClientError: /opt/ml/output/message is not UTF-8 "
                                        "text; write the exit message as UTF-8")
            return
        if self._stop.is_set():
            self._end("Stopped", message=message)
        elif timed_out:
            limit = record["StoppingCondition"]["MaxRuntimeInSeconds"]
            self._end("Stopped", message=message,
                      failure=f"MaxRuntimeExceeded: the job ran for longer than "
                              f"StoppingCondition.MaxRuntimeInSeconds ({limit} s) and was "
                              "stopped")
        elif all(code == 0 for code in codes.values()):
            upload_outputs(self.platform.objects, s3_outputs(record, "EndOfJob"), layouts)
            self._end("Completed", message=message)
        else:
            failed = [layout.host for layout in layouts if codes.get(layout.host, 0) != 0]
            host = self._failed_host or (failed[0] if failed else layouts[0].host)
            with self._lock:
                tail = list(self._tails[host])
            self._end("Failed", message=message,
                      failure=exit_failure_reason(host, codes.get(host), tail))

    # -- output -------------------------------------------------------------------------
    def _on_output(self, host: str, line: str) -> None:
        with self._lock:
            self._pending[host].append(line)
            self._tails[host].append(line)

    def _flush_logs(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, collections.defaultdict(list)
        for host, lines in pending.items():
            if lines:
                self.platform.logs.append(LOG_GROUP, self._streams[host], lines)
