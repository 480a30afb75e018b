"""SageMaker Runtime over REST-JSON: ``POST /endpoints/<EndpointName>/invocations``.

The body is the payload as it is and the other members travel in the URI and headers, as
botocore's ``sagemaker-runtime`` model places them; they are checked against the model
(lengths, patterns), handed to the operation's handler, and its output members go back as
the body and headers. Errors leave as ``{"message": ..., <the error's members>}`` with
``x-amzn-ErrorType``. InvokeEndpointWithResponseStream answers with an event stream
(``application/vnd.amazon.eventstream``): a ``PayloadPart`` event per chunk of the
model's answer as it arrives, and a ``ModelStreamError`` or ``InternalStreamFailure``
exception event when the stream fails after it started.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import unquote

from openmaker.api import eventstream, operations, sigv4
from openmaker.api.app import Protocol
from openmaker.api.http import Request, Response
from openmaker.core import errors, service_models, validation

SERVICE = "sagemaker-runtime"
CONTENT_TYPE = "application/json"
_PATHS = {"invocations": "InvokeEndpoint", "async-invocations": "InvokeEndpointAsync",
          "invocations-response-stream": "InvokeEndpointWithResponseStream"}
_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<action>[a-z-]+)$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

log = logging.getLogger(__name__)


class RuntimeProtocol(Protocol):
    dialect = "json"

    async def handle(self, request: Request, signed: sigv4.SignedRequest) -> Response:
        match = _PATH.match(request.raw_path.split("?", 1)[0])
        operation_name = _PATHS.get(match["action"]) if match else None
        if operation_name is None or request.method != "POST":
            raise errors.UnknownOperationException(
                f"{request.method} {request.raw_path} is no SageMaker Runtime operation; "
                "InvokeEndpoint is POST /endpoints/<EndpointName>/invocations.")
        body = await request.read_body(MAX_PAYLOAD_BYTES, errors.RuntimeValidationError(
            f"Body: the request payload is larger than the {MAX_PAYLOAD_BYTES} bytes (6 MB) "
            "InvokeEndpoint accepts; use asynchronous inference or batch transform."))
        verified = self.app.authenticate(signed, self.dialect, hashlib.sha256(body).hexdigest())
        handler = operations.resolve(SERVICE, operation_name)
        if handler is None:
            raise errors.NotImplementedOperation(
                f"SageMaker Runtime {operation_name} is not implemented by openmaker yet.")
        operation = service_models.operation_model(SERVICE, operation_name)
        params = _input_members(operation, request, unquote(match["name"]), body)
        try:
            parsed = validation.parse_params(operation.input_shape, params)
        except errors.ValidationException as exc:  # the runtime's code for bad input
            raise errors.RuntimeValidationError(exc.message) from None
        ctx = self.app.context(request, verified)
        result = await self.app.run(handler, ctx, parsed)
        return _output_response(operation, request, result)

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        body = {"message": error.message, **error.extra}
        return Response(error.status, [("content-type", CONTENT_TYPE),
                                       ("x-amzn-requestid", request.request_id),
                                       ("x-amzn-errortype", error.code)],
                        json.dumps(body, default=str).encode())


def _input_members(operation, request: Request, name: str, body: bytes) -> dict:
    params: dict = {}
    for member, shape in operation.input_shape.members.items():
        location = shape.serialization.get("location")
        if location == "uri":
            params[member] = name
        elif location == "header":
            value = request.header(shape.serialization["name"].lower())
            if value is not None:
                params[member] = value
        elif shape.serialization.get("eventpayload") or shape.type_name == "blob":
            params[member] = body
    return params


def _output_response(operation, request: Request, result: dict) -> Response:
    """Header members as headers; a blob payload member as the raw body, else the other
    members as a JSON body; the status the operation's model gives (202 for async)."""
    headers = [("x-amzn-requestid", request.request_id)]
    payload: bytes | EventStreamBody | None = None
    document = {}
    for member, shape in operation.output_shape.members.items():
        value = result.get(member)
        if value is None:
            continue
        if shape.serialization.get("location") == "header":
            headers.append((shape.serialization["name"].lower(), str(value)))
        elif shape.serialization.get("eventstream"):
            payload = EventStreamBody(value, shape)
            headers.append(("content-type", eventstream.CONTENT_TYPE))
        elif shape.type_name == "blob":
            payload = value
        else:
            document[shape.serialization.get("name", member)] = value
    if payload is None:
        payload = json.dumps(document).encode()
        headers.append(("content-type", CONTENT_TYPE))
    return Response(operation.http.get("responseCode", 200), headers, payload)


class EventStreamBody:
    """A response body of event stream messages: each chunk ``chunks`` yields becomes the
    stream's payload event (``PayloadPart`` with the chunk as its blob payload); an error
    while iterating ends the stream with an exception event -- the error's own when the
    stream shape models it (``ModelStreamError``), else ``InternalStreamFailure``.
    ``close`` closes ``chunks`` (the server calls it however the response ends)."""

    def __init__(self, chunks: Iterator[bytes], shape) -> None:
        self._chunks = iter(chunks)
        members = shape.members
        self._event = next(name for name, member in members.items()
                           if not member.metadata.get("exception"))
        self._exceptions = {name: member for name, member in members.items()
                            if member.metadata.get("exception")}
        self._done = False

    def __iter__(self) -> EventStreamBody:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            raise
        except errors.AwsError as error:
            self._done = True
            return self._exception(error.code, error.message, error.extra)
        except Exception:
            self._done = True
            log.exception("a response stream failed")
            return self._exception("InternalStreamFailure",
                                   "openmaker hit an unexpected error while streaming; see "
                                   "its log", {})
        return eventstream.event(self._event, chunk)

    def _exception(self, code: str, message: str, extra: dict) -> bytes:
        if code not in self._exceptions:
            code, extra = "InternalStreamFailure", {}
        members = {"Message": message}
        members.update((name, value) for name, value in extra.items()
                       if name in self._exceptions[code].members)
        return eventstream.exception(code, members)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
