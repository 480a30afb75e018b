"""Endpoints: CreateEndpoint, DescribeEndpoint, DeleteEndpoint, UpdateEndpoint and
UpdateEndpointWeightsAndCapacities, and the traffic between an endpoint's fleets.

``CreateEndpoint`` stores the endpoint ``Creating`` and builds its fleet
(:mod:`openmaker.hosting.fleet`) in the background: ``InService`` once every instance is
healthy, else ``Failed`` with the reason. ``UpdateEndpoint`` is a blue/green deployment:
the new config's fleet (green) is built next to the serving one (blue), traffic moves to
it ``ALL_AT_ONCE``, or first a ``CANARY`` share, or in ``LINEAR`` steps, each held for
``WaitIntervalInSeconds``; after ``TerminationWaitInSeconds`` blue is stopped. Requests
keep being served throughout. A green fleet that cannot become healthy is stopped, blue
keeps all traffic, and the endpoint returns to ``InService`` with the reason in
``FailureReason``.

Fleets live in the server process; an endpoint still ``Creating``, ``Updating`` or
``InService`` when a server starts was cut off by the previous one and is built again.
"""

from __future__ import annotations

import atexit
import copy
import functools
import logging
import math
import random
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openmaker.core import errors
from openmaker.core.arns import make_arn
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ListQuery, ResourceNotFoundError
from openmaker.hosting.fleet import Fleet, Variant, build_fleet, endpoint_directory

log = logging.getLogger(__name__)

RESOURCE_TYPE = "endpoint"
MAX_FAILURE_REASON = 1024
ALARM_POLL_SECONDS = 0.5


@dataclass(eq=False)
class Traffic:
    """Where an endpoint's requests go: its serving fleet and, during a blue/green
    deployment, the new fleet with its share of the requests."""

    current: Fleet
    incoming: Fleet | None = None
    incoming_share: float = 0.0
    status: str = "InService"  # the stored EndpointStatus, kept here for the router

    def fleet_for_request(self) -> Fleet:
        incoming = self.incoming
        if incoming is not None and random.random() < self.incoming_share:
            return incoming
        return self.current


_traffic: dict[str, Traffic] = {}
_lock = threading.Lock()
_recovered: set[int] = set()


def traffic(name: str) -> Traffic | None:
    """Where endpoint ``name``'s requests go, if it is serving."""
    with _lock:
        return _traffic.get(name.lower())


def fleet(name: str) -> Fleet | None:
    """The serving fleet of endpoint ``name``, if it has one."""
    routes = traffic(name)
    return routes.current if routes is not None else None


# -- the operations -------------------------------------------------------------------------
def _arn(ctx: RequestContext, name: str) -> str:
    return make_arn(RESOURCE_TYPE, name, region=ctx.region, account_id=ctx.account_id)


def _not_found(ctx: RequestContext, name: str) -> errors.AwsError:
    return errors.ValidationException(f'Could not find endpoint "{_arn(ctx, name)}".')


def _checked_config(platform: Platform, config_name: str) -> dict:
    from openmaker.hosting.endpoint_configs import get_endpoint_config
    from openmaker.hosting.models import get_model, model_containers

    config = get_endpoint_config(platform, config_name)
    variants = [*config["ProductionVariants"], *(config.get("ShadowProductionVariants") or [])]
    for variant in variants:
        model_containers(get_model(platform, variant["ModelName"]))
    return config


def create_endpoint(ctx: RequestContext, params: dict) -> dict:
    """Check the endpoint config and its models, store the endpoint ``Creating`` and build
    its fleet in the background."""
    recover_endpoints(ctx.platform)
    name = params["EndpointName"]
    store = ctx.platform.resources
    arn = _arn(ctx, name)
    in_use = errors.ValidationException(f'Cannot create already existing endpoint "{arn}".')
    if store.exists(RESOURCE_TYPE, name):
        raise in_use
    config = _checked_config(ctx.platform, params["EndpointConfigName"])
    now = _now()
    record = {"EndpointName": name, "EndpointArn": arn,
              "EndpointConfigName": config["EndpointConfigName"],
              "EndpointStatus": "Creating", "CreationTime": now, "LastModifiedTime": now}
    record.update(_capture_summary(config))
    store.create(RESOURCE_TYPE, name, record, status="Creating", tags=params.get("Tags"),
                 arn=arn, creation_time=now, conflict_error=in_use)
    _start(_create, ctx.platform, name, config)
    return {"EndpointArn": arn}


