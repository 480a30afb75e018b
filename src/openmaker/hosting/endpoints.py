"""Endpoints: CreateEndpoint, DescribeEndpoint, DeleteEndpoint and the fleets behind them.

An endpoint's production variants each run ``InitialInstanceCount`` model-server processes
(:mod:`openmaker.hosting.model_server`, or a bring-your-own server), every instance with its
own ``opt/ml/model`` under ``<home>/work/endpoints/<endpoint>/<variant>/<instance>/`` and its
own port on loopback. ``CreateEndpoint`` stores the endpoint ``Creating`` and deploys in the
background: the model archive is fetched and extracted, the processes start, and the
endpoint is ``InService`` once every instance answers ``GET /ping`` with 200 -- or
``Failed``, with the reason and the server's last output lines, when one does not within
``HEALTH_TIMEOUT_SECONDS``. Output goes to CloudWatch Logs,
``/aws/sagemaker/Endpoints/<endpoint>``, stream ``<variant>/<instance-id>``.

Fleets live in the server process (like training runners); an endpoint still ``Creating`` or
``InService`` when a server starts was cut off by the previous one and is deployed again.
"""

from __future__ import annotations

import atexit
import collections
import copy
import http.client
import logging
import os
import queue
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmaker.compute import JobHandle, ProcessSpec, open_compute_backend
from openmaker.core import errors
from openmaker.core.arns import make_arn
from openmaker.core.platform import Platform, RequestContext
from openmaker.core.resources import ListQuery, ResourceNotFoundError
from openmaker.storage.uri import S3Uri

log = logging.getLogger(__name__)

RESOURCE_TYPE = "endpoint"
LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
LOOPBACK = "127.0.0.1"
HEALTH_TIMEOUT_SECONDS = 120.0
PING_TIMEOUT_SECONDS = 2.0
TAIL_LINES = 30
MAX_FAILURE_REASON = 1024
CHUNK_SIZE = 1024 * 1024
FRAMEWORKS = {"sagemaker-scikit-learn": "sklearn", "sagemaker-xgboost": "xgboost",
              "pytorch-inference": "pytorch", "pytorch-training": "pytorch"}
CONTAINER_MODEL_DIR = "/opt/ml/model"


@dataclass
class Instance:
    """One model-server process of a variant, and a pool of open connections to it."""

    variant: str
    instance_id: str
    port: int
    model_dir: Path
    handle: JobHandle | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    _idle: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    def connection(self) -> http.client.HTTPConnection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return http.client.HTTPConnection(LOOPBACK, self.port, timeout=60)

    def release(self, connection: http.client.HTTPConnection) -> None:
        self._idle.put(connection)

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running


@dataclass
class Variant:
    name: str
    weight: float
    image: str
    instances: list[Instance]
    _next: int = 0

    def pick(self) -> Instance:
        """The next instance, round robin."""
        instance = self.instances[self._next % len(self.instances)]
        self._next += 1
        return instance


@dataclass
class Fleet:
    """The running processes of one endpoint."""

    endpoint: str
    variants: dict[str, Variant] = field(default_factory=dict)

    def stop(self) -> None:
        for variant in self.variants.values():
            for instance in variant.instances:
                if instance.handle is not None and instance.handle.running:
                    instance.handle.stop(grace_seconds=5)


_fleets: dict[str, Fleet] = {}
_fleets_lock = threading.Lock()
_recovered: set[int] = set()


def fleet(name: str) -> Fleet | None:
    """The running fleet of endpoint ``name``, if it has one."""
    with _fleets_lock:
        return _fleets.get(name.lower())


# -- the operations -----------------------------------------------------------------------
def _arn(ctx: RequestContext, name: str) -> str:
    return make_arn(RESOURCE_TYPE, name, region=ctx.region, account_id=ctx.account_id)


def _not_found(ctx: RequestContext, name: str) -> errors.AwsError:
    return errors.ValidationException(f'Could not find endpoint "{_arn(ctx, name)}".')


