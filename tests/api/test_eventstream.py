"""The event stream encoder against botocore's own parser (EventStreamBuffer) and its
SageMaker Runtime event-stream parsing."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from openmaker.api import eventstream


def parse(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_a_message_round_trips_through_botocores_parser_with_valid_crcs():
    encoded = eventstream.encode_message(
        {":event-type": "PayloadPart", "blob": b"\x00\xff", "yes": True, "no": False,
         "small": -7, "large": 2 ** 40}, b"hello")
    (message,) = parse(encoded)
    assert message.payload == b"hello"
    assert message.headers == {":event-type": "PayloadPart", "blob": b"\x00\xff",
                               "yes": True, "no": False, "small": -7, "large": 2 ** 40}


def test_messages_split_anywhere_are_parsed_as_they_complete():
    data = b"".join(eventstream.event("PayloadPart", bytes([i]) * i) for i in range(50))
    buffer = EventStreamBuffer()
    parsed = []
    for start in range(0, len(data), 7):
        buffer.add_data(data[start:start + 7])
        parsed.extend(buffer)
    assert [m.payload for m in parsed] == [bytes([i]) * i for i in range(50)]


def test_an_empty_payload_and_unicode_header_values_encode():
    (message,) = parse(eventstream.encode_message({"name": "héllo ✓"}, b""))
    assert message.headers == {"name": "héllo ✓"} and message.payload == b""


def test_a_corrupted_message_fails_botocores_crc_check():
    encoded = bytearray(eventstream.event("PayloadPart", b"abc"))
    encoded[-6] ^= 0x01
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        parse(bytes(encoded))


def test_over_long_header_values_are_refused():
    with pytest.raises(ValueError, match="65535"):
        eventstream.encode_message({"h": "x" * 70000}, b"")


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self):
        yield from (self.data[i:i + 5] for i in range(0, len(self.data), 5))


def _sagemaker_stream(data: bytes) -> EventStream:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointWithResponseStream").output_shape
    return EventStream(_Raw(data), shape.members["Body"], EventStreamJSONParser(),
                       "InvokeEndpointWithResponseStream")


def test_payload_parts_parse_as_sagemaker_runtimes_response_stream():
    data = eventstream.event("PayloadPart", b"one ") + eventstream.event("PayloadPart", b"two")
    events = list(_sagemaker_stream(data))
    assert events == [{"PayloadPart": {"Bytes": b"one "}}, {"PayloadPart": {"Bytes": b"two"}}]


def test_a_model_stream_error_event_is_raised_by_botocore_with_its_code():
    data = eventstream.event("PayloadPart", b"partial") + eventstream.exception(
        "ModelStreamError", {"Message": "the model broke", "ErrorCode": "StreamBroken"})
    stream = iter(_sagemaker_stream(data))
    assert next(stream) == {"PayloadPart": {"Bytes": b"partial"}}
    with pytest.raises(EventStreamError) as raised:
        next(stream)
    assert raised.value.response["Error"] == {"Code": "ModelStreamError",
                                              "Message": "the model broke"}