def describe_endpoint(ctx: RequestContext, params: dict) -> dict:
    recover_endpoints(ctx.platform)
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, params["EndpointName"]).record
    except ResourceNotFoundError:
        raise _not_found(ctx, params["EndpointName"]) from None


def delete_endpoint(ctx: RequestContext, params: dict) -> dict:
    """Stop the endpoint's processes and remove it."""
    recover_endpoints(ctx.platform)
    name = params["EndpointName"]
    if not ctx.platform.resources.exists(RESOURCE_TYPE, name):
        raise _not_found(ctx, name)
    with _lock:
        routes = _traffic.pop(name.lower(), None)
    if routes is not None:
        for each in (routes.current, routes.incoming):
            if each is not None:
                each.stop()
    ctx.platform.resources.delete(RESOURCE_TYPE, name)
    shutil.rmtree(endpoint_directory(ctx.platform, name), ignore_errors=True)
    return {}


def update_endpoint(ctx: RequestContext, params: dict) -> dict:
    """Deploy another endpoint config blue/green, as ``DeploymentConfig`` says."""
    recover_endpoints(ctx.platform)
    name = params["EndpointName"]
    deployment = params.get("DeploymentConfig") or {}
    if deployment.get("RollingUpdatePolicy") and deployment.get("BlueGreenUpdatePolicy"):
        raise errors.ValidationException(
            "DeploymentConfig: give either BlueGreenUpdatePolicy or RollingUpdatePolicy")
    if params.get("RetainAllVariantProperties") or params.get("ExcludeRetainedVariantProperties"):
        raise errors.ValidationException(
            "RetainAllVariantProperties: retaining variant properties across an update is not "
            "implemented by openmaker yet")
    config = _checked_config(ctx.platform, params["EndpointConfigName"])
    policy = deployment.get("BlueGreenUpdatePolicy") or {}
    _check_routing(policy.get("TrafficRoutingConfiguration") or {})

    def updating(record: dict) -> tuple[dict, str]:
        status = record["EndpointStatus"]
        if status != "InService":
            raise errors.ValidationException(
                f'Cannot update endpoint "{record["EndpointArn"]}" in status {status}; only '
                "InService endpoints can be updated.")
        record["EndpointStatus"] = "Updating"
        record["LastModifiedTime"] = _now()
        record.pop("FailureReason", None)
        return record, "Updating"

    try:
        record = ctx.platform.resources.update(RESOURCE_TYPE, name, mutate=updating).record
    except ResourceNotFoundError:
        raise _not_found(ctx, name) from None
    routes = traffic(name)
    if routes is not None:
        routes.status = "Updating"
    _start(_update, ctx.platform, name, config, deployment)
    return {"EndpointArn": record["EndpointArn"]}


def update_endpoint_weights_and_capacities(ctx: RequestContext, params: dict) -> dict:
    """Set variants' weights now and their instance counts (instances start or stop in the
    background; the endpoint is ``Updating`` meanwhile)."""
    recover_endpoints(ctx.platform)
    name = params["EndpointName"]
    record = endpoint_record(ctx.platform, name)
    if record is None:
        raise _not_found(ctx, name)
    routes = traffic(name)
    if record["EndpointStatus"] != "InService" or routes is None:
        raise errors.ValidationException(
            f'Cannot update endpoint "{record["EndpointArn"]}" in status '
            f"{record['EndpointStatus']}; only InService endpoints can be updated.")
    desired = params["DesiredWeightsAndCapacities"]
    for index, change in enumerate(desired, start=1):
        if change["VariantName"] not in routes.current.variants:
            raise errors.ValidationException(
                f"DesiredWeightsAndCapacities.{index}.VariantName: endpoint {name} has no "
                f"variant {change['VariantName']!r}")
        serverless = routes.current.variants[change["VariantName"]].serverless
        if change.get("ServerlessUpdateConfig"):
            raise errors.ValidationException(
                f"DesiredWeightsAndCapacities.{index}.ServerlessUpdateConfig: changing a "
                "serverless variant's config in place is not implemented; use UpdateEndpoint")
        if serverless and change.get("DesiredInstanceCount") is not None:
            raise errors.ValidationException(
                f"DesiredWeightsAndCapacities.{index}.DesiredInstanceCount: variant "
                f"{change['VariantName']!r} is serverless; it has no instance count")
    for change in desired:
        if "DesiredWeight" in change:
            routes.current.variants[change["VariantName"]].weight = float(change["DesiredWeight"])
    _set_status(ctx.platform, name, "Updating", ProductionVariants=_summaries(
        routes.current, desired={c["VariantName"]: c.get("DesiredInstanceCount")
                                 for c in desired}))

    def resize() -> None:
        try:
            for change in desired:
                if change.get("DesiredInstanceCount") is not None:
                    routes.current.set_capacity(routes.current.variants[change["VariantName"]],
                                                int(change["DesiredInstanceCount"]))
        except Exception as exc:
            _set_status(ctx.platform, name, "InService", FailureReason=_reason(exc),
                        ProductionVariants=_summaries(routes.current))
            return
        _set_status(ctx.platform, name, "InService",
                    ProductionVariants=_summaries(routes.current))

    threading.Thread(target=resize, daemon=True).start()
    return {"EndpointArn": record["EndpointArn"]}


