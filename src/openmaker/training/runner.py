"""Runs one training job out of process: lays out each instance's ``opt/ml`` tree, delivers
its channels and code, starts one process per instance on the compute backend, streams
their output to CloudWatch Logs, and moves the job's record through its lifecycle.

The record changes only through ``ResourceStore.update(mutate=...)``, so the runner and
``StopTrainingJob`` never lose each other's updates. Statuses follow
``reference/platform.md`` section 4.2: ``InProgress`` (``Starting`` -> ``Downloading`` ->
``Training`` -> ``Uploading``) then ``Completed``, ``Failed`` or ``Stopped`` (secondary
``Stopped`` or ``MaxRuntimeExceeded``).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from openmaker.compute import (
    DEFAULT_STOP_GRACE_SECONDS,
    JobHandle,
    ProcessSpec,
    open_compute_backend,
)
from openmaker.core import errors
from openmaker.core.archives import safe_extract
from openmaker.core.platform import Platform
from openmaker.core.resources import Record
from openmaker.storage.uri import S3Uri
from openmaker.training.channels import deliver_channel
from openmaker.training.checkpoints import CheckpointSync, restore_checkpoints
from openmaker.training.contract import (
    InstanceLayout,
    checkpoint_directory,
    host_count,
    training_environment,
    user_arguments,
    write_config,
)
from openmaker.training.images import TrainingProgram, training_program
from openmaker.training.metrics import MetricParser, MetricPoint, final_metric_data, metric_store
from openmaker.training.requirements import (
    RequirementsError,
    RequirementsStopped,
    RequirementsTimeout,
    install_requirements,
)

log = logging.getLogger(__name__)

RESOURCE_TYPE = "training-job"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
MAX_FAILURE_REASON = 1024
TAIL_LINES = 40  # output lines per instance kept for the failure reason
POLL_SECONDS = 0.2
CHUNK_SIZE = 1024 * 1024
METRICS_UPDATE_SECONDS = 2.0  # FinalMetricDataList is refreshed at most this often
LOOPBACK = "127.0.0.1"
# Put first on a job's PYTHONPATH: resolves the job's host names (see its docstring).
HOSTNAMES_DIR = Path(__file__).with_name("hostnames")

# SecondaryStatusTransitions messages (the documented ones where SageMaker has them).
MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job runtime exceeded MaxRuntimeInSeconds provided",
    "MaxWaitTimeExceeded": "Training job waiting time exceeded MaxWaitTimeInSeconds provided",
    # UNVERIFIED: SageMaker's text for a reclaimed spot instance.
    "Interrupted": "Training job interrupted: the spot capacity was reclaimed; it resumes "
                   "from its last checkpoint when capacity is back",
    "Restarting": "Restarting the training job on new spot capacity",
}


class TrainingJobListener(Protocol):
    """Told about a job as it runs (a tuning job watches its training jobs this way)."""

    def metric_points(self, job_name: str, points: Sequence[MetricPoint]) -> None:
        """Points just written to the metric store, in the order they were emitted."""

    def job_ended(self, job_name: str) -> None:
        """The job's record is terminal (Completed, Failed or Stopped)."""


def now() -> datetime:
    return datetime.now(UTC)


def transition(record: Record, secondary: str, message: str | None = None,
               when: datetime | None = None) -> None:
    """Close the open ``SecondaryStatusTransitions`` entry and open ``secondary``."""
    when = when or now()
    transitions = record.setdefault("SecondaryStatusTransitions", [])
    for entry in transitions:
        entry.setdefault("EndTime", when)
    transitions.append({"Status": secondary, "StartTime": when,
                        "StatusMessage": message or MESSAGES.get(secondary, secondary)})
    record["SecondaryStatus"] = secondary
    record["LastModifiedTime"] = when


