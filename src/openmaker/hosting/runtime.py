"""SageMaker Runtime's InvokeEndpoint: the router between callers and an endpoint's fleet.

A request goes to the variant named by ``TargetVariant``, else to one chosen at random by
the variants' current weights, and within the variant to its instances in turn, over a
kept-alive HTTP connection to the instance's ``POST /invocations``. The container's answer
comes back as it is, with ``X-Amzn-Invoked-Production-Variant``; an error status from the
container is SageMaker's ``ModelError`` (424) carrying ``OriginalStatusCode`` and
``OriginalMessage``. Payloads are limited to 6 MB and calls to 60 s, as on SageMaker.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from openmaker.core import errors
from openmaker.core.platform import Platform, RequestContext
from openmaker.hosting.endpoints import endpoint_record, traffic, variant_for_request
from openmaker.hosting.fleet import Fleet, Instance, Stage, Variant

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Statuses in which an endpoint's fleet answers requests (deployments keep serving).
SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})
INVOCATION_TIMEOUT_SECONDS = 60.0


@dataclass
class Invocation:
    """What the container answered: its body and content type, the variant that served."""

    body: bytes
    content_type: str
    variant: str
    custom_attributes: str | None = None


def invoke_endpoint(ctx: RequestContext, params: dict) -> dict:
    """The InvokeEndpoint operation: ``params`` and the result are the model's
    ``InvokeEndpointInput`` and ``InvokeEndpointOutput`` members."""
    for member in ("InferenceComponentName", "SessionId"):
        if params.get(member) is not None:
            raise errors.RuntimeValidationError(
                f"{member}: inference components and stateful sessions are not served by "
                "openmaker yet.")
    result = route_invocation(
        ctx.platform, params["EndpointName"], params.get("Body") or b"",
        content_type=params.get("ContentType"), accept=params.get("Accept"),
        target_variant=params.get("TargetVariant"), target_model=params.get("TargetModel"),
        target_container=params.get("TargetContainerHostname"),
        custom_attributes=params.get("CustomAttributes"),
        inference_id=params.get("InferenceId"), account_id=ctx.account_id,
        region=ctx.region)
    output = {"Body": result.body, "ContentType": result.content_type,
              "InvokedProductionVariant": result.variant}
    if result.custom_attributes is not None:
        output["CustomAttributes"] = result.custom_attributes
    return output


def route_invocation(platform: Platform, endpoint: str, body: bytes, *,
                     content_type: str | None = None, accept: str | None = None,
                     target_variant: str | None = None, target_model: str | None = None,
                     target_container: str | None = None,
                     custom_attributes: str | None = None, inference_id: str | None = None,
                     account_id: str = "", region: str = "") -> Invocation:
    """Send one request to ``endpoint``'s fleet; ``RuntimeValidationError`` for an unknown
    endpoint or variant or one not in service, ``ModelError`` for the container's errors."""
    received = time.perf_counter()
    running, variant = _route(platform, endpoint, body, target_variant, account_id,
                              "InvokeEndpoint")
    headers = _request_headers(content_type, accept, custom_attributes, inference_id)
    multi_model = variant.stages[0].container.get("Mode") == "MultiModel"
    if multi_model != (target_model is not None):
        raise errors.RuntimeValidationError(
            f"TargetModel is required for the multi-model endpoint {endpoint}" if multi_model
            else f"TargetModel: endpoint {endpoint} is not a multi-model endpoint")
    if target_model is not None:
        headers["X-Amzn-SageMaker-Target-Model"] = target_model
    setup_seconds = None
    if variant.serverless is not None:
        setup_seconds, answer = _serverless(running, variant, body, headers, target_container)
    else:
        answer = _send(variant, body, headers, target_container)
    status = answer.status
    overhead_us = max(0.0, (time.perf_counter() - received - answer.model_seconds
                            - (setup_seconds or 0.0)) * 1e6)
    observed = _Observed(platform, endpoint, running, variant.name, body, content_type,
                         inference_id)
    observed.record(status, answer.body, answer.content_type, answer.model_seconds * 1e6,
                    overhead_us, setup_us=None if setup_seconds is None else setup_seconds * 1e6)
    if running.shadows:
        _mirror(observed, running, headers)
    if multi_model and status == 404:
        raise errors.RuntimeValidationError(
            f"TargetModel: {target_model!r} could not be loaded: "
            f"{answer.body.decode('utf-8', errors='replace')[:1024]}")
    if status >= 400:
        raise _model_error(answer, variant, endpoint, account_id, region)
    return Invocation(answer.body, answer.content_type or "application/octet-stream",
                      variant.name, answer.custom_attributes)


