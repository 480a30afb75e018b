"""Application Auto Scaling's API for endpoint variants, with boto3 against a real server:
every operation, validation errors naming their field, and state kept across a restart."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
RESOURCE = "endpoint/scaled/variant/AllTraffic"
TRACKING = {"TargetValue": 70.0, "ScaleInCooldown": 120, "ScaleOutCooldown": 60,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A server with an endpoint ``scaled`` (variants AllTraffic and Canary). Its model
    archive is not a tar file, so the endpoint never serves; the scaler leaves it alone,
    which keeps these tests about the API."""
    home = tmp_path_factory.mktemp("autoscaling-home")
    server = start_server(home, {"OPENMAKER_AUTOSCALING_INTERVAL_SECONDS": "0.2"})
    s3 = server.client("s3")
    s3.create_bucket(Bucket="autoscaling")
    s3.put_object(Bucket="autoscaling", Key="model.tar.gz", Body=b"not a tar archive")
    sagemaker = server.client("sagemaker")
    sagemaker.create_model(ModelName="scaled-model", ExecutionRoleArn=ROLE, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": "s3://autoscaling/model.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="scaled-config", ProductionVariants=[
        {"VariantName": name, "ModelName": "scaled-model", "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"} for name in ("AllTraffic", "Canary")])
    sagemaker.create_endpoint(EndpointName="scaled", EndpointConfigName="scaled-config")
    box = {"server": server}
    yield box
    box["server"].stop()


@pytest.fixture
def aas(running):
    return running["server"].client("application-autoscaling")


def register(client, resource=RESOURCE, **fields):
    fields.setdefault("MinCapacity", 1)
    fields.setdefault("MaxCapacity", 4)
    return client.register_scalable_target(
        ServiceNamespace=NAMESPACE, ResourceId=resource, ScalableDimension=DIMENSION,
        **fields)


def put_policy(client, name="tracking", resource=RESOURCE, **fields):
    fields.setdefault("PolicyType", "TargetTrackingScaling")
    fields.setdefault("TargetTrackingScalingPolicyConfiguration", TRACKING)
    return client.put_scaling_policy(
        PolicyName=name, ServiceNamespace=NAMESPACE, ResourceId=resource,
        ScalableDimension=DIMENSION, **fields)


def error_of(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def test_register_and_describe_a_scalable_target(aas):
    arn = register(aas, MinCapacity=1, MaxCapacity=3,
                   Tags={"team": "ml"})["ScalableTargetARN"]
    assert arn.startswith("arn:aws:application-autoscaling:us-east-1:000000000000:"
                          "scalable-target/")
    [target] = aas.describe_scalable_targets(ServiceNamespace=NAMESPACE,
                                             ResourceIds=[RESOURCE])["ScalableTargets"]
    assert target["ScalableTargetARN"] == arn
    assert (target["ResourceId"], target["ScalableDimension"]) == (RESOURCE, DIMENSION)
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in target["RoleARN"]
    assert target["SuspendedState"] == {"DynamicScalingInSuspended": False,
                                        "DynamicScalingOutSuspended": False,
                                        "ScheduledScalingSuspended": False}
    # registering again updates the fields given and keeps the ARN
    assert register(aas, MaxCapacity=5, SuspendedState={
        "DynamicScalingInSuspended": True})["ScalableTargetARN"] == arn
    [target] = aas.describe_scalable_targets(ServiceNamespace=NAMESPACE,
                                             ResourceIds=[RESOURCE])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 5)
    assert target["SuspendedState"]["DynamicScalingInSuspended"] is True
    register(aas, SuspendedState={"DynamicScalingInSuspended": False})