def finish(record: Record, status: str, secondary: str, message: str | None = None,
           billable_seconds: float | None = None) -> None:
    """Move ``record`` to a terminal state; the last transition is closed as well.

    ``BillableTimeInSeconds`` is ``billable_seconds`` when given (a spot job billed for its
    instances' running time only), else the training time.
    """
    when = now()
    transition(record, secondary, message, when)
    record["SecondaryStatusTransitions"][-1]["EndTime"] = when
    record["TrainingJobStatus"] = status
    record["TrainingEndTime"] = when
    start = record.get("TrainingStartTime")
    if start is not None:
        seconds = max(1, round((when - start).total_seconds()))
        record["TrainingTimeInSeconds"] = seconds
        record["BillableTimeInSeconds"] = seconds if billable_seconds is None \
            else min(seconds, max(1, round(billable_seconds)))


def exit_failure_reason(host: str, code: int | None, tail: Sequence[str]) -> str:
    """``FailureReason`` for a process that exited with ``code`` (negative: killed by that
    signal): ``AlgorithmError``, the exit, and as much of its last output as fits 1024
    characters."""
    head = (f"AlgorithmError: {host} exited with code {code}"
            if code is not None and code >= 0
            else f"AlgorithmError: {host} was killed by signal {-(code or 0)}")
    text = "\n".join(tail)
    room = MAX_FAILURE_REASON - len(head) - len(". Last output:\n")
    if not tail or room <= 0:
        return head[:MAX_FAILURE_REASON]
    return f"{head}. Last output:\n{text[-room:]}"


class StopRequested(Exception):
    """StopTrainingJob arrived before the processes started."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on now, for a job's coordinator (``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def extract_source(archive: Path, destination: Path) -> None:
    """Extract ``sourcedir.tar.gz`` into ``destination``, refusing members that would land
    outside it (absolute paths, ``..``, links pointing out) or are not files/folders."""
    safe_extract(archive, destination, what="sagemaker_submit_directory",
                 into="the code directory")


def tar_directory(directory: Path, target: Path) -> None:
    """Write ``directory``'s contents (not the folder itself) to ``target`` as tar.gz."""
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


