"""Data capture: SageMaker's capture records, sampling, encodings, file layout, and that a
capture problem never reaches the caller."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from openmaker.config import load_settings
from openmaker.core.platform import Platform
from openmaker.hosting import capture
from openmaker.hosting.capture import capture_encoding, capture_invocation, flush_captures

BUCKET = "capture-bucket"
WHEN = datetime(2024, 3, 5, 17, 25, 49, 123456, tzinfo=UTC)
HEADER = {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}
FILE_NAME = re.compile(r"\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl")


@pytest.fixture
def platform(tmp_path):
    platform = Platform(load_settings(home=tmp_path / "home"))
    platform.objects.create_bucket(BUCKET)
    yield platform
    flush_captures(platform)
    platform.close()


def config(mode: str = "InputAndOutput", percent: int = 100, header: dict | None = HEADER,
           **extra) -> dict:
    value = {"EnableCapture": True, "InitialSamplingPercentage": percent,
             "DestinationS3Uri": f"s3://{BUCKET}/datacapture",
             "CaptureOptions": [{"CaptureMode": mode}], **extra}
    if header is not None:
        value["CaptureContentTypeHeader"] = header
    return value


def invoke(platform, cfg: dict, *, body: bytes = b"1,2,3", content_type: str | None = "text/csv",
           answer: bytes | None = b"0.25", answer_type: str | None = "text/csv; charset=utf-8",
           inference_id: str | None = None, event_id: str = "event-1", when: datetime = WHEN,
           endpoint: str = "my-endpoint", variant: str = "AllTraffic") -> None:
    capture_invocation(platform, endpoint, cfg, variant, request_body=body,
                       request_content_type=content_type, response_body=answer,
                       response_content_type=answer_type, inference_id=inference_id,
                       event_id=event_id, when=when)


def captured(platform, prefix: str = "datacapture/") -> dict[str, list[dict]]:
    flush_captures(platform)
    page = platform.objects.list_objects(BUCKET, prefix=prefix)
    return {info.key: [json.loads(line) for line in
                       platform.objects.get_object(BUCKET, info.key).splitlines()]
            for info in page.objects}


def test_record_has_sagemakers_shape_and_file_its_layout(platform):
    invoke(platform, config(), inference_id="caller-7")
    files = captured(platform)
    assert len(files) == 1
    key, records = next(iter(files.items()))
    folder, _, name = key.rpartition("/")
    assert folder == "datacapture/my-endpoint/AllTraffic/2024/03/05/17"
    assert FILE_NAME.fullmatch(name) and name.startswith("25-49-123-")
    assert records == [{
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                              "data": "1,2,3", "encoding": "CSV"},
            "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                               "mode": "OUTPUT", "data": "0.25", "encoding": "CSV"}},
        "eventMetadata": {"eventId": "event-1", "inferenceId": "caller-7",
                          "inferenceTime": "2024-03-05T17:25:49Z"},
        "eventVersion": "0"}]
    head = platform.objects.head_object(BUCKET, key)
    assert head.content_type == "application/jsonlines"


def test_inference_id_left_out_when_the_caller_gave_none(platform):
    invoke(platform, config())
    (records,) = captured(platform).values()
    assert records[0]["eventMetadata"] == {"eventId": "event-1",
                                           "inferenceTime": "2024-03-05T17:25:49Z"}


@pytest.mark.parametrize(("mode", "parts"), [
    ("Input", ["endpointInput"]), ("Output", ["endpointOutput"]),
    ("InputAndOutput", ["endpointInput", "endpointOutput"])])
def test_capture_mode_selects_the_parts(platform, mode, parts):
    invoke(platform, config(mode))
    (records,) = captured(platform).values()
    assert list(records[0]["captureData"]) == parts


def test_both_modes_as_separate_options(platform):
    cfg = config()
    cfg["CaptureOptions"] = [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    invoke(platform, cfg)
    (records,) = captured(platform).values()
    assert set(records[0]["captureData"]) == {"endpointInput", "endpointOutput"}


def test_json_kept_as_text_and_other_types_base64(platform):
    invoke(platform, config(), body=b'{"instances": [1]}', content_type="application/json",
           answer=b"\x00\xffbinary", answer_type="application/x-npy")
    (records,) = captured(platform).values()
    data = records[0]["captureData"]
    assert data["endpointInput"] == {"observedContentType": "application/json",
                                     "mode": "INPUT", "data": '{"instances": [1]}',
                                     "encoding": "JSON"}
    assert data["endpointOutput"]["encoding"] == "BASE64"
    assert base64.b64decode(data["endpointOutput"]["data"]) == b"\x00\xffbinary"


def test_without_header_config_everything_is_base64(platform):
    invoke(platform, config(header=None))
    (records,) = captured(platform).values()
    entry = records[0]["captureData"]["endpointInput"]
    assert entry["encoding"] == "BASE64" and base64.b64decode(entry["data"]) == b"1,2,3"


def test_encoding_matches_media_type_ignoring_parameters_and_case():
    assert capture_encoding("Text/CSV; charset=utf-8", HEADER) == "CSV"
    assert capture_encoding("application/json", {"JsonContentTypes": ["APPLICATION/JSON"]}) \
        == "JSON"
    assert capture_encoding("application/jsonlines", HEADER) == "BASE64"
    assert capture_encoding(None, HEADER) == "BASE64"


def test_body_that_is_not_utf8_falls_back_to_base64(platform):
    invoke(platform, config(), body=b"\xff\xfe,1")
    (records,) = captured(platform).values()
    entry = records[0]["captureData"]["endpointInput"]
    assert entry["encoding"] == "BASE64" and base64.b64decode(entry["data"]) == b"\xff\xfe,1"


def test_no_answer_keeps_the_input_only(platform):
    invoke(platform, config(), answer=None, answer_type=None)
    invoke(platform, config("Output"), answer=None, answer_type=None, event_id="event-2")
    (records,) = captured(platform).values()
    assert [list(r["captureData"]) for r in records] == [["endpointInput"]]


def test_sampling_percentage(platform):
    for index in range(400):
        invoke(platform, config(percent=25), event_id=f"e{index}")
    kept = sum(len(records) for records in captured(platform).values())
    assert 40 < kept < 170  # 100 expected; far outside only with negligible probability
    invoke(platform, config(percent=0), endpoint="never")
    assert captured(platform, "datacapture/never/") == {}


def test_disabled_capture_writes_nothing(platform):
    invoke(platform, config(EnableCapture=False))
    assert captured(platform) == {}


def test_records_group_into_one_file_per_variant_and_hour(platform):
    later = WHEN + timedelta(hours=1)
    for index in range(3):
        invoke(platform, config(), event_id=f"a{index}", when=WHEN + timedelta(seconds=index))
    invoke(platform, config(), event_id="b", variant="Shadow")
    invoke(platform, config(), event_id="c", when=later)
    files = captured(platform)
    folders = sorted(key.rpartition("/")[0] for key in files)
    assert folders == ["datacapture/my-endpoint/AllTraffic/2024/03/05/17",
                       "datacapture/my-endpoint/AllTraffic/2024/03/05/18",
                       "datacapture/my-endpoint/Shadow/2024/03/05/17"]
    by_folder = {key.rpartition("/")[0]: records for key, records in files.items()}
    assert [r["eventMetadata"]["eventId"] for r in
            by_folder["datacapture/my-endpoint/AllTraffic/2024/03/05/17"]] == ["a0", "a1", "a2"]


def test_each_flush_writes_a_new_file(platform):
    invoke(platform, config(), event_id="first")
    captured(platform)
    invoke(platform, config(), event_id="second")
    assert len(captured(platform)) == 2


def test_naive_and_other_zone_times_are_taken_as_utc(platform):
    invoke(platform, config(), when=datetime(2024, 3, 5, 17, 0, 1))
    invoke(platform, config(), when=datetime(2024, 3, 5, 19, 0, 2,
                                             tzinfo=timezone(timedelta(hours=2))))
    records = [r for rs in captured(platform).values() for r in rs]
    assert sorted(r["eventMetadata"]["inferenceTime"] for r in records) == [
        "2024-03-05T17:00:01Z", "2024-03-05T17:00:02Z"]


def test_background_flusher_writes_without_being_asked(platform):
    invoke(platform, config())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if platform.objects.list_objects(BUCKET, prefix="datacapture/").objects:
            return
        time.sleep(0.1)
    pytest.fail("the background flusher wrote nothing within 10 s")


def test_problems_never_reach_the_caller(platform, caplog):
    invoke(platform, {"InitialSamplingPercentage": "lots"})  # malformed config
    invoke(platform, config(), body="not bytes")  # type: ignore[arg-type]
    missing = config()
    missing["DestinationS3Uri"] = "s3://no-such-bucket/capture"
    invoke(platform, missing)
    flush_captures(platform)  # the upload fails: logged, dropped
    assert "no-such-bucket" in caplog.text
    invoke(platform, config(), event_id="after")
    (records,) = captured(platform).values()
    assert [r["eventMetadata"]["eventId"] for r in records] == ["after"]


def test_full_buffer_drops_records(platform, monkeypatch):
    monkeypatch.setattr(capture, "MAX_BUFFERED_BYTES", 1500)
    monkeypatch.setattr(capture, "FLUSH_INTERVAL_SECONDS", 3600)
    for index in range(20):
        invoke(platform, config(), event_id=f"e{index}")
    kept = sum(len(records) for records in captured(platform).values())
    assert 0 < kept < 20
