"""CreateEndpointConfig / DescribeEndpointConfig / DeleteEndpointConfig / ListEndpointConfigs
against a real server, with boto3."""

from __future__ import annotations

import datetime
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

ACCOUNT = "000000000000"
BUCKET = "hosting-configs"
MODEL = "config-test-model"
SHADOW_MODEL = "config-test-shadow"
INSTANCE = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
SERVERLESS = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}


def arn(name: str, kind: str = "endpoint-config") -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:{kind}/{name.lower()}"


def setup_models(server) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=b"x")
    sm = server.client("sagemaker")
    for name in (MODEL, SHADOW_MODEL):
        sm.create_model(ModelName=name, PrimaryContainer={
            "Image": "xgboost", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})


@pytest.fixture(scope="module")
def hosting_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("hosting-configs-home"))
    setup_models(running)
    yield running
    running.stop()


@pytest.fixture
def sm(hosting_server):
    return hosting_server.client("sagemaker")


def unique(prefix: str = "config") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def variant(name: str = "AllTraffic", model: str = MODEL, **members) -> dict:
    return {"VariantName": name, "ModelName": model, **INSTANCE, **members}


def error_of(call, **params) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    error = raised.value.response["Error"]
    return error["Code"], error["Message"]


def assert_absent(sm, name: str) -> None:
    code, message = error_of(sm.describe_endpoint_config, EndpointConfigName=name)
    assert code == "ValidationException"
    assert message == f'Could not find endpoint configuration "{arn(name)}".'


def described(sm, name: str) -> dict:
    response = sm.describe_endpoint_config(EndpointConfigName=name)
    response.pop("ResponseMetadata")
    return response


# -- create / describe / delete -------------------------------------------------------------------
def test_create_and_describe_an_instance_based_config(sm):
    name = unique("Config")
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    response = sm.create_endpoint_config(
        EndpointConfigName=name, KmsKeyId="alias/my-key",
        ProductionVariants=[variant(
            ManagedInstanceScaling={"Status": "ENABLED", "MinInstanceCount": 1,
                                    "MaxInstanceCount": 3},
            RoutingConfig={"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"})],
        Tags=[{"Key": "team", "Value": "ml"}])
    assert response["EndpointConfigArn"] == arn(name)
    record = described(sm, name)
    created = record.pop("CreationTime")
    assert before <= created <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    assert record == {
        "EndpointConfigName": name,
        "EndpointConfigArn": arn(name),
        "ProductionVariants": [{
            "VariantName": "AllTraffic", "ModelName": MODEL, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1, "InitialVariantWeight": 1.0,
            "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1,
                                       "MaxInstanceCount": 3},
            "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
        }],
        "KmsKeyId": "alias/my-key",
    }
    assert sm.list_tags(ResourceArn=arn(name))["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_several_weighted_variants(sm):
    name = unique()
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        variant("a", InitialVariantWeight=3.0), variant("b", SHADOW_MODEL,
                                                        InitialVariantWeight=0.5)])
    weights = [(v["VariantName"], v["InitialVariantWeight"])
               for v in described(sm, name)["ProductionVariants"]]
    assert weights == [("a", 3.0), ("b", 0.5)]


def test_serverless_variant(sm):
    name = unique()
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": MODEL,
         "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10,
                              "ProvisionedConcurrency": 2}}])
    only = described(sm, name)["ProductionVariants"][0]
    assert only["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 10,
                                        "ProvisionedConcurrency": 2}
    assert "InstanceType" not in only and only["InitialVariantWeight"] == 1.0


