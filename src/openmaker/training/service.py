"""The training-job operations: CreateTrainingJob, DescribeTrainingJob and StopTrainingJob.

A job runs either a built-in algorithm (``openmaker.algorithms``: hyperparameters and
channels are checked against the algorithm at create time) or a user's script on a
SageMaker framework image (scikit-learn, PyTorch, XGBoost; the ``sagemaker_program`` from
the ``sagemaker_submit_directory`` archive), as :mod:`openmaker.training.images` decides;
one process per instance, via :class:`~openmaker.training.runner.TrainingJobRunner`.
``ListTrainingJobs`` is served by the generic List handler over the stored records.

Runners live in the server process, so a job still ``InProgress`` when a server starts was
cut off by the previous one: :func:`fail_interrupted_jobs` marks such jobs ``Failed``; it
runs on the first training operation a server serves.
"""

from __future__ import annotations

import copy
from typing import Any

from openmaker.algorithms import find_algorithm
from openmaker.core import errors
from openmaker.core.jobs import (
    OncePerPlatform,
    RunningJobs,
    fail_jobs_left_running,
    mark_stopping,
)
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.storage.uri import S3Uri
from openmaker.training.channels import ChannelSpec, list_channel_objects
from openmaker.training.contract import decode_hyperparameters, opt_ml_relative
from openmaker.training.images import TrainingProgram, training_program
from openmaker.training.metrics import compile_definitions
from openmaker.training.runner import (
    RESOURCE_TYPE,
    TrainingJobListener,
    TrainingJobRunner,
    finish,
    now,
    transition,
)

DEFAULT_MAX_RUNTIME = 86400
DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints/"
RESTART_REASON = "The openmaker server restarted while the job was running"

_runners = RunningJobs()


def _not_found() -> errors.AwsError:
    return errors.ValidationException("Requested resource not found.")


def fail_interrupted_jobs(platform: Platform) -> list[str]:
    """Mark jobs left ``InProgress``/``Stopping`` by an earlier server ``Failed``; their
    names."""
    def fail(record: dict) -> None:
        finish(record, "Failed", "Failed")
        record["FailureReason"] = RESTART_REASON

    return fail_jobs_left_running(platform, RESOURCE_TYPE, "TrainingJobStatus", fail)


def recover_interrupted_jobs(platform: Platform) -> None:
    """Run :func:`fail_interrupted_jobs` once per server process, before it starts any job
    (the server may call this at startup; every training operation calls it first)."""
    _recover_once(platform)


_recover_once = OncePerPlatform(fail_interrupted_jobs)


def _check_program(params: dict[str, Any]) -> TrainingProgram:
    spec = params.get("AlgorithmSpecification")
    if not spec:
        raise errors.ValidationException("AlgorithmSpecification is required.")
    hyperparameters = params.get("HyperParameters") or {}
    program = training_program(spec, hyperparameters)
    mode = spec.get("TrainingInputMode", "File")
    if program.built_in:
        algorithm = find_algorithm(program.algorithm)
        algorithm.validate_hyperparameters(hyperparameters)
        algorithm.validate_channels(params.get("InputDataConfig") or [], mode)
    if spec.get("ContainerEntrypoint") or spec.get("ContainerArguments"):
        raise errors.ValidationException(
            "AlgorithmSpecification.ContainerEntrypoint/ContainerArguments are not supported: "
            "openmaker runs framework scripts and built-in algorithms, not container images"
        )
    return program


