"""STS over the AWS query protocol: form-encoded ``Action=...`` requests, XML responses.

Only ``GetCallerIdentity`` is served: SDKs ask it for the account id.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from openmaker.api import operations, sigv4
from openmaker.api.app import Protocol
from openmaker.api.http import Request, Response
from openmaker.core import errors, service_models, validation
from openmaker.core.platform import RequestContext

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
MAX_BODY = 64 * 1024


class StsProtocol(Protocol):
    dialect = "query"
    service = "sts"

    @staticmethod
    def looks_like_query(request: Request) -> bool:
        """An unsigned request that can only be STS: ``Action=`` in the query or a form POST
        to ``/``."""
        if request.raw_path not in ("/", ""):
            return False
        content_type = (request.header("content-type") or "").lower()
        return "Action=" in request.query_string or (
            request.method == "POST"
            and content_type.startswith("application/x-www-form-urlencoded")
        )

    async def handle(self, request: Request, signed: sigv4.SignedRequest) -> Response:
        body = await request.read_body(
            MAX_BODY,
            errors.RequestEntityTooLarge(f"STS accepts bodies of at most {MAX_BODY} bytes."),
        )
        verified = self.app.authenticate(signed, self.dialect, hashlib.sha256(body).hexdigest())
        try:
            form = dict(parse_qsl(request.query_string, keep_blank_values=True))
            form.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise errors.SerializationException("The form body is not UTF-8.") from None
        action = form.pop("Action", None)
        form.pop("Version", None)
        if not action:
            raise _invalid_action("The request has no Action parameter.")
        operation = service_models.operation_model(self.service, action)
        if operation is None:
            raise _invalid_action(f"Could not find operation {action} for version 2011-06-15")
        params = validation.parse_params(operation.input_shape, form)
        handler = operations.resolve(self.service, action)
        if handler is None:
            raise errors.NotImplementedOperation(
                f"The STS action {action} is not implemented by openmaker."
            )
        ctx = self.app.context(request, verified)
        result = handler(ctx, params)
        members = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in result.items())
        document = (
            f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{members}</{action}Result>'
            f"<ResponseMetadata><RequestId>{request.request_id}</RequestId></ResponseMetadata>"
            f"</{action}Response>"
        )
        return Response(200, [("content-type", "text/xml")], document.encode())

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        kind = "Sender" if error.sender_fault else "Receiver"
        document = (
            f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
            f"</Error><RequestId>{request.request_id}</RequestId></ErrorResponse>"
        )
        return Response(error.status, [("content-type", "text/xml")], document.encode())


def _invalid_action(message: str) -> errors.AwsError:
    error = errors.AwsError(message)
    error.code, error.status = "InvalidAction", 400
    return error


def get_caller_identity(ctx: RequestContext, params: dict) -> dict:
    account = ctx.account_id
    user_id = ctx.access_key_id or account
    return {"UserId": user_id, "Account": account, "Arn": f"arn:aws:iam::{account}:root"}