def _route(platform: Platform, endpoint: str, body: bytes, target_variant: str | None,
           account_id: str, operation: str) -> tuple[Fleet, Variant]:
    """The fleet and variant a request to ``endpoint`` goes to, after the checks every
    invocation gets: the endpoint exists and serves, the payload fits, the variant exists."""
    routes = traffic(endpoint)  # in memory: no database read on the request path
    if routes is None or routes.status not in SERVING_STATUSES:
        record = endpoint_record(platform, endpoint)
        if record is None:
            raise errors.RuntimeValidationError(
                f"Endpoint {endpoint} of account {account_id} not found.")
        raise errors.RuntimeValidationError(
            f"Endpoint {endpoint} of account {account_id} is not in service (status "
            f"{record['EndpointStatus']}); invoke it once it is InService.")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise errors.RuntimeValidationError(
            f"Body: the request payload is {len(body)} bytes, more than the "
            f"{MAX_PAYLOAD_BYTES} bytes (6 MB) {operation} accepts; use asynchronous "
            "inference or batch transform for larger payloads.")
    running, variant = variant_for_request(routes, target_variant)
    if variant is None:
        if target_variant is not None:
            raise errors.RuntimeValidationError(
                f"TargetVariant: endpoint {endpoint} has no variant {target_variant!r} "
                f"(it has {', '.join(sorted(running.variants))}).")
        raise errors.RuntimeValidationError(
            f"Endpoint {endpoint}: every production variant has weight 0; give one a "
            "weight or name it in TargetVariant.")
    return running, variant


def _request_headers(content_type: str | None, accept: str | None,
                     custom_attributes: str | None, inference_id: str | None
                     ) -> dict[str, str]:
    headers = {"Content-Type": content_type or "application/octet-stream",
               "Accept": accept or "*/*"}
    if custom_attributes is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    if inference_id is not None:
        headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
    return headers


def _model_error(answer, variant: Variant, endpoint: str, account_id: str,
                 region: str) -> errors.AwsError:
    """SageMaker's ``ModelError`` for a container's error answer."""
    text = answer.body.decode("utf-8", errors="replace")[:2048]
    kind = "client" if answer.status < 500 else "server"
    source = answer.container if len(variant.stages) > 1 else "primary"
    return errors.ModelError(
        f"Received {kind} error ({answer.status}) from {source} with message \"{text}\". See "
        f"the log group /aws/sagemaker/Endpoints/{endpoint} in account {account_id} for more "
        "information.", OriginalStatusCode=answer.status, OriginalMessage=text,
        LogStreamArn=f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/"
                     f"Endpoints/{endpoint}")


def _serverless(running: Fleet, variant: Variant, body: bytes, headers: dict[str, str],
                target_container: str | None) -> tuple[float | None, _Answer]:
    """A serverless variant's request: refused beyond ``MaxConcurrency`` requests at once
    (``ThrottlingException``), and starting the variant first when it has scaled to zero
    (the cold start's seconds are returned, None without one)."""
    assert variant.concurrency is not None and variant.serverless is not None
    if not variant.concurrency.acquire(blocking=False):
        raise errors.ThrottlingException(
            f"Variant {variant.name} already has its MaxConcurrency "
            f"({variant.serverless['MaxConcurrency']}) requests in flight; retry later.")
    try:
        variant.last_request = time.monotonic()
        setup = running.cold_start(variant)
        return setup, _send(variant, body, headers, target_container)
    finally:
        variant.last_request = time.monotonic()
        variant.concurrency.release()


