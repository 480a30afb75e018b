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
import logging
import os
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmaker.compute import (
    DEFAULT_STOP_GRACE_SECONDS,
    JobHandle,
    ProcessSpec,
    open_compute_backend,
)
from openmaker.core import errors
from openmaker.core.platform import Platform
from openmaker.core.resources import Record
from openmaker.storage.uri import S3Uri
from openmaker.training.channels import deliver_channel
from openmaker.training.contract import (
    InstanceLayout,
    decode_hyperparameters,
    host_count,
    training_environment,
    user_arguments,
    write_config,
)
from openmaker.training.metrics import MetricParser, MetricPoint, final_metric_data, metric_store

log = logging.getLogger(__name__)

RESOURCE_TYPE = "training-job"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
MAX_FAILURE_REASON = 1024
TAIL_LINES = 40  # output lines per instance kept for the failure reason
POLL_SECONDS = 0.2
CHUNK_SIZE = 1024 * 1024
METRICS_UPDATE_SECONDS = 2.0  # FinalMetricDataList is refreshed at most this often

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
}


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


def finish(record: Record, status: str, secondary: str, message: str | None = None) -> None:
    """Move ``record`` to a terminal state; the last transition is closed as well."""
    when = now()
    transition(record, secondary, message, when)
    record["SecondaryStatusTransitions"][-1]["EndTime"] = when
    record["TrainingJobStatus"] = status
    record["TrainingEndTime"] = when
    start = record.get("TrainingStartTime")
    if start is not None:
        seconds = max(1, round((when - start).total_seconds()))
        record["TrainingTimeInSeconds"] = seconds
        record["BillableTimeInSeconds"] = seconds


class StopRequested(Exception):
    """StopTrainingJob arrived before the processes started."""


def extract_source(archive: Path, destination: Path) -> None:
    """Extract ``sourcedir.tar.gz`` into ``destination``, refusing members that would land
    outside it (absolute paths, ``..``, links pointing out) or are not files/folders."""
    root = destination.resolve()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            target = (root / member.name).resolve()
            if not target.is_relative_to(root):
                raise errors.ValidationException(
                    f"sagemaker_submit_directory: archive member {member.name!r} would be "
                    "extracted outside the code directory"
                )
            if not (member.isfile() or member.isdir()):
                raise errors.ValidationException(
                    f"sagemaker_submit_directory: archive member {member.name!r} is not a "
                    "regular file or folder (links and devices are refused)"
                )
        tar.extractall(root, filter="data")


def tar_directory(directory: Path, target: Path) -> None:
    """Write ``directory``'s contents (not the folder itself) to ``target`` as tar.gz."""
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


