"""The processes behind an endpoint: a fleet of variants, each a set of model-server
instances on loopback ports, kept healthy.

A fleet is built from an endpoint config: each production (and shadow) variant's model
archive is fetched once and extracted into every instance's own ``opt/ml/model`` under
``<home>/work/endpoints/<endpoint>/<generation>/<variant>/<instance-id>/``, and each
instance is a model-server process (:mod:`openmaker.hosting.model_server`, or a
bring-your-own server) that must answer ``GET /ping`` with 200 within
``HEALTH_TIMEOUT_SECONDS``. A monitor thread replaces instances whose process died; the
router only uses instances that are up. Instance output goes to CloudWatch Logs,
``/aws/sagemaker/Endpoints/<endpoint>``, stream ``<variant>/<instance-id>``.
"""

from __future__ import annotations

import collections
import http.client
import itertools
import logging
import os
import queue
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmaker.compute import JobHandle, ProcessSpec, open_compute_backend
from openmaker.core import errors
from openmaker.core.platform import Platform
from openmaker.storage.uri import S3Uri

log = logging.getLogger(__name__)

LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
LOOPBACK = "127.0.0.1"
HEALTH_TIMEOUT_SECONDS = 120.0
PING_TIMEOUT_SECONDS = 2.0
MONITOR_SECONDS = 1.0  # how often instances are checked and their output logged
LOG_BATCH_LINES = 50
TAIL_LINES = 30
MAX_FAILURE_REASON = 1024
CHUNK_SIZE = 1024 * 1024
# Requests one instance works on at once; more wait in line (SageMaker queues them too).
MAX_CONCURRENT_REQUESTS = 64
FRAMEWORKS = {"sagemaker-scikit-learn": "sklearn", "sagemaker-xgboost": "xgboost",
              "pytorch-inference": "pytorch", "pytorch-training": "pytorch"}
CONTAINER_MODEL_DIR = "/opt/ml/model"
ASYNC_MAX_PAYLOAD_BYTES = 1024 ** 3
_generations = itertools.count(1)


@dataclass(eq=False)
class Instance:
    """One model-server process of a variant, and a pool of open connections to it."""

    variant: str
    instance_id: str
    port: int
    root: Path
    container: str = ""  # the container's hostname, in an inference pipeline
    handle: JobHandle | None = None
    log_group: str = ""  # set outside endpoints (a transform job's); else the endpoint's
    log_stream_name: str = ""
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS))
    _idle: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    _pending: list[str] = field(default_factory=list)  # output lines not yet in the log
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

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

    def stop(self) -> None:
        if self.handle is not None and self.handle.running:
            self.handle.stop(grace_seconds=5)

    def memory_bytes(self) -> int | None:
        """The resident memory of the instance's processes (Linux), None if unknown."""
        if self.handle is None:
            return None
        total = 0
        for pid in self.handle.pids.values():
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
            except OSError:
                return None
        return total

    def output(self, line: str) -> bool:
        """Keep an output line for the log; whether enough are waiting to write them."""
        self.tail.append(line)
        with self._pending_lock:
            self._pending.append(line)
            return len(self._pending) >= LOG_BATCH_LINES

    def take_output(self) -> list[str]:
        with self._pending_lock:
            lines, self._pending = self._pending, []
        return lines


@dataclass(eq=False)
class Stage:
    """One container of a variant -- its only one, or one step of an inference pipeline --
    and the instances running it."""

    hostname: str
    container: dict
    directory: Path
    archive: Path | None
    pipeline: bool = False  # one of several containers
    max_payload_bytes: int | None = None  # the model server's request limit, if not 6 MB
    environment: dict[str, str] = field(default_factory=dict)  # over the container's own
    instances: list[Instance] = field(default_factory=list)
    _next: itertools.count = field(default_factory=itertools.count)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def pick(self) -> Instance | None:
        """The next running instance, round robin; None when none is up."""
        instances = self.instances
        for _ in range(len(instances)):
            instance = instances[next(self._next) % len(instances)]
            if instance.running:
                return instance
        return None


