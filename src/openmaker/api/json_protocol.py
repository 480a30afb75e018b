"""AWS JSON 1.0/1.1 protocol: ``POST /`` with ``X-Amz-Target: <Prefix>.<Operation>``.

Every request is checked against botocore's model of the service before a handler runs:
content type, body size, JSON syntax, operation name, then every member of the input
shape (``core/validation.py``). Errors leave as ``{"__type": code, "message": ...}``.
"""

from __future__ import annotations

import hashlib
import json

from openmaker.api import operations, sigv4
from openmaker.api.app import OpenmakerApp, Protocol
from openmaker.api.http import Request, Response
from openmaker.core import errors, service_models, validation

JSON_CONTENT_TYPES = ("application/x-amz-json-1.1", "application/x-amz-json-1.0",
                      "application/json")


class JsonProtocol(Protocol):
    dialect = "json"

    def __init__(self, app: OpenmakerApp, service: str, target_prefix: str) -> None:
        super().__init__(app)
        self.service = service
        self.target_prefix = target_prefix
        self.content_type = "application/x-amz-json-1.1"

    async def handle(self, request: Request, signed: sigv4.SignedRequest) -> Response:
        limit = self.app.settings.max_json_body_bytes
        body = await request.read_body(
            limit,
            errors.RequestEntityTooLarge(
                f"The request body is larger than the {limit} bytes {self.service} accepts."
            ),
        )
        verified = self.app.authenticate(signed, self.dialect, hashlib.sha256(body).hexdigest())
        operation_name = self._operation_name(request)
        operation = service_models.operation_model(self.service, operation_name)
        if operation is None:
            raise errors.UnknownOperationException(
                f"{self.target_prefix}.{operation_name} is not an operation of {self.service}."
            )
        self._check_request_shape(request)
        params = self._decode(body)
        self.check_params(operation, params)
        parsed = validation.parse_params(operation.input_shape, params)
        handler = operations.resolve(self.service, operation_name) or self.fallback(operation_name)
        if handler is None:
            raise errors.NotImplementedOperation(
                f"The {self.service} operation {operation_name} is not implemented by "
                "openmaker yet; docs/api-coverage.md lists the operations it serves."
            )
        ctx = self.app.context(request, verified)
        result = await self.app.run(handler, ctx, parsed)
        output = validation.serialize_output(operation.output_shape, result or {})
        return Response(
            200,
            [("content-type", self.content_type), ("x-amzn-requestid", request.request_id)],
            json.dumps(output, separators=(",", ":")).encode(),
        )

    def check_params(self, operation, params: object) -> None:
        """Checks a service makes before the model's (none by default)."""

    def fallback(self, operation_name: str):
        """A generic handler for operations with no registered one (none by default)."""
        if self.service == "sagemaker":
            from openmaker.api import sagemaker

            return sagemaker.generic_handler(operation_name)
        return None

    def _operation_name(self, request: Request) -> str:
        target = request.header("x-amz-target")
        if not target:
            raise errors.UnknownOperationException(
                f"Missing X-Amz-Target header: {self.service} operations are POST / with "
                f"X-Amz-Target: {self.target_prefix}.<Operation>."
            )
        prefix, _, name = target.partition(".")
        if prefix != self.target_prefix or not name:
            raise errors.UnknownOperationException(
                f"X-Amz-Target {target!r} is not a {self.service} operation; expected "
                f"'{self.target_prefix}.<Operation>'."
            )
        return name

    def _check_request_shape(self, request: Request) -> None:
        if request.method != "POST":
            raise errors.UnknownOperationException(
                f"{self.service} operations are sent as POST /, not {request.method}."
            )
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type not in JSON_CONTENT_TYPES:
            raise errors.UnsupportedMediaType(
                f"Content-Type {content_type or '(none)'!r} is not accepted; send "
                f"{self.content_type}."
            )

    @staticmethod
    def _decode(body: bytes) -> object:
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise errors.SerializationException(
                f"The request body is not valid JSON: {exc}"
            ) from None

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        return json_error_response(request, error, self.content_type)


def json_error_response(request: Request, error: errors.AwsError, content_type: str) -> Response:
    body = {"__type": error.code, "message": error.message}
    return Response(
        error.status,
        [("content-type", content_type), ("x-amzn-requestid", request.request_id),
         ("x-amzn-errortype", error.code)],
        json.dumps(body).encode(),
    )
