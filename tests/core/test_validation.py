"""Request validation and response rendering against botocore's real service models."""

from __future__ import annotations

import base64
import json
import logging
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from openmaker.core.errors import SerializationException, ValidationException
from openmaker.core.service_models import list_operations, operation_model, service_model
from openmaker.core.validation import parse_params, serialize_output

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
NAME_PATTERN = "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"


def input_shape(service: str, op: str):
    return operation_model(service, op).input_shape


def output_shape(service: str, op: str):
    return operation_model(service, op).output_shape


def training_job(**overrides: object) -> dict:
    params = {
        "TrainingJobName": "my-job",
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "xgboost:1", "TrainingInputMode": "File"},
        "InputDataConfig": [{
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
        }],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"num_round": "10"},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    params.update(overrides)
    return params


def error_of(shape, params: object, **kwargs: object) -> str:
    with pytest.raises(ValidationException) as info:
        parse_params(shape, params, **kwargs)
    assert info.value.code == "ValidationException"
    assert info.value.status == 400
    return info.value.message


CREATE_TRAINING_JOB = input_shape("sagemaker", "CreateTrainingJob")
LIST_TRAINING_JOBS = input_shape("sagemaker", "ListTrainingJobs")


# --- service models ----------------------------------------------------------------------


def test_service_model_is_loaded_once_per_service() -> None:
    assert service_model("sagemaker") is service_model("sagemaker")
    assert service_model("sagemaker").protocol == "json"
    assert service_model("s3").protocol == "rest-xml"
    assert service_model("sts").protocol == "query"
    assert service_model("sagemaker-runtime").protocol == "rest-json"
    assert service_model("logs").protocol == "json"


def test_operation_model_is_none_for_an_unknown_operation() -> None:
    assert operation_model("sagemaker", "CreateTrainingJob").name == "CreateTrainingJob"
    assert operation_model("sagemaker", "CreateTrainingJobs") is None


def test_list_operations_is_sorted_and_complete() -> None:
    operations = list_operations("sagemaker")
    assert operations == sorted(operations)
    assert {"CreateTrainingJob", "DescribeEndpoint", "ListTags"} <= set(operations)
    assert "ListObjectsV2" in list_operations("s3")