def test_shadow_variant_data_capture_and_async(sm):
    name = unique()
    capture = {"InitialSamplingPercentage": 50, "DestinationS3Uri": f"s3://{BUCKET}/capture",
               "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
               "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant()],
                              ShadowProductionVariants=[variant("shadow", SHADOW_MODEL)],
                              DataCaptureConfig=capture)
    record = described(sm, name)
    assert record["ShadowProductionVariants"][0]["VariantName"] == "shadow"
    assert record["DataCaptureConfig"] == {**capture, "EnableCapture": True}

    async_name = unique()
    async_config = {
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
        "OutputConfig": {
            "S3OutputPath": f"s3://{BUCKET}/async-out", "S3FailurePath": f"s3://{BUCKET}/fail",
            "NotificationConfig": {
                "SuccessTopic": f"arn:aws:sns:us-east-1:{ACCOUNT}:ok",
                "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"]}}}
    sm.create_endpoint_config(EndpointConfigName=async_name, ProductionVariants=[variant()],
                              AsyncInferenceConfig=async_config,
                              DataCaptureConfig={**capture, "EnableCapture": False})
    record = described(sm, async_name)
    assert record["AsyncInferenceConfig"] == async_config
    assert record["DataCaptureConfig"]["EnableCapture"] is False


def test_duplicate_name_is_refused_with_sagemakers_text(sm):
    name = unique()
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant()])
    code, message = error_of(sm.create_endpoint_config, EndpointConfigName=name.upper(),
                             ProductionVariants=[variant()])
    assert code == "ValidationException"
    assert message == f'Cannot create already existing endpoint configuration "{arn(name)}".'


def test_delete_removes_the_config_and_its_tags(sm):
    name = unique()
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant()],
                              Tags=[{"Key": "k", "Value": "v"}])
    sm.delete_endpoint_config(EndpointConfigName=name)
    assert_absent(sm, name)
    assert error_of(sm.list_tags, ResourceArn=arn(name))[0] == "ValidationException"


def test_unknown_config_on_describe_and_delete(sm):
    for call in (sm.describe_endpoint_config, sm.delete_endpoint_config):
        code, message = error_of(call, EndpointConfigName="never-created")
        assert code == "ValidationException"
        assert message == f'Could not find endpoint configuration "{arn("never-created")}".'


def test_a_config_keeps_its_model_name_after_the_model_is_deleted(sm):
    model = unique("short-lived")
    sm.create_model(ModelName=model, PrimaryContainer={
        "Image": "xgboost", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})
    name = unique()
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant(model=model)])
    sm.delete_model(ModelName=model)
    assert described(sm, name)["ProductionVariants"][0]["ModelName"] == model


# -- validation: every error names its field and stores nothing ---------------------------------
CAPTURE = {"InitialSamplingPercentage": 10, "DestinationS3Uri": f"s3://{BUCKET}/c",
           "CaptureOptions": [{"CaptureMode": "Input"}]}
ASYNC = {"OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/out"}}