def create_endpoint(ctx: RequestContext, params: dict) -> dict:
    """Check the endpoint config and its models, store the endpoint ``Creating`` and deploy
    its fleet in the background."""
    from openmaker.hosting.endpoint_configs import get_endpoint_config
    from openmaker.hosting.models import get_model

    recover_endpoints(ctx.platform)
    name = params["EndpointName"]
    store = ctx.platform.resources
    arn = _arn(ctx, name)
    if store.exists(RESOURCE_TYPE, name):
        raise errors.ValidationException(f'Cannot create already existing endpoint "{arn}".')
    config = get_endpoint_config(ctx.platform, params["EndpointConfigName"])
    for variant in config["ProductionVariants"]:
        model = get_model(ctx.platform, variant["ModelName"])
        _check_servable(model, variant)
    if config.get("ShadowProductionVariants") or config.get("AsyncInferenceConfig"):
        raise errors.ValidationException(
            "EndpointConfigName: shadow variants and asynchronous inference are not served "
            "by openmaker endpoints yet")
    now = _now()
    record = {
        "EndpointName": name,
        "EndpointArn": arn,
        "EndpointConfigName": config["EndpointConfigName"],
        "EndpointStatus": "Creating",
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if config.get("DataCaptureConfig"):
        capture = config["DataCaptureConfig"]
        record["DataCaptureConfig"] = {
            "EnableCapture": capture.get("EnableCapture", False),
            "CaptureStatus": "Stopped", "CurrentSamplingPercentage":
            capture.get("InitialSamplingPercentage", 0),
            "DestinationS3Uri": capture["DestinationS3Uri"]}
    store.create(RESOURCE_TYPE, name, record, status="Creating", tags=params.get("Tags"),
                 arn=arn, creation_time=now,
                 conflict_error=errors.ValidationException(
                     f'Cannot create already existing endpoint "{arn}".'))
    threading.Thread(target=_deploy, args=(ctx.platform, name, copy.deepcopy(config)),
                     name=f"openmaker-endpoint-{name}", daemon=True).start()
    return {"EndpointArn": arn}


def describe_endpoint(ctx: RequestContext, params: dict) -> dict:
    recover_endpoints(ctx.platform)
    try:
        return ctx.platform.resources.get(RESOURCE_TYPE, params["EndpointName"]).record
    except ResourceNotFoundError:
        raise _not_found(ctx, params["EndpointName"]) from None


def delete_endpoint(ctx: RequestContext, params: dict) -> dict:
    """Stop the endpoint's processes and remove it."""
    recover_endpoints(ctx.platform)
    name = params["EndpointName"]
    if not ctx.platform.resources.exists(RESOURCE_TYPE, name):
        raise _not_found(ctx, name)
    with _fleets_lock:
        running = _fleets.pop(name.lower(), None)
    if running is not None:
        running.stop()
    ctx.platform.resources.delete(RESOURCE_TYPE, name)
    shutil.rmtree(_endpoint_dir(ctx.platform, name), ignore_errors=True)
    return {}


def endpoint_record(platform: Platform, name: str) -> dict | None:
    """The stored endpoint, or None."""
    try:
        return platform.resources.get(RESOURCE_TYPE, name).record
    except ResourceNotFoundError:
        return None


# -- recovery -----------------------------------------------------------------------------
def recover_endpoints(platform: Platform) -> None:
    """Once per server process: deploy again the endpoints an earlier server was serving."""
    with _fleets_lock:
        if id(platform) in _recovered:
            return
        _recovered.add(id(platform))
    from openmaker.hosting.endpoint_configs import get_endpoint_config

    for status in ("Creating", "InService", "Updating", "SystemUpdating"):
        token = None
        while True:
            page, token = platform.resources.list(
                RESOURCE_TYPE, ListQuery(status_equals=status, next_token=token))
            for resource in page:
                try:
                    config = get_endpoint_config(platform, resource.record["EndpointConfigName"])
                except errors.AwsError as exc:
                    _fail(platform, resource.name, f"ClientError: {exc.message}")
                    continue
                _set_status(platform, resource.name, "Creating")
                threading.Thread(target=_deploy, args=(platform, resource.name, config),
                                 daemon=True).start()
            if not token:
                break


@atexit.register
def _stop_fleets() -> None:
    with _fleets_lock:
        running = list(_fleets.values())
    for each in running:
        each.stop()


# -- deploying ----------------------------------------------------------------------------
def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _endpoint_dir(platform: Platform, name: str) -> Path:
    return platform.settings.work_dir / "endpoints" / name


def _check_servable(model: dict, variant: dict) -> None:
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    if len(containers) > 1:
        raise errors.ValidationException(
            f"ProductionVariants: model {model['ModelName']!r} has {len(containers)} "
            "containers; inference pipelines are not served by openmaker endpoints yet")
    if containers[0].get("Mode") == "MultiModel":
        raise errors.ValidationException(
            f"ProductionVariants: model {model['ModelName']!r} is a multi-model container, "
            "which openmaker endpoints do not serve yet")
    if variant.get("ServerlessConfig"):
        raise errors.ValidationException(
            f"ProductionVariants: variant {variant['VariantName']!r} is serverless, which "
            "openmaker endpoints do not serve yet")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _set_status(platform: Platform, name: str, status: str, **fields: Any) -> None:
    def change(record: dict) -> tuple[dict, str]:
        record["EndpointStatus"] = status
        record["LastModifiedTime"] = _now()
        record.update(fields)
        return record, status

    try:
        platform.resources.update(RESOURCE_TYPE, name, mutate=change)
    except ResourceNotFoundError:
        pass  # deleted meanwhile


def _fail(platform: Platform, name: str, reason: str) -> None:
    _set_status(platform, name, "Failed", FailureReason=reason[:MAX_FAILURE_REASON])


def _deploy(platform: Platform, name: str, config: dict) -> None:
    from openmaker.hosting.models import get_model

    running = Fleet(name)
    try:
        for spec in config["ProductionVariants"]:
            model = get_model(platform, spec["ModelName"])
            container = model.get("PrimaryContainer") or model["Containers"][0]
            instances = _start_variant(platform, name, spec, container)
            running.variants[spec["VariantName"]] = Variant(
                spec["VariantName"], float(spec.get("InitialVariantWeight", 1.0)),
                container["Image"], instances)
        for variant in running.variants.values():
            for instance in variant.instances:
                _wait_healthy(instance)
    except Exception as exc:  # the endpoint must end Creating either way
        running.stop()
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        _fail(platform, name, message)
        return
    if endpoint_record(platform, name) is None:  # deleted while it was being created
        running.stop()
        return
    with _fleets_lock:
        previous = _fleets.get(name.lower())
        _fleets[name.lower()] = running
    if previous is not None:
        previous.stop()
    _set_status(platform, name, "InService", ProductionVariants=_summaries(running, config))


def _summaries(running: Fleet, config: dict) -> list[dict]:
    summaries = []
    for spec in config["ProductionVariants"]:
        variant = running.variants[spec["VariantName"]]
        count = len(variant.instances)
        summaries.append({
            "VariantName": variant.name,
            "DeployedImages": [{"SpecifiedImage": variant.image,
                                "ResolvedImage": variant.image}],
            "CurrentWeight": variant.weight, "DesiredWeight": variant.weight,
            "CurrentInstanceCount": count, "DesiredInstanceCount": count,
        })
    return summaries


def _start_variant(platform: Platform, endpoint: str, spec: dict,
                   container: dict) -> list[Instance]:
    variant_dir = _endpoint_dir(platform, endpoint) / spec["VariantName"]
    shutil.rmtree(variant_dir, ignore_errors=True)
    variant_dir.mkdir(parents=True)
    archive = _fetch_model(platform, container.get("ModelDataUrl"), variant_dir)
    instances = []
    for index in range(1, int(spec.get("InitialInstanceCount", 1)) + 1):
        instance_id = f"i-{spec['VariantName'].lower()[:20]}-{index:04d}"
        root = variant_dir / instance_id / "opt" / "ml"
        model_dir = root / "model"
        model_dir.mkdir(parents=True)
        if archive is not None:
            from openmaker.hosting.model_server import extract_model_archive

            extract_model_archive(archive, model_dir)
        instance = Instance(spec["VariantName"], instance_id, _free_port(), model_dir)
        _start_instance(platform, endpoint, instance, container, root)
        instances.append(instance)
    return instances


def _fetch_model(platform: Platform, url: str | None, directory: Path) -> Path | None:
    if not url:
        return None
    uri = S3Uri.parse(url)
    target = directory / "model.tar.gz"
    try:
        with platform.objects.open_object(uri.bucket, uri.key) as reader, \
                open(target, "wb") as handle:
            for chunk in reader.iter_chunks(CHUNK_SIZE):
                handle.write(chunk)
    except errors.AwsError as exc:
        raise errors.ValidationException(
            f"ModelDataUrl {url}: the model archive cannot be read ({exc.code})") from None
    return target


def _serving_environment(platform: Platform, container: dict, root: Path,
                         instance: Instance) -> tuple[list[str], dict[str, str]]:
    from openmaker.hosting.models import inference_image

    env = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    kind = inference_image(container["Image"], env)
    env.update({"SAGEMAKER_BIND_TO_PORT": str(instance.port), "SM_MODEL_DIR":
                str(instance.model_dir), "PYTHONUNBUFFERED": "1"})
    if kind.server is not None:  # bring your own server: an executable on this machine
        return [kind.server, "serve"], env
    if kind.algorithm is not None:
        env["OPENMAKER_ALGORITHM"] = kind.algorithm
    else:
        env["OPENMAKER_FRAMEWORK"] = FRAMEWORKS[str(kind.framework)]
        submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY")
        if submit and submit.startswith("s3://"):  # the SDK's sourcedir.tar.gz
            code_dir = root / "code"
            code_dir.mkdir(parents=True, exist_ok=True)
            archive = _fetch_model(platform, submit, root)
            assert archive is not None
            from openmaker.hosting.model_server import extract_model_archive

            extract_model_archive(archive, code_dir)
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(code_dir)
        elif submit and submit.startswith(CONTAINER_MODEL_DIR):
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(
                instance.model_dir / os.path.relpath(submit, CONTAINER_MODEL_DIR))
    return [sys.executable, "-m", "openmaker.hosting.model_server"], env


def _start_instance(platform: Platform, endpoint: str, instance: Instance, container: dict,
                    root: Path) -> None:
    argv, env = _serving_environment(platform, container, root, instance)
    group = LOG_GROUP_PREFIX + endpoint
    stream = f"{instance.variant}/{instance.instance_id}"
    pending: list[str] = []
    lock = threading.Lock()

    def on_output(_name: str, line: str) -> None:
        instance.tail.append(line)
        with lock:
            pending.append(line)
            if len(pending) < 50 and not line.startswith("openmaker-model-server"):
                return
            lines = pending[:]
            pending.clear()
        try:
            platform.logs.append(group, stream, lines)
        except Exception:  # logging must never take an instance down
            log.exception("endpoint %s: writing log lines failed", endpoint)

    backend = open_compute_backend(platform.settings)
    instance.handle = backend.start(f"{endpoint}/{instance.instance_id}", [ProcessSpec(
        name=instance.instance_id, argv=argv, cwd=root, env=env)], on_output)


def _wait_healthy(instance: Instance) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not instance.running:
            tail = "\n".join(instance.tail)
            raise errors.ValidationException(
                f"The model server of variant {instance.variant} exited before it became "
                f"healthy. Last output:\n{tail}"[-MAX_FAILURE_REASON:])
        if _ping(instance):
            return
        time.sleep(0.05)
    raise errors.ValidationException(
        f"The model server of variant {instance.variant} did not answer GET /ping with 200 "
        f"within {HEALTH_TIMEOUT_SECONDS:.0f} s")


def _ping(instance: Instance) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, instance.port,
                                            timeout=PING_TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


__all__ = ["create_endpoint", "delete_endpoint", "describe_endpoint", "endpoint_record",
           "fleet", "recover_endpoints"]