class BackgroundJobRunner:
    """What a job runner shares with the others: a background thread of the server
    process, stop requests, leaving the record alone once the server exits, and record
    changes made only through ``ResourceStore.update(mutate=...)``."""

    resource_type: str
    status_field: str  # the record's status member, e.g. ``TrainingJobStatus``
    thread_prefix = "openmaker-job"

    def __init__(self, platform: Platform, job_name: str) -> None:
        self.platform = platform
        self.job_name = job_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run,
                                        name=f"{self.thread_prefix}-{job_name}", daemon=True)
        self._handle: JobHandle | None = None
        self._abandoned = False  # the server is exiting: leave the record to the next one

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> BackgroundJobRunner:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the job to stop (SIGTERM, then SIGKILL after the grace period)."""
        self._stop.set()

    def terminate(self, grace_seconds: float) -> None:
        """Stop the processes now, leaving the record as it is (the server is exiting)."""
        self._abandoned = True
        handle = self._handle
        if handle is not None and handle.running:
            handle.stop(grace_seconds)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _update(self, change: Callable[[Record], None]) -> Record:
        def mutate(record: Record) -> tuple[Record, str]:
            if not self._abandoned:
                change(record)
            return record, record[self.status_field]

        return self.platform.resources.update(self.resource_type, self.job_name,
                                              mutate=mutate).record


class TrainingJobRunner(BackgroundJobRunner):
    """Runs one training job in a background thread of the server process."""

    resource_type = RESOURCE_TYPE
    status_field = "TrainingJobStatus"
    thread_prefix = "openmaker-train"

    def __init__(self, platform: Platform, job_name: str, *, server_url: str,
                 credentials: tuple[str, str], region: str,
                 on_done: Callable[[str], None] | None = None,
                 listener: TrainingJobListener | None = None) -> None:
        super().__init__(platform, job_name)
        self.server_url = server_url
        self.credentials = credentials
        self.region = region
        self.on_done = on_done
        self.listener = listener
        self._interrupted = threading.Event()
        self._ran_seconds = 0.0  # instance running time over every run (billable time)
        self._max_runtime: float | None = None
        self._max_wait: float | None = None
        self._created = time.monotonic()
        self._pending: dict[str, list[str]] = collections.defaultdict(list)
        self._tails: dict[str, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=TAIL_LINES))
        self._failed_host: str | None = None  # the first host seen exiting non-zero
        self._lock = threading.Lock()
        self._streams: dict[str, str] = {}
        self._metrics: MetricParser | None = None  # set before the processes start
        self._points: list[MetricPoint] = []  # parsed, not yet written
        self._latest: dict[str, MetricPoint] = {}  # per metric name, the last point written
        self._metrics_changed = False  # _latest is newer than FinalMetricDataList
        self._metrics_published = 0.0  # time.monotonic() of the last record update

    # -- control ------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Reclaim a spot job's instances, as when EC2 takes spot capacity back: the
        processes get SIGTERM, what they checkpointed is synced, and the job runs again."""
        self._interrupted.set()

    # -- record -------------------------------------------------------------------------
    def _advance(self, secondary: str, message: str | None = None) -> None:
        """Move to ``secondary`` unless a stop already moved the job to Stopping."""
        def change(record: Record) -> None:
            if record["TrainingJobStatus"] == "InProgress":
                transition(record, secondary, message)

        self._update(change)

    # -- the job ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._run_job()
        except Exception as exc:  # any fault must still end the job's lifecycle
            prefix = "ClientError" if isinstance(exc, errors.AwsError) and exc.sender_fault \
                else "InternalServerError"
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self._end("Failed", "Failed", failure=f"{prefix}: {message}")
        finally:
            self._flush_logs()
            if self.on_done is not None:
                self.on_done(self.job_name)
            if self.listener is not None and not self._abandoned:
                self.listener.job_ended(self.job_name)

    def _run_job(self) -> None:
        """Run the job until it ends; a spot job runs again from its checkpoints after
        each interruption, within ``MaxWaitTimeInSeconds``."""
        record = self.platform.resources.get(RESOURCE_TYPE, self.job_name).record
        program = training_program(record["AlgorithmSpecification"],
                                   record.get("HyperParameters") or {})
        stopping = record.get("StoppingCondition") or {}
        self._max_runtime = stopping.get("MaxRuntimeInSeconds")
        self._max_wait = stopping.get("MaxWaitTimeInSeconds") \
            if record.get("EnableManagedSpotTraining") else None
        self._created = time.monotonic()
        attempt = 0
        while not self._attempt(record, program, attempt):
            attempt += 1
            if not self._wait_for_capacity():
                return

    def _attempt(self, record: Record, program: TrainingProgram, attempt: int) -> bool:
        """One run of the job on fresh instances; False when a spot interruption ended it
        (the job is then ``Interrupted`` and runs again), True once the job has ended."""
        count = host_count(record)
        work_dir = self.platform.settings.work_dir / self.job_name
        layouts = [InstanceLayout(work_dir, index) for index in range(1, count + 1)]
        channels = record.get("InputDataConfig") or []
        job_mode = record["AlgorithmSpecification"].get("TrainingInputMode", "File")
        stamp = int(time.time())
        for layout in layouts:
            self._streams[layout.host] = f"{self.job_name}/{layout.host}-{stamp}"
            if attempt:  # a new spot instance starts from an empty tree
                shutil.rmtree(layout.work_dir / layout.host, ignore_errors=True)

        self._advance("Downloading")
        streaming: list[Any] = []
        checkpoints: CheckpointSync | None = None
        try:
            for layout in layouts:
                layout.create(channel["ChannelName"] for channel in channels)
                write_config(layout, record)
                for channel in channels:
                    delivered = deliver_channel(self.platform.objects, channel, layout,
                                                instance_count=count, job_input_mode=job_mode)
                    if delivered is not None:
                        streaming.append(delivered)
            checkpoints = self._restore_checkpoints(record, layouts)
            python = sys.executable
            if not program.built_in:
                python = self._prepare_script(program, layouts, work_dir)
            if self._stop.is_set():
                raise StopRequested
            return self._train(record, program, layouts, python, checkpoints, attempt)
        except (StopRequested, RequirementsStopped):
            self._end("Stopped", "Stopped")
            return True
        except RequirementsTimeout:
            self._end("Stopped", "MaxRuntimeExceeded")
            return True
        except RequirementsError as exc:
            self._end("Failed", "Failed", failure=f"AlgorithmError: {exc.message}")
            return True
        finally:
            for channel in streaming:
                channel.stop()
            if checkpoints is not None:
                checkpoints.stop()  # the last sync: what the job saved reaches S3

    def _restore_checkpoints(self, record: Record,
                             layouts: list[InstanceLayout]) -> CheckpointSync | None:
        """Copy ``CheckpointConfig.S3Uri`` into every instance's checkpoint directory and
        start syncing those directories back; None for a job without checkpoints."""
        config = record.get("CheckpointConfig")
        if not config:
            return None
        uri = S3Uri.parse(config["S3Uri"])
        directories = [checkpoint_directory(layout, record) for layout in layouts]
        for directory in directories:
            assert directory is not None
            restore_checkpoints(self.platform.objects, uri, directory)
        return CheckpointSync(self.platform.objects, uri, directories).start()  # type: ignore[arg-type]

    def _prepare_script(self, program: TrainingProgram, layouts: list[InstanceLayout],
                        work_dir: Path) -> str:
        """Fetch the source archive into every instance and install its requirements.txt;
        the Python the script runs under."""
        assert program.script is not None and program.source is not None
        self._fetch_source(str(program.source), layouts)
        for layout in layouts:
            entry = (layout.code_dir / program.script).resolve()
            if not entry.is_relative_to(layout.code_dir.resolve()) or not entry.is_file():
                raise errors.ValidationException(
                    f"HyperParameters.sagemaker_program: {program.script!r} is not in the "
                    "sagemaker_submit_directory archive"
                )
        host = layouts[0].host
        python = install_requirements(
            layouts[0].code_dir, work_dir / "python",
            on_output=lambda line: self._on_output(host, line),
            should_stop=self._stop.is_set, timeout_seconds=self._time_limit()[0])
        self._flush_logs()
        return str(python) if python is not None else sys.executable

    def _fetch_source(self, uri: str, layouts: list[InstanceLayout]) -> None:
        source = S3Uri.parse(uri)
        with tempfile.TemporaryDirectory(prefix="openmaker-source-") as scratch:
            archive = Path(scratch) / "sourcedir.tar.gz"
            with self.platform.objects.open_object(source.bucket, source.key) as reader, \
                    open(archive, "wb") as handle:
                for chunk in reader.iter_chunks(CHUNK_SIZE):
                    handle.write(chunk)
            for layout in layouts:
                extract_source(archive, layout.code_dir)

    def _environment(self, layout: InstanceLayout, record: Record,
                     coordinator_port: int) -> dict[str, str]:
        env = training_environment(layout, record, job_arn=record["TrainingJobArn"],
                                   region=self.region)
        key_id, secret = self.credentials
        hosts = json.loads(env["SM_HOSTS"])
        python_path = [str(HOSTNAMES_DIR)]
        if env.get("PYTHONPATH"):
            python_path.append(env["PYTHONPATH"])
        env.update({
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(python_path),
            # Every instance runs on this machine: the hosts' names resolve to loopback
            # (hostnames/sitecustomize.py), and the first host's coordinator port is free.
            "OPENMAKER_HOST_ADDRESSES": json.dumps({host: LOOPBACK for host in hosts}),
            "MASTER_ADDR": LOOPBACK,
            "MASTER_PORT": str(coordinator_port),
            # Scripts reach this server for S3, Logs and SageMaker through boto3.
            "AWS_ENDPOINT_URL": self.server_url,
            "S3_ENDPOINT_URL": self.server_url,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        })
        return env

    def _argv(self, program: TrainingProgram, layout: InstanceLayout, python: str,
              record: Record) -> list[str]:
        if program.built_in:
            return [python, "-m", "openmaker.algorithms", str(program.algorithm)]
        arguments = user_arguments(record.get("HyperParameters") or {})
        return [python, "-u", str(layout.code_dir / str(program.script)), *arguments]

    def _train(self, record: Record, program: TrainingProgram, layouts: list[InstanceLayout],
               python: str, checkpoints: CheckpointSync | None, attempt: int) -> bool:
        port = free_port()
        specs = [ProcessSpec(name=layout.host, argv=self._argv(program, layout, python, record),
                             cwd=layout.code_dir, env=self._environment(layout, record, port))
                 for layout in layouts]

        def started(record: Record) -> None:
            record.setdefault("TrainingStartTime", now())
            if record["TrainingJobStatus"] == "InProgress":
                transition(record, "Training")

        self._update(started)
        definitions = record["AlgorithmSpecification"].get("MetricDefinitions")
        self._metrics = MetricParser(definitions) if definitions else None
        limit, limit_reason = self._time_limit()
        backend = open_compute_backend(self.platform.settings)
        began = time.monotonic()
        handle = backend.start(self.job_name, specs, self._on_output,
                               max_runtime_seconds=limit)
        self._handle = handle
        interrupt_after = self.platform.settings.spot_interruption_after_seconds
        if not (record.get("EnableManagedSpotTraining") and attempt == 0):
            interrupt_after = None  # injected interruptions hit a spot job's first run only
        try:
            while True:
                codes = handle.wait(timeout=POLL_SECONDS)
                self._flush_logs()
                if codes is not None:
                    break
                if interrupt_after is not None and time.monotonic() - began >= interrupt_after:
                    self.interrupt()
                    interrupt_after = None
                if self._stop.is_set() or self._interrupted.is_set():
                    handle.stop(DEFAULT_STOP_GRACE_SECONDS)
                    continue
                failed = [host for host, code in handle.exit_codes.items()
                          if code not in (None, 0)]
                if failed:
                    # One failed host fails the job; it, not the hosts stopped for it, is
                    # named in the FailureReason.
                    self._failed_host = self._failed_host or failed[0]
                    handle.stop(DEFAULT_STOP_GRACE_SECONDS)
        finally:
            self._ran_seconds += time.monotonic() - began
        self._flush_logs()
        if checkpoints is not None:
            checkpoints.stop()

        if self._stop.is_set():
            self._upload_and_end(layouts[0], "Stopped", "Stopped")
        elif self._interrupted.is_set():
            self._interrupted.clear()
            self._advance("Interrupted")
            return False
        elif handle.timed_out:
            self._upload_and_end(layouts[0], "Stopped", limit_reason)
        elif all(code == 0 for code in codes.values()):
            self._upload_and_end(layouts[0], "Completed", "Completed")
        else:
            self._end("Failed", "Failed", failure=self._failure_reason(layouts, codes))
        return True

    # -- spot ---------------------------------------------------------------------------
    def _time_limit(self) -> tuple[float | None, str]:
        """Seconds this run may take, and the secondary status when it takes them:
        ``MaxRuntimeInSeconds`` counts running time over every run, a spot job's
        ``MaxWaitTimeInSeconds`` the time since it was created."""
        runtime = None if self._max_runtime is None \
            else max(0.0, self._max_runtime - self._ran_seconds)
        if self._max_wait is not None:
            wait = max(0.0, self._max_wait - (time.monotonic() - self._created))
            if runtime is None or wait < runtime:
                return wait, "MaxWaitTimeExceeded"
        return runtime, "MaxRuntimeExceeded"

    def _wait_for_capacity(self) -> bool:
        """Wait (unbilled) for spot capacity after an interruption; False when the job
        ended meanwhile (stopped, or out of ``MaxWaitTimeInSeconds``)."""
        deadline = time.monotonic() + self.platform.settings.spot_capacity_wait_seconds
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if self._stop.is_set():
            self._end("Stopped", "Stopped")
            return False
        limit, reason = self._time_limit()
        if limit is not None and limit <= 0:
            self._end("Stopped", reason)
            return False
        self._advance("Starting", MESSAGES["Restarting"])
        return True

    # -- output -------------------------------------------------------------------------
    def _on_output(self, host: str, line: str) -> None:
        metrics = self._metrics
        found = metrics.parse(line) if metrics else ()
        with self._lock:
            self._pending[host].append(line)
            self._tails[host].append(line)
            if found:
                stamp = time.time_ns() // 1_000_000
                self._points.extend(MetricPoint(name, stamp, value, host)
                                    for name, value in found)

    def _flush_logs(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, collections.defaultdict(list)
        for host, lines in pending.items():
            if lines:
                self.platform.logs.append(LOG_GROUP, self._streams[host], lines)
        self._flush_metrics()
        if self._metrics_changed and \
                time.monotonic() - self._metrics_published >= METRICS_UPDATE_SECONDS:
            self._publish_metrics()

    # -- metrics ------------------------------------------------------------------------
    def _flush_metrics(self) -> None:
        """Write the points parsed since the last flush, in one transaction."""
        with self._lock:
            points, self._points = self._points, []
        if not points:
            return
        metric_store(self.platform).add(self.job_name, points)
        for point in points:
            self._latest[point.metric_name] = point
        self._metrics_changed = True
        if self.listener is not None:
            self.listener.metric_points(self.job_name, points)

    def _publish_metrics(self) -> None:
        """Show the latest value of each metric in the record's FinalMetricDataList."""
        assert self._metrics is not None
        final = final_metric_data(self._metrics.names, self._latest)

        def change(record: Record) -> None:
            record["FinalMetricDataList"] = final

        self._metrics_changed = False
        self._metrics_published = time.monotonic()
        self._update(change)

    def _failure_reason(self, layouts: list[InstanceLayout], codes: dict[str, int]) -> str:
        failed = sorted((layout for layout in layouts if codes.get(layout.host, 0) != 0),
                        key=lambda layout: layout.host != self._failed_host)
        for layout in failed:
            if layout.failure_file.is_file():
                text = layout.failure_file.read_text(errors="replace")
                return text[:MAX_FAILURE_REASON]
        layout = failed[0] if failed else layouts[0]
        with self._lock:
            tail = list(self._tails[layout.host])
        return exit_failure_reason(layout.host, codes.get(layout.host), tail)

    # -- endings ------------------------------------------------------------------------
    def _upload_and_end(self, layout: InstanceLayout, status: str, secondary: str) -> None:
        self._advance("Uploading")
        record = self.platform.resources.get(RESOURCE_TYPE, self.job_name).record
        output = S3Uri.parse(record["OutputDataConfig"]["S3OutputPath"])
        base = output.join(f"{self.job_name}/output")
        model_uri = base.join("model.tar.gz")
        self._upload_tar(layout.model_dir, model_uri)
        if layout.output_data_dir.is_dir() and any(layout.output_data_dir.iterdir()):
            self._upload_tar(layout.output_data_dir, base.join("output.tar.gz"))
        self._end(status, secondary, model_uri=str(model_uri))

    def _upload_tar(self, directory: Path, uri: S3Uri) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="openmaker-artifact-", suffix=".tar.gz")
        os.close(fd)
        try:
            tar_directory(directory, Path(name))
            self.platform.objects.put_object(uri.bucket, uri.key, _file_chunks(Path(name)),
                                             content_type="application/x-tar")
        finally:
            os.unlink(name)

    def _end(self, status: str, secondary: str, *, failure: str | None = None,
             model_uri: str | None = None) -> None:
        final = None
        if self._metrics:
            try:
                self._flush_metrics()
            except Exception:  # the job must end even when its metrics cannot be written
                log.exception("training job %s: writing metrics failed", self.job_name)
            final = final_metric_data(self._metrics.names, self._latest)
            self._metrics_changed = False

        def change(record: Record) -> None:
            if record["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                return
            spot = record.get("EnableManagedSpotTraining")
            finish(record, status, secondary,
                   billable_seconds=self._ran_seconds if spot else None)
            if final:
                record["FinalMetricDataList"] = final
            if failure is not None:
                record["FailureReason"] = failure[:MAX_FAILURE_REASON]
            if model_uri is not None:
                record["ModelArtifacts"] = {"S3ModelArtifacts": model_uri}

        self._update(change)

