"""CreateModel / DescribeModel / DeleteModel / ListModels against a real server, with boto3."""

from __future__ import annotations

import datetime
import stat
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
BUCKET = "hosting-models"
MODEL_DATA = f"s3://{BUCKET}/xgb/model.tar.gz"
XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
PYTORCH = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310"


@pytest.fixture(scope="module")
def hosting_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("hosting-models-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=b"not really a tarball")
    yield running
    running.stop()


@pytest.fixture
def sm(hosting_server):
    return hosting_server.client("sagemaker")


def arn(name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/{name.lower()}"


def unique(prefix: str = "model") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(call, **params) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**params)
    error = raised.value.response["Error"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Code"], error["Message"]


def assert_absent(sm, name: str) -> None:
    code, message = error_of(sm.describe_model, ModelName=name)
    assert (code, message) == ("ValidationException", f'Could not find model "{arn(name)}".')


@pytest.fixture
def executable(tmp_path) -> str:
    path = tmp_path / "serve.sh"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# -- create / describe / delete ---------------------------------------------------------------
def test_create_and_describe_a_single_container_model(sm):
    name = unique("Xgb")
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    response = sm.create_model(
        ModelName=name, ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": XGBOOST, "ModelDataUrl": MODEL_DATA,
                          "Environment": {"A": "1"}},
        Tags=[{"Key": "team", "Value": "ml"}])
    assert response["ModelArn"] == arn(name)
    described = sm.describe_model(ModelName=name)
    described.pop("ResponseMetadata")
    created = described.pop("CreationTime")
    assert before <= created <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    assert described == {
        "ModelName": name,
        "PrimaryContainer": {"Image": XGBOOST, "ModelDataUrl": MODEL_DATA, "Mode": "SingleModel",
                             "Environment": {"A": "1"}},
        "ExecutionRoleArn": ROLE,
        "ModelArn": arn(name),
        "EnableNetworkIsolation": False,
    }
    assert sm.list_tags(ResourceArn=arn(name))["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_names_are_case_insensitive(sm):
    name = unique("CaseModel")
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "xgboost",
                                                      "ModelDataUrl": MODEL_DATA})
    assert sm.describe_model(ModelName=name.lower())["ModelName"] == name


def test_duplicate_name_is_refused_with_sagemakers_text(sm):
    name = unique()
    container = {"Image": "xgboost", "ModelDataUrl": MODEL_DATA}
    sm.create_model(ModelName=name, PrimaryContainer=container)
    code, message = error_of(sm.create_model, ModelName=name.upper(), PrimaryContainer=container)
    assert code == "ValidationException"
    assert message == f'Cannot create already existing model "{arn(name)}".'


def test_delete_removes_the_model_and_its_tags(sm):
    name = unique()
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "xgboost",
                                                      "ModelDataUrl": MODEL_DATA},
                    Tags=[{"Key": "k", "Value": "v"}])
    sm.delete_model(ModelName=name)
    assert_absent(sm, name)
    code, _ = error_of(sm.list_tags, ResourceArn=arn(name))
    assert code == "ValidationException"
    # the name can be used again
    sm.create_model(ModelName=name, PrimaryContainer={"Image": "xgboost",
                                                      "ModelDataUrl": MODEL_DATA})


def test_unknown_model_on_describe_and_delete(sm):
    for call in (sm.describe_model, sm.delete_model):
        code, message = error_of(call, ModelName="never-created")
        assert code == "ValidationException"
        assert message == f'Could not find model "{arn("never-created")}".'