@dataclass(eq=False)
class Variant:
    """A production or shadow variant: its weight, its containers (``stages``; several for
    an inference pipeline, invoked in order in ``Serial`` mode, by
    ``TargetContainerHostname`` in ``Direct`` mode) and their instances."""

    name: str
    weight: float
    stages: list[Stage]
    mode: str = "Serial"
    shadow: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    serverless: dict | None = None  # the variant's ServerlessConfig
    concurrency: threading.BoundedSemaphore | None = None  # serverless MaxConcurrency
    last_request: float = field(default_factory=time.monotonic)
    _cold_start: threading.Lock = field(default_factory=threading.Lock)

    @property
    def image(self) -> str:
        return self.stages[0].container["Image"]

    @property
    def instances(self) -> list[Instance]:
        """Every stage has as many instances; these are the first stage's."""
        return self.stages[0].instances

    def stage(self, hostname: str) -> Stage | None:
        return next((s for s in self.stages if s.hostname == hostname), None)

    @property
    def memory_limit_bytes(self) -> int | None:
        if not self.serverless:
            return None
        return int(self.serverless["MemorySizeInMB"]) * 1024 * 1024


@dataclass(eq=False)
class Fleet:
    """The variants of one endpoint config, running."""

    platform: Platform
    endpoint: str
    config_name: str
    directory: Path
    variants: dict[str, Variant] = field(default_factory=dict)
    shadows: dict[str, Variant] = field(default_factory=dict)
    capture: dict | None = None  # the config's DataCaptureConfig
    _usage: dict[str, Any] = field(default_factory=dict)  # instance id -> last CPU sample
    _stopped: threading.Event = field(default_factory=threading.Event)

    def all_variants(self) -> list[Variant]:
        return [*self.variants.values(), *self.shadows.values()]

    def all_stages(self) -> list[tuple[Variant, Stage]]:
        return [(v, s) for v in self.all_variants() for s in v.stages]

    def instance_count(self) -> int:
        return sum(len(v.instances) for v in self.variants.values())

    def start_monitor(self) -> None:
        threading.Thread(target=self._monitor, name=f"openmaker-fleet-{self.endpoint}",
                         daemon=True).start()

    def stop(self) -> None:
        """Stop every instance and remove the fleet's files."""
        self._stopped.set()
        for _, stage in self.all_stages():
            for instance in stage.instances:
                instance.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- capacity -------------------------------------------------------------------------
    def add_instance(self, variant: Variant) -> None:
        """Start one more instance of each of ``variant``'s containers; they join the
        rotation once all are healthy."""
        started = [(stage, _start_instance(self.platform, self.endpoint, variant.name, stage))
                   for stage in variant.stages]
        try:
            for _, instance in started:
                _wait_healthy(instance)
        except BaseException:
            for _, instance in started:
                instance.stop()
            raise
        with variant.lock:
            for stage, instance in started:
                stage.instances = [*stage.instances, instance]

    def remove_instance(self, variant: Variant) -> None:
        """Take the newest instance of each container out of the rotation, then stop it."""
        removed = []
        with variant.lock:
            for stage in variant.stages:
                if stage.instances:
                    removed.append(stage.instances[-1])
                    stage.instances = stage.instances[:-1]
        for instance in removed:
            instance.stop()
            shutil.rmtree(instance.root.parent.parent, ignore_errors=True)

    def cold_start(self, variant: Variant) -> float | None:
        """Start a serverless variant that has scaled to zero; the seconds the start took,
        or None when another request had started it (or it was running)."""
        with variant._cold_start:
            if all(stage.pick() is not None for stage in variant.stages):
                return None
            started = time.monotonic()
            self.add_instance(variant)
            return time.monotonic() - started

    def set_capacity(self, variant: Variant, count: int) -> None:
        while len(variant.instances) < count:
            self.add_instance(variant)
        while len(variant.instances) > count:
            self.remove_instance(variant)

    # -- health -----------------------------------------------------------------------------
    def _monitor(self) -> None:
        idle = self.platform.settings.serverless_idle_seconds
        while not self._stopped.wait(MONITOR_SECONDS):
            when = datetime.now(UTC)  # one time a round: a variant's samples are averaged
            for variant, stage in self.all_stages():
                for instance in list(stage.instances):
                    write_log(self.platform, self.endpoint, instance)
                    if self._stopped.is_set():
                        continue
                    self._sample(variant, instance, when)
                    if variant.serverless and instance.running:
                        self._check_memory(variant, instance)
                    if instance.running:
                        continue
                    if variant.serverless:  # no replacement: the next request starts one
                        with variant.lock:
                            stage.instances = [i for i in stage.instances if i is not instance]
                    else:
                        self._replace(variant, stage, instance)
            for variant in self.all_variants():
                if variant.serverless and variant.instances and \
                        time.monotonic() - variant.last_request > idle:
                    log.info("endpoint %s: serverless variant %s idle for %ss; scaling to "
                             "zero", self.endpoint, variant.name, idle)
                    while variant.instances:
                        self.remove_instance(variant)

    def _sample(self, variant: Variant, instance: Instance, when: datetime) -> None:
        """Record the instance's CPU, memory and disk use (CloudWatch namespace
        /aws/sagemaker/Endpoints)."""
        from openmaker.hosting import metrics

        if not instance.running or instance.handle is None:
            self._usage.pop(instance.instance_id, None)
            return
        cpu, memory, self._usage[instance.instance_id] = metrics.instance_usage(
            list(instance.handle.pids.values()), self._usage.get(instance.instance_id))
        metrics.record_instance_usage(self.platform, self.endpoint, variant.name,
                                      cpu_percent=cpu, memory_percent=memory,
                                      disk_percent=metrics.disk_percent(instance.root),
                                      when=when)

    def _check_memory(self, variant: Variant, instance: Instance) -> None:
        limit = variant.memory_limit_bytes
        used = instance.memory_bytes()
        if limit is not None and used is not None and used > limit:
            instance.output(f"openmaker: the instance uses {used // (1024 * 1024)} MB, more "
                            f"than the variant's MemorySizeInMB "
                            f"({limit // (1024 * 1024)}); stopping it")
            write_log(self.platform, self.endpoint, instance)
            instance.stop()

    def _replace(self, variant: Variant, stage: Stage, dead: Instance) -> None:
        log.warning("endpoint %s: instance %s of variant %s stopped; starting a new one",
                    self.endpoint, dead.instance_id, variant.name)
        try:
            fresh = _start_instance(self.platform, self.endpoint, variant.name, stage)
            _wait_healthy(fresh)
        except Exception:  # keep trying on the next round
            log.exception("endpoint %s: replacing instance %s failed", self.endpoint,
                          dead.instance_id)
            return
        with variant.lock:
            stage.instances = [fresh if i is dead else i for i in stage.instances]
        shutil.rmtree(dead.root.parent.parent, ignore_errors=True)