def test_importing_service_models_does_not_import_botocore() -> None:
    code = ("import sys, openmaker; before = 'botocore' in sys.modules; "
            "import openmaker.core.service_models, openmaker.core.validation; "
            "print(before or 'botocore' not in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "True"


# --- valid requests ----------------------------------------------------------------------


def test_valid_request_is_returned_by_member_name() -> None:
    params = training_job()
    assert parse_params(CREATE_TRAINING_JOB, params) == params


def test_unknown_members_are_ignored_at_every_level() -> None:
    params = training_job(FutureFlag=True, ResourceConfig={
        "InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10,
        "NewKnob": "x",
    })
    parsed = parse_params(CREATE_TRAINING_JOB, params)
    assert "FutureFlag" not in parsed
    assert parsed["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                        "VolumeSizeInGB": 10}


def test_null_members_count_as_absent() -> None:
    parsed = parse_params(CREATE_TRAINING_JOB, training_job(VpcConfig=None))
    assert "VpcConfig" not in parsed
    message = error_of(CREATE_TRAINING_JOB, training_job(RoleArn=None))
    assert message == ("1 validation error detected: Value null at 'roleArn' failed to satisfy "
                       "constraint: Member must not be null")


def test_body_from_botocore_serializer_round_trips() -> None:
    op = operation_model("sagemaker", "ListTrainingJobs")
    after = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    params = {"MaxResults": 10, "CreationTimeAfter": after, "SortBy": "Name"}
    body = create_serializer("json").serialize_to_request(params, op)["body"]
    assert parse_params(op.input_shape, json.loads(body)) == params


# --- constraint kinds --------------------------------------------------------------------


def test_pattern_violation_message_matches_aws() -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(TrainingJobName="abc!"))
    assert message == (
        "1 validation error detected: Value 'abc!' at 'trainingJobName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}"
    )


def test_pattern_must_match_the_whole_value() -> None:
    # 'my-job' matches at the start of 'my-job/x'; Java's matches() still rejects it.
    message = error_of(CREATE_TRAINING_JOB, training_job(TrainingJobName="my-job/x"))
    assert "Value 'my-job/x' at 'trainingJobName'" in message


def test_missing_required_and_value_minimum_are_reported_together_in_model_order() -> None:
    params = training_job(StoppingCondition={"MaxRuntimeInSeconds": 0})
    del params["RoleArn"]
    # the request order must not matter: errors follow the shape's member order
    reordered = dict(reversed(list(params.items())))
    expected = (
        "2 validation errors detected: Value null at 'roleArn' failed to satisfy constraint: "
        "Member must not be null; Value '0' at 'stoppingCondition.maxRuntimeInSeconds' "
        "failed to satisfy constraint: Member must have value greater than or equal to 1"
    )
    assert error_of(CREATE_TRAINING_JOB, params) == expected
    assert error_of(CREATE_TRAINING_JOB, reordered) == expected


def test_required_member_of_a_nested_structure() -> None:
    message = error_of(CREATE_TRAINING_JOB,
                       training_job(AlgorithmSpecification={"TrainingImage": "x"}))
    assert message == (
        "1 validation error detected: Value null at 'algorithmSpecification.trainingInputMode' "
        "failed to satisfy constraint: Member must not be null"
    )


def test_enum_violation_lists_the_allowed_values_in_model_order() -> None:
    spec = {"TrainingImage": "x", "TrainingInputMode": "Stream"}
    message = error_of(CREATE_TRAINING_JOB, training_job(AlgorithmSpecification=spec))
    assert message == (
        "1 validation error detected: Value 'Stream' at "
        "'algorithmSpecification.trainingInputMode' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Pipe, File, FastFile]"
    )


def test_string_length_minimum_and_maximum() -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(RoleArn="arn:aws:iam::1:role"))
    assert ("Value 'arn:aws:iam::1:role' at 'roleArn' failed to satisfy constraint: "
            "Member must have length greater than or equal to 20") in message
    message = error_of(LIST_TRAINING_JOBS, {"NameContains": "a" * 64})
    assert message == (
        f"1 validation error detected: Value '{'a' * 64}' at 'nameContains' failed to satisfy "
        "constraint: Member must have length less than or equal to 63"
    )


def test_one_value_can_break_several_constraints() -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(RoleArn="role"))
    assert message == (
        "2 validation errors detected: Value 'role' at 'roleArn' failed to satisfy constraint: "
        "Member must have length greater than or equal to 20; Value 'role' at 'roleArn' failed "
        "to satisfy constraint: Member must satisfy regular expression pattern: "
        "^arn:aws[a-z\\-]*:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
    )


def test_length_counts_utf16_code_units_like_java() -> None:
    # each emoji is two UTF-16 units: 1250 fit in HyperParameterValue's 2500, 1251 don't
    parse_params(CREATE_TRAINING_JOB, training_job(HyperParameters={"p": "😀" * 1250}))
    message = error_of(CREATE_TRAINING_JOB, training_job(HyperParameters={"p": "😀" * 1251}))
    assert message.endswith("Member must have length less than or equal to 2500")


