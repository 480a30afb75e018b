"""SageMaker Runtime over REST-JSON: ``POST /endpoints/<EndpointName>/invocations``.

The body is the payload as it is and the other members travel in the URI and headers, as
botocore's ``sagemaker-runtime`` model places them; they are checked against the model
(lengths, patterns), handed to the operation's handler, and its output members go back as
the body and headers. Errors leave as ``{"message": ..., <the error's members>}`` with
``x-amzn-ErrorType``.
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import unquote

from openmaker.api import operations, sigv4
from openmaker.api.app import Protocol
from openmaker.api.http import Request, Response
from openmaker.core import errors, service_models, validation

SERVICE = "sagemaker-runtime"
CONTENT_TYPE = "application/json"
_PATHS = {"invocations": "InvokeEndpoint", "async-invocations": "InvokeEndpointAsync",
          "invocations-response-stream": "InvokeEndpointWithResponseStream"}
_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<action>[a-z-]+)$")
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


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
    payload: bytes | None = None
    document = {}
    for member, shape in operation.output_shape.members.items():
        value = result.get(member)
        if value is None:
            continue
        if shape.serialization.get("location") == "header":
            headers.append((shape.serialization["name"].lower(), str(value)))
        elif shape.type_name == "blob":
            payload = value
        else:
            document[shape.serialization.get("name", member)] = value
    if payload is None:
        payload = json.dumps(document).encode()
        headers.append(("content-type", CONTENT_TYPE))
    return Response(operation.http.get("responseCode", 200), headers, payload)