@dataclass
class _Observed:
    """One request, for data capture and the endpoint's metrics (neither may fail it)."""

    platform: Platform
    endpoint: str
    fleet: Fleet
    variant: str
    body: bytes
    content_type: str | None
    inference_id: str | None
    event_id: str | None = None  # made only when the request is captured
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    def record(self, status: int, answer: bytes | None, answer_type: str | None,
               model_us: float, overhead_us: float, variant: str | None = None,
               setup_us: float | None = None) -> None:
        variant = variant or self.variant
        try:
            from openmaker.hosting.metrics import record_invocation

            record_invocation(self.platform, self.endpoint, variant, status=status,
                              model_latency_us=model_us, overhead_latency_us=overhead_us,
                              instance_count=max(1, self.fleet.instance_count()),
                              when=self.when, model_setup_us=setup_us)
        except Exception:  # metrics must never fail a request
            log.debug("endpoint %s: recording metrics failed", self.endpoint, exc_info=True)
        config = self.fleet.capture
        if not config or not config.get("EnableCapture", True):
            return
        try:
            from openmaker.hosting.capture import capture_invocation

            capture_invocation(self.platform, self.endpoint, config, variant,
                               request_body=self.body,
                               request_content_type=self.content_type,
                               response_body=answer, response_content_type=answer_type,
                               inference_id=self.inference_id,
                               event_id=self.event_id or str(uuid.uuid4()),
                               when=self.when)
        except Exception:  # capture must never fail a request
            log.debug("endpoint %s: data capture failed", self.endpoint, exc_info=True)


def _mirror(observed: _Observed, running: Fleet, headers: dict[str, str]) -> None:
    """Send a sample of the request to each shadow variant, in the background; their
    answers are recorded, never returned. The sample is the shadow's weight over the
    production variants' total weight (UNVERIFIED: SageMaker documents the shadow weight as
    the share of traffic it receives)."""
    production = sum(v.weight for v in running.variants.values()) or 1.0
    for shadow in running.shadows.values():
        if random.random() >= min(1.0, shadow.weight / production):
            continue

        def send(shadow: Variant = shadow) -> None:
            started = time.perf_counter()
            try:
                answer: _Answer | None = _send(shadow, observed.body, headers)
            except errors.AwsError:
                answer = None
            seconds = answer.model_seconds if answer else 0.0
            overhead = max(0.0, (time.perf_counter() - started - seconds) * 1e6)
            observed.record(answer.status if answer else 0, answer.body if answer else None,
                            answer.content_type if answer else None, seconds * 1e6, overhead,
                            variant=shadow.name)

        _shadow_pool().submit(send)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _shadow_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(8, thread_name_prefix="openmaker-shadow")
        return _pool


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str | None
    custom_attributes: str | None
    model_seconds: float  # time the containers took
    container: str = ""  # which container answered (the last one that ran)
    load_seconds: float | None = None  # a multi-model container loaded the target model


def _send(variant: Variant, body: bytes, headers: dict[str, str],
          target_container: str | None = None) -> _Answer:
    """Run the request through the variant: its one container; an inference pipeline's
    containers in order (``Serial``: each answer is the next container's request, the
    caller's ``Accept`` going to the last one -- UNVERIFIED, earlier ones get ``*/*``, so
    they answer in their default format); or, in ``Direct`` mode, the container named by
    ``TargetContainerHostname``. Stops at the first container answering an error."""
    direct = _direct_stage(variant, target_container)
    if direct is not None:
        return _send_stage(variant, direct, body, headers)
    total = 0.0
    answer: _Answer | None = None
    for index, stage in enumerate(variant.stages):
        last = index == len(variant.stages) - 1
        step_headers = headers if last else {**headers, "Accept": "*/*"}
        if answer is not None:
            step_headers = {**step_headers,
                            "Content-Type": answer.content_type or "application/octet-stream"}
        answer = _send_stage(variant, stage, body if answer is None else answer.body,
                             step_headers)
        total += answer.model_seconds
        if answer.status >= 400:
            break
    assert answer is not None
    answer.model_seconds = total
    return answer


