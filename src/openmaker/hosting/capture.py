"""Data capture for Model Monitor (``reference/mlops.md`` section 2.3).

When an endpoint config has an enabled ``DataCaptureConfig``, the router hands every
invocation to :func:`capture_invocation`, which keeps ``InitialSamplingPercentage`` percent
of them as SageMaker's capture records::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "1,2,3", "encoding": "CSV"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<caller's>",
                       "inferenceTime": "2022-02-14T17:25:49Z"},
     "eventVersion": "0"}

A body whose content type (its media type, parameters ignored, case-insensitively) is
listed in ``CaptureContentTypeHeader.CsvContentTypes`` / ``JsonContentTypes`` is kept as
text with encoding ``CSV`` / ``JSON``; every other body (and one that is not UTF-8) is
base64 with encoding ``BASE64``, as SageMaker does when no header config is given.
``CaptureMode`` ``Input``/``Output``/``InputAndOutput`` selects the parts kept.

Records are buffered in memory and written by a background thread, as JSON Lines, to
``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl`` —
the hour, minute, second and millisecond of the file's first record (UTC), the naming
SageMaker uses — every :data:`FLUSH_INTERVAL_SECONDS`, when :data:`FLUSH_RECORDS` are
waiting, at interpreter exit and on :func:`flush_captures`. Capture never fails or slows a
request: errors are logged and the record dropped, and so are records arriving while
:data:`MAX_BUFFERED_BYTES` are already waiting.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import random
import threading
import uuid
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from openmaker.core.platform import PerPlatform, Platform
from openmaker.storage.uri import S3Uri

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 1.0
FLUSH_RECORDS = 1000
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
EVENT_VERSION = "0"
CONTENT_TYPE = "application/jsonlines"


def capture_invocation(platform: Platform, endpoint: str, config: dict, variant: str, *,
                       request_body: bytes, request_content_type: str | None,
                       response_body: bytes | None, response_content_type: str | None,
                       inference_id: str | None, event_id: str, when: datetime) -> None:
    """Sample and buffer the capture record of one invocation; never raises.

    ``config`` is the endpoint config's ``DataCaptureConfig``; ``response_body`` is None
    when the container gave no answer (only the input is kept then)."""
    try:
        if not config or config.get("EnableCapture", True) is False:
            return
        if random.random() * 100 >= float(config.get("InitialSamplingPercentage", 0)):
            return
        record = capture_record(config, request_body=request_body,
                                request_content_type=request_content_type,
                                response_body=response_body,
                                response_content_type=response_content_type,
                                inference_id=inference_id, event_id=event_id, when=when)
        if record is None:
            return
        _buffer(platform).add(config["DestinationS3Uri"], endpoint, variant, when, record)
    except Exception:  # capture must never fail the request
        log.exception("data capture of endpoint %s variant %s failed; record dropped",
                      endpoint, variant)


def capture_record(config: dict, *, request_body: bytes, request_content_type: str | None,
                   response_body: bytes | None, response_content_type: str | None,
                   inference_id: str | None, event_id: str, when: datetime,
                   ) -> dict[str, Any] | None:
    """SageMaker's capture record of one invocation, or None when nothing is captured."""
    modes = {option.get("CaptureMode") for option in config.get("CaptureOptions") or ()}
    header = config.get("CaptureContentTypeHeader") or {}
    captured: dict[str, Any] = {}
    if modes & {"Input", "InputAndOutput"}:
        captured["endpointInput"] = _captured_body(
            request_body, request_content_type, "INPUT", header)
    if modes & {"Output", "InputAndOutput"} and response_body is not None:
        captured["endpointOutput"] = _captured_body(
            response_body, response_content_type, "OUTPUT", header)
    if not captured:
        return None
    metadata: dict[str, Any] = {"eventId": event_id}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = inference_time(when)
    return {"captureData": captured, "eventMetadata": metadata,
            "eventVersion": EVENT_VERSION}


def inference_time(when: datetime) -> str:
    """``when`` in UTC as ``2022-02-14T17:25:49Z`` (naive datetimes are taken as UTC)."""
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_encoding(content_type: str | None, header: dict) -> str:
    """``CSV``, ``JSON`` or ``BASE64`` for a body of ``content_type``."""
    if content_type:
        media = _media_type(content_type)
        if media in {_media_type(t) for t in header.get("CsvContentTypes") or ()}:
            return "CSV"
        if media in {_media_type(t) for t in header.get("JsonContentTypes") or ()}:
            return "JSON"
    return "BASE64"