class TrainingJobRunner:
    """Runs one training job in a background thread of the server process."""

    def __init__(self, platform: Platform, job_name: str, *, server_url: str,
                 credentials: tuple[str, str], region: str,
                 on_done: Callable[[str], None] | None = None) -> None:
        self.platform = platform
        self.job_name = job_name
        self.server_url = server_url
        self.credentials = credentials
        self.region = region
        self.on_done = on_done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"openmaker-train-{job_name}",
                                        daemon=True)
        self._handle: JobHandle | None = None
        self._pending: dict[str, list[str]] = collections.defaultdict(list)
        self._tails: dict[str, collections.deque[str]] = collections.defaultdict(
            lambda: collections.deque(maxlen=TAIL_LINES))
        self._lock = threading.Lock()
        self._streams: dict[str, str] = {}
        self._abandoned = False  # the server is exiting: leave the record to the next one
        self._metrics: MetricParser | None = None  # set before the processes start
        self._points: list[MetricPoint] = []  # parsed, not yet written
        self._latest: dict[str, MetricPoint] = {}  # per metric name, the last point written
        self._metrics_changed = False  # _latest is newer than FinalMetricDataList
        self._metrics_published = 0.0  # time.monotonic() of the last record update

    # -- control ------------------------------------------------------------------------
    def start(self) -> TrainingJobRunner:
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

    # -- record -------------------------------------------------------------------------
    def _update(self, change: Callable[[Record], None]) -> Record:
        def mutate(record: Record) -> tuple[Record, str]:
            if not self._abandoned:
                change(record)
            return record, record["TrainingJobStatus"]

        return self.platform.resources.update(RESOURCE_TYPE, self.job_name,
                                              mutate=mutate).record

    def _advance(self, secondary: str) -> None:
        """Move to ``secondary`` unless a stop already moved the job to Stopping."""
        def change(record: Record) -> None:
            if record["TrainingJobStatus"] == "InProgress":
                transition(record, secondary)

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

    def _run_job(self) -> None:
        record = self.platform.resources.get(RESOURCE_TYPE, self.job_name).record
        count = host_count(record)
        work_dir = self.platform.settings.work_dir / self.job_name
        layouts = [InstanceLayout(work_dir, index) for index in range(1, count + 1)]
        channels = record.get("InputDataConfig") or []
        job_mode = record["AlgorithmSpecification"].get("TrainingInputMode", "File")
        hyperparameters = decode_hyperparameters(record.get("HyperParameters") or {})
        program = str(hyperparameters["sagemaker_program"])

        self._advance("Downloading")
        streaming: list[Any] = []
        try:
            for layout in layouts:
                layout.create(channel["ChannelName"] for channel in channels)
                write_config(layout, record)
                for channel in channels:
                    delivered = deliver_channel(self.platform.objects, channel, layout,
                                                instance_count=count, job_input_mode=job_mode)
                    if delivered is not None:
                        streaming.append(delivered)
            self._fetch_source(str(hyperparameters["sagemaker_submit_directory"]), layouts)
            for layout in layouts:
                entry = (layout.code_dir / program).resolve()
                if not entry.is_relative_to(layout.code_dir.resolve()) or not entry.is_file():
                    raise errors.ValidationException(
                        f"HyperParameters.sagemaker_program: {program!r} is not in the "
                        "sagemaker_submit_directory archive"
                    )
            if self._stop.is_set():
                raise StopRequested
            self._train(record, layouts, program)
        except StopRequested:
            self._end("Stopped", "Stopped")
            return
        finally:
            for channel in streaming:
                channel.stop()

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

    def _environment(self, layout: InstanceLayout, record: Record) -> dict[str, str]:
        env = training_environment(layout, record, job_arn=record["TrainingJobArn"],
                                   region=self.region)
        key_id, secret = self.credentials
        env.update({
            "PYTHONUNBUFFERED": "1",
            # Scripts reach this server for S3, Logs and SageMaker through boto3.
            "AWS_ENDPOINT_URL": self.server_url,
            "S3_ENDPOINT_URL": self.server_url,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        })
        return env

    def _train(self, record: Record, layouts: list[InstanceLayout], program: str) -> None:
        arguments = user_arguments(record.get("HyperParameters") or {})
        epoch = int(time.time())
        specs = []
        for layout in layouts:
            self._streams[layout.host] = f"{self.job_name}/{layout.host}-{epoch}"
            specs.append(ProcessSpec(
                name=layout.host,
                argv=[sys.executable, "-u", str(layout.code_dir / program), *arguments],
                cwd=layout.code_dir,
                env=self._environment(layout, record),
            ))

        def started(record: Record) -> None:
            record["TrainingStartTime"] = now()
            if record["TrainingJobStatus"] == "InProgress":
                transition(record, "Training")

        self._update(started)
        definitions = record["AlgorithmSpecification"].get("MetricDefinitions")
        self._metrics = MetricParser(definitions) if definitions else None
        max_runtime = (record.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        backend = open_compute_backend(self.platform.settings)
        handle = backend.start(self.job_name, specs, self._on_output,
                               max_runtime_seconds=max_runtime)
        self._handle = handle
        while True:
            codes = handle.wait(timeout=POLL_SECONDS)
            self._flush_logs()
            if codes is not None:
                break
            if self._stop.is_set():
                handle.stop(DEFAULT_STOP_GRACE_SECONDS)
            elif any(code not in (None, 0) for code in handle.exit_codes.values()):
                handle.stop(DEFAULT_STOP_GRACE_SECONDS)  # one failed host fails the job
        self._flush_logs()

        if self._stop.is_set():
            self._upload_and_end(layouts[0], "Stopped", "Stopped")
        elif handle.timed_out:
            self._upload_and_end(layouts[0], "Stopped", "MaxRuntimeExceeded")
        elif all(code == 0 for code in codes.values()):
            self._upload_and_end(layouts[0], "Completed", "Completed")
        else:
            self._end("Failed", "Failed", failure=self._failure_reason(layouts, codes))

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
        failed = [layout for layout in layouts if codes.get(layout.host, 0) != 0]
        for layout in failed:
            if layout.failure_file.is_file():
                text = layout.failure_file.read_text(errors="replace")
                return text[:MAX_FAILURE_REASON]
        layout = failed[0] if failed else layouts[0]
        code = codes.get(layout.host)
        head = (f"AlgorithmError: {layout.host} exited with code {code}"
                if code is not None and code >= 0
                else f"AlgorithmError: {layout.host} was killed by signal {-(code or 0)}")
        with self._lock:
            tail = list(self._tails[layout.host])
        text = "\n".join(tail)
        room = MAX_FAILURE_REASON - len(head) - len(". Last output:\n")
        if not tail or room <= 0:
            return head[:MAX_FAILURE_REASON]
        return f"{head}. Last output:\n{text[-room:]}"

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
            finish(record, status, secondary)
            if final:
                record["FinalMetricDataList"] = final
            if failure is not None:
                record["FailureReason"] = failure[:MAX_FAILURE_REASON]
            if model_uri is not None:
                record["ModelArtifacts"] = {"S3ModelArtifacts": model_uri}

        self._update(change)