def test_list_length_minimum_and_maximum() -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(InputDataConfig=[]))
    assert message == (
        "1 validation error detected: Value '[]' at 'inputDataConfig' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    message = error_of(CREATE_TRAINING_JOB, training_job(Tags=tags))
    assert message.startswith("1 validation error detected: Value '[{Key=k0, Value=v}, ")
    assert message.endswith("at 'tags' failed to satisfy constraint: "
                            "Member must have length less than or equal to 50")


def test_map_size_maximum() -> None:
    params = training_job(HyperParameters={f"p{i}": "1" for i in range(101)})
    message = error_of(CREATE_TRAINING_JOB, params)
    assert message.startswith("1 validation error detected: Value '{p0=1, p1=1, ")
    assert message.endswith("at 'hyperParameters' failed to satisfy constraint: "
                            "Member must have length less than or equal to 100")


def test_list_elements_are_numbered_from_one() -> None:
    tags = [{"Key": "ok", "Value": "v"}, {"Key": "", "Value": "v"}]
    message = error_of(CREATE_TRAINING_JOB, training_job(Tags=tags))
    assert message == (
        "1 validation error detected: Value '' at 'tags.2.member.key' failed to satisfy "
        "constraint: Member must have length greater than or equal to 1"
    )


def test_map_values_and_keys_have_their_own_paths() -> None:
    params = training_job(HyperParameters={"eta": "x" * 2501},
                          Environment={"1BAD": "v", "GOOD": "v"})
    message = error_of(CREATE_TRAINING_JOB, params)
    assert message == (
        f"2 validation errors detected: Value '{'x' * 256}...' at 'hyperParameters.eta.member' "
        "failed to satisfy constraint: Member must have length less than or equal to 2500; "
        "Value '1BAD' at 'environment.1BAD.key' failed to satisfy constraint: Member must "
        "satisfy regular expression pattern: ^[a-zA-Z_][a-zA-Z0-9_]*"
    )


def test_structures_inside_lists_inside_structures() -> None:
    params = training_job(InputDataConfig=[
        {"ChannelName": "train",
         "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/"}}},
        {"ChannelName": "validation",
         "DataSource": {"S3DataSource": {"S3DataType": "Everything", "S3Uri": "s3://b/"}}},
    ])
    message = error_of(CREATE_TRAINING_JOB, params)
    assert message == (
        "1 validation error detected: Value 'Everything' at "
        "'inputDataConfig.2.member.dataSource.s3DataSource.s3DataType' failed to satisfy "
        "constraint: Member must satisfy enum value set: "
        "[ManifestFile, S3Prefix, AugmentedManifestFile, Converse]"
    )


def test_recursive_shapes_are_walked() -> None:
    shape = input_shape("sagemaker", "Search")
    inner = {"Filters": [{"Name": "TrainingJobName", "Operator": "Resembles"}]}
    params = {"Resource": "TrainingJob",
              "SearchExpression": {"SubExpressions": [{"Operator": "And"}, inner]}}
    message = error_of(shape, params)
    assert message == (
        "1 validation error detected: Value 'Resembles' at "
        "'searchExpression.subExpressions.2.member.filters.1.member.operator' failed to "
        "satisfy constraint: Member must satisfy enum value set: [Equals, NotEquals, "
        "GreaterThan, GreaterThanOrEqualTo, LessThan, LessThanOrEqualTo, Contains, Exists, "
        "NotExists, In]"
    )


def test_containers_come_before_their_contents_and_all_errors_are_kept() -> None:
    tags = [{"Key": "", "Value": "v"}] * 51
    message = error_of(CREATE_TRAINING_JOB, training_job(Tags=tags, TrainingJobName="-"))
    assert message.startswith("53 validation errors detected: Value '-' at 'trainingJobName'")
    parts = message.split("; ")
    assert len(parts) == 53
    assert "at 'tags' failed to satisfy constraint: Member must have length less than" in (
        parts[1])
    assert parts[2].startswith("Value '' at 'tags.1.member.key'")
    assert parts[52].startswith("Value '' at 'tags.51.member.key'")


def test_long_values_are_cut_in_messages() -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(TrainingJobName="a" * 1000))
    assert f"Value '{'a' * 256}...' at 'trainingJobName'" in message
    assert "a" * 257 not in message


# --- types -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "10", True, 10.5, [10], {"n": 10}])
def test_integer_members_reject_non_integers(value: object) -> None:
    message = error_of(LIST_TRAINING_JOBS, {"MaxResults": value})
    assert message.startswith("1 validation error detected: Value '")
    assert message.endswith("at 'maxResults' failed to satisfy constraint: "
                            "Member must be of type integer")


def test_integer_value_shown_as_java_prints_it() -> None:
    assert "Value 'abc' at 'maxResults'" in error_of(LIST_TRAINING_JOBS, {"MaxResults": "abc"})
    assert "Value 'true' at 'maxResults'" in error_of(LIST_TRAINING_JOBS, {"MaxResults": True})


def test_integral_floats_are_integers() -> None:
    parsed = parse_params(LIST_TRAINING_JOBS, {"MaxResults": 10.0})
    assert parsed == {"MaxResults": 10}
    assert type(parsed["MaxResults"]) is int


def test_integer_value_range() -> None:
    message = error_of(LIST_TRAINING_JOBS, {"MaxResults": 101})
    assert message.endswith("Member must have value less than or equal to 100")
    message = error_of(input_shape("sagemaker", "ListTags"),
                       {"ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m",
                        "MaxResults": 10})
    assert message == (
        "1 validation error detected: Value '10' at 'maxResults' failed to satisfy constraint: "
        "Member must have value greater than or equal to 50"
    )


