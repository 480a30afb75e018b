"""SageMaker control-plane operations served by the platform itself: tags by ARN, and a
generic handler for ``List*`` operations over resources kept in the resource store.

Areas (training, hosting ...) register their own operations in ``api/operations.py``;
a ``List*`` operation with no registered handler lists the store's resources of its type,
with SageMaker's common filters, sorting and ``NextToken`` pagination, each item projected
onto the operation's summary shape.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from openmaker.core import errors, service_models
from openmaker.core.platform import RequestContext

RESERVED_TAG_PREFIX = "aws:"

# List-operation input member -> ListQuery field
_STANDARD_LIST_MEMBERS = {
    "NameContains": "name_contains",
    "StatusEquals": "status_equals",
    "CreationTimeAfter": "creation_time_after",
    "CreationTimeBefore": "creation_time_before",
    "CreatedAfter": "creation_time_after",
    "CreatedBefore": "creation_time_before",
    "LastModifiedTimeAfter": "last_modified_time_after",
    "LastModifiedTimeBefore": "last_modified_time_before",
    "SortBy": "sort_by",
    "SortOrder": "sort_order",
    "MaxResults": "max_results",
    "NextToken": "next_token",
}
_SORT_KEYS = {"Name", "CreationTime", "Status", "LastModifiedTime"}
# ARN resource types that are not the kebab-case of the resource's name
_ARN_TYPES = {"Trial": "experiment-trial", "TrialComponent": "experiment-trial-component",
              "AutoMLJob": "automl-job"}


# -- tags ---------------------------------------------------------------------------------
def _resource_missing(arn: str) -> errors.AwsError:
    return errors.ValidationException(f"Resource {arn} does not exist.")


def _check_arn_home(ctx: RequestContext, arn: str) -> None:
    parts = arn.split(":", 5)
    if parts[4] != ctx.account_id:
        raise errors.ValidationException(
            f"Resource {arn} belongs to account {parts[4]}, not this account "
            f"({ctx.account_id})."
        )


def add_tags(ctx: RequestContext, params: dict) -> dict:
    from openmaker.core.resources import ResourceNotFoundError

    arn, tags = params["ResourceArn"], params["Tags"]
    _check_arn_home(ctx, arn)
    for index, tag in enumerate(tags, start=1):
        if tag["Key"].lower().startswith(RESERVED_TAG_PREFIX):
            raise errors.ValidationException(
                f"Tags.{index}.Key {tag['Key']!r}: keys starting with 'aws:' are reserved "
                "for AWS use."
            )
    try:
        ctx.platform.resources.add_tags(arn, tags)
    except ResourceNotFoundError:
        raise _resource_missing(arn) from None
    return {"Tags": tags}


def list_tags(ctx: RequestContext, params: dict) -> dict:
    from openmaker.core.resources import ResourceNotFoundError

    arn = params["ResourceArn"]
    _check_arn_home(ctx, arn)
    try:
        tags, token = ctx.platform.resources.list_tags(
            arn, max_results=params.get("MaxResults", 50), next_token=params.get("NextToken")
        )
    except ResourceNotFoundError:
        raise _resource_missing(arn) from None
    result: dict = {"Tags": tags}
    if token:
        result["NextToken"] = token
    return result


def delete_tags(ctx: RequestContext, params: dict) -> dict:
    from openmaker.core.resources import ResourceNotFoundError

    arn = params["ResourceArn"]
    _check_arn_home(ctx, arn)
    try:
        ctx.platform.resources.delete_tags(arn, params["TagKeys"])
    except ResourceNotFoundError:
        raise _resource_missing(arn) from None
    return {}


# -- generic List* --------------------------------------------------------------------------
@dataclass(frozen=True)
class ListSpec:
    operation: str
    resource_type: str  # the ARN resource type the store keys resources by
    result_key: str


def generic_handler(operation: str):
    """A handler for a SageMaker ``List*`` operation over the resource store, or None."""
    spec = list_spec(operation)
    return functools.partial(list_resources, spec) if spec is not None else None


@functools.cache
def list_spec(operation: str) -> ListSpec | None:
    """How to serve ``operation`` generically; None when it needs more than the store has
    (a required parent, such as ListTrainingJobsForHyperParameterTuningJob's tuning job)."""
    if not operation.startswith("List"):
        return None
    model = service_models.operation_model("sagemaker", operation)
    if model is None or model.input_shape is None or model.input_shape.required_members:
        return None
    paginator = service_models.paginator_config("sagemaker", operation)
    if paginator is None or not isinstance(paginator.get("result_key"), str):
        return None
    result_key = paginator["result_key"]
    items = model.output_shape.members.get(result_key)
    item = getattr(items, "member", None)
    if item is None or item.type_name != "structure":
        return None
    noun = _singular(operation[len("List"):])
    return ListSpec(
        operation=operation,
        resource_type=_arn_type(noun, item),
        result_key=result_key,
    )


def list_resources(spec: ListSpec, ctx: RequestContext, params: dict) -> dict:
    from openmaker.core.resources import ListQuery

    unsupported = sorted(set(params) - set(_STANDARD_LIST_MEMBERS))
    if unsupported:
        raise errors.NotImplementedOperation(
            f"{spec.operation}: filtering by {', '.join(unsupported)} is not implemented by "
            "openmaker yet."
        )
    sort_by = params.get("SortBy", "CreationTime")
    if sort_by not in _SORT_KEYS:
        raise errors.NotImplementedOperation(
            f"{spec.operation}: SortBy {sort_by} is not implemented by openmaker yet."
        )
    query = ListQuery(**{_STANDARD_LIST_MEMBERS[k]: v for k, v in params.items()})
    resources, token = ctx.platform.resources.list(spec.resource_type, query)
    result: dict = {spec.result_key: [resource.record for resource in resources]}
    if token:
        result["NextToken"] = token
    return result


def _singular(noun: str) -> str:
    if noun.endswith("ies"):
        return noun[:-3] + "y"
    if noun.endswith("s"):
        return noun[:-1]
    return noun


def _arn_type(noun: str, item) -> str:
    if noun in _ARN_TYPES:
        return _ARN_TYPES[noun]
    arn_shape = item.members.get(f"{noun}Arn")
    pattern = arn_shape.metadata.get("pattern", "") if arn_shape is not None else ""
    match = re.search(r":(?:\[0-9\]\{12\}|\\d\{12\}):([a-z][a-z\-]*)/", pattern)
    if match:
        return match.group(1)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", noun).lower()
