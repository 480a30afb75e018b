"""Application Auto Scaling's API (AWS JSON 1.1, ``AnyScaleFrontendService.<Operation>``)
for SageMaker endpoint variants, with its state in the platform's database.

Served: ``ServiceNamespace=sagemaker``, ``ScalableDimension=
sagemaker:variant:DesiredInstanceCount``, ``ResourceId=endpoint/<endpoint>/variant/<variant>``
(the endpoint and its variant must exist). Policies are ``TargetTrackingScaling`` on the
predefined metric ``SageMakerVariantInvocationsPerInstance``; step scaling, predictive
scaling and customized metrics are refused with a ``ValidationException`` naming the field.
Scalable targets, policies and scaling activities are rows of the ``autoscaling_*`` tables;
:mod:`openmaker.autoscaling.scaler` evaluates the policies and records the activities.

The openmaker-specific tag :data:`ZERO_TRAFFIC_TAG` on a scalable target chooses what a
variant does when it gets no traffic: ``scale-in`` (the default, SageMaker's behaviour since
2021: zero invocations are a zero-valued metric, so the variant scales in to MinCapacity) or
``hold`` (the older behaviour: without traffic there are no datapoints and no scale-in).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from openmaker.core import errors
from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import PerPlatform, Platform, RequestContext

SCHEMA_VERSION = 1
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC_TYPE = "SageMakerVariantInvocationsPerInstance"
ZERO_TRAFFIC_TAG = "openmaker:zero-traffic"
ZERO_TRAFFIC_VALUES = ("scale-in", "hold")
DEFAULT_COOLDOWN_SECONDS = 300  # SageMaker's default ScaleInCooldown and ScaleOutCooldown
MAX_TARGETS_PAGE = 50
MAX_POLICIES_PAGE = 10
MAX_ACTIVITIES_PAGE = 50
RESOURCE_ID = re.compile(r"endpoint/(?P<endpoint>[^/]+)/variant/(?P<variant>[^/]+)")

_metadata = sa.MetaData()
_targets = sa.Table(
    "autoscaling_targets", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("namespace", Key, nullable=False),
    sa.Column("resource_id", Key, nullable=False),
    sa.Column("dimension", Key, nullable=False),
    sa.Column("arn", sa.String, nullable=False),
    sa.Column("min_capacity", sa.Integer, nullable=False),
    sa.Column("max_capacity", sa.Integer, nullable=False),
    sa.Column("role_arn", sa.String, nullable=False),
    sa.Column("suspended", sa.Text, nullable=False),  # SuspendedState as JSON
    sa.Column("tags", sa.Text, nullable=False),  # {key: value} as JSON
    sa.Column("creation_time", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("last_scale_out", sa.BigInteger),  # epoch ms of the last scale-out
    sa.Column("last_scale_in", sa.BigInteger),
    sa.UniqueConstraint("namespace", "resource_id", "dimension"),
)
_policies = sa.Table(
    "autoscaling_policies", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("target_id", Id, sa.ForeignKey("autoscaling_targets.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("name", Key, nullable=False),
    sa.Column("arn", sa.String, nullable=False),
    sa.Column("policy_type", sa.String, nullable=False),
    sa.Column("configuration", sa.Text, nullable=False),  # the policy's configuration, JSON
    sa.Column("alarms", sa.Text, nullable=False),  # [{AlarmName, AlarmARN}] as JSON
    sa.Column("creation_time", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("target_id", "name"),
)
_activities = sa.Table(
    "autoscaling_activities", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("activity_id", sa.String, nullable=False, unique=True),
    sa.Column("namespace", Key, nullable=False),
    sa.Column("resource_id", Key, nullable=False),
    sa.Column("dimension", Key, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger),
    sa.Column("status_code", sa.String, nullable=False),
    sa.Column("status_message", sa.Text),
    sa.Index("autoscaling_activities_by_resource", "resource_id", "id"),
)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_datetime(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


class AutoscalingStore:
    """Scalable targets, scaling policies and scaling activities in the database. Targets
    and policies come back as plain dicts (``id``, ``resource_id``, ``min_capacity`` ...)."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)
        create_schema(self._engine, _metadata, "autoscaling", SCHEMA_VERSION)

    def close(self) -> None:
        self._engine.dispose()

    # -- targets ----------------------------------------------------------------------------
    @staticmethod
    def _target(row: Any) -> dict:
        target = dict(row._mapping)
        target["suspended"] = json.loads(target["suspended"])
        target["tags"] = json.loads(target["tags"])
        return target

    def get_target(self, namespace: str, resource_id: str, dimension: str) -> dict | None:
        c = _targets.c
        with reading(self._engine) as connection:
            row = connection.execute(sa.select(_targets).where(
                c.namespace == namespace, c.resource_id == resource_id,
                c.dimension == dimension)).first()
        return None if row is None else self._target(row)

    def put_target(self, namespace: str, resource_id: str, dimension: str, *,
                   arn: str, min_capacity: int | None, max_capacity: int | None,
                   role_arn: str, suspended: dict | None, tags: dict | None) -> dict:
        """Create the target or update the fields given; ValidationException when a new
        target lacks a capacity or the capacities are out of order."""
        c = _targets.c
        where = (c.namespace == namespace, c.resource_id == resource_id,
                 c.dimension == dimension)
        with writing(self._engine) as connection:
            row = connection.execute(sa.select(_targets).where(*where)).first()
            if row is None:
                if min_capacity is None or max_capacity is None:
                    missing = "MinCapacity" if min_capacity is None else "MaxCapacity"
                    raise errors.ValidationException(
                        f"{missing} is required when registering a new scalable target "
                        f"({resource_id}).")
                _check_capacities(min_capacity, max_capacity)
                connection.execute(_targets.insert().values(
                    namespace=namespace, resource_id=resource_id, dimension=dimension,
                    arn=arn, min_capacity=min_capacity, max_capacity=max_capacity,
                    role_arn=role_arn, suspended=json.dumps(suspended or {}),
                    tags=json.dumps(tags or {}), creation_time=now_ms()))
            else:
                current = self._target(row)
                low = current["min_capacity"] if min_capacity is None else min_capacity
                high = current["max_capacity"] if max_capacity is None else max_capacity
                _check_capacities(low, high)
                connection.execute(_targets.update().where(*where).values(
                    min_capacity=low, max_capacity=high,
                    suspended=json.dumps({**current["suspended"], **(suspended or {})}),
                    tags=json.dumps({**current["tags"], **(tags or {})})))
            return self._target(connection.execute(sa.select(_targets).where(*where)).one())

    def delete_target(self, namespace: str, resource_id: str, dimension: str) -> bool:
        c = _targets.c
        with writing(self._engine) as connection:
            found = connection.execute(sa.select(c.id).where(
                c.namespace == namespace, c.resource_id == resource_id,
                c.dimension == dimension)).scalar()
            if found is None:
                return False
            connection.execute(_policies.delete().where(_policies.c.target_id == found))
            connection.execute(_targets.delete().where(c.id == found))
            return True

    def list_targets(self, *, resource_ids: list[str] | None = None,
                     dimension: str | None = None, after: int = 0,
                     limit: int | None = None) -> list[dict]:
        c = _targets.c
        query = sa.select(_targets).where(c.id > after)
        if resource_ids:
            query = query.where(c.resource_id.in_(resource_ids))
        if dimension is not None:
            query = query.where(c.dimension == dimension)
        query = query.order_by(c.id)
        if limit is not None:
            query = query.limit(limit)
        with reading(self._engine) as connection:
            return [self._target(row) for row in connection.execute(query).all()]

    def has_targets(self) -> bool:
        with reading(self._engine) as connection:
            return connection.execute(sa.select(_targets.c.id).limit(1)).first() is not None

    def mark_scaled(self, target_id: int, direction: str, when_ms: int) -> None:
        column = "last_scale_out" if direction == "out" else "last_scale_in"
        with writing(self._engine) as connection:
            connection.execute(_targets.update().where(_targets.c.id == target_id)
                               .values({column: when_ms}))

    # -- policies ---------------------------------------------------------------------------
    @staticmethod
    def _policy(row: Any) -> dict:
        policy = dict(row._mapping)
        policy["configuration"] = json.loads(policy["configuration"])
        policy["alarms"] = json.loads(policy["alarms"])
        return policy

    def _policy_query(self):
        return (sa.select(_policies, _targets.c.namespace, _targets.c.resource_id,
                          _targets.c.dimension)
                .join(_targets, _targets.c.id == _policies.c.target_id))

    def put_policy(self, target_id: int, name: str, *, policy_type: str,
                   configuration: dict, arn: str, alarms: list[dict]) -> dict:
        """Create the policy or replace its configuration (its ARN and alarms stay)."""
        c = _policies.c
        with writing(self._engine) as connection:
            found = connection.execute(sa.select(c.id).where(
                c.target_id == target_id, c.name == name)).scalar()
            if found is None:
                connection.execute(_policies.insert().values(
                    target_id=target_id, name=name, arn=arn, policy_type=policy_type,
                    configuration=json.dumps(configuration), alarms=json.dumps(alarms),
                    creation_time=now_ms()))
            else:
                connection.execute(_policies.update().where(c.id == found).values(
                    policy_type=policy_type, configuration=json.dumps(configuration)))
            row = connection.execute(self._policy_query().where(
                c.target_id == target_id, c.name == name)).one()
            return self._policy(row)

    def delete_policy(self, target_id: int, name: str) -> bool:
        c = _policies.c
        with writing(self._engine) as connection:
            result = connection.execute(_policies.delete().where(
                c.target_id == target_id, c.name == name))
            return result.rowcount > 0

    def list_policies(self, *, resource_id: str | None = None, dimension: str | None = None,
                      names: list[str] | None = None, target_id: int | None = None,
                      after: int = 0, limit: int | None = None) -> list[dict]:
        c = _policies.c
        query = self._policy_query().where(c.id > after)
        if resource_id is not None:
            query = query.where(_targets.c.resource_id == resource_id)
        if dimension is not None:
            query = query.where(_targets.c.dimension == dimension)
        if names:
            query = query.where(c.name.in_(names))
        if target_id is not None:
            query = query.where(c.target_id == target_id)
        query = query.order_by(c.id)
        if limit is not None:
            query = query.limit(limit)
        with reading(self._engine) as connection:
            return [self._policy(row) for row in connection.execute(query).all()]

    # -- activities -------------------------------------------------------------------------
    def add_activity(self, namespace: str, resource_id: str, dimension: str, *,
                     description: str, cause: str, start_ms: int, end_ms: int | None,
                     status_code: str, status_message: str | None = None) -> str:
        activity_id = str(uuid.uuid4())
        with writing(self._engine) as connection:
            connection.execute(_activities.insert().values(
                activity_id=activity_id, namespace=namespace, resource_id=resource_id,
                dimension=dimension, description=description, cause=cause,
                start_time=start_ms, end_time=end_ms, status_code=status_code,
                status_message=status_message))
        return activity_id

    def list_activities(self, *, resource_id: str | None = None,
                        dimension: str | None = None, before: int | None = None,
                        limit: int | None = None) -> list[dict]:
        """Newest first."""
        c = _activities.c
        query = sa.select(_activities)
        if before is not None:
            query = query.where(c.id < before)
        if resource_id is not None:
            query = query.where(c.resource_id == resource_id)
        if dimension is not None:
            query = query.where(c.dimension == dimension)
        query = query.order_by(c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with reading(self._engine) as connection:
            return [dict(row._mapping) for row in connection.execute(query).all()]


def _check_capacities(low: int, high: int) -> None:
    if low < 1:
        raise errors.ValidationException(
            f"MinCapacity: {low} is below 1, the least a real-time endpoint variant can run "
            "with.")
    if high < low:
        raise errors.ValidationException(
            f"MaxCapacity: {high} is below MinCapacity ({low}); MaxCapacity must be at "
            "least MinCapacity.")


autoscaling_store: PerPlatform[AutoscalingStore] = PerPlatform(
    lambda platform: AutoscalingStore(platform.settings.resolved_database_url))
"""The platform's autoscaling store, opened (and its tables created) on first use."""


# -- validation ---------------------------------------------------------------------------
def _check_namespace(params: dict) -> None:
    namespace = params["ServiceNamespace"]
    if namespace != NAMESPACE:
        raise errors.ValidationException(
            f"ServiceNamespace: {namespace!r} is not served by openmaker; Application Auto "
            f"Scaling here scales SageMaker endpoint variants (ServiceNamespace "
            f"{NAMESPACE!r}).")


def _check_dimension(dimension: str | None) -> None:
    if dimension is not None and dimension != DIMENSION:
        raise errors.ValidationException(
            f"ScalableDimension: {dimension!r} is not served by openmaker; use {DIMENSION!r} "
            "for an endpoint variant.")


def split_resource_id(resource_id: str, field: str = "ResourceId") -> tuple[str, str]:
    """``(endpoint, variant)`` of ``endpoint/<endpoint>/variant/<variant>``."""
    match = RESOURCE_ID.fullmatch(resource_id)
    if match is None:
        raise errors.ValidationException(
            f"{field}: {resource_id!r} is not an endpoint variant; write it as "
            "'endpoint/<endpoint-name>/variant/<variant-name>'.")
    return match["endpoint"], match["variant"]


def variant_names(platform: Platform, endpoint: str) -> list[str] | None:
    """The endpoint's production variant names, or None when there is no such endpoint.
    An endpoint still being created has no variant summaries yet; its endpoint config
    names them."""
    from openmaker.hosting.endpoints import endpoint_record

    record = endpoint_record(platform, endpoint)
    if record is None:
        return None
    if record.get("ProductionVariants"):
        return [v["VariantName"] for v in record["ProductionVariants"]]
    try:
        from openmaker.hosting.endpoint_configs import get_endpoint_config

        config = get_endpoint_config(platform, record["EndpointConfigName"])
    except (errors.AwsError, KeyError):
        return []
    return [v["VariantName"] for v in config.get("ProductionVariants", [])]


def _check_variant_exists(platform: Platform, resource_id: str) -> None:
    endpoint, variant = split_resource_id(resource_id)
    names = variant_names(platform, endpoint)
    if names is None:
        raise errors.ValidationException(
            f"ResourceId: endpoint {endpoint!r} (in {resource_id!r}) does not exist.")
    if variant not in names:
        raise errors.ValidationException(
            f"ResourceId: endpoint {endpoint!r} has no production variant {variant!r} "
            f"(it has {', '.join(names) or 'none yet'}).")


def _target_key(params: dict) -> tuple[str, str, str]:
    _check_namespace(params)
    _check_dimension(params["ScalableDimension"])
    split_resource_id(params["ResourceId"])
    return params["ServiceNamespace"], params["ResourceId"], params["ScalableDimension"]


def _no_target(namespace: str, resource_id: str, dimension: str) -> errors.AwsError:
    return errors.ObjectNotFoundException(
        f"No scalable target registered for service namespace: {namespace}, resource ID: "
        f"{resource_id}, scalable dimension: {dimension}")


def _check_zero_traffic_tag(tags: dict | None) -> None:
    value = (tags or {}).get(ZERO_TRAFFIC_TAG)
    if value is not None and value not in ZERO_TRAFFIC_VALUES:
        raise errors.ValidationException(
            f"Tags.{ZERO_TRAFFIC_TAG}: {value!r} is not one of "
            f"{', '.join(ZERO_TRAFFIC_VALUES)} ('scale-in' scales a variant without traffic "
            "in to MinCapacity, 'hold' keeps its capacity).")


def _check_policy(params: dict) -> tuple[str, dict]:
    policy_type = params.get("PolicyType", "StepScaling")
    if policy_type != "TargetTrackingScaling":
        omitted = " (the default when PolicyType is omitted)" if "PolicyType" not in params \
            else ""
        raise errors.ValidationException(
            f"PolicyType: {policy_type}{omitted} is not served by openmaker; use "
            "TargetTrackingScaling with TargetTrackingScalingPolicyConfiguration.")
    configuration = params.get("TargetTrackingScalingPolicyConfiguration")
    if configuration is None:
        raise errors.ValidationException(
            "TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling "
            "policy.")
    field = "TargetTrackingScalingPolicyConfiguration"
    if "CustomizedMetricSpecification" in configuration:
        raise errors.ValidationException(
            f"{field}.CustomizedMetricSpecification is not served by openmaker; use "
            f"PredefinedMetricSpecification with PredefinedMetricType {METRIC_TYPE}.")
    predefined = configuration.get("PredefinedMetricSpecification")
    if predefined is None:
        raise errors.ValidationException(
            f"{field}.PredefinedMetricSpecification is required (PredefinedMetricType "
            f"{METRIC_TYPE}).")
    if predefined["PredefinedMetricType"] != METRIC_TYPE:
        raise errors.ValidationException(
            f"{field}.PredefinedMetricSpecification.PredefinedMetricType: "
            f"{predefined['PredefinedMetricType']!r} is not served by openmaker; use "
            f"{METRIC_TYPE} for an endpoint variant.")
    if not configuration["TargetValue"] > 0:
        raise errors.ValidationException(
            f"{field}.TargetValue: {configuration['TargetValue']} must be greater than 0 "
            "(average invocations per minute per instance).")
    for cooldown in ("ScaleOutCooldown", "ScaleInCooldown"):
        if configuration.get(cooldown, 0) < 0:
            raise errors.ValidationException(
                f"{field}.{cooldown}: {configuration[cooldown]} must be 0 or more seconds.")
    return policy_type, configuration


# -- paging -------------------------------------------------------------------------------
def _page_limit(params: dict, most: int) -> int:
    limit = params.get("MaxResults", most)
    if not 1 <= limit <= most:
        raise errors.ValidationException(f"MaxResults: {limit} is not between 1 and {most}.")
    return limit


def _encode_token(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([kind, position]).encode()).decode()


def _decode_token(token: str | None, kind: str) -> int | None:
    if not token:
        return None
    try:
        found, position = json.loads(base64.urlsafe_b64decode(token.encode()))
        if found == kind and isinstance(position, int):
            return position
    except (ValueError, TypeError):
        pass
    raise errors.ValidationException(
        f"NextToken: {token!r} is not a token this operation returned.")


# -- wire shapes --------------------------------------------------------------------------
def target_shape(target: dict) -> dict:
    return {
        "ServiceNamespace": target["namespace"], "ResourceId": target["resource_id"],
        "ScalableDimension": target["dimension"], "MinCapacity": target["min_capacity"],
        "MaxCapacity": target["max_capacity"], "RoleARN": target["role_arn"],
        "CreationTime": to_datetime(target["creation_time"]),
        "SuspendedState": {"DynamicScalingInSuspended": False,
                           "DynamicScalingOutSuspended": False,
                           "ScheduledScalingSuspended": False, **target["suspended"]},
        "ScalableTargetARN": target["arn"],
    }


def _policy_shape(policy: dict) -> dict:
    return {
        "PolicyARN": policy["arn"], "PolicyName": policy["name"],
        "ServiceNamespace": policy["namespace"], "ResourceId": policy["resource_id"],
        "ScalableDimension": policy["dimension"], "PolicyType": policy["policy_type"],
        "TargetTrackingScalingPolicyConfiguration": policy["configuration"],
        "Alarms": policy["alarms"], "CreationTime": to_datetime(policy["creation_time"]),
    }


def _activity_shape(activity: dict) -> dict:
    shape = {
        "ActivityId": activity["activity_id"], "ServiceNamespace": activity["namespace"],
        "ResourceId": activity["resource_id"], "ScalableDimension": activity["dimension"],
        "Description": activity["description"], "Cause": activity["cause"],
        "StartTime": to_datetime(activity["start_time"]),
        "StatusCode": activity["status_code"],
    }
    if activity["end_time"] is not None:
        shape["EndTime"] = to_datetime(activity["end_time"])
    if activity["status_message"]:
        shape["StatusMessage"] = activity["status_message"]
    return shape


def _default_role(ctx: RequestContext) -> str:
    return (f"arn:aws:iam::{ctx.account_id}:role/aws-service-role/"
            "sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")


# -- API handlers (ctx, params) -> output -----------------------------------------------------
def register_scalable_target(ctx: RequestContext, params: dict) -> dict:
    namespace, resource_id, dimension = _target_key(params)
    _check_variant_exists(ctx.platform, resource_id)
    _check_zero_traffic_tag(params.get("Tags"))
    store = autoscaling_store(ctx.platform)
    arn = (f"arn:aws:application-autoscaling:{ctx.region}:{ctx.account_id}:"
           f"scalable-target/{uuid.uuid4().hex}")
    target = store.put_target(
        namespace, resource_id, dimension, arn=arn, min_capacity=params.get("MinCapacity"),
        max_capacity=params.get("MaxCapacity"),
        role_arn=params.get("RoleARN") or _default_role(ctx),
        suspended=params.get("SuspendedState"), tags=params.get("Tags"))
    from openmaker.autoscaling.scaler import start_scaler

    start_scaler(ctx.platform)
    return {"ScalableTargetARN": target["arn"]}


def deregister_scalable_target(ctx: RequestContext, params: dict) -> dict:
    key = _target_key(params)
    if not autoscaling_store(ctx.platform).delete_target(*key):
        raise _no_target(*key)
    return {}


def describe_scalable_targets(ctx: RequestContext, params: dict) -> dict:
    _check_namespace(params)
    _check_dimension(params.get("ScalableDimension"))
    limit = _page_limit(params, MAX_TARGETS_PAGE)
    after = _decode_token(params.get("NextToken"), "targets") or 0
    found = autoscaling_store(ctx.platform).list_targets(
        resource_ids=params.get("ResourceIds"), dimension=params.get("ScalableDimension"),
        after=after, limit=limit + 1)
    result: dict[str, Any] = {"ScalableTargets": [target_shape(t) for t in found[:limit]]}
    if len(found) > limit:
        result["NextToken"] = _encode_token("targets", found[limit - 1]["id"])
    return result


def put_scaling_policy(ctx: RequestContext, params: dict) -> dict:
    namespace, resource_id, dimension = _target_key(params)
    policy_type, configuration = _check_policy(params)
    store = autoscaling_store(ctx.platform)
    target = store.get_target(namespace, resource_id, dimension)
    if target is None:
        raise _no_target(namespace, resource_id, dimension)
    name = params["PolicyName"]
    policy_id = uuid.uuid4()
    arn = (f"arn:aws:autoscaling:{ctx.region}:{ctx.account_id}:scalingPolicy:{policy_id}:"
           f"resource/{namespace}/{resource_id}:policyName/{name}")
    alarms = []
    for side in ("AlarmHigh", "AlarmLow"):
        alarm = f"TargetTracking-{resource_id}-{side}-{uuid.uuid4()}"
        alarms.append({"AlarmName": alarm,
                       "AlarmARN": f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:"
                                   f"alarm:{alarm}"})
    policy = store.put_policy(target["id"], name, policy_type=policy_type,
                              configuration=configuration, arn=arn, alarms=alarms)
    return {"PolicyARN": policy["arn"], "Alarms": policy["alarms"]}


def delete_scaling_policy(ctx: RequestContext, params: dict) -> dict:
    namespace, resource_id, dimension = _target_key(params)
    store = autoscaling_store(ctx.platform)
    target = store.get_target(namespace, resource_id, dimension)
    if target is None or not store.delete_policy(target["id"], params["PolicyName"]):
        raise errors.ObjectNotFoundException(
            f"No scaling policy found for service namespace: {namespace}, resource ID: "
            f"{resource_id}, scalable dimension: {dimension}, policy name: "
            f"{params['PolicyName']}")
    return {}


def describe_scaling_policies(ctx: RequestContext, params: dict) -> dict:
    _check_namespace(params)
    _check_dimension(params.get("ScalableDimension"))
    limit = _page_limit(params, MAX_POLICIES_PAGE)
    after = _decode_token(params.get("NextToken"), "policies") or 0
    found = autoscaling_store(ctx.platform).list_policies(
        resource_id=params.get("ResourceId"), dimension=params.get("ScalableDimension"),
        names=params.get("PolicyNames"), after=after, limit=limit + 1)
    result: dict[str, Any] = {"ScalingPolicies": [_policy_shape(p) for p in found[:limit]]}
    if len(found) > limit:
        result["NextToken"] = _encode_token("policies", found[limit - 1]["id"])
    return result


def describe_scaling_activities(ctx: RequestContext, params: dict) -> dict:
    """Newest first; only activities that changed (or tried to change) capacity are
    recorded, so ``IncludeNotScaledActivities`` adds nothing."""
    _check_namespace(params)
    _check_dimension(params.get("ScalableDimension"))
    limit = _page_limit(params, MAX_ACTIVITIES_PAGE)
    before = _decode_token(params.get("NextToken"), "activities")
    found = autoscaling_store(ctx.platform).list_activities(
        resource_id=params.get("ResourceId"), dimension=params.get("ScalableDimension"),
        before=before, limit=limit + 1)
    result: dict[str, Any] = {
        "ScalingActivities": [_activity_shape(a) for a in found[:limit]]}
    if len(found) > limit:
        result["NextToken"] = _encode_token("activities", found[limit - 1]["id"])
    return result