def _check_stopping(params: dict[str, Any]) -> None:
    stopping = params.get("StoppingCondition") or {}
    max_runtime = stopping.get("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    max_wait = stopping.get("MaxWaitTimeInSeconds")
    if params.get("EnableManagedSpotTraining"):
        if max_wait is None:
            raise errors.ValidationException(
                "StoppingCondition.MaxWaitTimeInSeconds is required when "
                "EnableManagedSpotTraining is true (at least MaxRuntimeInSeconds)")
        if max_wait < max_runtime:
            raise errors.ValidationException(
                f"StoppingCondition.MaxWaitTimeInSeconds ({max_wait}) must be greater than or "
                f"equal to MaxRuntimeInSeconds ({max_runtime})")
    elif max_wait is not None:
        raise errors.ValidationException(
            "StoppingCondition.MaxWaitTimeInSeconds is only valid with "
            "EnableManagedSpotTraining set to true")
    checkpoint = params.get("CheckpointConfig")
    if checkpoint:
        try:
            S3Uri.parse(checkpoint["S3Uri"])
        except ValueError:
            raise errors.ValidationException(
                f"CheckpointConfig.S3Uri must be an s3:// URI, got {checkpoint['S3Uri']!r}"
            ) from None
        local = checkpoint.get("LocalPath")
        if local is not None:
            try:
                opt_ml_relative(local)
            except ValueError as exc:
                raise errors.ValidationException(f"CheckpointConfig.LocalPath: {exc}") from None


def _check_source(ctx: RequestContext, params: dict[str, Any]) -> None:
    uri = decode_hyperparameters(params.get("HyperParameters") or {}).get(
        "sagemaker_submit_directory")
    try:
        source = S3Uri.parse(uri)  # type: ignore[arg-type]
    except ValueError:
        raise errors.ValidationException(
            "HyperParameters.sagemaker_submit_directory must be the s3:// URI of a "
            f"sourcedir.tar.gz, got {uri!r}"
        ) from None
    try:
        ctx.platform.objects.head_object(source.bucket, source.key)
    except errors.AwsError:
        raise errors.ValidationException(
            f"HyperParameters.sagemaker_submit_directory: no S3 object at {uri}"
        ) from None


def _check_channels(ctx: RequestContext, params: dict[str, Any]) -> None:
    mode = params["AlgorithmSpecification"].get("TrainingInputMode", "File")
    for channel in params.get("InputDataConfig") or []:
        spec = ChannelSpec.from_config(channel, mode)
        try:
            list_channel_objects(ctx.platform.objects, spec)
        except errors.ValidationException:
            raise
        except errors.AwsError:
            raise errors.ValidationException(
                f'No S3 objects found under S3 URL "{spec.uri}" given in input data source '
                f"(channel {spec.name!r}). Please ensure that the bucket exists."
            ) from None


def _check_output(params: dict[str, Any]) -> None:
    path = params["OutputDataConfig"].get("S3OutputPath")
    try:
        S3Uri.parse(path)
    except ValueError:
        raise errors.ValidationException(
            f"OutputDataConfig.S3OutputPath must be an s3:// URI, got {path!r}"
        ) from None
    if not params.get("ResourceConfig"):
        raise errors.ValidationException("ResourceConfig is required.")


def _credentials(ctx: RequestContext) -> tuple[str, str]:
    keys = ctx.settings.access_keys
    if ctx.access_key_id and ctx.access_key_id in keys:
        return ctx.access_key_id, keys[ctx.access_key_id]
    if keys:
        return next(iter(keys.items()))
    return "openmaker", "openmaker"  # the server accepts any key without auth


def _record(params: dict[str, Any], arn: str, program: TrainingProgram) -> dict[str, Any]:
    created = now()
    record = copy.deepcopy({k: v for k, v in params.items() if k != "Tags"})
    record.setdefault("HyperParameters", {})
    record.setdefault("InputDataConfig", [])
    record.setdefault("StoppingCondition", {})
    record["StoppingCondition"].setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME)
    specification = record["AlgorithmSpecification"]
    specification.setdefault("TrainingInputMode", "File")
    if program.built_in and not specification.get("MetricDefinitions"):
        # Built-ins bring their own definitions, and Describe shows them as SageMaker does.
        specification["MetricDefinitions"] = find_algorithm(program.algorithm).metric_definitions
    if record.get("CheckpointConfig"):
        record["CheckpointConfig"].setdefault("LocalPath", DEFAULT_CHECKPOINT_PATH)
    record["ResourceConfig"].setdefault("InstanceCount", 1)
    # SageMaker always answers with a KmsKeyId ("" without a key); the SageMaker SDK's
    # Estimator.attach reads it unconditionally.
    record["OutputDataConfig"].setdefault("KmsKeyId", "")
    for flag in ("EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
                 "EnableManagedSpotTraining"):
        record.setdefault(flag, False)
    record.update({
        "TrainingJobArn": arn,
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        "TrainingJobStatus": "InProgress",
        "CreationTime": created,
        "LastModifiedTime": created,
        "SecondaryStatusTransitions": [],
    })
    transition(record, "Starting", when=created)
    return record


def check_training_job_request(ctx: RequestContext, params: dict[str, Any]) -> TrainingProgram:
    """Every create-time check of a CreateTrainingJob request except the name's; a tuning
    job runs them on each of its training job definitions."""
    program = _check_settings(params)
    _check_data(ctx, params, program)
    return program


