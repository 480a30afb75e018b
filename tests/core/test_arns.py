import pytest

from openmaker.core.arns import Arn, make_arn, parse_arn


def test_make_arn_lower_cases_the_name_like_sagemaker() -> None:
    arn = make_arn("endpoint", "ExampleEndpoint", region="us-east-1", account_id="123456789012")
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/exampleendpoint"


def test_make_arn_keeps_case_when_asked() -> None:
    arn = make_arn("model-package", "ModelGroup1/1", region="eu-west-1",
                   account_id="123456789012", lowercase=False)
    assert arn == "arn:aws:sagemaker:eu-west-1:123456789012:model-package/ModelGroup1/1"


def test_make_arn_takes_other_services_and_partitions() -> None:
    arn = make_arn("stream", "clicks", region="cn-north-1", account_id="123456789012",
                   service="kinesis", partition="aws-cn")
    assert arn == "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/clicks"


@pytest.mark.parametrize(("resource_type", "name"), [("", "x"), ("model", ""), ("a/b", "x")])
def test_make_arn_rejects_empty_or_ambiguous_parts(resource_type: str, name: str) -> None:
    with pytest.raises(ValueError):
        make_arn(resource_type, name, region="us-east-1", account_id="123456789012")


def test_parse_arn_splits_a_sagemaker_arn() -> None:
    arn = parse_arn("arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job")
    assert arn == Arn("aws", "sagemaker", "us-east-1", "123456789012", "training-job",
                      "my-job")


@pytest.mark.parametrize("text", [
    "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job",
    "arn:aws:sagemaker:us-east-1:123456789012:model-package/ModelGroup1/1",
    "arn:aws:lambda:us-east-1:123456789012:function:my-fn:1",
    "arn:aws:s3:::my-bucket",
    "arn:aws:iam::aws:policy/AmazonSageMakerFullAccess",
])
def test_parse_arn_round_trips(text: str) -> None:
    assert str(parse_arn(text)) == text


def test_parse_arn_keeps_slashes_in_the_resource_id() -> None:
    arn = parse_arn("arn:aws:sagemaker:us-east-1:123456789012:model-package/Group/3")
    assert (arn.resource_type, arn.resource_id) == ("model-package", "Group/3")


def test_parse_arn_splits_at_the_first_separator() -> None:
    arn = parse_arn("arn:aws:lambda:us-east-1:123456789012:function:my-fn/x")
    assert (arn.resource_type, arn.resource_id, arn.separator) == ("function", "my-fn/x", ":")


def test_parse_arn_without_a_type_keeps_the_whole_resource_as_id() -> None:
    arn = parse_arn("arn:aws:s3:::my-bucket")
    assert (arn.region, arn.account_id, arn.resource_type, arn.resource_id) == (
        "", "", "", "my-bucket")


@pytest.mark.parametrize("text", [
    "",
    "not-an-arn",
    "arn:aws:sagemaker:us-east-1:123456789012",
    "arx:aws:sagemaker:us-east-1:123456789012:model/m",
    "arn::sagemaker:us-east-1:123456789012:model/m",
    "arn:aws::us-east-1:123456789012:model/m",
    "arn:aws:sagemaker:us-east-1:123456789012:",
    "arn:aws:sagemaker:us-east-1:123456789012:model/",
    "arn:aws:sagemaker:us-east-1:123456789012:/m",
])
def test_parse_arn_rejects_malformed_arns(text: str) -> None:
    with pytest.raises(ValueError):
        parse_arn(text)


def test_parse_arn_rejects_non_strings() -> None:
    with pytest.raises(ValueError):
        parse_arn(None)  # type: ignore[arg-type]
