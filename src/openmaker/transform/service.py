"""The batch transform operations: CreateTransformJob, DescribeTransformJob and
StopTransformJob (``ListTransformJobs`` is served by the generic List handler over the
stored records).

Every check runs before anything is stored: the model must exist (``ResourceNotFound``),
the name must be free (``ResourceInUse``), and the field rules botocore's model cannot
express are enforced here (``MaxPayloadInMB`` at most 100 and ``MaxConcurrentTransforms x
MaxPayloadInMB`` at most 100, filters that parse, ``JoinSource: Input`` only with
``Accept == ContentType`` and ``AssembleWith == SplitType``). The job is then stored
``InProgress`` and a :class:`~openmaker.transform.runner.TransformJobRunner` runs it in the
server process; a job still ``InProgress`` or ``Stopping`` when a server starts was cut
off by the previous one and is marked ``Failed`` on the first transform operation.
"""

from __future__ import annotations

import copy
from typing import Any

from openmaker.core import errors
from openmaker.core.jobs import OncePerPlatform, RunningJobs, fail_jobs_left_running, mark_stopping
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.storage.uri import S3Uri
from openmaker.transform.data_processing import data_format, parse_filter
from openmaker.transform.runner import (
    MAX_TOTAL_PAYLOAD_MB,
    RESOURCE_TYPE,
    TransformJobRunner,
    now,
)

RESTART_REASON = "The openmaker server restarted while the transform job was running"
MAX_ENVIRONMENT_ENTRIES = 16
MAX_ENVIRONMENT_VALUE = 10240
SUPPORTED_DATA_TYPES = ("S3Prefix", "ManifestFile")

_runners = RunningJobs()


def _not_found(name: str) -> errors.AwsError:
    return errors.ValidationException(f"Could not find job to describe: {name}.")


def fail_interrupted_jobs(platform: Platform) -> list[str]:
    """Mark jobs an earlier server left ``InProgress``/``Stopping`` ``Failed``; their names."""
    def fail(record: dict) -> None:
        record["TransformJobStatus"] = "Failed"
        record["FailureReason"] = RESTART_REASON
        record["TransformEndTime"] = record["LastModifiedTime"] = now()

    return fail_jobs_left_running(platform, RESOURCE_TYPE, "TransformJobStatus", fail)


def recover_interrupted_jobs(platform: Platform) -> None:
    """Run :func:`fail_interrupted_jobs` once per server process, before it starts a job."""
    _recover_once(platform)


_recover_once = OncePerPlatform(fail_interrupted_jobs)


# -- checks -----------------------------------------------------------------------------------
def _check_limits(params: dict[str, Any]) -> None:
    payload = params.get("MaxPayloadInMB")
    concurrency = params.get("MaxConcurrentTransforms")
    if payload is not None and payload > MAX_TOTAL_PAYLOAD_MB:
        raise errors.ValidationException(
            f"MaxPayloadInMB {payload} is too large: at most {MAX_TOTAL_PAYLOAD_MB} MB "
            "(0 sends each object whole)")
    if payload and concurrency and payload * concurrency > MAX_TOTAL_PAYLOAD_MB:
        raise errors.ValidationException(
            f"MaxConcurrentTransforms x MaxPayloadInMB ({concurrency} x {payload} = "
            f"{concurrency * payload}) must be at most {MAX_TOTAL_PAYLOAD_MB} MB")
    environment = params.get("Environment") or {}
    if len(environment) > MAX_ENVIRONMENT_ENTRIES:
        raise errors.ValidationException(
            f"Environment has {len(environment)} entries; at most {MAX_ENVIRONMENT_ENTRIES} "
            "are allowed")
    for key, value in environment.items():
        if len(str(value)) > MAX_ENVIRONMENT_VALUE:
            raise errors.ValidationException(
                f"Environment.{key} is {len(str(value))} characters; at most "
                f"{MAX_ENVIRONMENT_VALUE} are allowed")
    if params.get("DataCaptureConfig"):
        raise errors.ValidationException(
            "DataCaptureConfig is not supported by openmaker yet for transform jobs; leave it "
            "out (the .out objects hold every prediction)")


def _check_input(params: dict[str, Any]) -> None:
    source = params["TransformInput"]["DataSource"].get("S3DataSource")
    if not source:
        raise errors.ValidationException(
            "TransformInput.DataSource.S3DataSource is required (S3DataType and S3Uri)")
    if source["S3DataType"] not in SUPPORTED_DATA_TYPES:
        raise errors.ValidationException(
            f"TransformInput.DataSource.S3DataSource.S3DataType {source['S3DataType']!r} is "
            f"not supported for transform jobs; use {' or '.join(SUPPORTED_DATA_TYPES)}")
    _check_uri("TransformInput.DataSource.S3DataSource.S3Uri", source["S3Uri"])
    _check_uri("TransformOutput.S3OutputPath", params["TransformOutput"]["S3OutputPath"])


