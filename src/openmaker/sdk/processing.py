"""``openmaker.Processor`` and ``openmaker.ScriptProcessor``: processing jobs in the
SageMaker Python SDK's shape, with its argument names.

``ScriptProcessor.run(code=...)`` uploads the script to
``s3://<default bucket>/<job>/input/code/<script>``, adds it as the ``code`` input at
``/opt/ml/processing/input/code/`` and runs ``<command> /opt/ml/processing/input/code/
<script> <arguments>``, as ``sagemaker.processing.ScriptProcessor`` does; outputs without
a destination go to ``s3://<default bucket>/<job>/output/<output name>``. While waiting,
the job's CloudWatch log lines are printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from openmaker.sdk.estimator import base_name_from_image, default_bucket, name_from_base, tag_list
from openmaker.sdk.session import Session

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
POLL_SECONDS = 0.5
CODE_DIR = "/opt/ml/processing/input/code"


class ProcessingJobFailedError(RuntimeError):
    """A processing job ended ``Failed``; ``failure_reason`` is its ``FailureReason``."""

    def __init__(self, job_name: str, failure_reason: str) -> None:
        super().__init__(f"Processing job {job_name} failed. Reason: {failure_reason}")
        self.job_name = job_name
        self.failure_reason = failure_reason


@dataclass
class ProcessingInput:
    """One input, as ``sagemaker.processing.ProcessingInput``: an S3 ``source`` delivered
    at ``destination`` (under ``/opt/ml/processing/``)."""

    source: str
    destination: str
    input_name: str | None = None
    s3_data_type: str = "S3Prefix"
    s3_input_mode: str = "File"
    s3_data_distribution_type: str = "FullyReplicated"
    s3_compression_type: str = "None"

    def request(self, name: str) -> dict[str, Any]:
        return {"InputName": self.input_name or name, "AppManaged": False, "S3Input": {
            "S3Uri": self.source, "LocalPath": self.destination,
            "S3DataType": self.s3_data_type, "S3InputMode": self.s3_input_mode,
            "S3DataDistributionType": self.s3_data_distribution_type,
            "S3CompressionType": self.s3_compression_type}}


@dataclass
class ProcessingOutput:
    """One output, as ``sagemaker.processing.ProcessingOutput``: the files under ``source``
    (under ``/opt/ml/processing/``) uploaded to the S3 ``destination``."""

    source: str
    destination: str | None = None
    output_name: str | None = None
    s3_upload_mode: str = "EndOfJob"


def log_events(logs_client: Any, job_name: str, seen: set[str],
               start_time: int | None = None) -> Iterator[dict[str, Any]]:
    """Events of every ``<job>/`` stream from ``start_time`` (epoch ms) on that are not in
    ``seen`` (their ids are added); nothing before the job has logged."""
    arguments: dict[str, Any] = {"logGroupName": LOG_GROUP,
                                 "logStreamNamePrefix": f"{job_name}/"}
    if start_time is not None:
        arguments["startTime"] = start_time
    while True:
        try:
            page = logs_client.filter_log_events(**arguments)
        except logs_client.exceptions.ResourceNotFoundException:
            return
        for event in page.get("events", []):
            if event["eventId"] not in seen:
                seen.add(event["eventId"])
                yield event
        if not page.get("nextToken"):
            return
        arguments["nextToken"] = page["nextToken"]


def follow_processing_job(session: Session, job_name: str, *, logs: bool = True,
                          follow: bool = True, out: TextIO | None = None,
                          poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Print the job's log lines (prefixed by host for several instances) and, with
    ``follow``, keep polling until the job ends. Returns the last description."""
    out = out or sys.stdout
    logs_client = session.client("logs")
    seen: set[str] = set()
    latest: int | None = None
    while True:
        job = session.sagemaker.describe_processing_job(ProcessingJobName=job_name)
        several = job["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1) > 1
        events = sorted(log_events(logs_client, job_name, seen, latest),
                        key=lambda event: (event["timestamp"], event["eventId"])) if logs else []
        for event in events:
            latest = max(latest or 0, event["timestamp"])
            host = event["logStreamName"].split("/", 1)[-1].rsplit("-", 1)[0]
            print(f"[{host}] {event['message']}" if several else event["message"], file=out)
        out.flush()
        if job["ProcessingJobStatus"] in TERMINAL_STATUSES or not follow:
            return job
        time.sleep(poll_seconds)


class Processor:
    """A processing job definition, as ``sagemaker.processing.Processor``: an image and
    the entrypoint it runs.

    >>> processor = openmaker.Processor(SKLEARN_IMAGE, entrypoint=["python3", "-c", "..."])
    >>> processor.run(outputs=[openmaker.ProcessingOutput("/opt/ml/processing/out")])
    """

    def __init__(self, image_uri: str, role: str | None = None, instance_count: int = 1,
                 instance_type: str = "ml.m5.large", entrypoint: Sequence[str] | None = None,
                 volume_size_in_gb: int = 30, max_runtime_in_seconds: int | None = None,
                 base_job_name: str | None = None, env: Mapping[str, str] | None = None,
                 tags: list[dict[str, str]] | Mapping[str, str] | None = None,
                 session: Session | None = None) -> None:
        self.image_uri = image_uri
        self.role = role
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.entrypoint = list(entrypoint) if entrypoint else None
        self.volume_size_in_gb = volume_size_in_gb
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.base_job_name = base_job_name
        self.env = dict(env or {})
        self.tags = tags
        self._session = session
        self._current_job_name: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_uri={self.image_uri!r}, " \
               f"job={self._current_job_name!r})"

    @property
    def session(self) -> Session:
        """The session, created on first use (``OPENMAKER_URL`` or the home's server)."""
        if self._session is None:
            self._session = Session()
        return self._session

    @property
    def latest_job(self) -> str | None:
        """The name of the job this processor last started."""
        return self._current_job_name

    def processing_job_request(self, inputs: Sequence[ProcessingInput] | None = None,
                               outputs: Sequence[ProcessingOutput] | None = None,
                               arguments: Sequence[str] | None = None,
                               job_name: str | None = None) -> dict[str, Any]:
        """The ``CreateProcessingJob`` parameters ``run`` sends."""
        job_name = job_name or self._job_name_for_run()
        app: dict[str, Any] = {"ImageUri": self.image_uri}
        if self.entrypoint:
            app["ContainerEntrypoint"] = self.entrypoint
        if arguments:
            app["ContainerArguments"] = [str(argument) for argument in arguments]
        request: dict[str, Any] = {
            "ProcessingJobName": job_name,
            "ProcessingResources": {"ClusterConfig": {
                "InstanceCount": self.instance_count, "InstanceType": self.instance_type,
                "VolumeSizeInGB": self.volume_size_in_gb}},
            "AppSpecification": app,
            "RoleArn": self.role or f"arn:aws:iam::{self.session.account_id}:role/openmaker",
        }
        if inputs:
            request["ProcessingInputs"] = [entry.request(f"input-{index}")
                                           for index, entry in enumerate(inputs, start=1)]
        if outputs:
            request["ProcessingOutputConfig"] = {"Outputs": [
                self._output(entry, index, job_name) for index, entry in enumerate(outputs, 1)]}
        if self.max_runtime_in_seconds:
            request["StoppingCondition"] = {"MaxRuntimeInSeconds": self.max_runtime_in_seconds}
        if self.env:
            request["Environment"] = self.env
        if self.tags:
            request["Tags"] = tag_list(self.tags)
        return request

    def _job_name_for_run(self) -> str:
        return name_from_base(self.base_job_name or base_name_from_image(self.image_uri))

    def _output(self, output: ProcessingOutput, index: int, job_name: str) -> dict[str, Any]:
        name = output.output_name or f"output-{index}"
        destination = output.destination or \
            f"s3://{default_bucket(self.session)}/{job_name}/output/{name}"
        return {"OutputName": name, "AppManaged": False, "S3Output": {
            "S3Uri": destination, "LocalPath": output.source,
            "S3UploadMode": output.s3_upload_mode}}

    def run(self, inputs: Sequence[ProcessingInput] | None = None,
            outputs: Sequence[ProcessingOutput] | None = None,
            arguments: Sequence[str] | None = None, wait: bool = True, logs: bool = True,
            job_name: str | None = None) -> None:
        """Start the job and, with ``wait``, block until it ends (printing its logs with
        ``logs``); ``ProcessingJobFailedError`` if it fails."""
        self._start(self.processing_job_request(inputs, outputs, arguments, job_name), wait,
                    logs)

    def _start(self, request: dict[str, Any], wait: bool, logs: bool) -> None:
        self.session.sagemaker.create_processing_job(**request)
        self._current_job_name = request["ProcessingJobName"]
        if wait:
            self.wait(logs=logs)

    def _latest(self) -> str:
        if self._current_job_name is None:
            raise ValueError("no processing job yet: call run() first")
        return self._current_job_name

    def wait(self, logs: bool = True) -> dict[str, Any]:
        """Poll until the latest job ends; its description, or ``ProcessingJobFailedError``
        when it failed."""
        job = follow_processing_job(self.session, self._latest(), logs=logs)
        if job["ProcessingJobStatus"] == "Failed":
            raise ProcessingJobFailedError(job["ProcessingJobName"],
                                           job.get("FailureReason", "(no reason given)"))
        return job

    def describe(self) -> dict[str, Any]:
        """``DescribeProcessingJob`` of the latest job."""
        return self.session.sagemaker.describe_processing_job(
            ProcessingJobName=self._latest())

    def stop(self) -> None:
        """``StopProcessingJob`` on the latest job; it ends ``Stopped``."""
        self.session.sagemaker.stop_processing_job(ProcessingJobName=self._latest())


