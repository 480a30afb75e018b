"""The processing-job operations: CreateProcessingJob, DescribeProcessingJob and
StopProcessingJob (``ListProcessingJobs`` is the generic List handler over the stored
records of type ``processing-job``).

A request is checked whole before anything is stored: botocore's model (lengths, ranges,
enums, at most 10 inputs and outputs, 100 environment entries) at the wire, and here what
the model cannot say (``reference/platform.md`` section 4.8): unique input and output
names, ``LocalPath`` under ``/opt/ml/processing/``, ``S3CompressionType: Gzip`` only with
``Pipe``, an image openmaker runs, a command to run, inputs that hold objects. A
``DatasetDefinition`` input or a ``FeatureStoreOutput`` is refused: they need the catalog
and the feature store, which openmaker does not have yet.

Runners live in the server process, so a job still ``InProgress``/``Stopping`` when a
server starts was cut off by the previous one: :func:`recover_interrupted_jobs` marks such
jobs ``Failed``, on the first processing operation a server serves.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from openmaker.core import errors
from openmaker.core.arns import make_arn
from openmaker.core.jobs import OncePerPlatform, RunningJobs, fail_jobs_left_running, mark_stopping
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.processing.contract import command_line, processing_relative
from openmaker.processing.images import processing_image
from openmaker.processing.inputs import check_input_objects, check_pipe_path
from openmaker.processing.runner import RESOURCE_TYPE, ProcessingJobRunner, finish, now
from openmaker.storage.uri import S3Uri

DEFAULT_MAX_RUNTIME = 86400
RESTART_REASON = "InternalServerError: the openmaker server restarted while the job was running"

_runners = RunningJobs()


def _not_found() -> errors.AwsError:
    return errors.ValidationException("Requested resource not found.")


def fail_interrupted_jobs(platform: Platform) -> list[str]:
    """Mark jobs left ``InProgress``/``Stopping`` by an earlier server ``Failed``; their
    names."""
    def fail(record: dict) -> None:
        finish(record, "Failed")
        record["FailureReason"] = RESTART_REASON

    return fail_jobs_left_running(platform, RESOURCE_TYPE, "ProcessingJobStatus", fail)


def recover_interrupted_jobs(platform: Platform) -> None:
    """Run :func:`fail_interrupted_jobs` once per server process, before it starts a job."""
    _recover_once(platform)


_recover_once = OncePerPlatform(fail_interrupted_jobs)


# -- checks ---------------------------------------------------------------------------------
def _check_uri(uri: str, field: str) -> None:
    try:
        S3Uri.parse(uri)
    except ValueError:
        raise errors.ValidationException(f"{field} must be an s3:// URI, got {uri!r}") from None


def _check_local_path(path: str | None, field: str, app_managed: bool) -> None:
    if path is None:
        if app_managed:
            return
        raise errors.ValidationException(f"{field} is required unless AppManaged is true")
    try:
        processing_relative(path, field)
    except ValueError as exc:
        raise errors.ValidationException(str(exc)) from None


def _check_unique(names: list[str], field: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise errors.ValidationException(
                f"{field} {name!r} is used more than once; names must be unique within the job")
        seen.add(name)


def _check_inputs(params: Mapping[str, Any]) -> None:
    inputs = params.get("ProcessingInputs") or []
    _check_unique([entry["InputName"] for entry in inputs], "ProcessingInputs.InputName")
    for entry in inputs:
        name = entry["InputName"]
        field = f"ProcessingInputs {name!r}"
        if entry.get("DatasetDefinition") is not None:
            raise errors.ValidationException(
                f"{field}: DatasetDefinition (Athena or Redshift SQL) needs openmaker's data "
                "catalog and query engine, which are not implemented yet; give an S3Input")
        s3 = entry.get("S3Input")
        if s3 is None:
            raise errors.ValidationException(f"{field}: S3Input is required")
        _check_uri(s3["S3Uri"], f"{field}: S3Input.S3Uri")
        _check_local_path(s3.get("LocalPath"), f"{field}: S3Input.LocalPath",
                          bool(entry.get("AppManaged")))
        if s3.get("S3CompressionType") == "Gzip" and s3.get("S3InputMode", "File") != "Pipe":
            raise errors.ValidationException(
                f"{field}: S3Input.S3CompressionType Gzip is only valid with S3InputMode Pipe")
        if s3.get("LocalPath") is not None:
            check_pipe_path(entry)
    _check_unique([entry["S3Input"]["LocalPath"].rstrip("/") for entry in inputs
                   if entry.get("S3Input", {}).get("LocalPath")],
                  "ProcessingInputs S3Input.LocalPath")


def _check_outputs(params: Mapping[str, Any]) -> None:
    outputs = (params.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    _check_unique([entry["OutputName"] for entry in outputs],
                  "ProcessingOutputConfig.Outputs.OutputName")
    for entry in outputs:
        field = f"ProcessingOutputConfig.Outputs {entry['OutputName']!r}"
        if entry.get("FeatureStoreOutput") is not None:
            raise errors.ValidationException(
                f"{field}: FeatureStoreOutput needs openmaker's feature store, which is not "
                "implemented yet; give an S3Output")
        s3 = entry.get("S3Output")
        if s3 is None:
            raise errors.ValidationException(f"{field}: S3Output is required")
        _check_uri(s3["S3Uri"], f"{field}: S3Output.S3Uri")
        _check_local_path(s3.get("LocalPath"), f"{field}: S3Output.LocalPath",
                          bool(entry.get("AppManaged")))


def _check_application(params: Mapping[str, Any]) -> None:
    app = params["AppSpecification"]
    image = processing_image(app["ImageUri"])
    if not command_line(app, image.entrypoint):
        raise errors.ValidationException(
            "AppSpecification.ContainerEntrypoint is required for this image: openmaker runs "
            "no container, so it has no image CMD to fall back on (the SageMaker SDK's "
            "processors always set it)")
    count = params["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1)
    if image.spark and count > 1:
        raise errors.ValidationException(
            "ProcessingResources.ClusterConfig.InstanceCount must be 1 for a Spark processing "
            "image: openmaker runs Spark as one local session, not a cluster over instances")


def check_processing_job_request(ctx: RequestContext, params: Mapping[str, Any]) -> None:
    """Every create-time check of a CreateProcessingJob request except the name's."""
    _check_application(params)
    _check_inputs(params)
    _check_outputs(params)