def test_integer_beyond_32_bits() -> None:
    message = error_of(CREATE_TRAINING_JOB,
                       training_job(StoppingCondition={"MaxRuntimeInSeconds": 2**31}))
    assert message.endswith("at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy "
                            "constraint: Member must have value less than or equal to "
                            "2147483647")


def test_long_members() -> None:
    shape = input_shape("logs", "PutLogEvents")

    def events(timestamp: object) -> dict:
        return {"logGroupName": "g", "logStreamName": "s",
                "logEvents": [{"timestamp": timestamp, "message": "hi"}]}

    # milliseconds since the epoch do not fit 32 bits
    parsed = parse_params(shape, events(1714566600000))
    assert parsed["logEvents"][0]["timestamp"] == 1714566600000
    assert error_of(shape, events(-1)) == (
        "1 validation error detected: Value '-1' at 'logEvents.1.member.timestamp' failed to "
        "satisfy constraint: Member must have value greater than or equal to 0"
    )
    assert error_of(shape, events(2**63)).endswith(
        "Member must have value less than or equal to 9223372036854775807")
    assert error_of(shape, events("1")).endswith("Member must be of type long")


@pytest.mark.parametrize("value", [1, 0, "true", "yes"])
def test_boolean_members_accept_only_booleans(value: object) -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(EnableNetworkIsolation=value))
    assert message.endswith("at 'enableNetworkIsolation' failed to satisfy constraint: "
                            "Member must be of type boolean")


def test_boolean_members_keep_their_value() -> None:
    parsed = parse_params(CREATE_TRAINING_JOB, training_job(EnableNetworkIsolation=False))
    assert parsed["EnableNetworkIsolation"] is False


def test_float_members() -> None:
    shape = input_shape("sagemaker", "CreateEndpointConfig")

    def config(weight: object) -> dict:
        return {"EndpointConfigName": "c", "ProductionVariants": [
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}]}

    parsed = parse_params(shape, config(1))
    weight = parsed["ProductionVariants"][0]["InitialVariantWeight"]
    assert weight == 1.0 and type(weight) is float
    assert math.isnan(parse_params(shape, config("NaN"))["ProductionVariants"][0][
        "InitialVariantWeight"])
    message = error_of(shape, config(-0.5))
    assert message == (
        "1 validation error detected: Value '-0.5' at "
        "'productionVariants.1.member.initialVariantWeight' failed to satisfy constraint: "
        "Member must have value greater than or equal to 0"
    )
    assert error_of(shape, config("1")).endswith("Member must be of type float")
    assert error_of(shape, config(True)).endswith("Member must be of type float")


@pytest.mark.parametrize(("value", "shape_type"), [
    (5, "string"), (["a"], "string"),
])
def test_string_members_reject_other_types(value: object, shape_type: str) -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(TrainingJobName=value))
    assert message.endswith(f"at 'trainingJobName' failed to satisfy constraint: "
                            f"Member must be of type {shape_type}")


def test_container_members_reject_other_types() -> None:
    message = error_of(CREATE_TRAINING_JOB, training_job(
        ResourceConfig="big", Tags={"Key": "k", "Value": "v"}, HyperParameters=["a"]))
    assert message == (
        "3 validation errors detected: "
        "Value '[a]' at 'hyperParameters' failed to satisfy constraint: "
        "Member must be of type map; "
        "Value 'big' at 'resourceConfig' failed to satisfy constraint: "
        "Member must be of type structure; "
        "Value '{Key=k, Value=v}' at 'tags' failed to satisfy constraint: "
        "Member must be of type list"
    )


@pytest.mark.parametrize("value", [
    1714566600, 1714566600.0, "2024-05-01T12:30:00Z", "2024-05-01T14:30:00+02:00",
    "2024-05-01T12:30:00", "2024-05-01T12:30:00.000000000Z", "1714566600",
    "Wed, 01 May 2024 12:30:00 GMT",
])
def test_timestamps_accept_epoch_seconds_and_iso_8601(value: object) -> None:
    parsed = parse_params(LIST_TRAINING_JOBS, {"CreationTimeAfter": value})
    moment = parsed["CreationTimeAfter"]
    assert moment == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)


