"""CloudWatch (metrics) over AWS JSON 1.0: ``POST /`` with ``X-Amz-Target:
GraniteServiceVersion20100801.<Operation>``, signed for ``monitoring``.

botocore's model lists ``smithy-rpc-v2-cbor``, ``json`` and ``query``; boto3 and the AWS
CLI pick ``json`` (their protocol order puts it first) and send ``x-amzn-query-mode:
true``, because the service is ``awsQueryCompatible``. Errors therefore carry the query
protocol's codes as well: the body's ``__type`` is the modeled error shape
(``InvalidParameterValueException``) and the ``x-amzn-query-error`` header holds
``<query code>;Sender`` (``InvalidParameterValue;Sender``), which botocore reports as the
error code. A required top-level parameter that is absent is ``MissingParameter``, as in
CloudWatch; other model violations are ``ValidationError``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from openmaker.api.app import OpenmakerApp
from openmaker.api.http import Request, Response
from openmaker.api.json_protocol import JsonProtocol
from openmaker.core import errors, service_models

SERVICE = "cloudwatch"
TARGET_PREFIX = "GraniteServiceVersion20100801"
CONTENT_TYPE = "application/x-amz-json-1.0"
# openmaker's generic codes -> the codes CloudWatch's query protocol reports
QUERY_CODES = {"ValidationException": "ValidationError", "InternalFailure": "InternalFailure"}


class CloudWatchProtocol(JsonProtocol):
    def __init__(self, app: OpenmakerApp) -> None:
        super().__init__(app, SERVICE, TARGET_PREFIX)
        self.content_type = CONTENT_TYPE

    def check_params(self, operation, params: object) -> None:
        shape = operation.input_shape
        if shape is None or not isinstance(params, Mapping):
            return
        for name in shape.required_members:
            if params.get(name) is None:
                from openmaker.cloudwatch.metrics import missing_parameter

                raise missing_parameter(name)

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        code = QUERY_CODES.get(error.code, error.code)
        fault = "Sender" if error.sender_fault else "Receiver"
        body = {"__type": _error_shapes().get(code, code), "message": error.message}
        return Response(
            error.status,
            [("content-type", self.content_type), ("x-amzn-requestid", request.request_id),
             ("x-amzn-query-error", f"{code};{fault}")],
            json.dumps(body).encode(),
        )


@functools.cache
def _error_shapes() -> dict[str, str]:
    """Query error code -> modeled error shape name (``MissingParameter`` ->
    ``MissingRequiredParameterException``)."""
    model = service_models.service_model(SERVICE)
    return {shape.metadata.get("error", {}).get("code", shape.name): shape.name
            for shape in model.error_shapes}
