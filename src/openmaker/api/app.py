"""The ASGI application behind ``openmaker server``: one port for every AWS API we serve.

Each request is routed by the service named in its SigV4 credential scope, then by
``X-Amz-Target`` or by its path (the way one AWS edge port serves many services), and
handed to the protocol that service speaks: AWS JSON 1.1 (SageMaker, CloudWatch Logs),
AWS JSON 1.0 (CloudWatch metrics), S3 REST-XML, or the query protocol (STS). Protocol
handlers do blocking work (files, database) in a thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from openmaker.api import sigv4
from openmaker.api.http import Request, Response
from openmaker.core import errors
from openmaker.core.platform import Platform, RequestContext

log = logging.getLogger("openmaker.api")

# X-Amz-Target prefix -> botocore service name, for requests that carry no signature
TARGET_PREFIXES = {"SageMaker": "sagemaker", "Logs_20140328": "logs",
                   "GraniteServiceVersion20100801": "monitoring",
                   "AnyScaleFrontendService": "application-autoscaling"}


class Protocol:
    """A wire protocol front for one service."""

    dialect = "json"  # which family of auth errors sigv4 raises

    def __init__(self, app: OpenmakerApp) -> None:
        self.app = app

    async def handle(self, request: Request, signed: sigv4.SignedRequest) -> Response:
        raise NotImplementedError

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        raise NotImplementedError


class OpenmakerApp:
    """ASGI callable; ``platform`` holds the settings and stores."""

    def __init__(self, platform: Platform, max_workers: int = 64) -> None:
        from openmaker.api.admin import AdminProtocol
        from openmaker.api.cloudwatch import CloudWatchProtocol
        from openmaker.api.json_protocol import JsonProtocol
        from openmaker.api.runtime import RuntimeProtocol
        from openmaker.api.s3 import S3Protocol
        from openmaker.api.sts import StsProtocol

        self.platform = platform
        self.settings = platform.settings
        self.executor = ThreadPoolExecutor(max_workers, thread_name_prefix="openmaker-request")
        self.s3 = S3Protocol(self)
        self.sts = StsProtocol(self)
        self.sagemaker = JsonProtocol(self, "sagemaker", "SageMaker")
        self.logs = JsonProtocol(self, "logs", "Logs_20140328")
        self.autoscaling = JsonProtocol(self, "application-autoscaling",
                                        "AnyScaleFrontendService")
        self.cloudwatch = CloudWatchProtocol(self)
        self.admin = AdminProtocol(self)
        self.runtime = RuntimeProtocol(self)
        self._json_fallback = self.sagemaker

    # -- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive, asyncio.get_running_loop())
        protocol: Protocol = self._json_fallback
        try:
            signed = sigv4.SignedRequest(
                request.method, request.raw_path, request.query_string, request.headers
            )
            protocol = self.route(request, signed)
            response = await protocol.handle(request, signed)
        except errors.AwsError as error:
            response = protocol.error_response(request, error)
        except Exception:
            log.exception("unexpected failure serving %s %s", request.method, request.raw_path)
            response = protocol.error_response(
                request, errors.InternalFailure("openmaker hit an unexpected error; see its log")
            )
        await self.send(send, request, response)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.executor.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routing --------------------------------------------------------------------------
    def route(self, request: Request, signed: sigv4.SignedRequest) -> Protocol:
        scope = request.credentials = sigv4.credential_scope(signed)
        service = scope.service if scope is not None else None
        target = request.header("x-amz-target")
        if service == "openmaker" or (not service and request.raw_path.startswith("/_openmaker/")):
            return self.admin
        if not service:
            if target:
                service = TARGET_PREFIXES.get(target.split(".", 1)[0], "unknown-json")
            elif self.sts.looks_like_query(request):
                service = "sts"
            elif (request.header("content-type") or "").startswith("application/x-amz-json"):
                service = "sagemaker"  # a JSON-protocol call that lost its target header
            else:
                service = "s3"
        if service == "s3":
            return self.s3
        if service == "sts":
            return self.sts
        if service == "logs":
            return self.logs
        if service == "application-autoscaling":
            return self.autoscaling
        if service == "monitoring":  # CloudWatch's signing name
            return self.cloudwatch
        if service == "sagemaker":
            if target is None and request.raw_path.startswith("/endpoints/"):
                return self.runtime  # SageMaker Runtime signs as "sagemaker" too
            return self.sagemaker
        if service == "unknown-json":
            raise errors.UnknownOperationException(
                f"X-Amz-Target {target!r} names no operation openmaker serves; SageMaker "
                "operations are addressed as 'SageMaker.<Operation>'."
            )
        raise errors.NotImplementedOperation(
            f"openmaker does not serve the AWS service {service!r} (from the request's "
            "SigV4 credential scope)."
        )

    # -- shared by protocols --------------------------------------------------------------
    def authenticate(
        self, signed: sigv4.SignedRequest, dialect: str, body_sha256: str | None = None
    ) -> sigv4.VerifiedSignature | None:
        """Check the signature when access keys are configured; without keys, anyone may call."""
        if not self.settings.auth_enabled:
            return None
        return sigv4.verify(
            signed,
            secret_for=self.settings.access_keys.get,
            now=datetime.now(UTC),
            max_skew_seconds=self.settings.max_clock_skew_seconds,
            dialect=dialect,
            body_sha256=body_sha256,
        )

    def context(
        self, request: Request, verified: sigv4.VerifiedSignature | None
    ) -> RequestContext:
        region = self.settings.region
        access_key = None
        if verified is not None:
            region, access_key = verified.region or region, verified.access_key_id
        else:
            scope = request.credentials
            if scope is not None:
                region = scope.region or region
                access_key = scope.access_key_id
        return RequestContext(
            platform=self.platform,
            region=region,
            account_id=self.settings.account_id,
            request_id=request.request_id,
            access_key_id=access_key,
        )

    async def run(self, function, *args):
        """Run blocking work in the request thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def send(self, send, request: Request, response: Response) -> None:
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        body = response.body
        if isinstance(body, bytes | bytearray | memoryview):
            if response.header("content-length") is None:
                headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})
            await send({"type": "http.response.body",
                        "body": b"" if request.method == "HEAD" else bytes(body)})
            return
        if response.content_length is not None and response.header("content-length") is None:
            headers.append((b"content-length", str(response.content_length).encode()))
        iterator = iter(body)
        try:
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})
            if request.method != "HEAD":
                while (chunk := await self.run(next, iterator, None)) is not None:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                await self.run(close)