def set_variant_capacity(platform: Platform, endpoint: str, variant: str, count: int) -> None:
    """Run ``count`` instances of the endpoint's variant (for autoscaling); waits until the
    new ones are healthy. ValidationException for an unknown endpoint or variant."""
    routes = traffic(endpoint)
    if routes is None or variant not in routes.current.variants:
        raise errors.ValidationException(
            f"endpoint {endpoint} is not serving a variant {variant!r}")
    if count < 1:
        raise errors.ValidationException(f"a variant needs at least 1 instance, not {count}")
    _set_status(platform, endpoint, "Updating")
    try:
        routes.current.set_capacity(routes.current.variants[variant], count)
    finally:
        _set_status(platform, endpoint, "InService",
                    ProductionVariants=_summaries(routes.current))


def endpoint_record(platform: Platform, name: str) -> dict | None:
    """The stored endpoint, or None."""
    try:
        return platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        return None


# -- deploying ----------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:MAX_FAILURE_REASON]


def _start(target, *args: Any) -> None:
    threading.Thread(target=target, args=args, name=f"openmaker-endpoint-{args[1]}",
                     daemon=True).start()


def _capture_summary(config: dict) -> dict:
    capture = config.get("DataCaptureConfig")
    if not capture:
        return {}
    enabled = capture.get("EnableCapture", True)
    return {"DataCaptureConfig": {
        "EnableCapture": enabled, "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": capture.get("InitialSamplingPercentage", 0),
        "DestinationS3Uri": capture["DestinationS3Uri"]}}


def _set_status(platform: Platform, name: str, status: str, **fields: Any) -> None:
    def change(record: dict) -> tuple[dict, str]:
        record["EndpointStatus"] = status
        record["LastModifiedTime"] = _now()
        record.update(fields)
        return record, status

    try:
        platform.resources.update(RESOURCE_TYPE, name, mutate=change)
    except ResourceNotFoundError:
        return  # deleted meanwhile
    routes = traffic(name)
    if routes is not None:
        routes.status = status


def _summaries(running: Fleet, desired: dict[str, int | None] | None = None) -> list[dict]:
    summaries = []
    for variant in running.variants.values():
        count = len(variant.instances)
        target = (desired or {}).get(variant.name)
        summary: dict[str, Any] = {
            "VariantName": variant.name,
            "DeployedImages": [{"SpecifiedImage": variant.image,
                                "ResolvedImage": variant.image}],
            "CurrentWeight": variant.weight, "DesiredWeight": variant.weight,
        }
        if variant.serverless:
            summary.update(CurrentServerlessConfig=variant.serverless,
                           DesiredServerlessConfig=variant.serverless)
        else:
            summary.update(CurrentInstanceCount=count,
                           DesiredInstanceCount=count if target is None else int(target))
        summaries.append(summary)
    return summaries


def _shadow_summaries(running: Fleet) -> list[dict]:
    return [{"VariantName": v.name, "CurrentWeight": v.weight, "DesiredWeight": v.weight,
             "CurrentInstanceCount": len(v.instances),
             "DesiredInstanceCount": len(v.instances),
             "DeployedImages": [{"SpecifiedImage": v.image, "ResolvedImage": v.image}]}
            for v in running.shadows.values()]