def _check_data(ctx: RequestContext, params: Mapping[str, Any]) -> None:
    for entry in params.get("ProcessingInputs") or []:
        if entry.get("S3Input") and not entry.get("AppManaged"):
            check_input_objects(ctx.platform.objects, entry)


# -- operations -----------------------------------------------------------------------------
def _credentials(ctx: RequestContext) -> tuple[str, str]:
    keys = ctx.settings.access_keys
    if ctx.access_key_id and ctx.access_key_id in keys:
        return ctx.access_key_id, keys[ctx.access_key_id]
    if keys:
        return next(iter(keys.items()))
    return "openmaker", "openmaker"  # the server accepts any key without auth


def _record(params: Mapping[str, Any], arn: str) -> dict[str, Any]:
    created = now()
    record = copy.deepcopy({k: v for k, v in params.items() if k != "Tags"})
    record.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME})
    record["ProcessingResources"]["ClusterConfig"].setdefault("InstanceCount", 1)
    for entry in record.get("ProcessingInputs") or []:
        s3 = entry.get("S3Input")
        entry.setdefault("AppManaged", False)
        if s3 is not None:
            s3.setdefault("S3InputMode", "File")
            s3.setdefault("S3DataDistributionType", "FullyReplicated")
            s3.setdefault("S3CompressionType", "None")
    for entry in (record.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        entry.setdefault("AppManaged", False)
    record.update({
        "ProcessingJobArn": arn,
        "ProcessingJobStatus": "InProgress",
        "CreationTime": created,
        "LastModifiedTime": created,
    })
    return record


def _in_use_message(arn: str) -> str:
    return ("Processing job names must be unique within an AWS account and region, and a "
            f"processing job with this name already exists ({arn})")


def create_processing_job(ctx: RequestContext, params: dict) -> dict:
    """Validate, store the job ``InProgress`` and start its runner."""
    recover_interrupted_jobs(ctx.platform)
    name = params["ProcessingJobName"]
    store = ctx.platform.resources
    check_processing_job_request(ctx, params)
    if store.exists(RESOURCE_TYPE, name):
        raise errors.ResourceInUse(_in_use_message(store.get(RESOURCE_TYPE, name).arn))
    _check_data(ctx, params)
    arn = make_arn(RESOURCE_TYPE, name, region=ctx.region, account_id=ctx.account_id)
    record = _record(params, arn)
    store.create(RESOURCE_TYPE, name, record, status="InProgress", tags=params.get("Tags"),
                 arn=arn, creation_time=record["CreationTime"],
                 conflict_error=errors.ResourceInUse(_in_use_message(arn)))
    runner = ProcessingJobRunner(ctx.platform, name, server_url=ctx.settings.url,
                                 credentials=_credentials(ctx), region=ctx.region,
                                 on_done=_runners.forget)
    _runners.add(name, runner)
    runner.start()
    return {"ProcessingJobArn": arn}


def describe_processing_job(ctx: RequestContext, params: dict) -> dict:
    """The stored record; ``ValidationException`` "Requested resource not found." when
    there is no such job."""
    recover_interrupted_jobs(ctx.platform)
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, params["ProcessingJobName"]).record
    except ResourceNotFoundError:
        raise _not_found() from None


def stop_processing_job(ctx: RequestContext, params: dict) -> dict:
    """Move a running job to ``Stopping``; its runner stops the processes (SIGTERM, then
    SIGKILL) and ends it ``Stopped``."""
    recover_interrupted_jobs(ctx.platform)
    name = params["ProcessingJobName"]
    mark_stopping(ctx.platform, RESOURCE_TYPE, name, status_field="ProcessingJobStatus",
                  noun="processing job", not_found=_not_found)
    runner = _runners.get(name)
    if runner is not None:
        runner.request_stop()
    return {}
