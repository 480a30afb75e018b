"""Bad CreateProcessingJob requests are refused naming the field, and store nothing."""

from __future__ import annotations

import copy
import uuid

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
BUCKET = "processing-validation"
LOCAL = "/opt/ml/processing/input/data"


@pytest.fixture(scope="module")
def job_server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("processing-validation-home"))
    s3 = running.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/a.csv", Body=b"1\n")
    s3.put_object(Bucket=BUCKET, Key="empty-marker/", Body=b"")
    yield running
    running.stop()


def s3_input(name: str = "data", uri: str = f"s3://{BUCKET}/data/", local: str = LOCAL,
             **extra) -> dict:
    return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local,
                                           "S3DataType": "S3Prefix", **extra}}


def s3_output(name: str = "out", local: str = "/opt/ml/processing/output") -> dict:
    return {"OutputName": name, "S3Output": {"S3Uri": f"s3://{BUCKET}/out/", "LocalPath": local,
                                             "S3UploadMode": "EndOfJob"}}


def valid_request() -> dict:
    return {
        "ProcessingJobName": f"job-{uuid.uuid4().hex[:12]}",
        "ProcessingInputs": [s3_input()],
        "ProcessingOutputConfig": {"Outputs": [s3_output()]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1,
                                                  "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 5}},
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "-c", "1"]},
        "RoleArn": ROLE,
    }


def changed(**members) -> dict:
    params = valid_request()
    for path, value in members.items():
        target = params
        *parents, last = path.split("__")
        for parent in parents:
            target = target[int(parent)] if isinstance(target, list) else target[parent]
        target[last] = value
    return params


BAD_REQUESTS = {
    "unknown image": (changed(AppSpecification={
        "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-image:latest",
        "ContainerEntrypoint": ["python3"]}), "AppSpecification.ImageUri"),
    "not an image URI": (changed(AppSpecification={
        "ImageUri": "Not An Image!", "ContainerEntrypoint": ["python3"]}),
        "AppSpecification.ImageUri"),
    "no command": (changed(AppSpecification={"ImageUri": IMAGE}),
                   "AppSpecification.ContainerEntrypoint"),
    "input outside /opt/ml/processing": (changed(ProcessingInputs=[s3_input(local="/tmp/data")]),
                                         "S3Input.LocalPath"),
    "input path with ..": (changed(ProcessingInputs=[
        s3_input(local="/opt/ml/processing/../config")]), "S3Input.LocalPath"),
    "input without LocalPath": (changed(ProcessingInputs=[{
        "InputName": "data", "S3Input": {"S3Uri": f"s3://{BUCKET}/data/",
                                         "S3DataType": "S3Prefix"}}]), "S3Input.LocalPath"),
    "output outside /opt/ml/processing": (changed(ProcessingOutputConfig={
        "Outputs": [s3_output(local="/opt/ml/model")]}), "S3Output.LocalPath"),
    "gzip in File mode": (changed(ProcessingInputs=[s3_input(S3CompressionType="Gzip")]),
                          "S3CompressionType"),
    "duplicate input names": (changed(ProcessingInputs=[
        s3_input(), s3_input(local="/opt/ml/processing/input/other")]), "InputName"),
    "duplicate input paths": (changed(ProcessingInputs=[
        s3_input("one"), s3_input("two")]), "LocalPath"),
    "duplicate output names": (changed(ProcessingOutputConfig={"Outputs": [
        s3_output(), s3_output(local="/opt/ml/processing/other")]}), "OutputName"),
    "input URI not s3": (changed(ProcessingInputs=[s3_input(uri="https://example.com/data")]),
                         "S3Input.S3Uri"),
    "empty prefix": (changed(ProcessingInputs=[s3_input(uri=f"s3://{BUCKET}/nothing-here/")]),
                     "ProcessingInputs 'data'"),
    "only a folder marker": (changed(ProcessingInputs=[
        s3_input(uri=f"s3://{BUCKET}/empty-marker/")]), "no S3 objects"),
    "missing bucket": (changed(ProcessingInputs=[s3_input(uri="s3://no-such-bucket/data/")]),
                       "ProcessingInputs 'data'"),
    "dataset definition": (changed(ProcessingInputs=[{"InputName": "query", "DatasetDefinition": {
        "AthenaDatasetDefinition": {"Catalog": "c", "Database": "d", "QueryString": "SELECT 1",
                                    "WorkGroup": "w", "OutputS3Uri": f"s3://{BUCKET}/q/",
                                    "OutputFormat": "PARQUET"},
        "LocalPath": LOCAL}}]), "DatasetDefinition"),
    "feature store output": (changed(ProcessingOutputConfig={"Outputs": [{
        "OutputName": "features", "FeatureStoreOutput": {"FeatureGroupName": "group"}}]}),
        "FeatureStoreOutput"),
    "pipe FIFO name": (changed(ProcessingInputs=[s3_input(
        local="/opt/ml/processing/input/da ta", S3InputMode="Pipe")]), "LocalPath"),
}


