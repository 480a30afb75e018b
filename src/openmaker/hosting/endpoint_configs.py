"""The endpoint-config operations: CreateEndpointConfig, DescribeEndpointConfig and
DeleteEndpointConfig.

An endpoint config lists the production variants an endpoint runs (each a model on
``InitialInstanceCount`` instances of ``InstanceType``, or serverless), optional shadow
variants, data capture and asynchronous inference. Everything is checked before anything
is stored; configs are immutable, and deleting one leaves endpoints created from it
running, as on SageMaker. ``ListEndpointConfigs`` is served by the generic List handler.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from openmaker.core import errors
from openmaker.core.arns import make_arn
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ResourceNotFoundError
from openmaker.hosting import models
from openmaker.storage.uri import S3Uri

RESOURCE_TYPE = "endpoint-config"
MAX_PRODUCTION_VARIANTS = 10
SERVERLESS_MEMORY_STEP_MB = 1024
DEFAULT_VARIANT_WEIGHT = 1.0
# Members openmaker cannot honour yet, refused by name rather than ignored.
_UNSUPPORTED_VARIANT_MEMBERS = {
    "InstancePools": "give one InstanceType",
    "AcceleratorPartitionLayouts": "give InstanceType and InitialInstanceCount",
}


def endpoint_config_arn(name: str, *, region: str, account_id: str) -> str:
    return make_arn(RESOURCE_TYPE, name, region=region, account_id=account_id)


def _not_found(arn: str) -> errors.AwsError:
    return errors.ValidationException(f'Could not find endpoint configuration "{arn}".')


def _exists(arn: str) -> errors.AwsError:
    return errors.ValidationException(
        f'Cannot create already existing endpoint configuration "{arn}".')


def _s3_uri(value: str, field: str) -> None:
    try:
        S3Uri.parse(value)
    except ValueError:
        raise errors.ValidationException(
            f"{field} must be an s3:// URI, got {value!r}") from None


def _check_serverless(variant: dict, field: str) -> None:
    serverless = variant["ServerlessConfig"]
    for member in ("InstanceType", "InitialInstanceCount"):
        if variant.get(member) is not None:
            raise errors.ValidationException(
                f"{field}.{member} must not be given with {field}.ServerlessConfig: a "
                "variant is either instance-based or serverless")
    memory = serverless["MemorySizeInMB"]
    if memory % SERVERLESS_MEMORY_STEP_MB:
        raise errors.ValidationException(
            f"{field}.ServerlessConfig.MemorySizeInMB {memory} must be one of 1024, 2048, "
            "3072, 4096, 5120, 6144")
    provisioned = serverless.get("ProvisionedConcurrency")
    if provisioned is not None and provisioned > serverless["MaxConcurrency"]:
        raise errors.ValidationException(
            f"{field}.ServerlessConfig.ProvisionedConcurrency ({provisioned}) must not exceed "
            f"MaxConcurrency ({serverless['MaxConcurrency']})")


def _check_variant(platform: Platform, variant: dict, field: str) -> None:
    for member, advice in _UNSUPPORTED_VARIANT_MEMBERS.items():
        if variant.get(member):
            raise errors.ValidationException(
                f"{field}.{member} is not supported by openmaker: {advice}")
    model_name = variant.get("ModelName")
    if not model_name:
        raise errors.ValidationException(
            f"{field}.ModelName is required (endpoints of inference components are not "
            "implemented)")
    models.get_model(platform, model_name)
    if variant.get("ServerlessConfig"):
        _check_serverless(variant, field)
    else:
        for member, what in (("InstanceType", "an ml.* instance type"),
                             ("InitialInstanceCount", "an integer >= 1")):
            if variant.get(member) is None:
                raise errors.ValidationException(
                    f"{field}.{member} is required ({what}) unless the variant has a "
                    "ServerlessConfig")
    scaling = variant.get("ManagedInstanceScaling") or {}
    low, high = scaling.get("MinInstanceCount"), scaling.get("MaxInstanceCount")
    if low is not None and high is not None and low > high:
        raise errors.ValidationException(
            f"{field}.ManagedInstanceScaling.MinInstanceCount ({low}) must not exceed "
            f"MaxInstanceCount ({high})")


def _check_variants(platform: Platform, params: dict) -> None:
    production = params["ProductionVariants"]
    shadows = params.get("ShadowProductionVariants") or []
    if not 1 <= len(production) <= MAX_PRODUCTION_VARIANTS:
        raise errors.ValidationException(
            f"ProductionVariants must hold 1 to {MAX_PRODUCTION_VARIANTS} variants, got "
            f"{len(production)}")
    if shadows and len(production) != 1:
        raise errors.ValidationException(
            "ShadowProductionVariants can only be given with exactly one production variant "
            f"(ProductionVariants holds {len(production)})")
    seen: dict[str, str] = {}
    groups = (("ProductionVariants", production), ("ShadowProductionVariants", shadows))
    for group, variants in groups:
        for index, variant in enumerate(variants, start=1):
            field = f"{group}.{index}"
            name = variant["VariantName"]
            if name.lower() in seen:
                raise errors.ValidationException(
                    f"{field}.VariantName {name!r} is already used by {seen[name.lower()]}; "
                    "variant names must be unique within an endpoint configuration")
            seen[name.lower()] = f"{field}.VariantName"
            _check_variant(platform, variant, field)
    serverless = [bool(v.get("ServerlessConfig")) for v in production + shadows]
    if any(serverless) and not all(serverless):
        raise errors.ValidationException(
            "ProductionVariants: serverless variants (ServerlessConfig) cannot be mixed with "
            "instance-based variants in one endpoint configuration")
    if any(serverless) and shadows:
        raise errors.ValidationException(
            "ShadowProductionVariants are not supported with serverless variants")


def _check_data_capture(params: dict, serverless: bool) -> None:
    capture = params.get("DataCaptureConfig")
    if not capture:
        return
    if serverless:
        raise errors.ValidationException(
            "DataCaptureConfig is not supported with serverless variants (ServerlessConfig)")
    _s3_uri(capture["DestinationS3Uri"], "DataCaptureConfig.DestinationS3Uri")
    captured: dict[str, int] = {}
    for index, option in enumerate(capture["CaptureOptions"], start=1):
        mode = option["CaptureMode"]
        for part in (("Input", "Output") if mode == "InputAndOutput" else (mode,)):
            if part in captured:
                raise errors.ValidationException(
                    f"DataCaptureConfig.CaptureOptions.{index}.CaptureMode {mode}: {part} is "
                    f"already captured by CaptureOptions.{captured[part]}; capture modes must "
                    "be unique")
            captured[part] = index


def _check_async(params: dict, serverless: bool) -> None:
    config = params.get("AsyncInferenceConfig")
    if not config:
        return
    if serverless:
        raise errors.ValidationException(
            "AsyncInferenceConfig is not supported with serverless variants "
            "(ServerlessConfig)")
    if params.get("ShadowProductionVariants"):
        raise errors.ValidationException(
            "AsyncInferenceConfig cannot be combined with ShadowProductionVariants")
    output = config["OutputConfig"]
    if not output.get("S3OutputPath"):
        raise errors.ValidationException(
            "AsyncInferenceConfig.OutputConfig.S3OutputPath is required: the s3:// location "
            "where responses are written")
    _s3_uri(output["S3OutputPath"], "AsyncInferenceConfig.OutputConfig.S3OutputPath")
    if output.get("S3FailurePath"):
        _s3_uri(output["S3FailurePath"], "AsyncInferenceConfig.OutputConfig.S3FailurePath")


def _variant_record(variant: dict) -> dict:
    record = copy.deepcopy(variant)
    record.setdefault("InitialVariantWeight", DEFAULT_VARIANT_WEIGHT)
    return record


def _record(params: dict, arn: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "EndpointConfigName": params["EndpointConfigName"],
        "EndpointConfigArn": arn,
        "ProductionVariants": [_variant_record(v) for v in params["ProductionVariants"]],
    }
    if params.get("ShadowProductionVariants"):
        record["ShadowProductionVariants"] = [
            _variant_record(v) for v in params["ShadowProductionVariants"]]
    if params.get("DataCaptureConfig"):
        capture = copy.deepcopy(params["DataCaptureConfig"])
        capture.setdefault("EnableCapture", True)
        record["DataCaptureConfig"] = capture
    for member in ("KmsKeyId", "AsyncInferenceConfig", "ExecutionRoleArn", "VpcConfig",
                   "EnableNetworkIsolation", "MetricsConfig", "CrossRegionTrafficConfig"):
        if params.get(member) is not None:
            record[member] = copy.deepcopy(params[member])
    record["CreationTime"] = datetime.now(UTC)
    return record


def create_endpoint_config(ctx: RequestContext, params: dict) -> dict:
    """Validate the variants, capture and async settings, then store the config;
    ``{"EndpointConfigArn"}``."""
    name = params["EndpointConfigName"]
    store = ctx.platform.resources
    arn = endpoint_config_arn(name, region=ctx.region, account_id=ctx.account_id)
    if params.get("ExplainerConfig"):
        raise errors.ValidationException(
            "ExplainerConfig is not supported by openmaker: online explainability (Clarify) "
            "is not implemented yet")
    _check_variants(ctx.platform, params)
    serverless = any(v.get("ServerlessConfig") for v in params["ProductionVariants"])
    _check_data_capture(params, serverless)
    _check_async(params, serverless)
    models.check_tags(params.get("Tags"))
    if store.exists(RESOURCE_TYPE, name):
        raise _exists(store.get(RESOURCE_TYPE, name).arn)
    record = _record(params, arn)
    store.create(RESOURCE_TYPE, name, record, tags=params.get("Tags"), arn=arn,
                 creation_time=record["CreationTime"], conflict_error=_exists(arn))
    return {"EndpointConfigArn": arn}


def get_endpoint_config(platform: Platform, name: str) -> dict:
    """The stored DescribeEndpointConfig record of ``name``; ValidationException "Could
    not find endpoint configuration" when there is none."""
    store = platform.resources
    try:
        return store.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found(endpoint_config_arn(name, region=store.region,
                                             account_id=store.account_id)) from None


def describe_endpoint_config(ctx: RequestContext, params: dict) -> dict:
    name = params["EndpointConfigName"]
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        raise _not_found(endpoint_config_arn(name, region=ctx.region,
                                             account_id=ctx.account_id)) from None


def delete_endpoint_config(ctx: RequestContext, params: dict) -> dict:
    """Delete the record and its tags; endpoints created from it keep running."""
    name = params["EndpointConfigName"]
    try:
        ctx.platform.resources.delete(RESOURCE_TYPE, name)
    except ResourceNotFoundError:
        raise _not_found(endpoint_config_arn(name, region=ctx.region,
                                             account_id=ctx.account_id)) from None
    return {}
