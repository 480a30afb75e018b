"""Amazon Resource Names: building SageMaker-style ARNs and taking any ARN apart.

An ARN is ``arn:<partition>:<service>:<region>:<account>:<resource>``, where the
resource part is usually ``<type>/<id>`` (``training-job/my-job``) and sometimes
``<type>:<id>``. SageMaker lower-cases the name in the ARNs of jobs, models and
endpoints (``MyEndpoint`` -> ``...:endpoint/myendpoint``); model-package ARNs keep it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arn:
    """The parts of an ARN; ``str(arn)`` puts them back together."""

    partition: str
    service: str
    region: str  # empty for global services (IAM) and S3
    account_id: str  # empty for S3
    resource_type: str  # empty when the resource part has no type (an S3 bucket)
    resource_id: str
    separator: str = "/"  # what stood between resource_type and resource_id

    def __str__(self) -> str:
        resource = (
            f"{self.resource_type}{self.separator}{self.resource_id}"
            if self.resource_type
            else self.resource_id
        )
        return (
            f"arn:{self.partition}:{self.service}:{self.region}:{self.account_id}:{resource}"
        )


def make_arn(
    resource_type: str,
    name: str,
    *,
    region: str,
    account_id: str,
    service: str = "sagemaker",
    partition: str = "aws",
    lowercase: bool = True,
) -> str:
    """``arn:<partition>:<service>:<region>:<account>:<type>/<name>``.

    ``lowercase`` (the default) lower-cases the name as SageMaker does for jobs, models
    and endpoints; pass ``lowercase=False`` for resources whose ARNs keep the case.
    """
    for label, value in (
        ("resource type", resource_type),
        ("name", name),
        ("service", service),
        ("partition", partition),
    ):
        if not value:
            raise ValueError(f"an ARN needs a non-empty {label}")
    if ":" in resource_type or "/" in resource_type:
        raise ValueError(f"resource type {resource_type!r} must not contain ':' or '/'")
    resource_id = name.lower() if lowercase else name
    return f"arn:{partition}:{service}:{region}:{account_id}:{resource_type}/{resource_id}"


def parse_arn(arn: str) -> Arn:
    """Split ``arn`` into its parts; raise ``ValueError`` naming what is wrong with it.

    The resource type is whatever precedes the first ``/`` or ``:`` of the resource part;
    the rest, which may itself contain ``/`` (``model-package/group/1``), is the id.
    """
    if not isinstance(arn, str):
        raise ValueError(f"an ARN must be a string, got {type(arn).__name__}")
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(
            f"{arn!r} is not an ARN: expected arn:<partition>:<service>:<region>:"
            "<account>:<resource>"
        )
    _, partition, service, region, account_id, resource = parts
    if not partition:
        raise ValueError(f"ARN {arn!r} has an empty partition (expected e.g. 'aws')")
    if not service:
        raise ValueError(f"ARN {arn!r} has an empty service (expected e.g. 'sagemaker')")
    if not resource:
        raise ValueError(f"ARN {arn!r} has an empty resource part")
    cut = min((i for i in (resource.find("/"), resource.find(":")) if i >= 0), default=-1)
    if cut < 0:
        return Arn(partition, service, region, account_id, "", resource)
    resource_type, separator, resource_id = resource[:cut], resource[cut], resource[cut + 1:]
    if not resource_type or not resource_id:
        raise ValueError(
            f"ARN {arn!r} has a malformed resource part {resource!r} "
            f"(expected <type>{separator}<id>)"
        )
    return Arn(partition, service, region, account_id, resource_type, resource_id, separator)
