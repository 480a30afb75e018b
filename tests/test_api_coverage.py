"""``docs/api-coverage.md`` says exactly which operations are served, and the server answers
every SageMaker and STS operation it lists as served (no 501 NotImplemented).

The doc is compared with ``scripts/generate_api_coverage.implemented`` as sets of operation
names, not as text: botocore's models grow between versions, which changes the operations
the doc lists as not implemented but not what openmaker serves."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from openmaker.api import operations
from openmaker.api import sagemaker as sagemaker_api

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api-coverage.md"
NOT_SERVED = "—"


def load_generator():
    path = ROOT / "scripts" / "generate_api_coverage.py"
    spec = importlib.util.spec_from_file_location("generate_api_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()


def documented() -> dict[str, dict[str, str]]:
    """service -> operation -> status, for every operation row of every section."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"## ([a-z0-9-]+): ", line)
        if heading:
            current = sections.setdefault(heading.group(1), {})
            continue
        row = re.fullmatch(r"\| ([A-Z][A-Za-z0-9]*) \| (.+) \|", line)
        if current is not None and row:
            current[row.group(1)] = row.group(2)
    return sections


def served_in_doc(service: str) -> set[str]:
    return {op for op, status in documented()[service].items() if status != NOT_SERVED}


def test_coverage_doc_has_a_section_for_every_service():
    assert DOC.is_file(), "run `make coverage-doc` to write docs/api-coverage.md"
    assert set(documented()) == set(generator.SERVICES)


@pytest.mark.parametrize("service", list(generator.SERVICES))
def test_coverage_doc_marks_exactly_the_implemented_operations(service):
    expected = set(generator.implemented(service))
    actual = served_in_doc(service)
    assert actual == expected, (
        f"docs/api-coverage.md is stale for {service} (run `make coverage-doc`): "
        f"missing {sorted(expected - actual)}, extra {sorted(actual - expected)}"
    )


def test_coverage_doc_summary_counts_match_the_sections():
    text = DOC.read_text()
    for service in generator.SERVICES:
        summary = re.search(rf"^\| {re.escape(service)} \| (\d+) \| (\d+) \|$", text, re.M)
        assert summary, service
        rows = documented()[service]
        assert int(summary.group(1)) == len(served_in_doc(service))
        assert int(summary.group(2)) == len(rows)


@pytest.mark.parametrize("service", ["sagemaker", "sts", "s3"])
def test_every_documented_operation_has_a_handler(service):
    for op in served_in_doc(service):
        if service == "sagemaker" and op not in operations.OPERATIONS[service]:
            assert sagemaker_api.generic_handler(op) is not None, op
        elif service == "s3":
            assert op in operations.OPERATIONS["s3"], op  # routed by api/s3.py
        else:
            assert callable(operations.resolve(service, op)), op


def generic_list_operations() -> list[str]:
    return sorted(op for op, how in generator.implemented("sagemaker").items()
                  if how.startswith("generic"))


def test_every_generic_sagemaker_list_is_answered_with_its_result_key(server):
    client = server.client("sagemaker")
    assert generic_list_operations(), "no generic List operations documented"
    failures = {}
    for op in generic_list_operations():
        result_key = sagemaker_api.list_spec(op).result_key
        try:
            response = getattr(client, xform_name(op))()
        except ClientError as exc:
            failures[op] = exc.response["Error"]["Code"]
            continue
        if not isinstance(response.get(result_key), list):
            failures[op] = f"no list under {result_key}"
    assert failures == {}


TAGGED_ARN = "arn:aws:sagemaker:us-east-1:000000000000:training-job/no-such-job"


@pytest.mark.parametrize(("operation", "params"), [
    ("ListTags", {"ResourceArn": TAGGED_ARN}),
    ("AddTags", {"ResourceArn": TAGGED_ARN, "Tags": [{"Key": "team", "Value": "ml"}]}),
    ("DeleteTags", {"ResourceArn": TAGGED_ARN, "TagKeys": ["team"]}),
])
def test_sagemaker_tag_operations_on_a_missing_arn_are_validation_errors(server, operation,
                                                                         params):
    client = server.client("sagemaker")
    with pytest.raises(ClientError) as raised:
        getattr(client, xform_name(operation))(**params)
    error = raised.value.response
    assert error["Error"]["Code"] == "ValidationException"
    assert "no-such-job" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_every_documented_sts_operation_is_answered(server):
    client = server.client("sts")
    assert "GetCallerIdentity" in served_in_doc("sts")
    identity = client.get_caller_identity()
    assert identity["Account"] == "000000000000"
    assert identity["Arn"].startswith("arn:aws:")