def test_describe_scalable_targets_pages(aas):
    register(aas)
    register(aas, "endpoint/scaled/variant/Canary")
    first = aas.describe_scalable_targets(ServiceNamespace=NAMESPACE, MaxResults=1)
    assert len(first["ScalableTargets"]) == 1 and first["NextToken"]
    second = aas.describe_scalable_targets(ServiceNamespace=NAMESPACE, MaxResults=1,
                                           NextToken=first["NextToken"])
    ids = {first["ScalableTargets"][0]["ResourceId"], second["ScalableTargets"][0]["ResourceId"]}
    assert ids == {RESOURCE, "endpoint/scaled/variant/Canary"}
    pages = aas.get_paginator("describe_scalable_targets").paginate(ServiceNamespace=NAMESPACE)
    assert len([t for page in pages for t in page["ScalableTargets"]]) == 2
    aas.deregister_scalable_target(ServiceNamespace=NAMESPACE, ScalableDimension=DIMENSION,
                                   ResourceId="endpoint/scaled/variant/Canary")


def test_put_describe_and_delete_a_target_tracking_policy(aas):
    register(aas)
    created = put_policy(aas)
    assert created["PolicyARN"].startswith("arn:aws:autoscaling:us-east-1:000000000000:"
                                           "scalingPolicy:")
    assert created["PolicyARN"].endswith(f":resource/sagemaker/{RESOURCE}:policyName/tracking")
    assert [alarm["AlarmName"].split("-")[-6] for alarm in created["Alarms"]] == [
        "AlarmHigh", "AlarmLow"]
    assert all(alarm["AlarmARN"].startswith("arn:aws:cloudwatch:us-east-1:000000000000:alarm:"
                                            "TargetTracking-") for alarm in created["Alarms"])
    [policy] = aas.describe_scaling_policies(ServiceNamespace=NAMESPACE, ResourceId=RESOURCE,
                                             PolicyNames=["tracking"])["ScalingPolicies"]
    assert policy["PolicyARN"] == created["PolicyARN"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == TRACKING
    assert policy["Alarms"] == created["Alarms"]
    # putting it again replaces the configuration, not the ARN
    changed = {**TRACKING, "TargetValue": 10.0, "DisableScaleIn": True}
    again = put_policy(aas, TargetTrackingScalingPolicyConfiguration=changed)
    assert again["PolicyARN"] == created["PolicyARN"]
    [policy] = aas.describe_scaling_policies(ServiceNamespace=NAMESPACE)["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"] == changed
    aas.delete_scaling_policy(PolicyName="tracking", ServiceNamespace=NAMESPACE,
                              ResourceId=RESOURCE, ScalableDimension=DIMENSION)
    assert aas.describe_scaling_policies(ServiceNamespace=NAMESPACE)["ScalingPolicies"] == []
    code, message = error_of(aas.delete_scaling_policy, PolicyName="tracking",
                             ServiceNamespace=NAMESPACE, ResourceId=RESOURCE,
                             ScalableDimension=DIMENSION)
    assert code == "ObjectNotFoundException" and "tracking" in message


def test_deregister_removes_the_target_and_its_policies(aas):
    resource = "endpoint/scaled/variant/Canary"
    register(aas, resource)
    put_policy(aas, "canary-policy", resource)
    aas.deregister_scalable_target(ServiceNamespace=NAMESPACE, ResourceId=resource,
                                   ScalableDimension=DIMENSION)
    assert aas.describe_scalable_targets(ServiceNamespace=NAMESPACE,
                                         ResourceIds=[resource])["ScalableTargets"] == []
    assert aas.describe_scaling_policies(ServiceNamespace=NAMESPACE,
                                         ResourceId=resource)["ScalingPolicies"] == []
    code, message = error_of(aas.deregister_scalable_target, ServiceNamespace=NAMESPACE,
                             ResourceId=resource, ScalableDimension=DIMENSION)
    assert code == "ObjectNotFoundException" and resource in message
    code, _ = error_of(put_policy, aas, "canary-policy", resource)
    assert code == "ObjectNotFoundException"


def test_describe_scaling_activities_answers_for_the_namespace(aas):
    response = aas.describe_scaling_activities(ServiceNamespace=NAMESPACE,
                                               ResourceId=RESOURCE,
                                               IncludeNotScaledActivities=True)
    assert response["ScalingActivities"] == []  # the endpoint never came into service


@pytest.mark.parametrize(("fields", "named"), [
    ({"ServiceNamespace": "ecs"}, "ServiceNamespace"),
    ({"ScalableDimension": "sagemaker:variant:DesiredProvisionedConcurrency"},
     "ScalableDimension"),
    ({"ResourceId": "endpoint/scaled"}, "ResourceId"),
    ({"ResourceId": "endpoint/no-such-endpoint/variant/AllTraffic"}, "no-such-endpoint"),
    ({"ResourceId": "endpoint/scaled/variant/Nope"}, "Nope"),
    ({"MinCapacity": 0}, "MinCapacity"),
    ({"MinCapacity": 3, "MaxCapacity": 2}, "MaxCapacity"),
    ({"Tags": {"openmaker:zero-traffic": "sometimes"}}, "openmaker:zero-traffic"),
])
def test_register_validation_errors_name_the_field(aas, fields, named):
    params = {"ServiceNamespace": NAMESPACE, "ResourceId": RESOURCE,
              "ScalableDimension": DIMENSION, "MinCapacity": 1, "MaxCapacity": 2, **fields}
    code, message = error_of(aas.register_scalable_target, **params)
    assert code == "ValidationException"
    assert named in message


def test_a_new_target_needs_its_capacities(aas):
    code, message = error_of(aas.register_scalable_target, ServiceNamespace=NAMESPACE,
                             ResourceId="endpoint/scaled/variant/Canary",
                             ScalableDimension=DIMENSION, MaxCapacity=2)
    assert code == "ValidationException" and "MinCapacity" in message


@pytest.mark.parametrize(("fields", "named"), [
    ({"PolicyType": "StepScaling"}, "PolicyType"),
    ({"PolicyType": None}, "PolicyType"),
    ({"TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": 5.0, "CustomizedMetricSpecification": {
            "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints",
            "Statistic": "Average"}}}, "CustomizedMetricSpecification"),
    ({"TargetTrackingScalingPolicyConfiguration": {
        "TargetValue": 5.0, "PredefinedMetricSpecification": {
            "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}},
     "PredefinedMetricType"),
    ({"TargetTrackingScalingPolicyConfiguration": {"TargetValue": 5.0}},
     "PredefinedMetricSpecification"),
    ({"TargetTrackingScalingPolicyConfiguration": {**TRACKING, "TargetValue": 0.0}},
     "TargetValue"),
    ({"PolicyType": "TargetTrackingScaling",
      "TargetTrackingScalingPolicyConfiguration": None},
     "TargetTrackingScalingPolicyConfiguration"),
])
def test_policy_validation_errors_name_the_field(aas, fields, named):
    register(aas)
    params = {"PolicyType": "TargetTrackingScaling",
              "TargetTrackingScalingPolicyConfiguration": TRACKING, **fields}
    params = {k: v for k, v in params.items() if v is not None}
    code, message = error_of(aas.put_scaling_policy, PolicyName="bad",
                             ServiceNamespace=NAMESPACE, ResourceId=RESOURCE,
                             ScalableDimension=DIMENSION, **params)
    assert code == "ValidationException"
    assert named in message


@pytest.mark.parametrize("operation", ["describe_scalable_targets",
                                       "describe_scaling_policies",
                                       "describe_scaling_activities"])
def test_describe_operations_refuse_other_namespaces(aas, operation):
    code, message = error_of(getattr(aas, operation), ServiceNamespace="dynamodb")
    assert code == "ValidationException" and "ServiceNamespace" in message


def test_targets_and_policies_survive_a_restart(running, aas):
    register(aas, MinCapacity=2, MaxCapacity=6)
    arn = put_policy(aas, "durable")["PolicyARN"]
    server = running["server"]
    server.stop()
    running["server"] = server = start_server(server.home, server.env)
    client = server.client("application-autoscaling")
    [target] = client.describe_scalable_targets(ServiceNamespace=NAMESPACE,
                                                ResourceIds=[RESOURCE])["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    policies = client.describe_scaling_policies(ServiceNamespace=NAMESPACE,
                                                PolicyNames=["durable"])["ScalingPolicies"]
    assert [p["PolicyARN"] for p in policies] == [arn]