class ScriptProcessor(Processor):
    """Runs a local script with ``command`` (``["python3"]``), as
    ``sagemaker.processing.ScriptProcessor``."""

    def __init__(self, image_uri: str, command: Sequence[str], role: str | None = None,
                 **options: Any) -> None:
        super().__init__(image_uri, role, **options)
        self.command = list(command)

    def run(self, code: str, inputs: Sequence[ProcessingInput] | None = None,  # type: ignore[override]
            outputs: Sequence[ProcessingOutput] | None = None,
            arguments: Sequence[str] | None = None, wait: bool = True, logs: bool = True,
            job_name: str | None = None) -> None:
        """Upload ``code`` (a local file or an ``s3://`` URI) and run it."""
        job_name = job_name or self._job_name_for_run()
        if code.startswith("s3://"):
            uri, script = code, code.rsplit("/", 1)[-1]
        else:
            path = Path(code)
            if not path.is_file():
                raise ValueError(f"code {code!r} is not a file")
            script = path.name
            bucket = default_bucket(self.session)
            key = f"{job_name}/input/code/{script}"
            self.session.s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
            uri = f"s3://{bucket}/{key}"
        self.entrypoint = [*self.command, f"{CODE_DIR}/{script}"]
        code_input = ProcessingInput(uri, CODE_DIR, input_name="code")
        request = self.processing_job_request([*(inputs or []), code_input], outputs,
                                              arguments, job_name)
        self._start(request, wait, logs)