def _direct_stage(variant: Variant, target_container: str | None) -> Stage | None:
    """The container a ``Direct``-mode pipeline's request names (None for the others);
    ``RuntimeValidationError`` for a missing or unknown ``TargetContainerHostname``."""
    names = ", ".join(s.hostname for s in variant.stages)
    if variant.mode == "Direct" and len(variant.stages) > 1:
        if target_container is None:
            raise errors.RuntimeValidationError(
                f"TargetContainerHostname is required: variant {variant.name} invokes its "
                f"containers directly ({names}).")
        stage = variant.stage(target_container)
        if stage is None:
            raise errors.RuntimeValidationError(
                f"TargetContainerHostname: variant {variant.name} has no container "
                f"{target_container!r} ({names}).")
        return stage
    if target_container is not None and variant.stage(target_container) is None:
        raise errors.RuntimeValidationError(
            f"TargetContainerHostname: variant {variant.name} has no container "
            f"{target_container!r} ({names}).")
    return None


def _send_stage(variant: Variant, stage: Stage, body: bytes, headers: dict[str, str],
                stream: bool = False) -> _Answer | _Stream:
    """POST to the stage's next running instance (waiting for one of its request slots);
    when the request never reached the model -- a closed connection, an instance that just
    died -- once more on another instance. With ``stream``, a successful answer is left
    unread, as a ``_Stream`` holding the instance's slot until it is finished."""
    deadline = time.monotonic() + INVOCATION_TIMEOUT_SECONDS
    last_error: Exception | None = None
    for _ in range(3):
        instance = stage.pick()
        if instance is None:
            break
        if not instance.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise errors.ModelError(
                f"Variant {variant.name}: no instance could take the request within "
                f"{INVOCATION_TIMEOUT_SECONDS:.0f} s", OriginalStatusCode=429,
                OriginalMessage="too many requests")
        answer: _Answer | _Stream | None = None
        try:
            answer = _post(instance, body, headers, stream)
            if isinstance(answer, _Answer):
                answer.container = stage.hostname
            return answer
        except _NotDelivered as exc:
            last_error = exc
        finally:
            if not isinstance(answer, _Stream):
                instance.slots.release()
    raise errors.ServiceUnavailable(
        f"Variant {variant.name} has no instance able to take the request now"
        + (f": {last_error}" if last_error else ""))


class _NotDelivered(Exception):
    """The request did not reach the model (the connection was refused or closed)."""


def _post(instance: Instance, body: bytes, headers: dict[str, str],
          stream: bool = False) -> _Answer | _Stream:
    for attempt in (0, 1):
        connection = instance.connection()
        started = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            if stream and response.status < 400:
                return _Stream(instance, connection, response, started)
            answer = response.read()
        except (ConnectionError, http.client.RemoteDisconnected,
                http.client.CannotSendRequest) as exc:
            connection.close()
            if attempt == 0:  # a kept connection the server had closed: try a fresh one
                continue
            raise _NotDelivered(str(exc)) from None
        except TimeoutError:
            connection.close()
            raise errors.ModelError(
                f"The model server of variant {instance.variant} did not answer within "
                f"{INVOCATION_TIMEOUT_SECONDS:.0f} s", OriginalStatusCode=408,
                OriginalMessage="timed out") from None
        seconds = time.perf_counter() - started
        instance.release(connection)
        load = response.getheader("X-Openmaker-Model-Load-Seconds")
        return _Answer(response.status, answer, response.getheader("Content-Type"),
                       response.getheader("X-Amzn-SageMaker-Custom-Attributes"), seconds,
                       load_seconds=float(load) if load else None)
    raise AssertionError("unreachable")


# -- InvokeEndpointWithResponseStream ---------------------------------------------------------
# The concatenated answer of a streamed invocation is kept for data capture up to this size.
MAX_CAPTURED_STREAM_BYTES = MAX_PAYLOAD_BYTES


@dataclass
class StreamedInvocation:
    """A streaming answer: ``chunks`` yields the container's body as it arrives (close it
    to end the request early), with its content type and the variant that serves."""

    chunks: Iterator[bytes]
    content_type: str
    variant: str
    custom_attributes: str | None = None