@pytest.mark.parametrize(("members", "expected"), [
    ({"ProductionVariants": [variant(model="no-such-model")]},
     f'Could not find model "{arn("no-such-model", "model")}".'),
    ({"ProductionVariants": [variant(), variant("b", "missing-too")]},
     f'Could not find model "{arn("missing-too", "model")}".'),
    ({"ProductionVariants": [{"VariantName": "v", **INSTANCE}]},
     "ProductionVariants.1.ModelName is required"),
    ({"ProductionVariants": [variant("same"), variant("SAME")]},
     "ProductionVariants.2.VariantName 'SAME' is already used by ProductionVariants.1"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL,
                              "InitialInstanceCount": 1}]},
     "ProductionVariants.1.InstanceType is required"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL,
                              "InstanceType": "ml.m5.large"}]},
     "ProductionVariants.1.InitialInstanceCount is required"),
    ({"ProductionVariants": [variant(**SERVERLESS)]},
     "ProductionVariants.1.InstanceType must not be given with "
     "ProductionVariants.1.ServerlessConfig"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL, "ServerlessConfig": {
        "MemorySizeInMB": 1500, "MaxConcurrency": 1}}]},
     "ProductionVariants.1.ServerlessConfig.MemorySizeInMB 1500 must be one of 1024"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL, "ServerlessConfig": {
        "MemorySizeInMB": 8192, "MaxConcurrency": 1}}]},
     "serverlessConfig.memorySizeInMB' failed to satisfy constraint"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL, "ServerlessConfig": {
        "MemorySizeInMB": 1024, "MaxConcurrency": 201}}]},
     "serverlessConfig.maxConcurrency' failed to satisfy constraint"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL, "ServerlessConfig": {
        "MemorySizeInMB": 1024, "MaxConcurrency": 2, "ProvisionedConcurrency": 3}}]},
     "ProductionVariants.1.ServerlessConfig.ProvisionedConcurrency (3) must not exceed"),
    ({"ProductionVariants": [variant("a"), {"VariantName": "b", "ModelName": MODEL,
                                            **SERVERLESS}]},
     "serverless variants (ServerlessConfig) cannot be mixed"),
    ({"ProductionVariants": [variant(ManagedInstanceScaling={
        "Status": "ENABLED", "MinInstanceCount": 4, "MaxInstanceCount": 2})]},
     "ProductionVariants.1.ManagedInstanceScaling.MinInstanceCount (4) must not exceed"),
    ({"ProductionVariants": [variant(InstancePools=[{"InstanceType": "ml.m5.large",
                                                     "Priority": 1}])]},
     "ProductionVariants.1.InstancePools is not supported"),
    ({"ProductionVariants": [variant() for _ in range(11)]},
     "at 'productionVariants' failed to satisfy constraint"),
    ({"ProductionVariants": [variant("a"), variant("b")],
      "ShadowProductionVariants": [variant("s", SHADOW_MODEL)]},
     "ShadowProductionVariants can only be given with exactly one production variant"),
    ({"ProductionVariants": [variant("a")], "ShadowProductionVariants": [variant("A")]},
     "ShadowProductionVariants.1.VariantName 'A' is already used by ProductionVariants.1"),
    ({"ProductionVariants": [variant("a")],
      "ShadowProductionVariants": [variant("s", "no-shadow-model")]},
     f'Could not find model "{arn("no-shadow-model", "model")}".'),
    ({"ProductionVariants": [variant("a")],
      "ShadowProductionVariants": [{"VariantName": "s", "ModelName": SHADOW_MODEL}]},
     "ShadowProductionVariants.1.InstanceType is required"),
    ({"ProductionVariants": [variant()], "ShadowProductionVariants": [variant("s")],
      "AsyncInferenceConfig": ASYNC},
     "AsyncInferenceConfig cannot be combined with ShadowProductionVariants"),
    ({"ProductionVariants": [variant()],
      "DataCaptureConfig": {**CAPTURE, "DestinationS3Uri": "https://example.com/c"}},
     "DataCaptureConfig.DestinationS3Uri must be an s3:// URI"),
    ({"ProductionVariants": [variant()],
      "DataCaptureConfig": {**CAPTURE, "InitialSamplingPercentage": 101}},
     "dataCaptureConfig.initialSamplingPercentage' failed to satisfy constraint"),
    ({"ProductionVariants": [variant()], "DataCaptureConfig": {
        **CAPTURE, "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Input"}]}},
     "DataCaptureConfig.CaptureOptions.2.CaptureMode Input: Input is already captured"),
    ({"ProductionVariants": [variant()], "DataCaptureConfig": {
        **CAPTURE, "CaptureOptions": [{"CaptureMode": "InputAndOutput"},
                                      {"CaptureMode": "Output"}]}},
     "DataCaptureConfig.CaptureOptions.2.CaptureMode Output: Output is already captured"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL, **SERVERLESS}],
      "DataCaptureConfig": CAPTURE},
     "DataCaptureConfig is not supported with serverless variants"),
    ({"ProductionVariants": [variant()], "AsyncInferenceConfig": {"OutputConfig": {}}},
     "AsyncInferenceConfig.OutputConfig.S3OutputPath is required"),
    ({"ProductionVariants": [variant()],
      "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "https://example.com/o"}}},
     "AsyncInferenceConfig.OutputConfig.S3OutputPath must be an s3:// URI"),
    ({"ProductionVariants": [variant()], "AsyncInferenceConfig": {"OutputConfig": {
        "S3OutputPath": f"s3://{BUCKET}/o", "S3FailurePath": "https://example.com/f"}}},
     "AsyncInferenceConfig.OutputConfig.S3FailurePath must be an s3:// URI"),
    ({"ProductionVariants": [variant()], "AsyncInferenceConfig": {
        **ASYNC, "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1001}}},
     "maxConcurrentInvocationsPerInstance' failed to satisfy constraint"),
    ({"ProductionVariants": [{"VariantName": "v", "ModelName": MODEL, **SERVERLESS}],
      "AsyncInferenceConfig": ASYNC},
     "AsyncInferenceConfig is not supported with serverless variants"),
    ({"ProductionVariants": [variant()], "ExplainerConfig": {"ClarifyExplainerConfig": {
        "ShapConfig": {"ShapBaselineConfig": {"MimeType": "text/csv"}}}}},
     "ExplainerConfig is not supported"),
    ({"ProductionVariants": [variant()], "Tags": [{"Key": "aws:x", "Value": "y"}]},
     "Tags.1.Key 'aws:x'"),
])
def test_bad_requests_are_refused_by_field_and_store_nothing(sm, members, expected):
    name = unique("bad")
    code, message = error_of(sm.create_endpoint_config, EndpointConfigName=name, **members)
    assert code == "ValidationException"
    assert expected in message
    assert_absent(sm, name)


# -- list ---------------------------------------------------------------------------------------
def test_list_endpoint_configs_pages_filters_and_projects_summaries(tmp_path):
    other = start_server(tmp_path / "list-home")
    try:
        setup_models(other)
        sm = other.client("sagemaker")
        names = [f"list-alpha-{i}" for i in range(3)] + ["list-beta-0"]
        for name in names:
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant()])
        listed = sm.list_endpoint_configs()["EndpointConfigs"]
        assert [c["EndpointConfigName"] for c in listed] == names[::-1]
        assert set(listed[0]) == {"EndpointConfigName", "EndpointConfigArn", "CreationTime"}
        assert listed[0]["EndpointConfigArn"] == arn("list-beta-0")

        first = sm.list_endpoint_configs(MaxResults=3, SortBy="Name", SortOrder="Ascending")
        assert [c["EndpointConfigName"] for c in first["EndpointConfigs"]] == names[:3]
        second = sm.list_endpoint_configs(MaxResults=3, SortBy="Name", SortOrder="Ascending",
                                          NextToken=first["NextToken"])
        assert [c["EndpointConfigName"] for c in second["EndpointConfigs"]] == names[3:]

        paged = [c["EndpointConfigName"] for page in
                 sm.get_paginator("list_endpoint_configs").paginate(
                     PaginationConfig={"PageSize": 1}) for c in page["EndpointConfigs"]]
        assert paged == names[::-1]
        beta = sm.list_endpoint_configs(NameContains="BETA")["EndpointConfigs"]
        assert [c["EndpointConfigName"] for c in beta] == ["list-beta-0"]
    finally:
        other.stop()


def test_get_endpoint_config_service_function(hosting_server, sm):
    from openmaker.config import Settings
    from openmaker.core import errors
    from openmaker.core.platform import Platform
    from openmaker.hosting.endpoint_configs import get_endpoint_config

    name = unique()
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant()])
    platform = Platform(Settings(home=hosting_server.home))
    try:
        record = get_endpoint_config(platform, name)
        assert record["EndpointConfigArn"] == arn(name)
        assert record["ProductionVariants"][0]["ModelName"] == MODEL
        with pytest.raises(errors.ValidationException) as raised:
            get_endpoint_config(platform, "never-created")
        assert raised.value.message == (
            f'Could not find endpoint configuration "{arn("never-created")}".')
    finally:
        platform.close()