def _check_uri(field: str, uri: str) -> None:
    try:
        S3Uri.parse(uri)
    except ValueError:
        raise errors.ValidationException(f"{field} must be an s3:// URI, got {uri!r}") from None


def _check_data_processing(params: dict[str, Any]) -> None:
    processing = params.get("DataProcessing") or {}
    try:
        filters = [parse_filter(field, processing.get(field))
                   for field in ("InputFilter", "OutputFilter")]
    except ValueError as error:
        raise errors.ValidationException(str(error)) from None
    join = processing.get("JoinSource", "None") == "Input"
    if not (join or any(filters)):
        return
    transform_input, output = params["TransformInput"], params["TransformOutput"]
    content_type = transform_input.get("ContentType")
    if data_format(content_type) is None:
        raise errors.ValidationException(
            f"DataProcessing needs TransformInput.ContentType text/csv, application/json or "
            f"application/jsonlines to read records, got {content_type!r}")
    if join:
        accept = output.get("Accept")
        if (accept or "").lower() != (content_type or "").lower():
            raise errors.ValidationException(
                f"DataProcessing.JoinSource Input requires TransformOutput.Accept ({accept!r}) "
                f"to equal TransformInput.ContentType ({content_type!r})")
        split, assemble = transform_input.get("SplitType", "None"), output.get(
            "AssembleWith", "None")
        if split != assemble:
            raise errors.ValidationException(
                f"DataProcessing.JoinSource Input requires TransformOutput.AssembleWith "
                f"({assemble}) to equal TransformInput.SplitType ({split})")


def _check_model(ctx: RequestContext, model_name: str) -> None:
    from openmaker.hosting.models import model_arn

    if not ctx.platform.resources.exists("model", model_name):
        arn = model_arn(model_name, region=ctx.region, account_id=ctx.account_id)
        raise errors.ResourceNotFound(f'Could not find model "{arn}".')


def _in_use(arn: str) -> errors.AwsError:
    return errors.ResourceInUse(
        f"Transform job names must be unique within an AWS account and region, and a "
        f"transform job with this name already exists ({arn})")


def _record(params: dict[str, Any], arn: str) -> dict[str, Any]:
    created = now()
    record = copy.deepcopy({k: v for k, v in params.items() if k != "Tags"})
    record["TransformInput"].setdefault("CompressionType", "None")
    record["TransformInput"].setdefault("SplitType", "None")
    record["TransformOutput"].setdefault("AssembleWith", "None")
    record.setdefault("Environment", {})
    record.update({"TransformJobArn": arn, "TransformJobStatus": "InProgress",
                   "CreationTime": created, "LastModifiedTime": created})
    return record


# -- operations -------------------------------------------------------------------------------
def create_transform_job(ctx: RequestContext, params: dict) -> dict:
    """Validate, store the job ``InProgress`` and start its runner; ``{TransformJobArn}``."""
    from openmaker.core.arns import make_arn
    from openmaker.hosting.models import check_tags

    recover_interrupted_jobs(ctx.platform)
    name = params["TransformJobName"]
    _check_limits(params)
    _check_input(params)
    _check_data_processing(params)
    check_tags(params.get("Tags"))
    _check_model(ctx, params["ModelName"])
    store = ctx.platform.resources
    if store.exists(RESOURCE_TYPE, name):
        raise _in_use(store.get(RESOURCE_TYPE, name).arn)
    arn = make_arn(RESOURCE_TYPE, name, region=ctx.region, account_id=ctx.account_id)
    record = _record(params, arn)
    store.create(RESOURCE_TYPE, name, record, status="InProgress", tags=params.get("Tags"),
                 arn=arn, creation_time=record["CreationTime"], conflict_error=_in_use(arn))
    runner = TransformJobRunner(ctx.platform, name, on_done=_runners.forget)
    _runners.add(name, runner)
    runner.start()
    return {"TransformJobArn": arn}


def describe_transform_job(ctx: RequestContext, params: dict) -> dict:
    """The stored record: the request echoed with status, times and ``FailureReason``."""
    recover_interrupted_jobs(ctx.platform)
    name = params["TransformJobName"]
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found(name) from None


def stop_transform_job(ctx: RequestContext, params: dict) -> dict:
    """Move an ``InProgress`` job to ``Stopping``; its runner stops the model servers,
    uploads nothing more and ends it ``Stopped``."""
    recover_interrupted_jobs(ctx.platform)
    name = params["TransformJobName"]
    mark_stopping(ctx.platform, RESOURCE_TYPE, name, status_field="TransformJobStatus",
                  noun="transform job", not_found=lambda: _not_found(name))
    runner = _runners.get(name)
    if runner is not None:
        runner.request_stop()
    return {}