def test_timestamps_keep_fractions() -> None:
    parsed = parse_params(LIST_TRAINING_JOBS, {"CreationTimeAfter": 1714566600.25,
                                               "CreationTimeBefore": "2024-05-01T12:30:00.5Z"})
    assert parsed["CreationTimeAfter"].microsecond == 250000
    assert parsed["CreationTimeBefore"].microsecond == 500000


@pytest.mark.parametrize("value", ["yesterday", True, [1], 1e300])
def test_timestamps_reject_other_values(value: object) -> None:
    message = error_of(LIST_TRAINING_JOBS, {"CreationTimeAfter": value})
    assert "at 'creationTimeAfter' failed to satisfy constraint: Member must be of type " \
           "timestamp" in message


def test_blobs_are_base64_in_json_and_returned_as_bytes() -> None:
    shape = input_shape("kms", "Encrypt")
    encoded = base64.b64encode(b"\x00secret\xff").decode()
    parsed = parse_params(shape, {"KeyId": "alias/k", "Plaintext": encoded})
    assert parsed["Plaintext"] == b"\x00secret\xff"
    assert parse_params(shape, {"KeyId": "k", "Plaintext": b"raw"})["Plaintext"] == b"raw"
    message = error_of(shape, {"KeyId": "k", "Plaintext": "not base64!"})
    assert message.endswith("at 'plaintext' failed to satisfy constraint: "
                            "Member must be of type blob (base64-encoded text)")
    assert error_of(shape, {"KeyId": "k", "Plaintext": 5}).endswith(
        "Member must be of type blob (base64-encoded text)")


def test_blob_length_is_measured_in_bytes() -> None:
    shape = input_shape("kms", "Encrypt")
    message = error_of(shape, {"KeyId": "k", "Plaintext": ""})
    assert message == (
        "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=0 cap=0]' at "
        "'plaintext' failed to satisfy constraint: Member must have length greater than or "
        "equal to 1"
    )
    too_long = base64.b64encode(b"x" * 4097).decode()
    assert error_of(shape, {"KeyId": "k", "Plaintext": too_long}).endswith(
        "Member must have length less than or equal to 4096")


# --- request bodies that are not objects -------------------------------------------------


@pytest.mark.parametrize(("body", "kind"), [([], "list"), ("x", "string"), (3, "number")])
def test_a_body_that_is_not_an_object_is_a_serialization_error(body: object, kind: str) -> None:
    with pytest.raises(SerializationException) as info:
        parse_params(CREATE_TRAINING_JOB, body)
    assert info.value.code == "SerializationException"
    assert info.value.message.startswith(f"Start of {kind} found where not expected")


def test_an_empty_body_is_an_empty_object() -> None:
    message = error_of(input_shape("sagemaker", "DescribeEndpoint"), None)
    assert message == ("1 validation error detected: Value null at 'endpointName' failed to "
                       "satisfy constraint: Member must not be null")
    assert parse_params(LIST_TRAINING_JOBS, None) == {}


def test_an_operation_without_input_accepts_an_empty_object() -> None:
    assert parse_params(None, {}) == {}
    assert parse_params(None, {"Anything": 1}) == {}
    with pytest.raises(SerializationException):
        parse_params(None, [])


# --- text protocols and REST locations ---------------------------------------------------


def test_query_protocol_values_arrive_as_text() -> None:
    shape = input_shape("sts", "AssumeRole")
    params = {"RoleArn": ROLE, "RoleSessionName": "s1", "DurationSeconds": "3600"}
    assert parse_params(shape, params, protocol="query")["DurationSeconds"] == 3600
    message = error_of(shape, {**params, "DurationSeconds": "100"}, protocol="query")
    assert message == (
        "1 validation error detected: Value '100' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 900"
    )
    message = error_of(shape, {**params, "DurationSeconds": "1h"}, protocol="query")
    assert message.endswith("Member must be of type integer")
    # in a JSON body the same text is the wrong type
    assert error_of(shape, params).endswith("Member must be of type integer")


def test_java_shorthand_classes_are_ascii_only() -> None:
    shape = input_shape("sts", "AssumeRole")
    message = error_of(shape, {"RoleArn": ROLE, "RoleSessionName": "café"}, protocol="query")
    assert message == (
        "1 validation error detected: Value 'café' at 'roleSessionName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[\\w+=,.@-]*"
    )


