"""CloudWatch Logs through a real server and boto3's `logs` client."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from tests.conftest import start_server

from openmaker.cloudwatch.logs import FilterPattern, open_log_store
from openmaker.config import load_settings


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("logs-home"))
    yield running
    running.stop()


@pytest.fixture
def logs(server):
    return server.client("logs")


@pytest.fixture
def group(logs, request) -> str:
    name = f"/test/{request.node.name}"
    logs.create_log_group(logGroupName=name)
    return name


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def now_ms() -> int:
    return int(time.time() * 1000)


def put(logs, group, stream, messages, start=None):
    start = now_ms() - 10_000 if start is None else start
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
        {"timestamp": start + i, "message": m} for i, m in enumerate(messages)])


def test_groups_lifecycle_and_listing(logs):
    for name in ("/lc/a", "/lc/b", "/lc/c"):
        logs.create_log_group(logGroupName=name)
    with pytest.raises(ClientError) as excinfo:
        logs.create_log_group(logGroupName="/lc/a")
    assert code(excinfo) == "ResourceAlreadyExistsException"
    pages = list(logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix="/lc/", PaginationConfig={"PageSize": 2}))
    assert [g["logGroupName"] for p in pages for g in p["logGroups"]] == ["/lc/a", "/lc/b",
                                                                         "/lc/c"]
    assert pages[0]["logGroups"][0]["arn"].startswith("arn:aws:logs:us-east-1:000000000000:")
    logs.delete_log_group(logGroupName="/lc/b")
    names = [g["logGroupName"] for g in
             logs.describe_log_groups(logGroupNamePrefix="/lc/")["logGroups"]]
    assert names == ["/lc/a", "/lc/c"]
    with pytest.raises(ClientError) as excinfo:
        logs.delete_log_group(logGroupName="/lc/b")
    assert code(excinfo) == "ResourceNotFoundException"


def test_streams_order_and_errors(logs, group):
    for stream in ("job/algo-2", "job/algo-1", "other"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    with pytest.raises(ClientError) as excinfo:
        logs.create_log_stream(logGroupName=group, logStreamName="other")
    assert code(excinfo) == "ResourceAlreadyExistsException"
    put(logs, group, "job/algo-2", ["late"], start=now_ms() - 1000)
    put(logs, group, "job/algo-1", ["early"], start=now_ms() - 5000)
    by_name = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="job/")
    assert [s["logStreamName"] for s in by_name["logStreams"]] == ["job/algo-1", "job/algo-2"]
    newest_first = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime",
                                             descending=True, limit=1)
    assert newest_first["logStreams"][0]["logStreamName"] == "job/algo-2"
    following = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime",
                                          descending=True, nextToken=newest_first["nextToken"])
    assert [s["logStreamName"] for s in following["logStreams"]] == ["job/algo-1", "other"]
    assert by_name["logStreams"][0]["storedBytes"] == len("early")
    with pytest.raises(ClientError) as excinfo:
        logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="job/",
                                  orderBy="LastEventTime")
    assert code(excinfo) == "InvalidParameterException"
    with pytest.raises(ClientError) as excinfo:
        logs.describe_log_streams(logGroupName="/no/such/group")
    assert code(excinfo) == "ResourceNotFoundException"


def test_put_log_events_rules(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    with pytest.raises(ClientError) as excinfo:
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": now_ms(), "message": "b"}, {"timestamp": now_ms() - 10, "message": "a"}])
    assert code(excinfo) == "InvalidParameterException" and "chronological" in str(excinfo.value)
    old = now_ms() - 15 * 24 * 3600 * 1000
    response = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": old, "message": "too old"}, {"timestamp": old + 1, "message": "old"}])
    assert response["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 1}
    response = logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
        {"timestamp": now_ms(), "message": "fine"},
        {"timestamp": now_ms() + 3 * 3600 * 1000, "message": "too new"}])
    assert response["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    kept = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)
    assert [e["message"] for e in kept["events"]] == ["fine"]
    with pytest.raises(ClientError) as excinfo:
        logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=[
            {"timestamp": old, "message": "a"}, {"timestamp": now_ms(), "message": "b"}])
    assert code(excinfo) == "InvalidParameterException" and "24 hours" in str(excinfo.value)
    with pytest.raises(ClientError) as excinfo:
        logs.put_log_events(logGroupName=group, logStreamName="missing",
                            logEvents=[{"timestamp": now_ms(), "message": "x"}])
    assert code(excinfo) == "ResourceNotFoundException"


def test_get_log_events_pages_forward_and_backward(logs, group):
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    put(logs, group, "s", [f"line {i}" for i in range(10)])
    seen, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName="s", limit=3, **kwargs)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:  # how SDKs detect the end of a stream
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(10)]
    latest = logs.get_log_events(logGroupName=group, logStreamName="s", limit=3)
    assert [e["message"] for e in latest["events"]] == ["line 7", "line 8", "line 9"]
    earlier = logs.get_log_events(logGroupName=group, logStreamName="s", limit=3,
                                  nextToken=latest["nextBackwardToken"])
    assert [e["message"] for e in earlier["events"]] == ["line 4", "line 5", "line 6"]
    with pytest.raises(ClientError) as excinfo:
        logs.get_log_events(logGroupName=group, logStreamName="s", nextToken="garbage")
    assert code(excinfo) == "InvalidParameterException"


def test_filter_log_events_patterns_and_paging(logs, group):
    for stream in ("job/algo-1", "job/algo-2"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    base = now_ms() - 10_000
    put(logs, group, "job/algo-1", ["INFO start", "ERROR disk full", "WARN slow"], start=base)
    put(logs, group, "job/algo-2", ["INFO start", "ERROR out of memory"], start=base + 1)

    def messages(**kwargs):
        return [(e["logStreamName"], e["message"]) for e in
                logs.filter_log_events(logGroupName=group, **kwargs)["events"]]

    assert messages(filterPattern="ERROR") == [("job/algo-1", "ERROR disk full"),
                                               ("job/algo-2", "ERROR out of memory")]
    assert messages(filterPattern='"out of memory"') == [("job/algo-2", "ERROR out of memory")]
    assert messages(filterPattern="?WARN ?disk") == [("job/algo-1", "ERROR disk full"),
                                                     ("job/algo-1", "WARN slow")]
    assert messages(filterPattern="ERROR -memory") == [("job/algo-1", "ERROR disk full")]
    assert len(messages(logStreamNames=["job/algo-2"])) == 2
    pages = list(logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 2}))
    assert len([e for p in pages for e in p["events"]]) == 5
    with pytest.raises(ClientError) as excinfo:
        logs.filter_log_events(logGroupName=group, filterPattern="{ $.level = \"ERROR\" }")
    assert code(excinfo) == "InvalidParameterException"


def test_bad_names_are_validated(logs):
    with pytest.raises(ClientError) as excinfo:
        logs.create_log_group(logGroupName="bad name!")
    assert code(excinfo) == "ValidationException"
    assert "logGroupName" in excinfo.value.response["Error"]["Message"]


def test_append_creates_group_and_stream_and_sdk_tailing_reads_it(server, logs):
    store = open_log_store(load_settings(server.home))
    try:
        store.append("/aws/sagemaker/TrainingJobs", "job-1/algo-1-1700000000",
                     [f"[{i}] epoch {i}" for i in range(2500)])
        store.append("/aws/sagemaker/TrainingJobs", "job-1/algo-1-1700000000", ["done"])
    finally:
        store.close()
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix="job-1/")["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["job-1/algo-1-1700000000"]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                 logStreamName="job-1/algo-1-1700000000",
                                 startFromHead=True)["events"]
    assert len(events) == 2501 and events[-1]["message"] == "done"


@pytest.mark.parametrize("pattern, message, expected", [
    ("", "anything", True), ("ERROR", "an ERROR here", True), ("ERROR", "error", False),
    ("ERROR disk", "ERROR: disk", True), ("ERROR disk", "ERROR", False),
    ('"a b"', "x a b y", True), ('"a b"', "a  b", False), ("?x ?y", "y", True),
    ("?x ?y", "z", False), ("ERROR -test", "ERROR test", False),
])
def test_filter_pattern_semantics(pattern, message, expected):
    assert FilterPattern.parse(pattern).matches(message) is expected