def invoke_endpoint_with_response_stream(ctx: RequestContext, params: dict) -> dict:
    """The InvokeEndpointWithResponseStream operation: ``Body`` of the result is an
    iterator of the model's byte chunks, which the protocol sends as ``PayloadPart``
    events."""
    for member in ("InferenceComponentName", "SessionId"):
        if params.get(member) is not None:
            raise errors.RuntimeValidationError(
                f"{member}: inference components and stateful sessions are not served by "
                "openmaker yet.")
    result = route_invocation_stream(
        ctx.platform, params["EndpointName"], params.get("Body") or b"",
        content_type=params.get("ContentType"), accept=params.get("Accept"),
        target_variant=params.get("TargetVariant"),
        target_container=params.get("TargetContainerHostname"),
        custom_attributes=params.get("CustomAttributes"),
        inference_id=params.get("InferenceId"), account_id=ctx.account_id,
        region=ctx.region)
    output = {"Body": result.chunks, "ContentType": result.content_type,
              "InvokedProductionVariant": result.variant}
    if result.custom_attributes is not None:
        output["CustomAttributes"] = result.custom_attributes
    return output


def route_invocation_stream(platform: Platform, endpoint: str, body: bytes, *,
                            content_type: str | None = None, accept: str | None = None,
                            target_variant: str | None = None,
                            target_container: str | None = None,
                            custom_attributes: str | None = None,
                            inference_id: str | None = None, account_id: str = "",
                            region: str = "") -> StreamedInvocation:
    """Like :func:`route_invocation`, but the (last) container's answer comes back as an
    iterator of its body's chunks as they arrive. An error status from the container is a
    ``ModelError`` before anything streams; a connection that breaks or stalls past 60 s
    afterwards makes the iterator raise :class:`errors.ModelStreamError`. Metrics and data capture
    are recorded when the stream ends. Multi-model endpoints do not stream (as on
    SageMaker)."""
    received = time.perf_counter()
    running, variant = _route(platform, endpoint, body, target_variant, account_id,
                              "InvokeEndpointWithResponseStream")
    if variant.stages[0].container.get("Mode") == "MultiModel":
        raise errors.RuntimeValidationError(
            f"Endpoint {endpoint} is a multi-model endpoint; InvokeEndpointWithResponseStream "
            "does not serve multi-model endpoints, use InvokeEndpoint with TargetModel.")
    headers = _request_headers(content_type, accept, custom_attributes, inference_id)
    observed = _Observed(platform, endpoint, running, variant.name, body, content_type,
                         inference_id)
    concurrency = variant.concurrency if variant.serverless is not None else None
    if concurrency is not None and not concurrency.acquire(blocking=False):
        raise errors.ThrottlingException(
            f"Variant {variant.name} already has its MaxConcurrency "
            f"({variant.serverless['MaxConcurrency']}) requests in flight; retry later.")
    try:
        setup_seconds = None
        if concurrency is not None:
            variant.last_request = time.monotonic()
            setup_seconds = running.cold_start(variant)
        stream = _open_stream(variant, body, headers, target_container)
    except BaseException:
        if concurrency is not None:
            variant.last_request = time.monotonic()
            concurrency.release()
        raise
    if isinstance(stream, _Answer):  # an error answer, or a pipeline stage's
        if concurrency is not None:
            variant.last_request = time.monotonic()
            concurrency.release()
        overhead_us = max(0.0, (time.perf_counter() - received - stream.model_seconds
                                - (setup_seconds or 0.0)) * 1e6)
        observed.record(stream.status, stream.body, stream.content_type,
                        stream.model_seconds * 1e6, overhead_us,
                        setup_us=None if setup_seconds is None else setup_seconds * 1e6)
        raise _model_error(stream, variant, endpoint, account_id, region)
    if running.shadows:
        _mirror(observed, running, headers)

    captured: list[bytes] | None = []
    status = [200]

    def chunks() -> Iterator[bytes]:
        nonlocal captured
        size = 0
        try:
            for chunk in stream.chunks():
                size += len(chunk)
                if captured is not None:
                    captured.append(chunk)
                    if size > MAX_CAPTURED_STREAM_BYTES:
                        captured = None
                yield chunk
        except errors.ModelStreamError:
            status[0] = 500
            raise
        finally:
            end()

    def end() -> None:
        if stream.finished:
            return
        stream.finish()
        if concurrency is not None:
            variant.last_request = time.monotonic()
            concurrency.release()
        model_seconds = stream.model_seconds()
        overhead_us = max(0.0, (time.perf_counter() - received - model_seconds
                                - (setup_seconds or 0.0)) * 1e6)
        observed.record(status[0], b"".join(captured) if captured is not None else None,
                        stream.content_type, model_seconds * 1e6, overhead_us,
                        setup_us=None if setup_seconds is None else setup_seconds * 1e6)

    return StreamedInvocation(_Closing(chunks(), end),
                              stream.content_type or "application/octet-stream",
                              variant.name, stream.custom_attributes)