def test_unicode_property_classes_accept_letters_of_any_script() -> None:
    parsed = parse_params(CREATE_TRAINING_JOB, training_job(Tags=[{"Key": "clé", "Value": "日本"}]))
    assert parsed["Tags"] == [{"Key": "clé", "Value": "日本"}]


def test_rest_xml_query_string_and_header_members() -> None:
    shape = input_shape("s3", "ListObjectsV2")
    params = {"Bucket": "b", "MaxKeys": "100", "FetchOwner": "true", "Prefix": "a/",
              "OptionalObjectAttributes": "RestoreStatus"}
    assert parse_params(shape, params, protocol="rest-xml") == {
        "Bucket": "b", "MaxKeys": 100, "FetchOwner": True, "Prefix": "a/",
        "OptionalObjectAttributes": ["RestoreStatus"],
    }
    # botocore joins a list header with commas
    parsed = parse_params(shape, {"Bucket": "b",
                                  "OptionalObjectAttributes": "RestoreStatus, RestoreStatus"},
                          protocol="rest-xml")
    assert parsed["OptionalObjectAttributes"] == ["RestoreStatus", "RestoreStatus"]
    message = error_of(shape, {"MaxKeys": "many", "EncodingType": "gzip"}, protocol="rest-xml")
    assert message == (
        "3 validation errors detected: Value null at 'bucket' failed to satisfy constraint: "
        "Member must not be null; Value 'gzip' at 'encodingType' failed to satisfy "
        "constraint: Member must satisfy enum value set: [url]; Value 'many' at 'maxKeys' "
        "failed to satisfy constraint: Member must be of type integer"
    )


def test_rest_json_headers_are_text_and_the_payload_is_raw() -> None:
    shape = input_shape("sagemaker-runtime", "InvokeEndpoint")
    parsed = parse_params(shape, {"EndpointName": "ep", "Body": "1,2,3",
                                  "ContentType": "text/csv"}, protocol="rest-json")
    assert parsed == {"EndpointName": "ep", "Body": b"1,2,3", "ContentType": "text/csv"}
    message = error_of(shape, {"EndpointName": "ep", "Body": b"{}",
                               "TargetModel": "modèle.tar.gz"}, protocol="rest-json")
    assert message == (
        "1 validation error detected: Value 'modèle.tar.gz' at 'targetModel' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "\\A\\S[\\p{Print}]*\\z"
    )


def test_rest_json_body_members_use_their_json_names() -> None:
    shape = input_shape("mq", "CreateBroker")
    params = {"brokerName": "b", "deploymentMode": "SINGLE_INSTANCE", "engineType": "ACTIVEMQ",
              "hostInstanceType": "mq.t3.micro", "publiclyAccessible": "yes"}
    message = error_of(shape, params, protocol="rest-json")
    assert message == (
        "1 validation error detected: Value 'yes' at 'publiclyAccessible' failed to satisfy "
        "constraint: Member must be of type boolean"
    )
    params["publiclyAccessible"] = False
    parsed = parse_params(shape, params, protocol="rest-json")
    assert parsed["BrokerName"] == "b" and parsed["PubliclyAccessible"] is False


# --- model oddities ----------------------------------------------------------------------


def synthetic_model(pattern: str) -> ServiceModel:
    return ServiceModel({
        "metadata": {"protocol": "json", "apiVersion": "2024-01-01", "jsonVersion": "1.1"},
        "operations": {},
        "shapes": {
            "Input": {"type": "structure", "members": {
                "Name": {"shape": "Name"}, "Doc": {"shape": "Doc"}}},
            "Name": {"type": "string", "pattern": pattern, "max": 3},
            "Doc": {"type": "structure", "members": {}, "document": True},
        },
    }, service_name="synthetic")