def endpoint_directory(platform: Platform, endpoint: str) -> Path:
    return platform.settings.work_dir / "endpoints" / endpoint


def build_fleet(platform: Platform, endpoint: str, config: dict) -> Fleet:
    """Start every variant of ``config`` and wait until each instance is healthy; on any
    failure, stop what started and raise with the reason."""
    from openmaker.hosting.models import get_model, model_containers

    directory = endpoint_directory(platform, endpoint) / \
        f"{config['EndpointConfigName']}-{os.getpid()}-{next(_generations)}"
    running = Fleet(platform, endpoint, config["EndpointConfigName"], directory,
                    capture=config.get("DataCaptureConfig"))
    try:
        specs = [(spec, False) for spec in config["ProductionVariants"]] + \
            [(spec, True) for spec in config.get("ShadowProductionVariants") or []]
        for spec, shadow in specs:
            model = get_model(platform, spec["ModelName"])
            containers = model_containers(model)
            variant_dir = directory / spec["VariantName"]
            stages = []
            for container in containers:
                stage_dir = variant_dir / container["ContainerHostname"] \
                    if len(containers) > 1 else variant_dir
                stage_dir.mkdir(parents=True)
                stages.append(Stage(container["ContainerHostname"], container, stage_dir,
                                    _fetch(platform, container.get("ModelDataUrl"), stage_dir)
                                    if container.get("Mode") != "MultiModel" else None,
                                    pipeline=len(containers) > 1,
                                    max_payload_bytes=ASYNC_MAX_PAYLOAD_BYTES
                                    if config.get("AsyncInferenceConfig") else None))
            mode = (model.get("InferenceExecutionConfig") or {}).get("Mode", "Serial")
            serverless = spec.get("ServerlessConfig")
            variant = Variant(spec["VariantName"], float(spec.get("InitialVariantWeight", 1.0)),
                              stages, mode=mode, shadow=shadow, serverless=serverless)
            (running.shadows if shadow else running.variants)[variant.name] = variant
            if serverless:  # no instance until the first request: a cold start
                variant.concurrency = threading.BoundedSemaphore(
                    int(serverless["MaxConcurrency"]))
                continue
            for stage in stages:
                stage.instances = [_start_instance(platform, endpoint, variant.name, stage)
                                   for _ in range(int(spec.get("InitialInstanceCount", 1)))]
        for _, stage in running.all_stages():
            for instance in stage.instances:
                _wait_healthy(instance)
    except BaseException:
        running.stop()
        raise
    running.start_monitor()
    return running


