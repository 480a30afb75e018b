"""SageMaker Runtime's InvokeEndpointAsync (``reference/platform.md`` section 5.3).

``InvokeEndpointAsync`` answers at once with the future ``OutputLocation`` (and
``FailureLocation`` when the config has ``S3FailurePath``) after storing the request in
the ``async_inference_requests`` table of the platform's database, so an acknowledged
request survives a server restart. A dispatcher thread per platform hands queued
requests, oldest first, to worker threads: at most
``ClientConfig.MaxConcurrentInvocationsPerInstance`` (default
:data:`DEFAULT_MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE`; SageMaker only says it "chooses an
optimal value") times the endpoint's instance count at once per endpoint. A worker streams
the input object (up to 1 GB) into a temporary file, POSTs it straight to an instance's
``/invocations`` (not through the 6 MB, 60 s router) with ``InvocationTimeoutSeconds`` as
its timeout, and writes the answer to the output location in one atomic put. A model
error, a timeout, an unreadable input or a request older than ``RequestTTLSeconds`` writes
the error text to ``<S3FailurePath>/<InferenceId>-error.out``, or, without a failure path,
to ``<S3OutputPath>/<InferenceId>-error.out`` (both names **UNVERIFIED**).

Notifications: when ``NotificationConfig.SuccessTopic`` / ``ErrorTopic`` is set, the SNS
message SageMaker would publish is written as one JSON line to
``<home>/notifications/<topic name>.jsonl`` and handed to every hook registered with
:func:`register_notification_hook` (``hook(topic_arn, message)``).
``IncludeInferenceResponseIn`` is accepted and ignored: messages never embed the response.

The queue is resumed by :func:`resume_async_inference`, which the first InvokeEndpointAsync
of a server process calls (a server may call it at startup).
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from openmaker.core import errors
from openmaker.core.database import Id, Key, create_schema, make_engine, reading, writing
from openmaker.core.platform import PerPlatform, Platform, RequestContext
from openmaker.storage.uri import S3Uri

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_REQUEST_TTL_SECONDS = 21600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900
DEFAULT_MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE = 4  # UNVERIFIED: SageMaker picks one
MAX_INLINE_BODY_BYTES = 128_000
POLL_SECONDS = 1.0
CHUNK_BYTES = 1024 * 1024
MAX_ERROR_TEXT = 64 * 1024

NotificationHook = Callable[[str, dict], None]

_metadata = sa.MetaData()
_requests = sa.Table(
    "async_inference_requests", _metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("endpoint_key", Key, nullable=False),  # the endpoint name in lower case
    sa.Column("endpoint_name", sa.String, nullable=False),
    sa.Column("inference_id", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),  # "queued" | "running"
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
    sa.Column("request", sa.JSON, nullable=False),  # locations, headers, timeouts, topics
    sa.Column("body", sa.LargeBinary, nullable=True),  # an inline Body
    sa.Index("async_inference_by_endpoint", "endpoint_key", "state", "id"),
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(epoch_ms: int) -> str:
    return (datetime.fromtimestamp(epoch_ms / 1000, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"))


# -- the operation --------------------------------------------------------------------------
def invoke_endpoint_async(ctx: RequestContext, params: dict) -> dict:
    """The InvokeEndpointAsync operation: queue the request, answer where its result will
    be."""
    from openmaker.hosting.endpoint_configs import get_endpoint_config
    from openmaker.hosting.endpoints import endpoint_record, recover_endpoints, traffic

    platform = ctx.platform
    recover_endpoints(platform)
    name = params["EndpointName"]
    record = endpoint_record(platform, name)
    if record is None:
        raise errors.RuntimeValidationError(
            f"Endpoint {name} of account {ctx.account_id} not found.")
    if record["EndpointStatus"] not in ("InService", "Updating"):
        raise errors.RuntimeValidationError(
            f"Endpoint {name} of account {ctx.account_id} is not in service (status "
            f"{record['EndpointStatus']}); invoke it once it is InService.")
    routes = traffic(name)
    config_name = (routes.current.config_name if routes is not None
                   else record["EndpointConfigName"])
    async_config = get_endpoint_config(platform, config_name).get("AsyncInferenceConfig")
    if not async_config:
        raise errors.RuntimeValidationError(
            f"Endpoint {name} is not configured for asynchronous inference: its endpoint "
            f"config {config_name} has no AsyncInferenceConfig; use InvokeEndpoint, or "
            "deploy a config with AsyncInferenceConfig.")
    body = params.get("Body")
    location = params.get("InputLocation")
    if body and location:
        raise errors.RuntimeValidationError(
            "InputLocation and Body are mutually exclusive; give exactly one of them.")
    if not body and not location:
        raise errors.RuntimeValidationError(
            "InputLocation: give the s3:// URI of the request payload (or an inline Body of "
            f"at most {MAX_INLINE_BODY_BYTES} bytes).")
    if body and len(body) > MAX_INLINE_BODY_BYTES:
        raise errors.RuntimeValidationError(
            f"Body: the inline payload is {len(body)} bytes, more than the "
            f"{MAX_INLINE_BODY_BYTES} InvokeEndpointAsync accepts; upload it to S3 and give "
            "InputLocation.")
    if location:
        _check_input(platform, location)
    ttl = _bounded(params, "RequestTTLSeconds", DEFAULT_REQUEST_TTL_SECONDS, 60, 21600)
    timeout = _bounded(params, "InvocationTimeoutSeconds",
                       DEFAULT_INVOCATION_TIMEOUT_SECONDS, 1, 3600)
    inference_id = params.get("InferenceId") or str(uuid.uuid4())
    output = async_config["OutputConfig"]
    output_location, failure_location = _locations(
        output, inference_id, params.get("S3OutputPathExtension"), params.get("Filename"))
    notification = output.get("NotificationConfig") or {}
    received = _now_ms()
    request = {
        "InputLocation": location, "ContentType": params.get("ContentType"),
        "Accept": params.get("Accept"), "CustomAttributes": params.get("CustomAttributes"),
        "InvocationTimeoutSeconds": timeout, "OutputLocation": output_location,
        "FailureLocation": failure_location,
        "ErrorLocation": failure_location or _error_object(output["S3OutputPath"],
                                                           inference_id,
                                                           params.get("S3OutputPathExtension")),
        "SuccessTopic": notification.get("SuccessTopic"),
        "ErrorTopic": notification.get("ErrorTopic"),
        "Region": ctx.region, "AccountId": ctx.account_id,
    }
    queue = async_queue(platform)
    queue.add(record["EndpointName"], inference_id, received, received + ttl * 1000, request,
              body or None)
    result = {"InferenceId": inference_id, "OutputLocation": output_location}
    if failure_location:
        result["FailureLocation"] = failure_location
    return result


def _bounded(params: dict, member: str, default: int, low: int, high: int) -> int:
    value = params.get(member)
    if value is None:
        return default
    value = int(value)
    if not low <= value <= high:
        raise errors.RuntimeValidationError(
            f"{member}: {value} is out of range; give {low} to {high} seconds.")
    return value


def _check_input(platform: Platform, location: str) -> None:
    try:
        uri = S3Uri.parse(location)
    except ValueError as exc:
        raise errors.RuntimeValidationError(f"InputLocation: {exc}") from None
    try:
        platform.objects.head_object(uri.bucket, uri.key)
    except (errors.NoSuchKey, errors.NoSuchBucket):
        raise errors.RuntimeValidationError(
            f"InputLocation: {location} does not exist; upload the request payload there "
            "first.") from None


def _join(path: str, *parts: str | None) -> str:
    result = path.rstrip("/")
    for part in parts:
        if part:
            result = f"{result}/{part.strip('/')}"
    return result


def _error_object(path: str, inference_id: str, extension: str | None) -> str:
    return _join(path, extension, f"{inference_id}-error.out")


def _locations(output: dict, inference_id: str, extension: str | None,
               filename: str | None) -> tuple[str, str | None]:
    """Where the answer and a failure go (naming **UNVERIFIED**: ``<InferenceId>.out`` and
    ``<InferenceId>-error.out``, ``Filename`` replacing the first)."""
    output_location = _join(output["S3OutputPath"], extension,
                            filename or f"{inference_id}.out")
    failure = output.get("S3FailurePath")
    return output_location, (_error_object(failure, inference_id, extension)
                             if failure else None)


# -- notifications --------------------------------------------------------------------------
_hooks: list[NotificationHook] = []
_hooks_lock = threading.Lock()


def register_notification_hook(hook: NotificationHook) -> None:
    """Call ``hook(topic_arn, message)`` for every notification (besides the file the
    platform writes under ``<home>/notifications/``)."""
    with _hooks_lock:
        _hooks.append(hook)


def unregister_notification_hook(hook: NotificationHook) -> None:
    with _hooks_lock:
        if hook in _hooks:
            _hooks.remove(hook)


def notification_file(platform: Platform, topic_arn: str) -> Path:
    """The JSON-lines file the messages to ``topic_arn`` are appended to."""
    topic = topic_arn.rsplit(":", 1)[-1] or "topic"
    return Path(platform.settings.home) / "notifications" / f"{topic}.jsonl"


_file_lock = threading.Lock()


def _notify(platform: Platform, topic_arn: str | None, message: dict) -> None:
    if not topic_arn:
        return
    try:
        path = notification_file(platform, topic_arn)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock, path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(message) + "\n")
    except OSError:
        log.warning("could not write the notification to %s", topic_arn, exc_info=True)
    with _hooks_lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook(topic_arn, message)
        except Exception:  # a hook must never fail the request
            log.warning("notification hook %r failed", hook, exc_info=True)


def _message(row: Any, request: dict, status: str, content_type: str | None,
             location: str, reason: str | None = None) -> dict:
    message = {
        "awsRegion": request["Region"], "eventTime": _iso(_now_ms()),
        "receivedTime": _iso(row.received_ms), "invocationStatus": status,
        "requestParameters": {"contentType": request["ContentType"] or
                              "application/octet-stream", "endpointName": row.endpoint_name,
                              "inputLocation": request["InputLocation"]},
        "responseParameters": {"contentType": content_type or "application/octet-stream",
                               "outputLocation": location},
        "inferenceId": row.inference_id, "eventVersion": "1.0",
        "eventSource": "aws:sagemaker", "eventName": "InferenceResult",
    }
    if reason is not None:
        message["failureReason"] = reason
    return message


# -- the queue ------------------------------------------------------------------------------
class AsyncInferenceQueue:
    """The platform's queued async requests and the threads that process them."""

    def __init__(self, platform: Platform) -> None:
        self._platform = weakref.proxy(platform)
        self._engine = make_engine(platform.settings.resolved_database_url)
        create_schema(self._engine, _metadata, "async-inference", SCHEMA_VERSION)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._started = False

    def close(self) -> None:
        self._engine.dispose()

    def add(self, endpoint: str, inference_id: str, received_ms: int, expires_ms: int,
            request: dict, body: bytes | None) -> None:
        with writing(self._engine) as connection:
            connection.execute(_requests.insert().values(
                endpoint_key=endpoint.lower(), endpoint_name=endpoint,
                inference_id=inference_id, state="queued", received_ms=received_ms,
                expires_ms=expires_ms, request=request, body=body))
        self._wake.set()

    def backlog(self, endpoint: str) -> int:
        """Requests of ``endpoint`` queued or being processed (ApproximateBacklogSize)."""
        query = (sa.select(sa.func.count()).select_from(_requests)
                 .where(_requests.c.endpoint_key == endpoint.lower()))
        with reading(self._engine) as connection:
            return int(connection.execute(query).scalar() or 0)

    def in_flight(self, endpoint: str) -> int:
        with self._lock:
            return self._in_flight.get(endpoint.lower(), 0)

    def start(self) -> None:
        """Requeue what a previous server was processing and start dispatching."""
        with self._lock:
            if self._started:
                return
            self._started = True
        with writing(self._engine) as connection:
            connection.execute(_requests.update().where(_requests.c.state == "running")
                               .values(state="queued"))
        threading.Thread(target=self._dispatch_forever, name="openmaker-async-dispatch",
                         daemon=True).start()

    def _dispatch_forever(self) -> None:
        while True:
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                self._dispatch()
            except ReferenceError:  # the platform is gone
                return
            except Exception:
                log.warning("async inference dispatch failed", exc_info=True)

    def _dispatch(self) -> None:
        from openmaker.hosting.endpoints import endpoint_record, traffic

        c = _requests.c
        with reading(self._engine) as connection:
            endpoints = connection.execute(
                sa.select(c.endpoint_key, sa.func.min(c.endpoint_name))
                .where(c.state == "queued").group_by(c.endpoint_key)).all()
        now = _now_ms()
        for key, name in endpoints:
            self._expire(key, now)
            routes = traffic(name)
            if routes is None:
                if endpoint_record(self._platform, name) is None:
                    self._fail_all(key, f"Endpoint {name} was deleted before the request "
                                        "was processed.")
                continue
            capacity = _capacity(self._platform, routes)
            with self._lock:
                free = capacity - self._in_flight.get(key, 0)
            if free <= 0:
                continue
            for row in self._claim(key, free):
                with self._lock:
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
                # daemon threads: a stopping server must not wait for a long invocation,
                # whose request stays in the table and is processed again
                threading.Thread(target=self._work, args=(row,), daemon=True,
                                 name=f"openmaker-async-{row.inference_id}"[:60]).start()

    def _claim(self, key: str, limit: int) -> list[Any]:
        c = _requests.c
        with writing(self._engine) as connection:
            rows = connection.execute(
                sa.select(_requests).where(c.endpoint_key == key, c.state == "queued")
                .order_by(c.id).limit(limit)).all()
            if rows:
                connection.execute(_requests.update().where(c.id.in_([r.id for r in rows]))
                                   .values(state="running"))
        return rows

    def _expire(self, key: str, now: int) -> None:
        c = _requests.c
        with reading(self._engine) as connection:
            rows = connection.execute(
                sa.select(_requests).where(c.endpoint_key == key, c.state == "queued",
                                           c.expires_ms < now)).all()
        for row in rows:
            ttl = (row.expires_ms - row.received_ms) // 1000
            self._failed(row, f"Request expired: it waited in the queue longer than its "
                              f"RequestTTLSeconds ({ttl} s).")

    def _fail_all(self, key: str, reason: str) -> None:
        c = _requests.c
        with reading(self._engine) as connection:
            rows = connection.execute(
                sa.select(_requests).where(c.endpoint_key == key, c.state == "queued")).all()
        for row in rows:
            self._failed(row, reason)

    def _done(self, row: Any) -> None:
        with writing(self._engine) as connection:
            connection.execute(_requests.delete().where(_requests.c.id == row.id))

    def _failed(self, row: Any, reason: str) -> None:
        request = row.request
        location = request["ErrorLocation"]
        try:
            _put(self._platform, location, [reason.encode()], "text/plain")
        except Exception:
            log.warning("could not write the failure of %s to %s", row.inference_id,
                        location, exc_info=True)
        self._done(row)
        _notify(self._platform, request.get("ErrorTopic"),
                _message(row, request, "Failed", "text/plain", location, reason))

    def _work(self, row: Any) -> None:
        key = row.endpoint_key
        try:
            self._process(row)
        except ReferenceError:
            pass
        except errors.ServiceUnavailable:  # no instance up right now: try again later
            with writing(self._engine) as connection:
                connection.execute(_requests.update().where(_requests.c.id == row.id)
                                   .values(state="queued"))
        except Exception as exc:
            log.warning("async inference %s failed", row.inference_id, exc_info=True)
            try:
                self._failed(row, getattr(exc, "message", None) or str(exc) or
                             type(exc).__name__)
            except Exception:
                log.warning("could not record the failure of %s", row.inference_id,
                            exc_info=True)
        finally:
            with self._lock:
                self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)
            self._wake.set()

    def _process(self, row: Any) -> None:
        request = row.request
        if row.expires_ms < _now_ms():
            self._failed(row, "Request expired: it waited in the queue longer than its "
                              "RequestTTLSeconds.")
            return
        with tempfile.TemporaryFile(prefix="openmaker-async-") as payload:
            if row.body is not None:
                payload.write(row.body)
            else:
                try:
                    uri = S3Uri.parse(request["InputLocation"])
                    with self._platform.objects.open_object(uri.bucket, uri.key) as reader:
                        shutil.copyfileobj(reader, payload, CHUNK_BYTES)
                except errors.AwsError as exc:
                    self._failed(row, f"Could not read the input {request['InputLocation']}: "
                                      f"{exc.message or exc.code}")
                    return
            size = payload.tell()
            payload.seek(0)
            status, answer, content_type = invoke_instance(
                row.endpoint_name, payload, size, content_type=request["ContentType"],
                accept=request["Accept"], custom_attributes=request["CustomAttributes"],
                inference_id=row.inference_id,
                timeout=float(request["InvocationTimeoutSeconds"]))
            with answer:
                if status >= 400:
                    text = answer.read(MAX_ERROR_TEXT).decode("utf-8", errors="replace")
                    kind = "client" if status < 500 else "server"
                    self._failed(row, f"Received {kind} error ({status}) from the model with "
                                      f"message \"{text}\".")
                    return
                _put(self._platform, request["OutputLocation"], _chunks(answer),
                     content_type)
        self._done(row)
        _notify(self._platform, request.get("SuccessTopic"),
                _message(row, request, "Completed", content_type,
                         request["OutputLocation"]))