def _serving_fields(running: Fleet) -> dict:
    fields: dict[str, Any] = {"ProductionVariants": _summaries(running),
                              "EndpointConfigName": running.config_name}
    if running.shadows:
        fields["ShadowProductionVariants"] = _shadow_summaries(running)
    return fields


def _create(platform: Platform, name: str, config: dict) -> None:
    try:
        running = build_fleet(platform, name, copy.deepcopy(config))
    except Exception as exc:  # the endpoint must end Creating either way
        _set_status(platform, name, "Failed", FailureReason=_reason(exc))
        return
    if endpoint_record(platform, name) is None:  # deleted while it was being created
        running.stop()
        return
    with _lock:
        previous = _traffic.get(name.lower())
        _traffic[name.lower()] = Traffic(running)
    if previous is not None:
        previous.current.stop()
    _set_status(platform, name, "InService", **_serving_fields(running))


def _check_routing(routing: dict) -> None:
    kind = routing.get("Type", "ALL_AT_ONCE")
    field = "DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration"
    if kind == "CANARY" and not routing.get("CanarySize"):
        raise errors.ValidationException(f"{field}.CanarySize is required for Type CANARY")
    if kind == "LINEAR" and not routing.get("LinearStepSize"):
        raise errors.ValidationException(
            f"{field}.LinearStepSize is required for Type LINEAR")
    for key in ("CanarySize", "LinearStepSize"):
        size = routing.get(key)
        if size and size["Type"] == "CAPACITY_PERCENT" and not 0 < size["Value"] <= 100:
            raise errors.ValidationException(
                f"{field}.{key}.Value must be between 1 and 100 for CAPACITY_PERCENT")


def _share(size: dict, green: Fleet) -> float:
    """The share of requests a canary or linear step of ``size`` gives the new fleet."""
    if size["Type"] == "CAPACITY_PERCENT":
        return size["Value"] / 100
    return min(1.0, size["Value"] / max(1, green.instance_count()))


def traffic_shares(routing: dict, green: Fleet) -> list[float]:
    """The new fleet's share of the requests at each step, ending at 1."""
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind == "CANARY":
        return [min(1.0, _share(routing["CanarySize"], green)), 1.0]
    if kind == "LINEAR":
        step = _share(routing["LinearStepSize"], green)
        count = max(1, math.ceil(1 / step))
        return [min(1.0, step * n) for n in range(1, count + 1)]
    return [1.0]


def _fired_alarm(platform: Platform, alarms: list[str], seconds: float) -> str | None:
    """Watch ``alarms`` for ``seconds``: the first found in ALARM, or None."""
    deadline = time.monotonic() + seconds
    while True:
        if alarms:
            from openmaker.cloudwatch.alarms import alarm_states

            firing = [n for n, state in alarm_states(platform, alarms).items()
                      if state == "ALARM"]
            if firing:
                return firing[0]
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(ALARM_POLL_SECONDS, left))


def _roll_back(platform: Platform, name: str, routes: Traffic, green: Fleet,
               alarm: str) -> None:
    _set_status(platform, name, "RollingBack")
    with _lock:
        routes.incoming, routes.incoming_share = None, 0.0
    green.stop()
    _set_status(platform, name, "InService", **_serving_fields(routes.current),
                FailureReason=f"Update rolled back: alarm {alarm} went into ALARM; the "
                              "endpoint serves its previous configuration")