@dataclass(eq=False)
class ModelInstance:
    """One instance of a model outside an endpoint (a batch transform job's): one
    model-server process per container, in invocation order (several for an inference
    pipeline)."""

    platform: Platform
    owner: str  # the job the instance serves
    stages: list[Stage]

    @property
    def containers(self) -> list[Instance]:
        return [stage.instances[0] for stage in self.stages]

    def flush_logs(self) -> None:
        for instance in self.containers:
            write_log(self.platform, self.owner, instance)

    def stop(self) -> None:
        """Stop every container's process and write its last output to its log."""
        for stage in self.stages:
            for instance in stage.instances:
                instance.stop()
                write_log(self.platform, self.owner, instance)


def start_model_instance(platform: Platform, model: dict, directory: Path, *, owner: str,
                         instance_id: str, log_group: str, environment: dict[str, str],
                         max_payload_bytes: int | None = None) -> ModelInstance:
    """Start one instance of ``model``'s containers (the DescribeModel record) under
    ``directory`` with ``environment`` over each container's own, and wait until each
    answers ``/ping``; on failure stop what started and raise with the reason. Output goes
    to ``log_group``, stream ``<owner>/<instance_id>`` (``/<container>`` for a pipeline)."""
    from openmaker.hosting.models import model_containers

    containers = model_containers(model)
    pipeline = len(containers) > 1
    running = ModelInstance(platform, owner, [])
    try:
        for container in containers:
            hostname = container["ContainerHostname"]
            stage_dir = directory / hostname if pipeline else directory
            stage_dir.mkdir(parents=True, exist_ok=True)
            stage = Stage(hostname, container, stage_dir,
                          _fetch(platform, container.get("ModelDataUrl"), stage_dir),
                          pipeline=pipeline, max_payload_bytes=max_payload_bytes,
                          environment=dict(environment))
            running.stages.append(stage)
            stream = f"{owner}/{instance_id}" + (f"/{hostname}" if pipeline else "")
            stage.instances = [_start_instance(platform, owner, f"transform job {owner}", stage,
                                               instance_id=instance_id, log_group=log_group,
                                               log_stream_name=stream)]
        for instance in running.containers:
            _wait_healthy(instance)
    except BaseException:
        running.stop()
        raise
    return running


def _fetch(platform: Platform, url: str | None, directory: Path) -> Path | None:
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def _serving_command(platform: Platform, stage: Stage,
                     instance: Instance) -> tuple[list[str], dict[str, str]]:
    from openmaker.hosting.model_server import extract_model_archive
    from openmaker.hosting.models import inference_image

    container = stage.container
    env = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    env.update(stage.environment)
    kind = inference_image(container["Image"], env)
    env.update({"SAGEMAKER_BIND_TO_PORT": str(instance.port), "SM_MODEL_DIR":
                str(instance.model_dir), "PYTHONUNBUFFERED": "1"})
    if stage.max_payload_bytes is not None:  # asynchronous requests carry up to 1 GB
        env.setdefault("MAX_CONTENT_LENGTH", str(stage.max_payload_bytes))
    if container.get("Mode") == "MultiModel":
        # The server fetches each model from the object store on first use.
        key_id, secret = _credentials(platform)
        env.update({"OPENMAKER_MULTI_MODEL_PREFIX": container["ModelDataUrl"],
                    "AWS_ENDPOINT_URL": platform.settings.url, "AWS_ACCESS_KEY_ID": key_id,
                    "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_DEFAULT_REGION": platform.settings.region})
    if kind.server is not None:  # bring your own server: an executable on this machine
        return [kind.server, "serve"], env
    if kind.algorithm is not None:
        env["OPENMAKER_ALGORITHM"] = kind.algorithm
    else:
        env["OPENMAKER_FRAMEWORK"] = FRAMEWORKS[str(kind.framework)]
        submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY")
        if submit and submit.startswith("s3://"):  # the SDK's sourcedir.tar.gz
            code_dir = instance.root / "code"
            code_dir.mkdir(parents=True, exist_ok=True)
            archive = _fetch(platform, submit, instance.root)
            assert archive is not None
            extract_model_archive(archive, code_dir)
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(code_dir)
        elif submit and submit.startswith(CONTAINER_MODEL_DIR):
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = str(
                instance.model_dir / os.path.relpath(submit, CONTAINER_MODEL_DIR))
    return [sys.executable, "-m", "openmaker.hosting.model_server"], env