def _capacity(platform: Any, routes: Any) -> int:
    """How many requests the endpoint's serving fleet may process at once."""
    from openmaker.hosting.endpoint_configs import get_endpoint_config

    running = routes.current
    try:
        config = get_endpoint_config(platform, running.config_name)
    except errors.AwsError:
        config = {}
    client = (config.get("AsyncInferenceConfig") or {}).get("ClientConfig") or {}
    per_instance = int(client.get("MaxConcurrentInvocationsPerInstance") or
                       DEFAULT_MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE)
    return per_instance * max(1, running.instance_count())


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def _put(platform: Any, location: str, body: Any, content_type: str | None) -> None:
    uri = S3Uri.parse(location)
    platform.objects.put_object(uri.bucket, uri.key, body,
                                content_type=content_type or "application/octet-stream")


class _Answer:
    """An instance's answer, read as a stream; closing it closes the connection."""

    def __init__(self, connection: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self._connection, self._response = connection, response

    def read(self, size: int = -1) -> bytes:
        return self._response.read(size)

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.close()


def invoke_instance(endpoint: str, payload: IO[bytes], size: int, *,
                    content_type: str | None, accept: str | None,
                    custom_attributes: str | None, inference_id: str | None,
                    timeout: float) -> tuple[int, _Answer, str | None]:
    """POST ``payload`` to ``/invocations`` of one instance of ``endpoint`` (the variant
    chosen by weight, its instances in turn; an inference pipeline's containers in order),
    waiting up to ``timeout`` seconds for the answer, which is returned unread.
    ``ModelError`` when the model does not answer in time, ``ServiceUnavailable`` when no
    instance is running."""
    from openmaker.hosting.endpoints import traffic, variant_for_request

    routes = traffic(endpoint)
    if routes is None:
        raise errors.ServiceUnavailable(f"Endpoint {endpoint} is not serving now")
    _, variant = variant_for_request(routes, None)
    if variant is None:
        raise errors.ServiceUnavailable(f"Endpoint {endpoint} has no variant with weight")
    stages = getattr(variant, "stages", None) or [variant]
    if len(stages) > 1 and getattr(variant, "mode", "Serial") == "Direct":
        raise errors.RuntimeValidationError(
            f"Variant {variant.name} invokes its containers directly, which needs "
            "TargetContainerHostname; InvokeEndpointAsync has none.")
    headers = {"Content-Type": content_type or "application/octet-stream",
               "Accept": accept or "*/*"}
    if custom_attributes is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
    if inference_id is not None:
        headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
    deadline = time.monotonic() + timeout
    spool: IO[bytes] | None = None
    try:
        for index, stage in enumerate(stages):
            last = index == len(stages) - 1
            step = {**headers, "Content-Length": str(size)}
            if not last:
                step["Accept"] = "*/*"
            status, answer, answer_type = _post_stage(
                endpoint, stage, payload, step, max(1.0, deadline - time.monotonic()))
            if last or status >= 400:
                return status, answer, answer_type
            with answer:  # a pipeline step: its answer is the next container's request
                following = tempfile.TemporaryFile(prefix="openmaker-async-")
                shutil.copyfileobj(answer, following, CHUNK_BYTES)
            if spool is not None:
                spool.close()
            spool = payload = following
            size = following.tell()
            following.seek(0)
            headers["Content-Type"] = answer_type or "application/octet-stream"
    finally:
        if spool is not None:
            spool.close()
    raise AssertionError("unreachable")


def _post_stage(endpoint: str, stage: Any, payload: IO[bytes], headers: dict[str, str],
                timeout: float) -> tuple[int, _Answer, str | None]:
    from openmaker.hosting.fleet import LOOPBACK

    instance = stage.pick()
    if instance is None:
        raise errors.ServiceUnavailable(
            f"Endpoint {endpoint} has no running instance to take the request")
    connection = http.client.HTTPConnection(LOOPBACK, instance.port, timeout=timeout,
                                            blocksize=CHUNK_BYTES)
    try:
        connection.request("POST", "/invocations", body=payload, headers=headers)
        response = connection.getresponse()
    except TimeoutError:
        connection.close()
        raise errors.ModelError(
            f"The model did not answer within InvocationTimeoutSeconds ({timeout:.0f} s)",
            OriginalStatusCode=408, OriginalMessage="timed out") from None
    except OSError as exc:
        connection.close()
        raise errors.ServiceUnavailable(
            f"Endpoint {endpoint}: the instance could not be reached: {exc}") from None
    return response.status, _Answer(connection, response), response.getheader("Content-Type")


_queues: PerPlatform[AsyncInferenceQueue] = PerPlatform(AsyncInferenceQueue)


def async_queue(platform: Platform) -> AsyncInferenceQueue:
    """The platform's queue, opened (its table created) and dispatching on first use."""
    queue = _queues(platform)
    queue.start()
    return queue


def resume_async_inference(platform: Platform) -> None:
    """Process the requests an earlier server left queued (and endpoints' fleets with
    them)."""
    from openmaker.hosting.endpoints import recover_endpoints

    recover_endpoints(platform)
    async_queue(platform)


def backlog_size(platform: Platform, endpoint: str) -> int:
    """ApproximateBacklogSize of ``endpoint``: its requests queued or in progress."""
    return async_queue(platform).backlog(endpoint)


__all__ = ["AsyncInferenceQueue", "async_queue", "backlog_size", "invoke_endpoint_async",
           "invoke_instance", "notification_file", "register_notification_hook",
           "resume_async_inference", "unregister_notification_hook"]
