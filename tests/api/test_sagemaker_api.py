"""The SageMaker control plane (AWS JSON 1.1) through a real server: validation against
botocore's model, the error shape for bad requests, tags, and the generic List*."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from tests.conftest import start_server

from openmaker.config import load_settings
from openmaker.core.resources import open_resource_store

JSON_TYPE = "application/x-amz-json-1.1"


def call(server, target: str | None, body: bytes, content_type: str = JSON_TYPE):
    headers = {"Content-Type": content_type}
    if target is not None:
        headers["X-Amz-Target"] = target
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/", body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data) if data else None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This module's own server: its tests add resources that other modules must not see."""
    running = start_server(tmp_path_factory.mktemp("sagemaker-home"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def store(server):
    resources = open_resource_store(load_settings(server.home))
    yield resources
    resources.close()


def training_job(store, name: str, status: str = "Completed", created: datetime | None = None):
    created = created or datetime.now(UTC)
    record = {"TrainingJobName": name, "TrainingJobStatus": status, "CreationTime": created,
              "LastModifiedTime": created, "SecondaryStatus": status,
              "HyperParameters": {"not": "in the summary"}}
    resource = store.create("training-job", name, record, status=status, creation_time=created)
    record["TrainingJobArn"] = resource.arn
    store.update("training-job", name, record=record)
    return resource


def test_list_operations_answer_empty_lists(sagemaker):
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_models()["Models"] == []
    assert sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    pages = list(sagemaker.get_paginator("list_processing_jobs").paginate())
    assert pages[0]["ProcessingJobSummaries"] == []


def test_generic_list_filters_sorts_and_pages(sagemaker, store):
    base = datetime.now(UTC) - timedelta(hours=1)
    for index, (name, status) in enumerate(
            [("gl-alpha", "Completed"), ("gl-beta", "Failed"), ("gl-gamma", "Completed")]):
        training_job(store, name, status, base + timedelta(minutes=index))
    listed = sagemaker.list_training_jobs(NameContains="gl-")["TrainingJobSummaries"]
    assert [job["TrainingJobName"] for job in listed] == ["gl-gamma", "gl-beta", "gl-alpha"]
    assert "HyperParameters" not in listed[0]
    assert listed[0]["TrainingJobArn"].endswith(":training-job/gl-gamma")
    completed = sagemaker.list_training_jobs(NameContains="gl-", StatusEquals="Completed",
                                             SortBy="Name", SortOrder="Ascending")
    assert [j["TrainingJobName"] for j in completed["TrainingJobSummaries"]] == [
        "gl-alpha", "gl-gamma"]
    pages = list(sagemaker.get_paginator("list_training_jobs").paginate(
        NameContains="gl-", PaginationConfig={"PageSize": 1}))
    assert [p["TrainingJobSummaries"][0]["TrainingJobName"] for p in pages] == [
        "gl-gamma", "gl-beta", "gl-alpha"]
    recent = sagemaker.list_training_jobs(NameContains="gl-",
                                          CreationTimeAfter=base + timedelta(seconds=30))
    assert len(recent["TrainingJobSummaries"]) == 2


def test_tags_round_trip(sagemaker, store):
    arn = training_job(store, "tagged-job").arn
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"},
                                              {"Key": "stage", "Value": "dev"}])
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    tags = sagemaker.list_tags(ResourceArn=arn)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("stage", "prod"), ("team", "ml")]
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]


def test_tags_on_unknown_resource(sagemaker):
    arn = "arn:aws:sagemaker:us-east-1:000000000000:training-job/never-created"
    with pytest.raises(ClientError) as excinfo:
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "b"}])
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"
    assert "never-created" in excinfo.value.response["Error"]["Message"]


def test_reserved_tag_prefix(sagemaker, store):
    arn = training_job(store, "reserved-tags").arn
    with pytest.raises(ClientError) as excinfo:
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "aws:owner", "Value": "x"}])
    assert "reserved" in excinfo.value.response["Error"]["Message"]


def test_unimplemented_operation_names_itself(sagemaker):
    with pytest.raises(ClientError) as excinfo:
        sagemaker.delete_algorithm(AlgorithmName="some-algorithm")
    error = excinfo.value.response["Error"]
    assert error["Code"] == "NotImplemented" and "DeleteAlgorithm" in error["Message"]
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


# -- bad requests, sent raw (boto3 would refuse to send most of them) ---------------------------
def test_validation_names_the_member_path(server):
    status, body = call(server, "SageMaker.ListTags", json.dumps(
        {"ResourceArn": "arn:aws:sagemaker:us-east-1:000000000000:model/m",
         "MaxResults": 10}).encode())
    assert status == 400 and body["__type"] == "ValidationException"
    assert "'maxResults'" in body["message"] and "greater than or equal to 50" in body["message"]


def test_validation_reports_every_problem(server):
    status, body = call(server, "SageMaker.ListTrainingJobs", json.dumps(
        {"SortBy": "Size", "MaxResults": "ten", "NameContains": "bad name!"}).encode())
    assert status == 400 and body["__type"] == "ValidationException"
    message = body["message"]
    assert message.startswith("3 validation errors detected")
    assert "'sortBy'" in message and "'maxResults'" in message and "'nameContains'" in message


def test_missing_required_member(server):
    status, body = call(server, "SageMaker.AddTags", b"{}")
    assert status == 400 and body["__type"] == "ValidationException"
    assert "Value null at 'resourceArn'" in body["message"]


def test_malformed_json(server):
    status, body = call(server, "SageMaker.ListModels", b'{"MaxResults": ')
    assert status == 400 and body["__type"] == "SerializationException"
    status, body = call(server, "SageMaker.ListModels", b"[1, 2]")
    assert status == 400 and body["__type"] == "SerializationException"


def test_wrong_content_type(server):
    status, body = call(server, "SageMaker.ListModels", b"{}", content_type="text/plain")
    assert 400 <= status < 500 and "Content-Type" in body["message"]


def test_missing_and_unknown_target(server):
    status, body = call(server, None, b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"
    status, body = call(server, "SageMaker.MakeCoffee", b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"
    assert "MakeCoffee" in body["message"]
    status, body = call(server, "DynamoDB_20120810.ListTables", b"{}")
    assert status == 400 and body["__type"] == "UnknownOperationException"


def test_oversized_body(server):
    huge = b'{"NameContains": "' + b"a" * (17 * 1024 * 1024) + b'"}'
    status, body = call(server, "SageMaker.ListModels", huge)
    assert status == 413 and body["__type"] == "RequestEntityTooLarge"


def test_client_side_validation_still_applies(sagemaker):
    with pytest.raises(ParamValidationError):
        sagemaker.list_tags(ResourceArn="arn", MaxResults="x")


def test_sts_get_caller_identity(server):
    identity = server.client("sts").get_caller_identity()
    assert identity["Account"] == "000000000000"
    assert identity["Arn"] == "arn:aws:iam::000000000000:root"