def _credentials(platform: Platform) -> tuple[str, str]:
    keys = platform.settings.access_keys
    return next(iter(keys.items())) if keys else ("openmaker", "openmaker")


def _start_instance(platform: Platform, endpoint: str, variant: str, stage: Stage, *,
                    instance_id: str | None = None, log_group: str = "",
                    log_stream_name: str = "") -> Instance:
    from openmaker.hosting.model_server import extract_model_archive

    number = next(stage._numbers)
    instance_id = instance_id or f"i-{variant.lower()[:20]}-{number:04d}"
    root = stage.directory / instance_id / "opt" / "ml"
    (root / "model").mkdir(parents=True)
    instance = Instance(variant, instance_id, _free_port(), root,
                        stage.hostname if stage.pipeline else "", log_group=log_group,
                        log_stream_name=log_stream_name)
    if stage.archive is not None:
        extract_model_archive(stage.archive, instance.model_dir)
    argv, env = _serving_command(platform, stage, instance)

    def on_output(_name: str, line: str) -> None:
        if instance.output(line) or line.startswith("openmaker-model-server"):
            write_log(platform, endpoint, instance)

    def on_exit(_name: str, _code: int) -> None:
        write_log(platform, endpoint, instance)

    backend = open_compute_backend(platform.settings)
    instance.handle = backend.start(f"{endpoint}/{instance_id}", [ProcessSpec(
        name=instance_id, argv=argv, cwd=root, env=env)], on_output, on_exit=on_exit)
    return instance


def log_stream(instance: Instance) -> str:
    """``<variant>/<instance-id>``, plus ``/<container>`` for a pipeline's containers, as
    SageMaker names them."""
    stream = f"{instance.variant}/{instance.instance_id}"
    return f"{stream}/{instance.container}" if instance.container else stream


def write_log(platform: Platform, endpoint: str, instance: Instance) -> None:
    """Write the instance's waiting output lines to its CloudWatch log stream."""
    lines = instance.take_output()
    if not lines:
        return
    try:
        platform.logs.append(instance.log_group or LOG_GROUP_PREFIX + endpoint,
                             instance.log_stream_name or log_stream(instance), lines)
    except Exception:  # logging must never take an instance down
        log.exception("endpoint %s: writing log lines failed", endpoint)


def _wait_healthy(instance: Instance) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    # an endpoint's instance serves a variant; a transform job's names its job as variant
    what = instance.variant if instance.log_group else f"variant {instance.variant}"
    while time.monotonic() < deadline:
        if not instance.running:
            tail = "\n".join(instance.tail)
            raise errors.ValidationException(
                f"The model server of {what} exited before it became "
                f"healthy. Last output:\n{tail}"[-MAX_FAILURE_REASON:])
        if ping(instance):
            return
        time.sleep(0.05)
    instance.stop()
    raise errors.ValidationException(
        f"The model server of {what} did not answer GET /ping with 200 "
        f"within {HEALTH_TIMEOUT_SECONDS:.0f} s")


def ping(instance: Instance) -> bool:
    """Whether the instance answers ``GET /ping`` with 200 now."""
    connection = http.client.HTTPConnection(LOOPBACK, instance.port,
                                            timeout=PING_TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
