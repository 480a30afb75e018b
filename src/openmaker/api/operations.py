"""Which AWS operations openmaker implements, and where each handler lives.

Handlers are named as ``"module:function"`` and imported on first call, so the server
starts without importing every area. A handler takes ``(ctx: RequestContext, params:
dict)`` and returns the output shape as a dict. ``scripts/generate_api_coverage.py``
reads this table (plus the generic SageMaker List handler) to write
``docs/api-coverage.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Handler = Callable[..., Any]

# service name (botocore's) -> operation -> "module:function"
OPERATIONS: dict[str, dict[str, str]] = {
    "sagemaker-runtime": {
        "InvokeEndpoint": "openmaker.hosting.runtime:invoke_endpoint",
        "InvokeEndpointAsync": "openmaker.hosting.async_inference:invoke_endpoint_async",
        "InvokeEndpointWithResponseStream":
            "openmaker.hosting.runtime:invoke_endpoint_with_response_stream",
    },
    "sagemaker": {
        "AddTags": "openmaker.api.sagemaker:add_tags",
        "ListTags": "openmaker.api.sagemaker:list_tags",
        "DeleteTags": "openmaker.api.sagemaker:delete_tags",
        "CreateTrainingJob": "openmaker.training.service:create_training_job",
        "DescribeTrainingJob": "openmaker.training.service:describe_training_job",
        "StopTrainingJob": "openmaker.training.service:stop_training_job",
        **{name: f"openmaker.tuning.service:{handler}" for name, handler in (
            ("CreateHyperParameterTuningJob", "create_hyper_parameter_tuning_job"),
            ("DescribeHyperParameterTuningJob", "describe_hyper_parameter_tuning_job"),
            ("StopHyperParameterTuningJob", "stop_hyper_parameter_tuning_job"),
            ("ListTrainingJobsForHyperParameterTuningJob",
             "list_training_jobs_for_hyper_parameter_tuning_job"),
        )},
        **{name: f"openmaker.transform.service:{handler}" for name, handler in (
            ("CreateTransformJob", "create_transform_job"),
            ("DescribeTransformJob", "describe_transform_job"),
            ("StopTransformJob", "stop_transform_job"),
        )},
        **{name: f"openmaker.processing.service:{handler}" for name, handler in (
            ("CreateProcessingJob", "create_processing_job"),
            ("DescribeProcessingJob", "describe_processing_job"),
            ("StopProcessingJob", "stop_processing_job"),
        )},
        "CreateModel": "openmaker.hosting.models:create_model",
        "DescribeModel": "openmaker.hosting.models:describe_model",
        "DeleteModel": "openmaker.hosting.models:delete_model",
        "CreateEndpointConfig": "openmaker.hosting.endpoint_configs:create_endpoint_config",
        "DescribeEndpointConfig": "openmaker.hosting.endpoint_configs:describe_endpoint_config",
        "DeleteEndpointConfig": "openmaker.hosting.endpoint_configs:delete_endpoint_config",
        "CreateEndpoint": "openmaker.hosting.endpoints:create_endpoint",
        "DescribeEndpoint": "openmaker.hosting.endpoints:describe_endpoint",
        "DeleteEndpoint": "openmaker.hosting.endpoints:delete_endpoint",
        "UpdateEndpoint": "openmaker.hosting.endpoints:update_endpoint",
        "UpdateEndpointWeightsAndCapacities":
            "openmaker.hosting.endpoints:update_endpoint_weights_and_capacities",
    },
    "logs": {
        name: f"openmaker.cloudwatch.logs:{handler}"
        for name, handler in (
            ("CreateLogGroup", "create_log_group"), ("DeleteLogGroup", "delete_log_group"),
            ("DescribeLogGroups", "describe_log_groups"),
            ("CreateLogStream", "create_log_stream"), ("DeleteLogStream", "delete_log_stream"),
            ("DescribeLogStreams", "describe_log_streams"),
            ("PutLogEvents", "put_log_events"), ("GetLogEvents", "get_log_events"),
            ("FilterLogEvents", "filter_log_events"),
        )
    },
    "cloudwatch": {
        "ListMetrics": "openmaker.cloudwatch.metrics:list_metrics",
        "GetMetricData": "openmaker.cloudwatch.metrics:get_metric_data",
        "GetMetricStatistics": "openmaker.cloudwatch.metrics:get_metric_statistics",
        "PutMetricAlarm": "openmaker.cloudwatch.alarms:put_metric_alarm",
        "DescribeAlarms": "openmaker.cloudwatch.alarms:describe_alarms",
        "DeleteAlarms": "openmaker.cloudwatch.alarms:delete_alarms",
        "SetAlarmState": "openmaker.cloudwatch.alarms:set_alarm_state",
        "DescribeAlarmHistory": "openmaker.cloudwatch.alarms:describe_alarm_history",
    },
    "application-autoscaling": {
        name: f"openmaker.autoscaling.service:{handler}"
        for name, handler in (
            ("RegisterScalableTarget", "register_scalable_target"),
            ("DeregisterScalableTarget", "deregister_scalable_target"),
            ("DescribeScalableTargets", "describe_scalable_targets"),
            ("PutScalingPolicy", "put_scaling_policy"),
            ("DeleteScalingPolicy", "delete_scaling_policy"),
            ("DescribeScalingPolicies", "describe_scaling_policies"),
            ("DescribeScalingActivities", "describe_scaling_activities"),
        )
    },
    "sts": {
        "GetCallerIdentity": "openmaker.api.sts:get_caller_identity",
    },
    # S3 is routed by method and path in api/s3.py; this lists what it serves.
    "s3": {
        name: "openmaker.api.s3"
        for name in (
            "ListBuckets", "CreateBucket", "DeleteBucket", "HeadBucket", "GetBucketLocation",
            "GetBucketVersioning", "ListObjects", "ListObjectsV2", "PutObject", "GetObject",
            "HeadObject", "DeleteObject", "DeleteObjects", "CopyObject",
            "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
            "AbortMultipartUpload", "ListParts", "ListMultipartUploads",
        )
    },
}

_resolved: dict[tuple[str, str], Handler] = {}


def resolve(service: str, operation: str) -> Handler | None:
    """The handler for ``operation`` of ``service``, or None when not implemented."""
    key = (service, operation)
    handler = _resolved.get(key)
    if handler is not None:
        return handler
    target = OPERATIONS.get(service, {}).get(operation)
    if target is None or ":" not in target:
        return None
    module_name, function_name = target.split(":", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    _resolved[key] = handler
    return handler


def register(service: str, operation: str, target: str) -> None:
    """Add or replace the handler for an operation (``"module:function"``)."""
    OPERATIONS.setdefault(service, {})[operation] = target
    _resolved.pop((service, operation), None)
