"""Running one batch transform job: model servers up, every input object through them,
one ``.out`` object per input object, model servers down.

The input objects (``S3Prefix`` or ``ManifestFile``, in key order) are dealt by key over
``InstanceCount`` instances, round robin; each instance is one model-server process per
container of the model (:func:`openmaker.hosting.fleet.start_model_instance`) with the
container contract's batch variables, and sends ``MaxConcurrentTransforms`` requests at
once. An object's requests are cut by :mod:`openmaker.transform.splitting`, processed by
:mod:`openmaker.transform.data_processing`, and their answers written in input order to a
local file that is uploaded as ``<S3OutputPath>/<key relative to the input's folder>.out``
only when every request of the object succeeded (uploads are atomic). A failed object
leaves no ``.out`` and fails the job with its URI, the position of the failing record and
the model's error; the other objects still run and are uploaded. Output of the model
servers goes to ``/aws/sagemaker/TransformJobs``, stream ``<job>/<instance-id>``.
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openmaker.core import errors
from openmaker.core.platform import Platform
from openmaker.storage.uri import S3Uri
from openmaker.transform import splitting
from openmaker.transform.data_processing import DataProcessor, FilterError, split_answer

log = logging.getLogger(__name__)

RESOURCE_TYPE = "transform-job"
LOG_GROUP = "/aws/sagemaker/TransformJobs"
LOOPBACK = "127.0.0.1"
MAX_FAILURE_REASON = 1024
CHUNK_SIZE = 1024 * 1024
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_CONCURRENCY = 1
DEFAULT_TIMEOUT_SECONDS = 600
DEFAULT_MAX_RETRIES = 3
MAX_TOTAL_PAYLOAD_MB = 100  # MaxConcurrentTransforms x MaxPayloadInMB
MAX_PINPOINT_RECORDS = 1000  # records of a failed request resent one by one to name the bad one
STRATEGY_NAMES = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}
STRATEGY_VALUES = {v: k for k, v in STRATEGY_NAMES.items()}


def now() -> datetime:
    return datetime.now(UTC)


class ObjectFailed(Exception):
    """One input object could not be transformed; the message names it and the record."""


class _ModelAnswerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InputObject:
    bucket: str
    key: str
    relative_path: str

    @property
    def uri(self) -> str:
        return str(S3Uri(self.bucket, self.key))


@dataclass(frozen=True)
class ExecutionSettings:
    """What the job runs with, after request > the container's /execution-parameters >
    defaults."""

    concurrency: int
    payload_bytes: int  # 0: no limit
    strategy: str  # SingleRecord or MultiRecord
    timeout: float
    retries: int


def list_input_objects(platform: Platform, data_source: dict) -> list[InputObject]:
    """The input objects in delivery order; ValueError saying what is missing when none."""
    from openmaker.training.channels import ChannelSpec, list_channel_objects

    source = data_source["S3DataSource"]
    spec = ChannelSpec(name="TransformInput", uri=source["S3Uri"],
                       data_type=source.get("S3DataType", "S3Prefix"))
    try:
        refs = list_channel_objects(platform.objects, spec)
    except errors.ValidationException as error:
        raise ValueError(str(error).replace(" (channel 'TransformInput')", "")) from None
    except errors.AwsError as error:
        raise ValueError(f"the input {source['S3Uri']} cannot be listed: {error}") from None
    return [InputObject(ref.bucket, ref.key, ref.relative_path or ref.key.rsplit("/", 1)[-1])
            for ref in refs]


def output_key(output_path: str, relative_path: str) -> S3Uri:
    base = S3Uri.parse(output_path)
    prefix = base.key if not base.key or base.key.endswith("/") else base.key + "/"
    return S3Uri(base.bucket, f"{prefix}{relative_path}.out")


def _answer_message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        document = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return text[:500]


class _Client:
    """HTTP to one instance's containers, one kept connection per thread and port."""

    def __init__(self, ports: list[int], settings: ExecutionSettings, content_type: str | None,
                 accept: str | None) -> None:
        self.ports = ports
        self.settings = settings
        self.content_type = content_type
        self.accept = accept
        self._local = threading.local()

    def _connection(self, port: int) -> http.client.HTTPConnection:
        connections = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        connection = connections.get(port)
        if connection is None:
            connection = connections[port] = http.client.HTTPConnection(
                LOOPBACK, port, timeout=self.settings.timeout)
        return connection

    def _drop(self, port: int) -> None:
        connection = self._local.connections.pop(port, None)
        if connection is not None:
            connection.close()

    def invoke(self, body: bytes) -> tuple[bytes, str | None]:
        """The last container's answer and its type, retried ``InvocationsMaxRetries``
        times on timeouts, lost connections and 5xx answers."""
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                return self._through_pipeline(body)
            except _ModelAnswerError as error:
                if error.status < 500 or attempt == attempts - 1:
                    raise
            except (OSError, http.client.HTTPException) as error:
                if attempt == attempts - 1:
                    if isinstance(error, TimeoutError):
                        raise _ModelAnswerError(408, "the model did not answer within "
                                                f"{self.settings.timeout:.0f} s "
                                                "(ModelClientConfig.InvocationsTimeoutInSeconds)"
                                                ) from None
                    raise _ModelAnswerError(503, f"the model server could not be reached: "
                                            f"{error}") from None
            time.sleep(min(0.1 * 2 ** attempt, 2.0))
        raise AssertionError("unreachable")

    def _through_pipeline(self, body: bytes) -> tuple[bytes, str | None]:
        answer_type = self.content_type
        last = len(self.ports) - 1
        for index, port in enumerate(self.ports):
            headers = {"Content-Type": answer_type or "application/octet-stream"}
            accept = self.accept if index == last else "*/*"
            if accept:
                headers["Accept"] = accept
            connection = self._connection(port)
            try:
                connection.request("POST", "/invocations", body=body, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except BaseException:
                self._drop(port)
                raise
            if response.status >= 400:
                raise _ModelAnswerError(response.status, _answer_message(body))
            answer_type = response.getheader("Content-Type")
        return body, answer_type


class TransformJobRunner:
    """Runs one stored job on a thread; ``request_stop`` ends it ``Stopped``."""

    def __init__(self, platform: Platform, name: str, *,
                 on_done: Callable[[str], None] | None = None) -> None:
        self.platform = platform
        self.name = name
        self.on_done = on_done
        self._stop = threading.Event()
        self._abandoned = False
        self._instances: list[Any] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"openmaker-transform-{name}",
                                        daemon=True)
        self.directory = platform.settings.work_dir / "transform" / \
            f"{name}-{uuid.uuid4().hex[:8]}"

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def request_stop(self) -> None:
        """End the job ``Stopped``: its model servers are stopped at once (in-flight
        requests fail and nothing more is uploaded), off the caller's thread."""
        self._stop.set()
        threading.Thread(target=self._stop_instances, name=f"openmaker-stop-{self.name}",
                         daemon=True).start()

    def terminate(self, grace_seconds: float = 2.0) -> None:
        """Stop the model servers now (the server is exiting): the job stays InProgress in
        the store and the next server marks it Failed. (Model servers get their own
        grace period; ``grace_seconds`` is :class:`RunningJobs`' calling convention.)"""
        self._abandoned = True
        self._stop.set()
        self._stop_instances()

    def _stop_instances(self) -> None:
        with self._lock:
            instances, self._instances = self._instances, []
        for instance in instances:
            instance.stop()

    # -- the job ---------------------------------------------------------------------------
    def _record(self) -> dict:
        return self.platform.resources.get(RESOURCE_TYPE, self.name).record

    def _run(self) -> None:
        failure: str | None = None
        try:
            self._set_started()
            job = self._record()
            failure = self._transform(job)
        except Exception as error:  # noqa: BLE001 - every failure ends the job Failed
            log.exception("transform job %s failed", self.name)
            failure = str(error) or type(error).__name__
        finally:
            self._stop_instances()
            shutil.rmtree(self.directory, ignore_errors=True)
            self._finish(failure)
            if self.on_done is not None:
                self.on_done(self.name)

    def _set_started(self) -> None:
        def started(record: dict) -> tuple[dict, str]:
            record["TransformStartTime"] = record["LastModifiedTime"] = now()
            return record, record["TransformJobStatus"]

        self.platform.resources.update(RESOURCE_TYPE, self.name, mutate=started)

    def _finish(self, failure: str | None) -> None:
        if self._abandoned:
            return
        stopped = self._stop.is_set()

        def finished(record: dict) -> tuple[dict, str]:
            status = record["TransformJobStatus"]
            if status in ("Completed", "Failed", "Stopped"):
                return record, status
            if stopped or status == "Stopping":
                status = "Stopped"
            elif failure:
                status = "Failed"
                record["FailureReason"] = failure[:MAX_FAILURE_REASON]
            else:
                status = "Completed"
            record["TransformJobStatus"] = status
            record["TransformEndTime"] = record["LastModifiedTime"] = now()
            return record, status

        try:
            self.platform.resources.update(RESOURCE_TYPE, self.name, mutate=finished)
        except Exception:  # noqa: BLE001 - the job record is gone with its server's store
            log.exception("transform job %s: recording its end failed", self.name)

    def _transform(self, job: dict) -> str | None:
        """Run every object; the first failure's reason, or None."""
        try:
            objects = list_input_objects(self.platform, job["TransformInput"]["DataSource"])
        except ValueError as error:
            return str(error)
        count = int(job["TransformResources"]["InstanceCount"])
        shares = [objects[index::count] for index in range(count)]
        shares = [share for share in shares if share]  # hosts beyond the objects idle
        failures: list[str] = []
        threads = [threading.Thread(target=self._run_instance, args=(job, index, share,
                                                                      failures), daemon=True)
                   for index, share in enumerate(shares, start=1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return failures[0] if failures else None

    def _run_instance(self, job: dict, index: int, share: list[InputObject],
                      failures: list[str]) -> None:
        from openmaker.hosting.fleet import start_model_instance
        from openmaker.hosting.models import get_model

        try:
            if self._stop.is_set():
                return
            model = get_model(self.platform, job["ModelName"])
            instance_id = f"i-{uuid.uuid4().hex[:17]}"
            instance = start_model_instance(
                self.platform, model, self.directory / f"host-{index}", owner=self.name,
                instance_id=instance_id, log_group=LOG_GROUP,
                environment=batch_environment(job))
            log.info("transform job %s: instance %d (%s) up", self.name, index, instance_id)
            with self._lock:
                self._instances.append(instance)
            if self._stop.is_set():
                return
            ports = [container.port for container in instance.containers]
            settings = execution_settings(job, ports[0])
            client = _Client(ports, settings, job["TransformInput"].get("ContentType"),
                             job.get("TransformOutput", {}).get("Accept"))
            with ThreadPoolExecutor(settings.concurrency,
                                    thread_name_prefix=f"transform-{index}") as pool:
                for item in share:
                    if self._stop.is_set():
                        return
                    started = time.perf_counter()
                    try:
                        self._transform_object(job, item, client, pool, settings)
                    except ObjectFailed as error:
                        failures.append(str(error))
                    log.info("transform job %s: %s took %.3f s", self.name, item.uri,
                             time.perf_counter() - started)
                    instance.flush_logs()
        except Exception as error:  # noqa: BLE001 - the instance's failure fails the job
            log.exception("transform job %s: instance %d failed", self.name, index)
            failures.append(str(error) or type(error).__name__)

    def _transform_object(self, job: dict, item: InputObject, client: _Client,
                          pool: ThreadPoolExecutor, settings: ExecutionSettings) -> None:
        source = job["TransformInput"]
        split_type = source.get("SplitType", "None")
        output = job["TransformOutput"]
        line_output = output.get("AssembleWith", "None") == "Line"
        processor = DataProcessor(job.get("DataProcessing"), source.get("ContentType"),
                                  output.get("Accept"))
        local = self.directory / "outputs" / f"{uuid.uuid4().hex}.part"
        local.parent.mkdir(parents=True, exist_ok=True)
        window: collections.deque[tuple[splitting.Payload, Future]] = collections.deque()
        depth = settings.concurrency * 2
        try:
            with self.platform.objects.open_object(item.bucket, item.key) as reader, \
                    open(local, "wb") as out:
                chunks = splitting.decompressed(reader.iter_chunks(CHUNK_SIZE),
                                                source.get("CompressionType", "None"))
                payloads = self._payloads(chunks, split_type, settings, processor, item)
                for payload in payloads:
                    if self._stop.is_set():
                        return
                    window.append((payload, pool.submit(client.invoke, payload.body)))
                    while len(window) >= depth:
                        self._write(out, *window.popleft(), item, split_type, processor,
                                    client, line_output)
                while window:
                    self._write(out, *window.popleft(), item, split_type, processor, client,
                                line_output)
            if self._stop.is_set():
                return
            target = output_key(output["S3OutputPath"], item.relative_path)
            self.platform.objects.put_object(target.bucket, target.key, _file_chunks(local),
                                             content_type=output.get("Accept"))
        except ObjectFailed:
            raise
        except splitting.RecordError as error:
            raise ObjectFailed(f"{item.uri}: {error}") from None
        except FilterError as error:  # its message names the record and the object
            raise ObjectFailed(str(error)) from None
        except errors.AwsError as error:
            raise ObjectFailed(f"{item.uri}: {error.code}: {error}") from None
        except Exception as error:  # noqa: BLE001 - whatever it is, it names the object
            log.exception("transform job %s: %s failed", self.name, item.uri)
            raise ObjectFailed(f"{item.uri}: {type(error).__name__}: {error}") from None
        finally:
            for _, future in window:
                future.cancel()
            local.unlink(missing_ok=True)

    def _payloads(self, chunks: Iterator[bytes], split_type: str, settings: ExecutionSettings,
                  processor: DataProcessor, item: InputObject) -> Iterator[splitting.Payload]:
        strategy = settings.strategy
        if split_type == "Line" and strategy == "MultiRecord" and not processor.active:
            yield from splitting.line_batches(chunks, settings.payload_bytes)
            return
        records = splitting.iter_records(chunks, split_type,
                                         strip_padding=strategy == "SingleRecord")
        if not processor.active:
            yield from splitting.pack(records, split_type=split_type, strategy=strategy,
                                      limit=settings.payload_bytes)
            return
        originals: collections.deque[bytes] = collections.deque()

        def prepared() -> Iterator[tuple[int, bytes]]:
            for position, record in records:
                originals.append(record)
                where = f"{splitting.position_name(split_type, position)} of {item.uri}"
                yield position, processor.prepare(record, where)

        for payload in splitting.pack(prepared(), split_type=split_type, strategy=strategy,
                                      limit=settings.payload_bytes, keep_records=True):
            payload.inputs = [originals.popleft() for _ in range(payload.count)]
            yield payload

    def _write(self, out: Any, payload: splitting.Payload, future: Future, item: InputObject,
               split_type: str, processor: DataProcessor, client: _Client,
               line_output: bool) -> None:
        try:
            answer, answer_type = future.result()
        except _ModelAnswerError as error:
            raise ObjectFailed(self._failure(payload, error, item, split_type, client)) from None
        if processor.active and payload.inputs is not None and payload.positions is not None:
            where = self._where(payload, split_type, item)
            outputs = split_answer(answer, payload.count, where)
            for record, result, position in zip(payload.inputs, outputs, payload.positions,
                                                 strict=True):
                place = splitting.position_name(split_type, position)
                out.write(processor.finish(record, result, answer_type,
                                           f"{place} of {item.uri}"))
                if line_output:
                    out.write(b"\n")
            return
        out.write(answer)
        if line_output and answer and not answer.endswith(b"\n"):
            out.write(b"\n")

    @staticmethod
    def _where(payload: splitting.Payload, split_type: str, item: InputObject) -> str:
        if payload.count <= 1:
            return f"{splitting.position_name(split_type, payload.first)} of {item.uri}"
        unit = "lines" if split_type == "Line" else "records"
        return f"{unit} {payload.first}-{payload.last} of {item.uri}"

    def _failure(self, payload: splitting.Payload, error: _ModelAnswerError, item: InputObject,
                 split_type: str, client: _Client) -> str:
        """The reason an object failed; a failed multi-record request is resent record by
        record (up to MAX_PINPOINT_RECORDS) to name the record the model rejects."""
        where, message = self._where(payload, split_type, item), str(error)
        if 1 < payload.count and error.status < 500 and split_type == "Line":
            if payload.records is not None and payload.positions is not None:
                lines = list(zip(payload.positions, payload.records, strict=True))
            else:  # a request cut from the stream: blank lines are in it, and counted
                lines = list(enumerate(payload.body.split(b"\n"), start=payload.first))
            for position, line in lines[:MAX_PINPOINT_RECORDS]:
                if not line.strip():
                    continue
                try:
                    client.invoke(line)
                except _ModelAnswerError as single:
                    where = f"line {position} of {item.uri}"
                    message = str(single)
                    break
        return f"{where}: the model failed (HTTP {error.status}): {message}"


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def batch_environment(job: dict) -> dict[str, str]:
    """The job's variables over each container's: ``Environment`` plus the batch contract's
    (``SAGEMAKER_BATCH``, and the three the request sets)."""
    environment = {str(k): str(v) for k, v in (job.get("Environment") or {}).items()}
    environment["SAGEMAKER_BATCH"] = "true"
    request = job  # the stored record holds only what the request gave for these three
    if request.get("MaxPayloadInMB") is not None:
        environment["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request["MaxPayloadInMB"])
    if request.get("BatchStrategy"):
        environment["SAGEMAKER_BATCH_STRATEGY"] = STRATEGY_NAMES[request["BatchStrategy"]]
    if request.get("MaxConcurrentTransforms"):
        environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(
            request["MaxConcurrentTransforms"])
    return environment


def _execution_parameters(port: int) -> dict:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        connection.request("GET", "/execution-parameters")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            return {}
        document = json.loads(body)
        return document if isinstance(document, dict) else {}
    except (OSError, ValueError, http.client.HTTPException):
        return {}
    finally:
        connection.close()


def execution_settings(job: dict, port: int) -> ExecutionSettings:
    """Request values, else the first container's ``/execution-parameters``, else the
    defaults (1 request at a time, 6 MB, MultiRecord)."""
    hints = _execution_parameters(port)
    concurrency = job.get("MaxConcurrentTransforms") or 0
    if not concurrency:
        concurrency = _positive(hints.get("MaxConcurrentTransforms")) or DEFAULT_CONCURRENCY
    payload_mb = job.get("MaxPayloadInMB")
    if payload_mb is None:
        payload_mb = _positive(hints.get("MaxPayloadInMB")) or DEFAULT_MAX_PAYLOAD_MB
    strategy = job.get("BatchStrategy") or STRATEGY_VALUES.get(
        str(hints.get("BatchStrategy", "")).upper(), "MultiRecord")
    if payload_mb and concurrency * payload_mb > MAX_TOTAL_PAYLOAD_MB:
        concurrency = max(1, MAX_TOTAL_PAYLOAD_MB // payload_mb)  # hints beyond the limit
    client = job.get("ModelClientConfig") or {}
    return ExecutionSettings(
        concurrency=int(concurrency), payload_bytes=int(payload_mb) * 1024 * 1024,
        strategy=strategy,
        timeout=float(client.get("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT_SECONDS)),
        retries=int(client.get("InvocationsMaxRetries", DEFAULT_MAX_RETRIES)))


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None