class _Closing:
    """An iterator whose ``close`` also runs ``end`` -- which a generator closed before its
    first ``next`` would never do."""

    def __init__(self, chunks: Iterator[bytes], end: Callable[[], None]) -> None:
        self._chunks = chunks
        self._end = end

    def __iter__(self) -> _Closing:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        try:
            getattr(self._chunks, "close", lambda: None)()
        finally:
            self._end()


def _open_stream(variant: Variant, body: bytes, headers: dict[str, str],
                 target_container: str | None) -> _Stream | _Answer:
    """Start the request through the variant, streaming the container that answers last:
    an inference pipeline's earlier containers run as in :func:`_send`. An error answer
    (from any container) comes back as an ``_Answer``."""
    direct = _direct_stage(variant, target_container)
    if direct is not None:
        return _send_stage(variant, direct, body, headers, stream=True)
    earlier = 0.0
    answer: _Answer | None = None
    for stage in variant.stages[:-1]:
        step_headers = {**headers, "Accept": "*/*"}
        if answer is not None:
            step_headers["Content-Type"] = answer.content_type or "application/octet-stream"
        answer = _send_stage(variant, stage, body if answer is None else answer.body,
                             step_headers)
        earlier += answer.model_seconds
        if answer.status >= 400:
            answer.model_seconds = earlier
            return answer
    last_headers = headers if answer is None else {
        **headers, "Content-Type": answer.content_type or "application/octet-stream"}
    opened = _send_stage(variant, variant.stages[-1], body if answer is None else answer.body,
                         last_headers, stream=True)
    if isinstance(opened, _Answer):
        opened.model_seconds += earlier
    else:
        opened.earlier_seconds = earlier
    return opened


class _Stream:
    """An instance's answer being read as it arrives; holds the instance's request slot
    and connection until :meth:`finish`."""

    def __init__(self, instance: Instance, connection: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, started: float) -> None:
        self.instance = instance
        self.connection = connection
        self.response = response
        self.started = started
        self.ended: float | None = None
        self.earlier_seconds = 0.0
        self.content_type = response.getheader("Content-Type")
        self.custom_attributes = response.getheader("X-Amzn-SageMaker-Custom-Attributes")
        self.complete = False
        self.finished = False

    def chunks(self) -> Iterator[bytes]:
        try:
            while chunk := self.response.read1(65536):
                yield chunk
        except TimeoutError:
            raise errors.ModelStreamError(
                f"The model server of variant {self.instance.variant} sent nothing for "
                f"{INVOCATION_TIMEOUT_SECONDS:.0f} s while streaming its answer.",
                ErrorCode="ModelInvocationTimeExceeded") from None
        except (http.client.HTTPException, OSError) as exc:
            raise errors.ModelStreamError(
                f"The model server of variant {self.instance.variant} closed the stream "
                f"before its answer was complete ({type(exc).__name__}); see the endpoint's "
                "log group for the model's error.", ErrorCode="StreamBroken") from None
        self.complete = True

    def model_seconds(self) -> float:
        ended = self.ended if self.ended is not None else time.perf_counter()
        return self.earlier_seconds + ended - self.started

    def finish(self) -> None:
        """Give the connection back (closed unless the answer was read to its end) and the
        instance's request slot."""
        if self.finished:
            return
        self.finished = True
        self.ended = time.perf_counter()
        if self.complete:
            self.instance.release(self.connection)
        else:
            self.connection.close()
        self.instance.slots.release()