@pytest.mark.parametrize("image", [SKLEARN, PYTORCH, "pytorch-training:2.1-cpu-py310"])
def test_framework_inference_images(sm, image):
    name = unique()
    sm.create_model(ModelName=name, PrimaryContainer={
        "Image": image, "ModelDataUrl": MODEL_DATA,
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    assert sm.describe_model(ModelName=name)["PrimaryContainer"]["Image"] == image


def test_a_framework_image_needs_no_model_data(sm):
    name = unique()
    sm.create_model(ModelName=name, PrimaryContainer={"Image": SKLEARN})
    assert "ModelDataUrl" not in sm.describe_model(ModelName=name)["PrimaryContainer"]


def test_xgboost_script_mode_and_built_in(sm):
    from openmaker.hosting.models import inference_image

    assert inference_image(XGBOOST).algorithm == "xgboost"
    assert inference_image("xgboost").algorithm == "xgboost"
    script = inference_image(XGBOOST, {"SAGEMAKER_PROGRAM": "inference.py"})
    assert script.framework == "sagemaker-xgboost" and script.algorithm is None
    assert inference_image(PYTORCH).framework == "pytorch-inference"


def test_a_local_executable_is_a_bring_your_own_server(sm, executable):
    name = unique()
    sm.create_model(ModelName=name, PrimaryContainer={"Image": executable})
    assert sm.describe_model(ModelName=name)["PrimaryContainer"]["Image"] == executable


def test_network_isolation_and_vpc_are_echoed(sm):
    name = unique()
    vpc = {"SecurityGroupIds": ["sg-0123"], "Subnets": ["subnet-0123"]}
    sm.create_model(ModelName=name, EnableNetworkIsolation=True, VpcConfig=vpc,
                    PrimaryContainer={"Image": "xgboost", "ModelDataUrl": MODEL_DATA})
    described = sm.describe_model(ModelName=name)
    assert described["EnableNetworkIsolation"] is True
    assert described["VpcConfig"] == vpc


def test_multi_model_container_takes_a_prefix(sm):
    name = unique()
    sm.create_model(ModelName=name, PrimaryContainer={
        "Image": XGBOOST, "Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/models/",
        "MultiModelConfig": {"ModelCacheSetting": "Disabled"}})
    container = sm.describe_model(ModelName=name)["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    assert container["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}


# -- pipelines ---------------------------------------------------------------------------------
def test_serial_pipeline_is_the_default(sm):
    name = unique()
    containers = [{"Image": SKLEARN, "Environment": {"SAGEMAKER_PROGRAM": "prep.py"}},
                  {"Image": XGBOOST, "ModelDataUrl": MODEL_DATA}]
    sm.create_model(ModelName=name, Containers=containers, ExecutionRoleArn=ROLE)
    described = sm.describe_model(ModelName=name)
    assert "PrimaryContainer" not in described
    assert described["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert [c["Image"] for c in described["Containers"]] == [SKLEARN, XGBOOST]
    assert all(c["Mode"] == "SingleModel" for c in described["Containers"])

    from openmaker.hosting.models import model_containers

    hostnames = [c["ContainerHostname"] for c in model_containers(described)]
    assert hostnames == ["container-1", "container-2"]


def test_direct_pipeline_with_hostnames(sm):
    name = unique()
    containers = [{"Image": "xgboost", "ModelDataUrl": MODEL_DATA, "ContainerHostname": "a"},
                  {"Image": SKLEARN, "ContainerHostname": "b"}]
    sm.create_model(ModelName=name, Containers=containers,
                    InferenceExecutionConfig={"Mode": "Direct"})
    described = sm.describe_model(ModelName=name)
    assert described["InferenceExecutionConfig"] == {"Mode": "Direct"}
    assert [c["ContainerHostname"] for c in described["Containers"]] == ["a", "b"]


# -- validation: every error names its field and stores nothing -------------------------------
GOOD = {"Image": "xgboost", "ModelDataUrl": MODEL_DATA}


@pytest.mark.parametrize(("request_members", "expected"), [
    ({}, "exactly one of PrimaryContainer"),
    ({"PrimaryContainer": GOOD, "Containers": [GOOD, GOOD]}, "exactly one of PrimaryContainer"),
    ({"Containers": [GOOD]}, "Containers must hold 2 to 15"),
    ({"Containers": [GOOD] * 16}, "at 'containers' failed to satisfy constraint"),
    ({"PrimaryContainer": GOOD, "InferenceExecutionConfig": {"Mode": "Serial"}},
     "InferenceExecutionConfig is only valid with Containers"),
    ({"PrimaryContainer": {"ModelDataUrl": MODEL_DATA}}, "PrimaryContainer.Image is required"),
    ({"PrimaryContainer": {"Image": "my-registry/my-own-server:1"}},
     "PrimaryContainer.Image 'my-registry/my-own-server:1'"),
    ({"PrimaryContainer": {"Image": "/no/such/server"}},
     "PrimaryContainer.Image '/no/such/server': a local model server must be an executable"),
    ({"PrimaryContainer": {"Image": "Not:An:Image"}},
     "PrimaryContainer.Image 'Not:An:Image' is not"),
    ({"PrimaryContainer": {"Image": "xgboost"}},
     "PrimaryContainer.ModelDataUrl is required for the built-in algorithm xgboost"),
    ({"PrimaryContainer": {"Image": "xgboost", "ModelDataUrl": f"s3://{BUCKET}/missing.tar.gz"}},
     f"PrimaryContainer.ModelDataUrl: no S3 object at s3://{BUCKET}/missing.tar.gz"),
    ({"PrimaryContainer": {"Image": "xgboost", "ModelDataUrl": "s3://no-such-bucket/m.tar.gz"}},
     "PrimaryContainer.ModelDataUrl: no S3 object at s3://no-such-bucket/m.tar.gz"),
    ({"PrimaryContainer": {"Image": "xgboost", "ModelDataUrl": "https://example.com/m.tar.gz"}},
     "PrimaryContainer.ModelDataUrl must be an s3:// URI"),
    ({"PrimaryContainer": {"Image": "xgboost", "ModelDataUrl": f"s3://{BUCKET}/xgb/"}},
     "PrimaryContainer.ModelDataUrl s3://hosting-models/xgb/ is a prefix"),
    ({"PrimaryContainer": {"Image": "xgboost", "Mode": "MultiModel"}},
     "PrimaryContainer.ModelDataUrl is required with Mode MultiModel"),
    ({"PrimaryContainer": {"Image": "xgboost", "Mode": "MultiModel",
                           "ModelDataUrl": "s3://no-such-bucket/models/"}},
     "PrimaryContainer.ModelDataUrl s3://no-such-bucket/models/: bucket 'no-such-bucket'"),
    ({"PrimaryContainer": {**GOOD, "MultiModelConfig": {"ModelCacheSetting": "Enabled"}}},
     "PrimaryContainer.MultiModelConfig is only valid with Mode MultiModel"),
    ({"Containers": [GOOD, {**GOOD, "Mode": "MultiModel"}]},
     "Containers.2.Mode MultiModel is not supported in Containers"),
    ({"Containers": [GOOD, {"Image": "xgboost", "ModelDataUrl": "s3://no-such-bucket/x"}]},
     "Containers.2.ModelDataUrl: no S3 object at s3://no-such-bucket/x"),
    ({"Containers": [GOOD, {"Image": "unknown-repo"}]}, "Containers.2.Image 'unknown-repo'"),
    ({"Containers": [{**GOOD, "ContainerHostname": "a"}, GOOD]},
     "Containers.2.ContainerHostname is required: another container has one"),
    ({"Containers": [GOOD, GOOD], "InferenceExecutionConfig": {"Mode": "Direct"}},
     "Containers.1.ContainerHostname is required: InferenceExecutionConfig.Mode is Direct"),
    ({"Containers": [{**GOOD, "ContainerHostname": "a"}, {**GOOD, "ContainerHostname": "A"}]},
     "Containers.2.ContainerHostname 'A' is already used by Containers.1"),
    ({"PrimaryContainer": {**GOOD, "Environment": {"K": "v" * 1000, **{
        f"K{i}": "v" * 1000 for i in range(40)}}}}, "at most 32768 bytes"),
    ({"PrimaryContainer": {"Image": "xgboost", "ModelDataSource": {"S3DataSource": {
        "S3Uri": MODEL_DATA, "S3DataType": "S3Object", "CompressionType": "Gzip"}}}},
     "PrimaryContainer.ModelDataSource is not supported"),
    ({"PrimaryContainer": {"ModelPackageName": "my-package"}},
     "PrimaryContainer.ModelPackageName is not supported"),
    ({"PrimaryContainer": GOOD, "Tags": [{"Key": "aws:owner", "Value": "x"}]},
     "Tags.1.Key 'aws:owner'"),
])
def test_bad_requests_are_refused_by_field_and_store_nothing(sm, request_members, expected):
    name = unique("bad")
    code, message = error_of(sm.create_model, ModelName=name, **request_members)
    assert code == "ValidationException"
    assert expected in message
    assert_absent(sm, name)


def test_model_validation_by_botocore_model_names_the_member(hosting_server):
    import json
    import urllib.request

    request = urllib.request.Request(
        hosting_server.url + "/", method="POST",
        data=json.dumps({"ModelName": "x", "PrimaryContainer": {"Image": "xgboost",
                                                                "Mode": "Bogus"}}).encode(),
        headers={"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": "SageMaker.CreateModel",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/"
                                  "sagemaker/aws4_request, SignedHeaders=host, Signature=x"})
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    else:  # pragma: no cover
        pytest.fail("an enum violation was accepted")
    assert body["__type"] == "ValidationException"
    assert "primaryContainer.mode" in body["message"]


# -- list ----------------------------------------------------------------------------------------
def test_list_models_pages_filters_and_projects_summaries(hosting_server, tmp_path):
    other = start_server(tmp_path / "list-home")
    try:
        s3 = other.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="xgb/model.tar.gz", Body=b"x")
        sm = other.client("sagemaker")
        names = [f"list-alpha-{i}" for i in range(3)] + ["list-beta-0"]
        for name in names:
            sm.create_model(ModelName=name, PrimaryContainer=GOOD)
        listed = sm.list_models()["Models"]
        assert [m["ModelName"] for m in listed] == names[::-1]  # newest first
        assert set(listed[0]) == {"ModelName", "ModelArn", "CreationTime"}
        assert listed[0]["ModelArn"] == arn("list-beta-0")

        first = sm.list_models(MaxResults=2, SortBy="Name", SortOrder="Ascending")
        assert [m["ModelName"] for m in first["Models"]] == names[:2]
        second = sm.list_models(MaxResults=2, SortBy="Name", SortOrder="Ascending",
                                NextToken=first["NextToken"])
        assert [m["ModelName"] for m in second["Models"]] == names[2:]
        assert "NextToken" not in second

        paged = [m["ModelName"] for page in sm.get_paginator("list_models").paginate(
            PaginationConfig={"PageSize": 1}) for m in page["Models"]]
        assert paged == names[::-1]

        alpha = sm.list_models(NameContains="ALPHA")["Models"]
        assert sorted(m["ModelName"] for m in alpha) == names[:3]
        sm.delete_model(ModelName="list-alpha-1")
        assert len(sm.list_models(NameContains="alpha")["Models"]) == 2
    finally:
        other.stop()


def test_get_model_service_function(hosting_server):
    from openmaker.config import Settings
    from openmaker.core import errors
    from openmaker.core.platform import Platform
    from openmaker.hosting.models import get_model

    platform = Platform(Settings(home=hosting_server.home))
    try:
        name = unique()
        hosting_server.client("sagemaker").create_model(ModelName=name, PrimaryContainer=GOOD)
        assert get_model(platform, name)["ModelArn"] == arn(name)
        with pytest.raises(errors.ValidationException) as raised:
            get_model(platform, "never-created")
        assert raised.value.message == f'Could not find model "{arn("never-created")}".'
    finally:
        platform.close()
