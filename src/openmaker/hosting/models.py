"""The model operations: CreateModel, DescribeModel and DeleteModel.

A model names what its endpoints serve: one ``PrimaryContainer`` or an inference
pipeline of ``Containers`` (2-15, ``InferenceExecutionConfig.Mode`` ``Serial`` or
``Direct``). Each container's ``Image`` is one of

* a built-in algorithm's image or bare name (``.../sagemaker-xgboost:1.7-1``, ``xgboost``),
  served by the algorithm's own predictor;
* a SageMaker framework inference image (``sagemaker-scikit-learn``, ``sagemaker-xgboost``
  with ``SAGEMAKER_PROGRAM`` in its ``Environment``, ``pytorch-inference``,
  ``pytorch-training``), serving the user's ``inference.py`` by the inference-toolkit
  contract;
* the absolute path of a local executable: a bring-your-own model server started as
  ``<path> serve`` under the SageMaker container contract.

:func:`inference_image` says which. ``ModelDataUrl`` must name an existing object in the
object store (for ``Mode: MultiModel``, a prefix in an existing bucket). Models are
immutable; ``ListModels`` is served by the generic List handler over the stored records.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openmaker.algorithms import find_algorithm
from openmaker.core import errors
from openmaker.core.arns import make_arn
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.storage.uri import S3Uri

RESOURCE_TYPE = "model"
# Repository names of the SageMaker framework images that serve a user's inference code.
FRAMEWORK_REPOSITORIES = frozenset({"sagemaker-scikit-learn", "sagemaker-xgboost",
                                    "pytorch-inference", "pytorch-training"})
MIN_PIPELINE_CONTAINERS = 2
MAX_PIPELINE_CONTAINERS = 15
MAX_ENVIRONMENT_BYTES = 32 * 1024  # across all containers of a model
RESERVED_TAG_PREFIX = "aws:"
_IMAGE = re.compile(r"^(?:[^/]+/)*(?P<repository>[a-z0-9][a-z0-9._\-]*)(?::[\w.\-]+|@[\w:]+)?$")
# Container members openmaker cannot serve yet, refused by name rather than ignored.
_UNSUPPORTED_CONTAINER_MEMBERS = {
    "ModelDataSource": "give the model's model.tar.gz as ModelDataUrl instead",
    "AdditionalModelDataSources": "package everything the model needs in ModelDataUrl",
    "ModelPackageName": "model packages (the model registry) are not implemented yet; give "
                        "Image and ModelDataUrl",
    "InferenceSpecificationName": "model packages (the model registry) are not implemented "
                                  "yet; give Image and ModelDataUrl",
}


@dataclass(frozen=True)
class InferenceImage:
    """What a container's ``Image`` runs: exactly one of ``algorithm`` (a built-in's
    name), ``framework`` (a framework image's repository) and ``server`` (the path of a
    local executable) is set."""

    image: str
    algorithm: str | None = None
    framework: str | None = None
    server: str | None = None


def model_arn(name: str, *, region: str, account_id: str) -> str:
    return make_arn(RESOURCE_TYPE, name, region=region, account_id=account_id)


def _not_found(arn: str) -> errors.AwsError:
    return errors.ValidationException(f'Could not find model "{arn}".')


def _exists(arn: str) -> errors.AwsError:
    return errors.ValidationException(f'Cannot create already existing model "{arn}".')


def inference_image(image: str, environment: dict[str, str] | None = None, *,
                    field: str = "PrimaryContainer.Image") -> InferenceImage:
    """What ``image`` serves; ValidationException naming ``field`` when openmaker cannot
    serve it. ``sagemaker-xgboost`` is the built-in XGBoost unless ``environment`` names
    a ``SAGEMAKER_PROGRAM``, as on SageMaker."""
    if image.startswith("/"):
        if not os.path.isfile(image) or not os.access(image, os.X_OK):
            raise errors.ValidationException(
                f"{field} {image!r}: a local model server must be an executable file "
                "(it is started as '<Image> serve'); no executable file is at that path")
        return InferenceImage(image=image, server=image)
    match = _IMAGE.match(image)
    if match is None:
        raise errors.ValidationException(
            f"{field} {image!r} is not an image URI (<registry>/<repository>[:tag]), a "
            "built-in algorithm's name or the absolute path of a local model server")
    repository = match.group("repository")
    script = (environment or {}).get("SAGEMAKER_PROGRAM")
    if repository not in FRAMEWORK_REPOSITORIES or (repository == "sagemaker-xgboost"
                                                    and not script):
        algorithm = find_algorithm(repository)
        if algorithm is not None:
            return InferenceImage(image=image, algorithm=algorithm.name)
    if repository not in FRAMEWORK_REPOSITORIES:
        raise errors.ValidationException(
            f"{field} {image!r}: repository {repository!r} is not a built-in algorithm or a "
            "SageMaker framework inference image openmaker can serve; use a built-in "
            f"algorithm, one of {', '.join(sorted(FRAMEWORK_REPOSITORIES))}, or the absolute "
            "path of a local model server executable")
    return InferenceImage(image=image, framework=repository)


def _check_model_data(ctx: RequestContext, container: dict, field: str,
                      kind: InferenceImage) -> None:
    url = container.get("ModelDataUrl")
    multi_model = container.get("Mode") == "MultiModel"
    if url is None:
        if multi_model:
            raise errors.ValidationException(
                f"{field}.ModelDataUrl is required with Mode MultiModel: the s3:// prefix "
                "under which the models' model.tar.gz archives are")
        if kind.algorithm:
            raise errors.ValidationException(
                f"{field}.ModelDataUrl is required for the built-in algorithm "
                f"{kind.algorithm}: the s3:// URI of the model.tar.gz its training job wrote")
        return
    try:
        location = S3Uri.parse(url)
    except ValueError:
        raise errors.ValidationException(
            f"{field}.ModelDataUrl must be an s3:// URI in openmaker's object store, got "
            f"{url!r}") from None
    objects = ctx.platform.objects
    if multi_model:
        try:
            objects.head_bucket(location.bucket)
        except errors.AwsError:
            raise errors.ValidationException(
                f"{field}.ModelDataUrl {url}: bucket {location.bucket!r} does not exist") from None
        return
    if location.is_prefix:
        raise errors.ValidationException(
            f"{field}.ModelDataUrl {url} is a prefix; give the S3 object of the model's "
            "model.tar.gz (a prefix only with Mode MultiModel)")
    try:
        objects.head_object(location.bucket, location.key)
    except errors.AwsError:
        raise errors.ValidationException(
            f"{field}.ModelDataUrl: no S3 object at {url}. Please ensure that the object "
            "exists (upload the model's model.tar.gz there).") from None


def _check_container(ctx: RequestContext, container: dict, field: str, *,
                     pipeline: bool) -> None:
    for member, advice in _UNSUPPORTED_CONTAINER_MEMBERS.items():
        if container.get(member):
            raise errors.ValidationException(
                f"{field}.{member} is not supported by openmaker: {advice}")
    image = container.get("Image")
    if not image:
        raise errors.ValidationException(
            f"{field}.Image is required: a built-in algorithm's image or name, a SageMaker "
            "framework inference image, or the absolute path of a local model server")
    environment = container.get("Environment") or {}
    kind = inference_image(image, environment, field=f"{field}.Image")
    mode = container.get("Mode", "SingleModel")
    if mode == "MultiModel" and pipeline:
        raise errors.ValidationException(
            f"{field}.Mode MultiModel is not supported in Containers: multi-model endpoints "
            "serve one container (give it as PrimaryContainer)")
    if container.get("MultiModelConfig") and mode != "MultiModel":
        raise errors.ValidationException(
            f"{field}.MultiModelConfig is only valid with Mode MultiModel")
    _check_model_data(ctx, container, field, kind)


def _check_containers(params: dict) -> tuple[list[tuple[dict, str]], bool]:
    primary, containers = params.get("PrimaryContainer"), params.get("Containers")
    if (primary is None) == (containers is None):
        raise errors.ValidationException(
            "Give exactly one of PrimaryContainer (a single container) and Containers (an "
            f"inference pipeline of {MIN_PIPELINE_CONTAINERS}-{MAX_PIPELINE_CONTAINERS} "
            "containers)")
    if primary is not None:
        if params.get("InferenceExecutionConfig"):
            raise errors.ValidationException(
                "InferenceExecutionConfig is only valid with Containers (a multi-container "
                "model), not with PrimaryContainer")
        return [(primary, "PrimaryContainer")], False
    if not MIN_PIPELINE_CONTAINERS <= len(containers) <= MAX_PIPELINE_CONTAINERS:
        raise errors.ValidationException(
            f"Containers must hold {MIN_PIPELINE_CONTAINERS} to {MAX_PIPELINE_CONTAINERS} "
            f"containers, got {len(containers)} (give a single container as "
            "PrimaryContainer)")
    mode = (params.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
    named = [c.get("ContainerHostname") for c in containers]
    if mode == "Direct" or any(named):
        for index, hostname in enumerate(named, start=1):
            if not hostname:
                reason = ("InferenceExecutionConfig.Mode is Direct" if mode == "Direct"
                          else "another container has one; give every container one or none")
                raise errors.ValidationException(
                    f"Containers.{index}.ContainerHostname is required: {reason}")
    seen: dict[str, int] = {}
    for index, hostname in enumerate(named, start=1):
        if not hostname:
            continue
        key = hostname.lower()
        if key in seen:
            raise errors.ValidationException(
                f"Containers.{index}.ContainerHostname {hostname!r} is already used by "
                f"Containers.{seen[key]}; container hostnames must be unique")
        seen[key] = index
    return [(c, f"Containers.{i}") for i, c in enumerate(containers, start=1)], True


def _check_environment(containers: list[tuple[dict, str]]) -> None:
    total = sum(len(key.encode()) + len(value.encode())
                for container, _ in containers
                for key, value in (container.get("Environment") or {}).items())
    if total > MAX_ENVIRONMENT_BYTES:
        raise errors.ValidationException(
            f"Environment: the containers' environment variables total {total} bytes; at "
            f"most {MAX_ENVIRONMENT_BYTES} bytes are allowed across all containers of a model")


def check_tags(tags: list[dict] | None) -> None:
    """Tags of a create request: keys starting with ``aws:`` are reserved."""
    for index, tag in enumerate(tags or [], start=1):
        if tag["Key"].lower().startswith(RESERVED_TAG_PREFIX):
            raise errors.ValidationException(
                f"Tags.{index}.Key {tag['Key']!r}: keys starting with 'aws:' are reserved "
                "for AWS use.")


def _container_record(container: dict) -> dict:
    record = copy.deepcopy(container)
    record.setdefault("Mode", "SingleModel")
    record.setdefault("Environment", {})
    return record


def _record(params: dict, arn: str, pipeline: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"ModelName": params["ModelName"]}
    if pipeline:
        record["Containers"] = [_container_record(c) for c in params["Containers"]]
        record["InferenceExecutionConfig"] = {
            "Mode": (params.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")}
    else:
        record["PrimaryContainer"] = _container_record(params["PrimaryContainer"])
    for member in ("ExecutionRoleArn", "VpcConfig"):
        if params.get(member) is not None:
            record[member] = copy.deepcopy(params[member])
    record.update({
        "CreationTime": datetime.now(UTC),
        "ModelArn": arn,
        "EnableNetworkIsolation": bool(params.get("EnableNetworkIsolation", False)),
    })
    return record


def create_model(ctx: RequestContext, params: dict) -> dict:
    """Validate every container, then store the model; ``{"ModelArn"}``."""
    name = params["ModelName"]
    store = ctx.platform.resources
    arn = model_arn(name, region=ctx.region, account_id=ctx.account_id)
    containers, pipeline = _check_containers(params)
    for container, field in containers:
        _check_container(ctx, container, field, pipeline=pipeline)
    _check_environment(containers)
    check_tags(params.get("Tags"))
    if store.exists(RESOURCE_TYPE, name):
        raise _exists(store.get(RESOURCE_TYPE, name).arn)
    record = _record(params, arn, pipeline)
    store.create(RESOURCE_TYPE, name, record, tags=params.get("Tags"), arn=arn,
                 creation_time=record["CreationTime"], conflict_error=_exists(arn))
    return {"ModelArn": arn}


def get_model(platform: Platform, name: str) -> dict:
    """The stored DescribeModel record of ``name``; ValidationException "Could not find
    model" when there is none."""
    store = platform.resources
    try:
        return store.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found(model_arn(name, region=store.region,
                                   account_id=store.account_id)) from None


def model_containers(record: dict) -> list[dict]:
    """A model's containers in invocation order, each with its ``ContainerHostname``
    (SageMaker's default for a pipeline container without one is ``container-<N>``; a
    single container's hostname is its model's name unless given)."""
    if "PrimaryContainer" in record:
        container = copy.deepcopy(record["PrimaryContainer"])
        container.setdefault("ContainerHostname", record["ModelName"])
        return [container]
    result = []
    for index, container in enumerate(record["Containers"], start=1):
        container = copy.deepcopy(container)
        container.setdefault("ContainerHostname", f"container-{index}")
        result.append(container)
    return result


def describe_model(ctx: RequestContext, params: dict) -> dict:
    name = params["ModelName"]
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found(model_arn(name, region=ctx.region,
                                   account_id=ctx.account_id)) from None


def delete_model(ctx: RequestContext, params: dict) -> dict:
    """Delete the record and its tags (the model data in S3 stays, as on SageMaker)."""
    name = params["ModelName"]
    try:
        ctx.platform.resources.delete(RESOURCE_TYPE, name)
    except ResourceNotFoundError:
        raise _not_found(model_arn(name, region=ctx.region,
                                   account_id=ctx.account_id)) from None
    return {}