def _check_settings(params: dict[str, Any]) -> TrainingProgram:
    program = _check_program(params)
    compile_definitions(params["AlgorithmSpecification"].get("MetricDefinitions"))
    _check_output(params)
    _check_stopping(params)
    return program


def _check_data(ctx: RequestContext, params: dict[str, Any], program: TrainingProgram) -> None:
    if not program.built_in:
        _check_source(ctx, params)
    _check_channels(ctx, params)


def create_training_job(ctx: RequestContext, params: dict) -> dict:
    """Validate, store the job ``InProgress``/``Starting`` and start its runner."""
    return start_training_job(ctx, params)


def start_training_job(ctx: RequestContext, params: dict, *, tuning_job_arn: str | None = None,
                       listener: TrainingJobListener | None = None) -> dict:
    """CreateTrainingJob, for a tuning job too: its training jobs carry ``TuningJobArn``
    and ``listener`` hears their metric points and their end."""
    recover_interrupted_jobs(ctx.platform)
    name = params["TrainingJobName"]
    store = ctx.platform.resources
    program = _check_settings(params)
    if store.exists(RESOURCE_TYPE, name):
        arn = store.get(RESOURCE_TYPE, name).arn
        raise errors.ResourceInUse(_in_use_message(arn))
    _check_data(ctx, params, program)
    from openmaker.core.arns import make_arn

    arn = make_arn(RESOURCE_TYPE, name, region=ctx.region, account_id=ctx.account_id)
    record = _record(params, arn, program)
    if tuning_job_arn is not None:
        record["TuningJobArn"] = tuning_job_arn
    store.create(RESOURCE_TYPE, name, record, status="InProgress", tags=params.get("Tags"),
                 arn=arn, creation_time=record["CreationTime"],
                 conflict_error=errors.ResourceInUse(_in_use_message(arn)))
    runner = TrainingJobRunner(ctx.platform, name, server_url=ctx.settings.url,
                               credentials=_credentials(ctx), region=ctx.region,
                               on_done=_runners.forget, listener=listener)
    _runners.add(name, runner)
    runner.start()
    return {"TrainingJobArn": arn}


def _in_use_message(arn: str) -> str:
    return ("Training job names must be unique within an AWS account and region, and a "
            f"training job with this name already exists ({arn})")


def describe_training_job(ctx: RequestContext, params: dict) -> dict:
    """The stored record; ``ValidationException`` "Requested resource not found." when
    there is no such job."""
    recover_interrupted_jobs(ctx.platform)
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, params["TrainingJobName"]).record
    except ResourceNotFoundError:
        raise _not_found() from None


def stop_training_job(ctx: RequestContext, params: dict) -> dict:
    """Move a running job to ``Stopping``; its runner stops the processes, uploads what
    they saved and ends ``Stopped``."""
    request_stop(ctx.platform, params["TrainingJobName"])
    return {}


def request_stop(platform: Platform, name: str, message: str | None = None) -> None:
    """StopTrainingJob; ``message`` is the ``Stopping`` transition's text (a tuning job
    says why it stopped one of its jobs early)."""
    recover_interrupted_jobs(platform)
    mark_stopping(platform, RESOURCE_TYPE, name, status_field="TrainingJobStatus",
                  noun="training job", not_found=_not_found,
                  on_stopping=lambda record: transition(record, "Stopping", message))
    runner = _runners.get(name)
    if runner is not None:
        runner.request_stop()


def interrupt_training_job(platform: Platform, name: str) -> None:
    """Inject a spot interruption into a running managed-spot job (an admin operation with
    no SageMaker counterpart): its instances are reclaimed and it resumes from its
    checkpoints, as when EC2 takes spot capacity back."""
    recover_interrupted_jobs(platform)
    try:
        record = platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found() from None
    if not record.get("EnableManagedSpotTraining"):
        raise errors.ValidationException(
            f"Training job {name} does not use managed spot training "
            "(EnableManagedSpotTraining); only spot jobs can be interrupted.")
    runner = _runners.get(name)
    if record["TrainingJobStatus"] != "InProgress" or runner is None:
        raise errors.ValidationException(
            f"Training job {name} is not running (status {record['TrainingJobStatus']}); "
            "only InProgress jobs can be interrupted.")
    runner.interrupt()