def test_a_pattern_regex_cannot_compile_is_skipped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shape = synthetic_model("x{2}{3}(?#only-in-this-test)").shape_for("Input")
    with caplog.at_level(logging.DEBUG, logger="openmaker.core.validation"):
        assert parse_params(shape, {"Name": "abc"}) == {"Name": "abc"}
        assert parse_params(shape, {"Name": "def"}) == {"Name": "def"}
        # the other constraints still apply
        assert error_of(shape, {"Name": "abcd"}).endswith(
            "Member must have length less than or equal to 3")
    skipped = [r for r in caplog.records if "only-in-this-test" in r.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.DEBUG


def test_document_members_pass_through_unchecked() -> None:
    shape = synthetic_model("[a-z]+").shape_for("Input")
    doc = {"any": [1, "two", {"three": None}]}
    assert parse_params(shape, {"Doc": doc})["Doc"] == doc
    assert serialize_output(shape, {"Doc": doc}) == {"Doc": doc}


def test_validation_is_fast_enough_to_run_on_every_request() -> None:
    params = training_job()
    parse_params(CREATE_TRAINING_JOB, params)
    start = time.perf_counter()
    for _ in range(1000):
        parse_params(CREATE_TRAINING_JOB, params)
    assert time.perf_counter() - start < 2.0  # about 25 ms on a laptop


# --- serialize_output --------------------------------------------------------------------


DESCRIBE_ENDPOINT = output_shape("sagemaker", "DescribeEndpoint")


def endpoint_record() -> dict:
    return {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
        "EndpointConfigName": "cfg",
        "EndpointStatus": "InService",
        "FailureReason": None,
        "CreationTime": datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC),
        "LastModifiedTime": datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
        "ProductionVariants": [{
            "VariantName": "AllTraffic", "CurrentWeight": 1.0, "CurrentInstanceCount": 1,
            "DeployedImages": [{"SpecifiedImage": "img",
                                "ResolutionTime": datetime(2024, 5, 1, 12, 0)}],
            "internal_host": "10.0.0.1",
        }],
        "account_id": "123456789012",
    }


def test_output_timestamps_become_epoch_seconds_with_milliseconds() -> None:
    wire = serialize_output(DESCRIBE_ENDPOINT, endpoint_record())
    assert wire["CreationTime"] == 1714566600.123
    assert wire["LastModifiedTime"] == 1714566600.0
    # a naive datetime is taken as UTC
    assert wire["ProductionVariants"][0]["DeployedImages"][0]["ResolutionTime"] == 1714564800.0


def test_output_drops_none_and_keys_the_shape_does_not_name() -> None:
    wire = serialize_output(DESCRIBE_ENDPOINT, endpoint_record())
    assert set(wire) == {"EndpointName", "EndpointArn", "EndpointConfigName", "EndpointStatus",
                         "CreationTime", "LastModifiedTime", "ProductionVariants"}
    assert wire["ProductionVariants"][0] == {
        "VariantName": "AllTraffic", "CurrentWeight": 1.0, "CurrentInstanceCount": 1,
        "DeployedImages": [{"SpecifiedImage": "img", "ResolutionTime": 1714564800.0}],
    }
    json.dumps(wire)


def test_output_is_read_back_by_botocore() -> None:
    wire = serialize_output(DESCRIBE_ENDPOINT, endpoint_record())
    response = {"body": json.dumps(wire).encode(), "headers": {}, "status_code": 200}
    parsed = create_parser("json").parse(response, DESCRIBE_ENDPOINT)
    assert parsed["CreationTime"] == datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=UTC)
    assert parsed["ProductionVariants"][0]["DeployedImages"][0]["ResolutionTime"] == datetime(
        2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parsed["EndpointStatus"] == "InService"


def test_output_blobs_become_base64_and_maps_are_rendered() -> None:
    wire = serialize_output(output_shape("kms", "Encrypt"),
                            {"CiphertextBlob": b"\x00\xff", "KeyId": "k"})
    assert wire == {"CiphertextBlob": "AP8=", "KeyId": "k"}
    wire = serialize_output(output_shape("sagemaker", "DescribeTrainingJob"),
                            {"TrainingJobName": "j", "HyperParameters": {"eta": "0.1",
                                                                          "gone": None}})
    assert wire == {"TrainingJobName": "j", "HyperParameters": {"eta": "0.1"}}


def test_output_of_an_operation_without_output_is_empty() -> None:
    assert serialize_output(None, {"anything": 1}) == {}
    assert serialize_output(output_shape("sagemaker", "DescribeEndpoint"), None) == {}


def test_output_that_is_not_a_mapping_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="DescribeEndpointOutput"):
        serialize_output(DESCRIBE_ENDPOINT, ["not", "a", "record"])