@pytest.mark.parametrize("params,field", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_bad_requests_are_refused_naming_the_field_and_store_nothing(job_server, params,
                                                                     field):
    sagemaker = job_server.client("sagemaker")
    with pytest.raises(ClientError) as caught:
        sagemaker.create_processing_job(**copy.deepcopy(params))
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert field in error["Message"]
    with pytest.raises(ClientError) as missing:
        sagemaker.describe_processing_job(ProcessingJobName=params["ProcessingJobName"])
    assert missing.value.response["Error"]["Message"] == "Requested resource not found."


SERVER_SIDE = {
    "eleven inputs": (changed(ProcessingInputs=[
        s3_input(f"in{i}", local=f"/opt/ml/processing/input/{i}") for i in range(11)]),
        "processingInputs"),
    "runtime over nine days": (changed(StoppingCondition={"MaxRuntimeInSeconds": 777601}),
                               "stoppingCondition.maxRuntimeInSeconds"),
    "runtime zero": (changed(StoppingCondition={"MaxRuntimeInSeconds": 0}),
                     "stoppingCondition.maxRuntimeInSeconds"),
    "101 environment entries": (changed(Environment={f"V{i}": "x" for i in range(101)}),
                                "environment"),
    "bad environment key": (changed(Environment={"1BAD": "x"}), "environment"),
    "upload mode": (changed(ProcessingOutputConfig={"Outputs": [{
        "OutputName": "o", "S3Output": {"S3Uri": f"s3://{BUCKET}/o/",
                                        "LocalPath": "/opt/ml/processing/o",
                                        "S3UploadMode": "Sometimes"}}]}), "s3UploadMode"),
    "instance count": (changed(ProcessingResources={"ClusterConfig": {
        "InstanceCount": 101, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}}),
        "instanceCount"),
}


@pytest.mark.parametrize("params,field", list(SERVER_SIDE.values()), ids=list(SERVER_SIDE))
def test_the_server_enforces_the_model_limits_without_client_validation(job_server, params,
                                                                        field):
    sagemaker = job_server.client("sagemaker", parameter_validation=False)
    with pytest.raises(ClientError) as caught:
        sagemaker.create_processing_job(**copy.deepcopy(params))
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert field in error["Message"]


def test_a_name_in_use_is_refused_with_resource_in_use(job_server):
    sagemaker = job_server.client("sagemaker")
    params = valid_request()
    sagemaker.create_processing_job(**params)
    with pytest.raises(ClientError) as caught:
        sagemaker.create_processing_job(**params)
    assert caught.value.response["Error"]["Code"] == "ResourceInUse"


def test_unknown_jobs_are_not_found(job_server):
    sagemaker = job_server.client("sagemaker")
    for call in (sagemaker.describe_processing_job, sagemaker.stop_processing_job):
        with pytest.raises(ClientError) as caught:
            call(ProcessingJobName="no-such-job")
        assert caught.value.response["Error"]["Message"] == "Requested resource not found."


def test_a_spark_image_needs_pyspark(job_server):
    from openmaker.processing.images import pyspark_available

    if pyspark_available():
        pytest.skip("pyspark is installed: tests/e2e/test_sagemaker_sdk_processing.py runs it")
    params = changed(AppSpecification={
        "ImageUri": "173754725891.dkr.ecr.us-east-1.amazonaws.com/sagemaker-spark-processing:"
                    "3.3-cpu-py39-v1.0", "ContainerArguments": ["/opt/ml/processing/input/x.py"]})
    with pytest.raises(ClientError) as caught:
        job_server.client("sagemaker").create_processing_job(**params)
    assert "pyspark" in caught.value.response["Error"]["Message"]
    assert "AppSpecification.ImageUri" in caught.value.response["Error"]["Message"]


def test_a_spark_job_runs_on_one_instance(job_server):
    pytest.importorskip("pyspark")
    params = changed(
        AppSpecification={"ImageUri": "173754725891.dkr.ecr.us-east-1.amazonaws.com/"
                                      "sagemaker-spark-processing:3.3-cpu-py39-v1.0",
                          "ContainerArguments": ["/opt/ml/processing/input/x.py"]},
        ProcessingResources={"ClusterConfig": {"InstanceCount": 2,
                                               "InstanceType": "ml.m5.large",
                                               "VolumeSizeInGB": 5}})
    with pytest.raises(ClientError) as caught:
        job_server.client("sagemaker").create_processing_job(**params)
    assert "ProcessingResources.ClusterConfig.InstanceCount" in \
        caught.value.response["Error"]["Message"]