def _update(platform: Platform, name: str, config: dict, deployment: dict) -> None:
    alarms = [a["AlarmName"] for a in
              (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])]
    rolling = deployment.get("RollingUpdatePolicy")
    policy = rolling or deployment.get("BlueGreenUpdatePolicy") or {}
    routes = traffic(name)
    if routes is None:
        _set_status(platform, name, "Failed", FailureReason="the endpoint's fleet is gone")
        return
    target = copy.deepcopy(config)
    if rolling:  # the new fleet starts at one batch and grows while the old one shrinks
        for variant in target["ProductionVariants"]:
            variant["InitialInstanceCount"] = min(
                int(variant.get("InitialInstanceCount", 1)),
                _batch(rolling["MaximumBatchSize"], int(variant.get("InitialInstanceCount", 1))))
    try:
        green = build_fleet(platform, name, target)
    except Exception as exc:
        _set_status(platform, name, "InService",
                    FailureReason=f"Update failed, the endpoint keeps serving its previous "
                                  f"configuration: {_reason(exc)}"[:MAX_FAILURE_REASON])
        return
    routes.incoming = green
    routing = rolling or policy.get("TrafficRoutingConfiguration") or {}
    wait = routing.get("WaitIntervalInSeconds", 0)
    if rolling:
        steps = _rolling_steps(routes, green, config, rolling)
    else:
        steps = [functools.partial(setattr, routes, "incoming_share", share)
                 for share in traffic_shares(routing, green)]
    for index, step in enumerate(steps):
        step()
        if index < len(steps) - 1:
            fired = _fired_alarm(platform, alarms, wait)
            if fired is not None:
                _roll_back(platform, name, routes, green, fired)
                return
        if endpoint_record(platform, name) is None:  # deleted meanwhile
            green.stop()
            return
    fired = _fired_alarm(platform, alarms, policy.get("TerminationWaitInSeconds", 0))
    if fired is not None:  # the baking period: blue still runs
        _roll_back(platform, name, routes, green, fired)
        return
    blue = routes.current
    with _lock:
        routes.current, routes.incoming, routes.incoming_share = green, None, 0.0
    blue.stop()
    _set_status(platform, name, "InService", LastDeploymentConfig=deployment,
                **_serving_fields(green))


def _batch(size: dict, instances: int) -> int:
    if size["Type"] == "CAPACITY_PERCENT":
        return max(1, math.floor(instances * size["Value"] / 100))
    return max(1, int(size["Value"]))


def _rolling_steps(routes: Traffic, green: Fleet, config: dict, rolling: dict) -> list:
    """A rolling update's steps: the new fleet's first batch takes its share of the
    requests (by instance count), then each step adds up to a batch of instances to every
    variant until it has its ``InitialInstanceCount``."""
    desired = {v["VariantName"]: int(v.get("InitialInstanceCount", 1))
               for v in config["ProductionVariants"]}
    size = rolling["MaximumBatchSize"]

    def share() -> None:
        routes.incoming_share = min(1.0, green.instance_count() / sum(desired.values()))

    def grow() -> None:
        for name, variant in green.variants.items():
            batch = _batch(size, desired[name])
            green.set_capacity(variant, min(desired[name], len(variant.instances) + batch))
        share()

    batches = max(math.ceil((desired[n] - len(v.instances)) / _batch(size, desired[n]))
                  for n, v in green.variants.items())
    return [share] + [grow] * batches


def variant_for_request(routes: Traffic, target: str | None) -> tuple[Fleet, Variant | None]:
    """The fleet and production variant a request goes to (None: ``target`` names no
    variant); by weight, among variants of positive weight, when no target is given."""
    running = routes.fleet_for_request()
    if target is not None:
        return running, running.variants.get(target)
    candidates = [v for v in running.variants.values() if v.weight > 0]
    if not candidates:
        return running, None
    return running, random.choices(candidates, weights=[v.weight for v in candidates])[0]


# -- recovery -----------------------------------------------------------------------------
def recover_endpoints(platform: Platform) -> None:
    """Once per server process: build again the endpoints an earlier server was serving."""
    with _lock:
        if id(platform) in _recovered:
            return
        _recovered.add(id(platform))
    for status in ("Creating", "InService", "Updating", "SystemUpdating"):
        token = None
        while True:
            page, token = platform.resources.list(
                RESOURCE_TYPE, ListQuery(status_equals=status, next_token=token))
            for resource in page:
                try:
                    config = _checked_config(platform, resource.record["EndpointConfigName"])
                except errors.AwsError as exc:
                    _set_status(platform, resource.name, "Failed",
                                FailureReason=f"ClientError: {exc.message}")
                    continue
                _set_status(platform, resource.name, "Creating")
                _start(_create, platform, resource.name, config)
            if not token:
                break


@atexit.register
def _stop_fleets() -> None:
    with _lock:
        routes = list(_traffic.values())
    for each in routes:
        for running in (each.current, each.incoming):
            if running is not None:
                running.stop()


__all__ = ["create_endpoint", "delete_endpoint", "describe_endpoint", "endpoint_record",
           "fleet", "recover_endpoints", "set_variant_capacity", "traffic", "update_endpoint",
           "update_endpoint_weights_and_capacities"]