def capture_key(prefix: S3Uri, endpoint: str, variant: str, first: datetime) -> S3Uri:
    """Where a capture file whose first record was made at ``first`` goes."""
    moment = _utc(first)
    name = (f"{moment:%Y/%m/%d/%H}/{moment:%M-%S}-{moment.microsecond // 1000:03d}-"
            f"{uuid.uuid4()}.jsonl")
    return prefix.join(f"{endpoint}/{variant}/{name}")


def flush_captures(platform: Platform | None = None) -> None:
    """Write every buffered record now (of ``platform``'s buffer, or of all)."""
    for buffer in _buffer.existing(platform):
        buffer.flush()


def _captured_body(body: bytes, content_type: str | None, mode: str, header: dict,
                   ) -> dict[str, str]:
    encoding = capture_encoding(content_type, header)
    data: str | None = None
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if data is None:
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type or "", "mode": mode, "data": data,
            "encoding": encoding}


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# --- buffering and writing --------------------------------------------------------------
class CaptureBuffer:
    """Capture records waiting to be written, grouped by the file they go to (one per
    destination, endpoint, variant and hour each time the buffer is flushed)."""

    def __init__(self, platform: Platform) -> None:
        self._platform = weakref.ref(platform)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[tuple[str, str, str, str], list[tuple[datetime, bytes]]] = {}
        self._records = 0
        self._bytes = 0
        self._dropped = 0
        thread = threading.Thread(target=_flush_forever, args=(weakref.ref(self),),
                                  name="openmaker-data-capture", daemon=True)
        thread.start()

    def add(self, destination: str, endpoint: str, variant: str, when: datetime,
            record: dict) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        when = _utc(when)
        hour = f"{when:%Y%m%d%H}"
        with self._lock:
            if self._bytes + len(line) > MAX_BUFFERED_BYTES:
                self._dropped += 1
                if self._dropped == 1 or self._dropped % 1000 == 0:
                    log.warning("data capture buffer full (%d bytes waiting); %d records "
                                "dropped", self._bytes, self._dropped)
                return
            self._pending.setdefault((destination, endpoint, variant, hour), []).append(
                (when, line))
            self._records += 1
            self._bytes += len(line)
            full = self._records >= FLUSH_RECORDS
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write what is waiting; a file that cannot be written is logged and dropped."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._records = self._bytes = 0
            if not pending:
                return
            platform = self._platform()
            if platform is None:
                return
            for (destination, endpoint, variant, _), lines in pending.items():
                self._write(platform, destination, endpoint, variant, lines)

    def _write(self, platform: Platform, destination: str, endpoint: str, variant: str,
               lines: Iterable[tuple[datetime, bytes]]) -> None:
        lines = list(lines)
        try:
            target = capture_key(S3Uri.parse(destination), endpoint, variant,
                                 min(when for when, _ in lines))
            platform.objects.put_object(target.bucket, target.key,
                                        b"".join(line for _, line in lines),
                                        content_type=CONTENT_TYPE)
        except Exception:  # a bad destination must not stop the flusher
            log.exception("data capture: could not write %d records of endpoint %s variant "
                          "%s under %s; they are dropped", len(lines), endpoint, variant,
                          destination)

    def wait(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()


def _flush_forever(buffer_ref: weakref.ref[CaptureBuffer]) -> None:
    # The thread holds the buffer only while flushing, so it ends once the platform (and
    # with it the buffer) is gone.
    while True:
        buffer = buffer_ref()
        if buffer is None:
            return
        buffer.wait(FLUSH_INTERVAL_SECONDS)
        try:
            buffer.flush()
        except Exception:  # keep flushing later records
            log.exception("data capture flush failed")
        del buffer


_buffer: PerPlatform[CaptureBuffer] = PerPlatform(CaptureBuffer)


@atexit.register
def _flush_at_exit() -> None:
    try:
        flush_captures()
    except Exception:  # exiting anyway
        log.exception("data capture flush at exit failed")
