"""The model server: one process per endpoint instance, answering SageMaker's container API.

Start it as ``python -m openmaker.hosting.model_server`` with the environment a
SageMaker inference container gets:

* ``SM_MODEL_DIR`` — the extracted model (default ``/opt/ml/model``);
  :func:`extract_model_archive` extracts a ``model.tar.gz`` there safely;
* ``SAGEMAKER_BIND_TO_PORT`` (default 8080) — it listens on ``127.0.0.1`` only;
* ``OPENMAKER_ALGORITHM=<built-in>`` serves that algorithm's :class:`Predictor`; otherwise
  user code in the framework containers' conventions: ``SAGEMAKER_PROGRAM`` (default
  ``inference.py`` when it exists) in ``SAGEMAKER_SUBMIT_DIRECTORY`` (a local folder;
  otherwise ``<model_dir>/code``) defining ``model_fn``/``input_fn``/``predict_fn``/
  ``output_fn`` or ``transform_fn``; what it leaves out follows the sklearn, xgboost or
  pytorch toolkit's defaults (``OPENMAKER_FRAMEWORK``, else guessed from the model files);
* ``SAGEMAKER_MODEL_SERVER_WORKERS`` (default 1) processes share the socket;
* ``MAX_CONTENT_LENGTH`` bytes (else ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ``0`` meaning no
  limit, else 6 MiB) bounds a request body;
* batch transform sets ``SAGEMAKER_BATCH=true`` and, when the job gives them,
  ``SAGEMAKER_MAX_PAYLOAD_IN_MB``, ``SAGEMAKER_BATCH_STRATEGY`` (``SINGLE_RECORD`` /
  ``MULTI_RECORD``) and ``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``, which
  ``GET /execution-parameters`` echoes; a batch job's requests all run on the thread pool
  (small ones are otherwise answered inline, on the event loop);
* ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` is the answer's type when Accept is absent or
  ``*/*``; ``SAGEMAKER_CONTAINER_LOG_LEVEL`` / ``OPENMAKER_LOG_LEVEL`` (``DEBUG`` logs one
  line per request).

Answers: ``GET /ping`` 200 (empty) once the model is loaded, 503 while it loads;
``POST /invocations`` 200 with the predictor's or user code's body and Content-Type;
``GET /execution-parameters`` the batch-transform hints. User code streams when
``predict_fn`` (with the default ``output_fn``), ``output_fn`` or ``transform_fn``
returns an iterator (a generator, say) of bytes or str chunks: the answer is then a
chunked body with no Content-Length, each chunk sent as it is produced (in the thread
pool); an error before the first chunk is an ordinary error answer, one after it closes
the connection with the body cut short. Every error answer has a JSON
body ``{"error": "<message>"}``: an :class:`InferenceError`'s status and message (204
with no body), 413 for a body over the limit, 500 with the last line of the traceback
for any other exception in user code or the predictor (the process stays up), 404/405
for other paths and methods.

Start-up: it prints ``openmaker-model-server listening on 127.0.0.1:<port>`` once
``/ping`` answers 200. When the model fails to load it logs the traceback, prints
``openmaker-model-server failed: <reason>`` as its last line on stderr and exits 1.

Multi-model mode: with ``OPENMAKER_MULTI_MODEL_PREFIX=s3://bucket/prefix/`` (a container
with ``Mode: MultiModel``) the server starts with no model and serves many; see
:class:`MultiModelCache`. Each ``POST /invocations`` names its model in
``X-Amzn-SageMaker-Target-Model`` (a key relative to the prefix); the first request for
it fetches ``<prefix><target>`` with boto3 (``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``/``AWS_REGION``), extracts it into
``<SM_MODEL_DIR>/<sanitised target>/`` and loads it as a single model loads, and answers
with ``X-Openmaker-Model-Load-Seconds``. ``OPENMAKER_MULTI_MODEL_MEMORY_MB`` (default a
quarter of physical memory) bounds the loaded models, least recently used evicted first.
Answers: 400 without the header, 404 ``model <target> not found under <prefix>``, 500
``model <target> failed to load: <reason>`` (not kept; the next request tries again);
``GET /models`` lists ``{"models": [{"modelName", "sizeBytes", "lastUsed"}]}``, least
recently used first.

Small requests are predicted on the event loop (a thread hop costs more than a one-row
XGBoost prediction); bodies over ``OPENMAKER_INLINE_MAX_BYTES`` (default 64 KiB) go to a
small thread pool so ``/ping`` keeps answering (measured on a trivial handler: 99 µs p50
round trip inline vs 135 µs through the pool). SIGTERM stops it gracefully; with several
workers the parent forwards it and exits 0, and exits non-zero when a worker dies.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from openmaker.core.archives import safe_extract

logger = logging.getLogger("openmaker.model_server")

HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_MAX_PAYLOAD = 6 * 1024 * 1024
DEFAULT_INLINE_MAX_BYTES = 64 * 1024
READY_LINE = "openmaker-model-server listening on {host}:{port}"
FAILED_LINE = "openmaker-model-server failed: {reason}"
DEFAULT_ACCEPT = "application/json"  # the framework toolkits' default


def extract_model_archive(archive: Path, model_dir: Path) -> None:
    """Extract ``model.tar.gz`` into ``model_dir``; members that would land outside it
    (absolute paths, ``..``, links pointing out, devices) raise ValueError naming them."""
    from openmaker.core.errors import ValidationException

    try:
        safe_extract(archive, model_dir, what="model.tar.gz", into="the model directory",
                     allow_links=True)
    except ValidationException as error:
        raise ValueError(str(error)) from None


# -- errors ---------------------------------------------------------------------------------
def _inference_errors() -> tuple[type[Exception], ...]:
    from openmaker.algorithms.base import InferenceError

    return (InferenceError,)


def _unsupported(message: str) -> Exception:
    from openmaker.algorithms.base import UnsupportedContentType

    return UnsupportedContentType(message)


def _not_acceptable(message: str) -> Exception:
    from openmaker.algorithms.base import NotAcceptable

    return NotAcceptable(message)


def _last_line(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return (lines[-1] if lines else repr(error)).strip()


# -- settings -------------------------------------------------------------------------------
class Settings:
    """What the environment asks for, read once at start."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.port = int(environ.get("SAGEMAKER_BIND_TO_PORT") or DEFAULT_PORT)
        self.model_dir = Path(environ.get("SM_MODEL_DIR") or "/opt/ml/model")
        self.workers = max(1, int(environ.get("SAGEMAKER_MODEL_SERVER_WORKERS") or 1))
        if environ.get("MAX_CONTENT_LENGTH"):
            self.max_payload = int(environ["MAX_CONTENT_LENGTH"])
        elif environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB"):
            # A transform job with MaxPayloadInMB 0 streams whole objects: no limit.
            self.max_payload = int(float(environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"]) * 1024 * 1024) \
                or sys.maxsize
        else:
            self.max_payload = DEFAULT_MAX_PAYLOAD
        # A batch transform job's requests all go to the thread pool, so that
        # MaxConcurrentTransforms of them run at once even when they are small.
        self.inline_max = int(environ.get("OPENMAKER_INLINE_MAX_BYTES")
                              or (0 if environ.get("SAGEMAKER_BATCH") == "true"
                                  else DEFAULT_INLINE_MAX_BYTES))
        self.algorithm = environ.get("OPENMAKER_ALGORITHM") or ""
        self.framework = (environ.get("OPENMAKER_FRAMEWORK") or "").lower()
        self.default_accept = environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or ""
        self.multi_model_prefix = environ.get("OPENMAKER_MULTI_MODEL_PREFIX") or ""
        if self.multi_model_prefix:
            if not re.fullmatch(r"s3://[^/]+(/.*)?", self.multi_model_prefix):
                raise ValueError(f"OPENMAKER_MULTI_MODEL_PREFIX={self.multi_model_prefix!r} is "
                                 "not an S3 prefix; use s3://bucket/prefix/")
            if not self.multi_model_prefix.endswith("/"):
                self.multi_model_prefix += "/"
        memory = environ.get("OPENMAKER_MULTI_MODEL_MEMORY_MB") or ""
        try:
            self.multi_model_memory = (int(float(memory) * 1024 * 1024) if memory
                                       else _physical_memory() // 4)
        except ValueError:
            raise ValueError(f"OPENMAKER_MULTI_MODEL_MEMORY_MB={memory!r} is not a number of "
                             "megabytes") from None
        self.execution_parameters = json.dumps({
            "MaxConcurrentTransforms": int(environ.get("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS")
                                           or os.cpu_count() or 1),
            "BatchStrategy": environ.get("SAGEMAKER_BATCH_STRATEGY") or "MULTI_RECORD",
            "MaxPayloadInMB": max(1, min(self.max_payload // (1024 * 1024), 100)),
        }).encode()


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 1024 ** 3


# -- handlers: what answers /invocations ------------------------------------------------------
class BuiltInHandler:
    """A built-in algorithm's predictor."""

    def __init__(self, predictor: Any) -> None:
        self.invoke: Callable[[bytes, str, str, str], tuple[bytes, str]] = (
            lambda body, content_type, accept, _attributes:
            predictor.predict(body, content_type, accept))


def load_built_in(name: str, model_dir: Path) -> BuiltInHandler:
    from openmaker.algorithms import find_algorithm

    algorithm = find_algorithm(name)
    if algorithm is None:
        raise ValueError(f"OPENMAKER_ALGORITHM={name!r} is not a built-in algorithm")
    return BuiltInHandler(algorithm.load(model_dir))


class RequestContext:
    """The ``context`` argument user functions may declare: the request's headers and
    custom attributes (the MMS context's ``get_request_header`` works too)."""

    def __init__(self, model_dir: Path, headers: dict[str, str]) -> None:
        self.model_dir = str(model_dir)
        self.system_properties = {"model_dir": str(model_dir)}
        self.request_headers = headers
        self.custom_attributes = headers.get("x-amzn-sagemaker-custom-attributes")

    def get_request_header(self, index: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())


def _arity(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in parameters
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _with_context(function: Callable[..., Any], arguments: int,
                  model_dir: Path) -> Callable[..., Any]:
    """``function`` called with ``arguments`` positional arguments, plus a RequestContext
    when it declares one more (the toolkit's convention), as ``call(headers, *args)``."""
    if _arity(function) > arguments:
        return lambda headers, *args: function(*args, RequestContext(model_dir, headers))
    return lambda headers, *args: function(*args)


class UserCodeHandler:
    """Inference code in the framework containers' conventions, with their defaults."""

    def __init__(self, model_dir: Path, framework: str, module: Any | None,
                 default_accept: str) -> None:
        self.model_dir = model_dir
        self.framework = framework
        self.default_accept = default_accept or DEFAULT_ACCEPT

        def user(name: str) -> Callable[..., Any] | None:
            function = getattr(module, name, None) if module is not None else None
            return function if callable(function) else None

        transform_fn = user("transform_fn")
        handlers = [name for name in ("input_fn", "predict_fn", "output_fn") if user(name)]
        if transform_fn is not None and handlers:
            raise ValueError(f"{module.__file__} defines transform_fn and {', '.join(handlers)};"
                             " define either transform_fn or input_fn/predict_fn/output_fn")
        pre_model_fn = user("pre_model_fn")
        if pre_model_fn is not None:
            _with_context(pre_model_fn, 1, model_dir)({}, str(model_dir))
        model_fn = user("model_fn")
        if model_fn is not None:
            self.model = _with_context(model_fn, 1, model_dir)({}, str(model_dir))
        else:
            self.model = default_model_fn(framework, model_dir)
        self.transform_fn = (_with_context(transform_fn, 4, model_dir)
                             if transform_fn is not None else None)
        self.input_fn = _with_context(user("input_fn") or self._default_input_fn, 2, model_dir)
        self.predict_fn = _with_context(user("predict_fn") or self._default_predict_fn, 2,
                                        model_dir)
        self.output_fn = _with_context(user("output_fn") or self._default_output_fn, 2,
                                       model_dir)
        # a predict_fn that streams (returns an iterator) bypasses the default output_fn
        self.default_output = user("output_fn") is None
        self.wants_headers = any(_arity(f) > n for f, n in (
            (transform_fn, 4), (user("input_fn"), 2), (user("predict_fn"), 2),
            (user("output_fn"), 2)) if f is not None)

    def invoke(self, body: bytes, content_type: str, accept: str,
               headers: dict[str, str]) -> tuple[bytes | Iterator[bytes], str]:
        """The answer and its content type; the answer is an iterator of byte chunks when
        the user code streams (returns a generator or other iterator)."""
        media = content_type.split(";", 1)[0].strip().lower()
        if not accept or accept == "*/*":
            accept = self.default_accept
        if media in ("application/json", "text/csv"):
            # the toolkit hands these to input_fn decoded
            data: bytes | str = body.decode("utf-8")
        else:
            data = body
        if self.transform_fn is not None:
            result = self.transform_fn(headers, self.model, data, content_type, accept)
        else:
            decoded = self.input_fn(headers, data, content_type)
            prediction = self.predict_fn(headers, decoded, self.model)
            if self.default_output and isinstance(prediction, Iterator):
                result = prediction
            else:
                result = self.output_fn(headers, prediction, accept)
        return self._response(result, accept)

    @staticmethod
    def _response(result: Any, accept: str) -> tuple[bytes | Iterator[bytes], str]:
        response_type = accept
        if isinstance(result, tuple) and len(result) == 2:
            result, response_type = result
        if isinstance(result, Iterator):
            return _byte_chunks(result, str(response_type)), str(response_type)
        if isinstance(result, str):
            result = result.encode("utf-8")
        elif not isinstance(result, bytes | bytearray | memoryview):
            result = encode(result, response_type)
        return bytes(result), str(response_type)

    # the toolkits' defaults
    def _default_input_fn(self, data: bytes | str, content_type: str) -> Any:
        array = decode(data, content_type)
        if self.framework == "pytorch":
            import torch

            return torch.as_tensor(array)
        return array

    def _default_predict_fn(self, data: Any, model: Any) -> Any:
        if self.framework == "pytorch":
            import torch

            with torch.no_grad():
                return model(torch.as_tensor(data))
        if self.framework == "xgboost" and type(model).__name__ == "Booster":
            import xgboost

            return model.predict(data if isinstance(data, xgboost.DMatrix)
                                 else xgboost.DMatrix(data))
        return model.predict(data)

    def _default_output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        return encode(prediction, accept), accept


def _byte_chunks(chunks: Iterator[Any], response_type: str) -> Iterator[bytes]:
    """A streaming answer's chunks as bytes: str as UTF-8, anything else encoded as
    ``response_type`` (a dict per chunk as JSON, say)."""
    try:
        for chunk in chunks:
            if isinstance(chunk, str):
                yield chunk.encode("utf-8")
            elif isinstance(chunk, bytes | bytearray | memoryview):
                yield bytes(chunk)
            else:
                yield encode(chunk, response_type)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def guess_framework(model_dir: Path) -> str:
    """The framework whose default model_fn can load ``model_dir`` (by its files)."""
    if (model_dir / "xgboost-model").exists():
        return "xgboost"
    if (model_dir / "model.joblib").exists():
        return "sklearn"
    if (model_dir / "model.pth").exists() or (model_dir / "model.pt").exists():
        return "pytorch"
    return "sklearn"


def default_model_fn(framework: str, model_dir: Path) -> Any:
    """The framework toolkit's default model loading."""
    if framework == "xgboost":
        path = model_dir / "xgboost-model"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; the xgboost default model_fn "
                                    "loads xgboost-model (or define model_fn in inference.py)")
        import xgboost

        booster = xgboost.Booster()
        try:
            booster.load_model(str(path))
            return booster
        except xgboost.core.XGBoostError:
            import pickle

            with open(path, "rb") as handle:
                return pickle.load(handle)  # noqa: S301 - the model owner's own artifact
    if framework == "pytorch":
        import torch

        for name in ("model.pth", "model.pt"):
            path = model_dir / name
            if path.exists():
                try:
                    model = torch.jit.load(str(path), map_location="cpu")
                except RuntimeError:
                    model = torch.load(str(path), map_location="cpu", weights_only=False)
                return model.eval() if hasattr(model, "eval") else model
        raise FileNotFoundError(f"{model_dir}/model.pth does not exist; the pytorch default "
                                "model_fn loads model.pth (or define model_fn in inference.py)")
    if framework == "sklearn":
        path = model_dir / "model.joblib"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; the sklearn default model_fn "
                                    "loads model.joblib (or define model_fn in inference.py)")
        import joblib

        return joblib.load(path)
    raise ValueError(f"OPENMAKER_FRAMEWORK={framework!r} is not one of sklearn, xgboost, "
                     "pytorch")


def decode(data: bytes | str, content_type: str) -> Any:
    """The toolkit's default decoder: JSON, CSV, NPY, NPZ to numpy arrays."""
    import numpy as np

    media = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        if media == "application/json":
            return np.array(json.loads(data))
        if media == "text/csv":
            text = data if isinstance(data, str) else data.decode("utf-8")
            return np.genfromtxt(io.StringIO(text), delimiter=",", dtype=np.float32, ndmin=2)
        raw = data.encode() if isinstance(data, str) else data
        if media in ("application/x-npy", "application/octet-stream"):
            return np.load(io.BytesIO(raw), allow_pickle=False)
        if media == "application/x-npz":
            with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
            return next(iter(arrays.values())) if len(arrays) == 1 else arrays
    except ValueError as error:
        raise _unsupported(f"the request is not valid {media}: {error}") from None
    raise _unsupported(f"content type {content_type!r} is not supported; use application/json"
                       ", text/csv, application/x-npy or application/x-npz (or define "
                       "input_fn)")


def encode(prediction: Any, accept: str) -> bytes:
    """The toolkit's default encoder: numpy/lists/tensors to JSON, CSV or NPY."""
    import numpy as np

    if hasattr(prediction, "detach"):  # a torch tensor
        prediction = prediction.detach().cpu().numpy()
    media = (accept or "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        if isinstance(prediction, np.ndarray | np.generic):
            prediction = prediction.tolist()
        return json.dumps(prediction).encode()
    if media == "text/csv":
        stream = io.StringIO()
        np.savetxt(stream, np.atleast_1d(np.asarray(prediction)), delimiter=",", fmt="%s")
        return stream.getvalue().encode()
    if media == "application/x-npy":
        stream = io.BytesIO()
        np.save(stream, np.asarray(prediction), allow_pickle=False)
        return stream.getvalue()
    raise _not_acceptable(f"accept type {accept!r} is not supported; use application/json, "
                          "text/csv or application/x-npy (or define output_fn)")


def _import_program(path: Path) -> Any:
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def load_user_code(settings: Settings) -> UserCodeHandler:
    model_dir = settings.model_dir
    environ = settings.environ
    submitted = environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or ""
    code_dir = Path(submitted) if submitted and Path(submitted).is_dir() else model_dir / "code"
    program = environ.get("SAGEMAKER_PROGRAM") or ""
    module = None
    if program:
        path = code_dir / program
        if not path.is_file():
            raise FileNotFoundError(f"SAGEMAKER_PROGRAM={program!r}: {path} does not exist")
        module = _import_program(path)
    elif (code_dir / "inference.py").is_file():
        module = _import_program(code_dir / "inference.py")
    framework = settings.framework or guess_framework(model_dir)
    return UserCodeHandler(model_dir, framework, module, settings.default_accept)


def load_handler(settings: Settings) -> BuiltInHandler | UserCodeHandler:
    """What answers /invocations, as the environment selects it (in multi-model mode,
    what answers for one target model)."""
    if not settings.model_dir.is_dir():
        raise FileNotFoundError(f"SM_MODEL_DIR={settings.model_dir} is not a directory")
    if settings.algorithm:
        return load_built_in(settings.algorithm, settings.model_dir)
    return load_user_code(settings)


# -- multi-model mode -----------------------------------------------------------------------
TARGET_HEADER = b"x-amzn-sagemaker-target-model"
LOAD_SECONDS_HEADER = b"x-openmaker-model-load-seconds"


class ModelUnavailable(Exception):
    """A target model that cannot be served: its status and message become the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LoadedModel:
    """One model a multi-model instance holds."""

    __slots__ = ("name", "directory", "handler", "size_bytes", "last_used", "in_flight")

    def __init__(self, name: str, directory: Path, handler: BuiltInHandler | UserCodeHandler,
                 size_bytes: int) -> None:
        self.name = name
        self.directory = directory
        self.handler = handler
        self.size_bytes = size_bytes
        self.last_used = time.time()
        self.in_flight = 0


def model_directory_name(target: str) -> str:
    """The folder a target model is extracted into: the target with anything but
    letters, digits, ``.``, ``_`` and ``-`` replaced (and a short hash of the target then
    appended, so distinct targets never share a folder)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", target)
    if name.startswith("."):
        name = "_" + name[1:]  # dot-names are the cache's own temporary files
    if name != target or len(name) > 200:
        name = name[:200] + "-" + hashlib.sha256(target.encode()).hexdigest()[:12]
    return name


def _directory_bytes(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _s3_client(environ: Mapping[str, str]) -> Any:
    """A boto3 S3 client from the container's environment (the platform points it at
    the openmaker server)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL"),
        region_name=environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=environ.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=environ.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=environ.get("AWS_SESSION_TOKEN") or None,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}))


class MultiModelCache:
    """The models of a multi-model endpoint instance: each fetched from S3 and loaded on
    its first request (once, however many requests arrive meanwhile), kept under a memory
    budget with the least recently used evicted first (its folder removed).

    A model's size is its extracted bytes on disk. The process's RSS growth around a load
    would be closer to the truth for one model, but it charges the first model with the
    framework imports (xgboost, numpy, torch: hundreds of MB), mixes up loads that overlap,
    and never shrinks on eviction because the allocator keeps freed memory; serialised
    weights are a steady, reproducible proxy for what a loaded model holds. A model larger
    than the whole budget is still served, alone. Models answering a request are not
    evicted until they finish. With several workers each process holds its own models in
    ``<SM_MODEL_DIR>/worker-<pid>/`` under an equal share of the budget.

    Methods other than the fetch-and-load run on the event loop only."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.multi_model_prefix
        self.bucket, _, self.key_prefix = self.prefix[len("s3://"):].partition("/")
        self.root = settings.model_dir
        if settings.workers > 1:
            self.root = self.root / f"worker-{os.getpid()}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.budget = settings.multi_model_memory // settings.workers
        self.client = _s3_client(settings.environ)
        self.models: OrderedDict[str, LoadedModel] = OrderedDict()  # least recent first
        self.loading: dict[str, asyncio.Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                       thread_name_prefix="model-load")

    async def get(self, target: str) -> tuple[LoadedModel, float | None]:
        """The loaded model, and the seconds its load took when this call loaded it."""
        model = self.models.get(target)
        if model is not None:
            self.models.move_to_end(target)
            model.last_used = time.time()
            return model, None
        task = self.loading.get(target)
        if task is not None:
            model, _seconds = await asyncio.shield(task)
            model.last_used = time.time()
            return model, None
        task = asyncio.ensure_future(self._load(target))
        self.loading[target] = task
        return await asyncio.shield(task)

    async def _load(self, target: str) -> tuple[LoadedModel, float]:
        try:
            started = time.monotonic()
            model = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._fetch_and_load, target)
            seconds = time.monotonic() - started
            self.models[target] = model
            logger.info("loaded model %s (%d bytes) in %.3f s", target, model.size_bytes,
                        seconds)
            self._evict(keep=target)
            return model, seconds
        finally:
            self.loading.pop(target, None)

    def _fetch_and_load(self, target: str) -> LoadedModel:
        from botocore.exceptions import ClientError

        directory = self.root / model_directory_name(target)
        self._discard(directory)  # a leftover from a failed or interrupted load
        archive = self.root / f".download-{uuid.uuid4().hex}"
        try:
            try:
                response = self.client.get_object(Bucket=self.bucket,
                                                  Key=self.key_prefix + target)
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                    raise ModelUnavailable(
                        404, f"model {target} not found under {self.prefix}") from None
                raise
            with open(archive, "wb") as handle:
                shutil.copyfileobj(response["Body"], handle, 1024 * 1024)
            directory.mkdir()
            try:
                extract_model_archive(archive, directory)
            except (ValueError, OSError) as error:
                # name the S3 object, not our temporary file; tarfile's reasons span lines
                reason = str(error).replace(str(archive), self.prefix + target).splitlines()[0]
                raise ValueError(re.sub(r"\s*\([^)]*:$", "", reason)) from None
            settings = copy.copy(self.settings)
            settings.model_dir = directory
            handler = load_handler(settings)
        except ModelUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer
            logger.error("model %s failed to load\n%s", target,
                         "".join(traceback.format_exception(error)))
            self._discard(directory)
            raise ModelUnavailable(
                500, f"model {target} failed to load: {_last_line(error)}") from None
        finally:
            archive.unlink(missing_ok=True)
        return LoadedModel(target, directory, handler, _directory_bytes(directory))

    def _evict(self, keep: str) -> None:
        total = sum(model.size_bytes for model in self.models.values())
        for name in list(self.models):
            if total <= self.budget:
                break
            model = self.models[name]
            if name == keep or model.in_flight:
                continue
            del self.models[name]
            total -= model.size_bytes
            self._discard(model.directory)
            logger.info("evicted model %s (%d bytes; %d of %d bytes in use)", name,
                        model.size_bytes, total, self.budget)

    def _discard(self, directory: Path) -> None:
        """Remove ``directory``: renamed away at once (so a reload may extract there),
        deleted in the background."""
        try:
            doomed = directory.rename(self.root / f".evicted-{uuid.uuid4().hex}")
        except FileNotFoundError:
            return
        self.pool.submit(shutil.rmtree, doomed, True)

    def listing(self) -> bytes:
        return json.dumps({"models": [
            {"modelName": model.name, "sizeBytes": model.size_bytes,
             "lastUsed": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(model.last_used))
             + f".{int(model.last_used * 1000) % 1000:03d}Z"}
            for model in self.models.values()]}).encode()


# -- the ASGI application -------------------------------------------------------------------
_JSON = b"application/json"


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class ModelServerApp:
    """A raw ASGI app: /ping, /invocations, /execution-parameters. Nothing else runs per
    request than header lookup, the body read and the handler call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handler: BuiltInHandler | UserCodeHandler | None = None
        self.invoke: Callable[[bytes, str, str, Any],
                               tuple[bytes | Iterator[bytes], str]] | None = None
        self.pass_headers = False
        self.max_payload = settings.max_payload
        self.inline_max = settings.inline_max
        self.pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                       thread_name_prefix="predict")
        self.debug = logger.isEnabledFor(logging.DEBUG)
        self.errors: tuple[type[BaseException], ...] = ()
        self.models: MultiModelCache | None = None

    def ready(self, handler: BuiltInHandler | UserCodeHandler | MultiModelCache) -> None:
        self.errors = _inference_errors()
        if isinstance(handler, MultiModelCache):
            self.models = handler
            self.invoke = _no_model  # /ping answers 200: the instance serves
            return
        self.handler = handler
        self.pass_headers = bool(getattr(handler, "wants_headers", False))
        self.invoke = handler.invoke

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = scope["method"]
        if path == "/invocations":
            if method != "POST":
                await _respond(send, 405, _error_body("use POST /invocations"), _JSON)
                return
            if self.models is not None:
                await self._multi_model_invocations(scope, receive, send)
                return
            status, body, content_type = await self._invocations(scope, receive)
            if type(body) is not bytes and isinstance(body, Iterator):
                await self._stream(send, body, content_type)
                return
            if self.debug:
                logger.debug("POST /invocations %d %d bytes", status, len(body))
            await _respond(send, status, body, content_type)
        elif path == "/ping":
            if self.invoke is not None:
                await _respond(send, 200, b"", b"text/plain")
            else:
                await _respond(send, 503, _error_body("the model is loading"), _JSON)
        elif path == "/execution-parameters" and method == "GET":
            await _respond(send, 200, self.settings.execution_parameters, _JSON)
        elif path == "/models" and method == "GET" and self.models is not None:
            await _respond(send, 200, self.models.listing(), _JSON)
        else:
            await _respond(send, 404, _error_body(f"no route {method} {path}; the model server "
                                                  "answers /ping and /invocations"), _JSON)

    async def _invocations(self, scope: dict,
                           receive: Callable) -> tuple[int, bytes | Iterator[bytes], bytes]:
        content_type = accept = ""
        length = -1
        headers = scope["headers"]
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
        limit = self.max_payload
        if length > limit:
            return 413, self._too_large(length), _JSON
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            size = len(body)
            while message.get("more_body"):
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return 413, self._too_large(size), _JSON
                chunks.append(chunk)
            body = b"".join(chunks)
        if len(body) > limit:
            return 413, self._too_large(len(body)), _JSON
        invoke = self.invoke
        if invoke is None:
            return 503, _error_body("the model is loading; wait for /ping to answer 200"), _JSON
        request_headers: Any = None
        if self.pass_headers:
            request_headers = {name.decode("latin-1"): value.decode("latin-1")
                               for name, value in headers}
        try:
            if len(body) <= self.inline_max:
                answer, answer_type = invoke(body, content_type, accept, request_headers)
            else:
                answer, answer_type = await asyncio.get_running_loop().run_in_executor(
                    self.pool, invoke, body, content_type, accept, request_headers)
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer
            return self._failure(error)
        return 200, answer, answer_type.encode("latin-1")

    async def _multi_model_invocations(self, scope: dict, receive: Callable,
                                       send: Callable) -> None:
        """POST /invocations in multi-model mode: the target model, loaded when needed."""
        models = self.models
        assert models is not None
        content_type = accept = target = ""
        length = -1
        headers = scope["headers"]
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == TARGET_HEADER:
                target = value.decode("utf-8", "replace").strip()
        extra: list[tuple[bytes, bytes]] = []
        body = await self._read_body(receive, length)
        if isinstance(body, tuple):
            status, answer, answer_type = body
        elif not target:
            status, answer, answer_type = 400, _error_body(
                "this is a multi-model endpoint: name the model to invoke in the "
                "X-Amzn-SageMaker-Target-Model header (InvokeEndpoint TargetModel), a key "
                f"relative to {models.prefix}"), _JSON
        else:
            try:
                model, load_seconds = await models.get(target)
            except ModelUnavailable as error:
                status, answer, answer_type = error.status, _error_body(str(error)), _JSON
            else:
                if load_seconds is not None:
                    extra.append((LOAD_SECONDS_HEADER, f"{load_seconds:.6f}".encode()))
                status, answer, answer_type = await self._invoke_model(
                    model, body, content_type, accept, headers)
        if self.debug:
            logger.debug("POST /invocations %s %d", target, status)
        if type(answer) is not bytes and isinstance(answer, Iterator):
            await self._stream(send, answer, answer_type, extra)
            return
        await _respond(send, status, answer, answer_type, extra)

    async def _invoke_model(self, model: LoadedModel, body: bytes, content_type: str,
                            accept: str, headers: list
                            ) -> tuple[int, bytes | Iterator[bytes], bytes]:
        handler = model.handler
        request_headers: Any = None
        if getattr(handler, "wants_headers", False):
            request_headers = {name.decode("latin-1"): value.decode("latin-1")
                               for name, value in headers}
        model.in_flight += 1
        try:
            if len(body) <= self.inline_max:
                answer, answer_type = handler.invoke(body, content_type, accept,
                                                     request_headers)
            else:
                answer, answer_type = await asyncio.get_running_loop().run_in_executor(
                    self.pool, handler.invoke, body, content_type, accept, request_headers)
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer
            return self._failure(error)
        finally:
            model.in_flight -= 1
        return 200, answer, answer_type.encode("latin-1")

    async def _read_body(self, receive: Callable,
                         length: int) -> bytes | tuple[int, bytes, bytes]:
        """The request body, or the 413 answer when it is over the limit."""
        limit = self.max_payload
        if length > limit:
            return 413, self._too_large(length), _JSON
        message = await receive()
        body = message.get("body", b"")
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return 413, self._too_large(size), _JSON
            chunks.append(chunk)
        if size > limit:
            return 413, self._too_large(size), _JSON
        return body if len(chunks) == 1 else b"".join(chunks)

    async def _stream(self, send: Callable, chunks: Iterator[bytes], content_type: bytes,
                      extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """A streaming answer as a chunked body, each chunk sent as the user code yields it
        (produced in the pool, so /ping keeps answering). An error before the first chunk
        is an ordinary error answer; after it, the connection is closed with the body cut
        short (the router reports that as the stream breaking)."""
        loop = asyncio.get_running_loop()
        try:
            try:
                chunk = await loop.run_in_executor(self.pool, _next_chunk, chunks)
            except Exception as error:  # noqa: BLE001 - every failure becomes an answer
                status, body, error_type = self._failure(error)
                await _respond(send, status, body, error_type, extra)
                return
            headers = [(b"content-type", content_type)]
            if extra:
                headers.extend(extra)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            sent = 0
            while True:
                if chunk:
                    sent += len(chunk)
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
                try:
                    chunk = await loop.run_in_executor(self.pool, _next_chunk, chunks)
                except Exception as error:  # noqa: BLE001 - reported by cutting the body
                    logger.error("inference failed while streaming, after %d bytes\n%s", sent,
                                 "".join(traceback.format_exception(error)))
                    return  # uvicorn closes the connection mid-body
                if chunk is None:
                    break
            await send({"type": "http.response.body", "body": b""})
            if self.debug:
                logger.debug("POST /invocations 200 %d bytes streamed", sent)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                await loop.run_in_executor(self.pool, close)

    def _too_large(self, size: int) -> bytes:
        return _error_body(f"the request body is {size} bytes; the limit is {self.max_payload} "
                           "bytes (MAX_CONTENT_LENGTH)")

    def _failure(self, error: Exception) -> tuple[int, bytes, bytes]:
        status = getattr(error, "status", None)
        if isinstance(error, self.errors) and isinstance(status, int):
            if status == 204:
                return 204, b"", b"text/plain"
            return status, _error_body(str(error)), _JSON
        logger.error("inference failed\n%s", "".join(traceback.format_exception(error)))
        return 500, _error_body(_last_line(error)), _JSON


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def _no_model(body: bytes, content_type: str, accept: str, headers: Any) -> tuple[bytes, str]:
    raise AssertionError("a multi-model instance invokes its target models")


async def _respond(send: Callable, status: int, body: bytes, content_type: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- running it -----------------------------------------------------------------------------
def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def _serve(settings: Settings, sock: socket.socket,
                 on_ready: Callable[[], None], on_failed: Callable[[str], None]) -> int:
    import uvicorn

    app = ModelServerApp(settings)
    config = uvicorn.Config(app, http="httptools", loop="none", ws="none", lifespan="off",
                            access_log=False, log_config=None, server_header=False,
                            date_header=False, timeout_keep_alive=75,
                            backlog=2048, proxy_headers=False)
    server = uvicorn.Server(config)
    failure: list[str] = []

    async def load() -> None:
        loop = asyncio.get_running_loop()
        try:
            handler = await loop.run_in_executor(
                None, MultiModelCache if settings.multi_model_prefix else load_handler,
                settings)
        except Exception as error:  # noqa: BLE001 - reported, then the process exits
            logger.error("the model failed to load\n%s",
                         "".join(traceback.format_exception(error)))
            failure.append(_last_line(error))
            server.should_exit = True
            return
        app.ready(handler)
        while not server.started and not server.should_exit:
            await asyncio.sleep(0.005)
        on_ready()

    task = asyncio.ensure_future(load())
    await server.serve(sockets=[sock])
    task.cancel()
    app.pool.shutdown(wait=False, cancel_futures=True)
    if app.models is not None:
        app.models.pool.shutdown(wait=False, cancel_futures=True)
    if failure:
        on_failed(failure[0])  # the last line, after the server's own shutdown logging
        return 1
    return 0


def _run_worker(settings: Settings, sock: socket.socket, on_ready: Callable[[], None],
                on_failed: Callable[[str], None]) -> int:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(settings, sock, on_ready, on_failed))


def _print_ready(port: int) -> None:
    print(READY_LINE.format(host=HOST, port=port), flush=True)


def _print_failed(reason: str) -> None:
    print(FAILED_LINE.format(reason=reason), file=sys.stderr, flush=True)


def _run_workers(settings: Settings, sock: socket.socket) -> int:
    """Fork ``settings.workers`` processes sharing ``sock``; print the ready line when
    every one has loaded the model, stop them all when one fails or exits."""
    children: dict[int, int] = {}  # pid -> read end of its status pipe
    for _ in range(settings.workers):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)

            def report(text: str, fd: int = write_end) -> None:
                os.write(fd, text.encode() + b"\n")

            code = _run_worker(settings, sock, lambda: report("ready"),
                               lambda reason: report("failed " + reason))
            os._exit(code)
        os.close(write_end)
        children[pid] = read_end
    sock.close()

    stopping = []

    def forward(signum: int, frame: Any) -> None:
        stopping.append(signum)
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    waiting = dict(children)
    failure: str | None = None

    def watch(pid: int, read_end: int) -> None:
        nonlocal failure
        with os.fdopen(read_end, "rb") as pipe:
            line = pipe.readline().decode().strip()
        if line.startswith("failed "):
            failure = failure or line[len("failed "):]
        elif line != "ready":
            failure = failure or "a worker process exited before the model was loaded"
        waiting.pop(pid, None)

    watchers = [threading.Thread(target=watch, args=item, daemon=True)
                for item in children.items()]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    if failure is None:
        _print_ready(settings.port)
    else:
        _print_failed(failure)
        forward(signal.SIGTERM, None)
    code = 1 if failure else 0
    running = set(children)
    while running:
        pid, status = os.wait()
        running.discard(pid)
        children.pop(pid, None)
        exit_code = os.waitstatus_to_exitcode(status)
        if stopping and exit_code in (0, -signal.SIGTERM, -signal.SIGINT):
            continue  # stopped as asked
        if exit_code and not code:
            # one worker gone: the instance is unhealthy, stop the others too
            code = exit_code if exit_code > 0 else 1
            forward(signal.SIGTERM, None)
    return code


def main(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    level = (environ.get("OPENMAKER_LOG_LEVEL") or environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL")
             or "INFO")
    logging.basicConfig(level=int(level) if level.isdigit() else level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if not logger.isEnabledFor(logging.DEBUG):
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
    try:
        settings = Settings(environ)
        sock = _bind(settings.port)
    except (ValueError, OSError) as error:
        _print_failed(_last_line(error))
        return 1
    if settings.workers > 1:
        return _run_workers(settings, sock)
    return _run_worker(settings, sock, lambda: _print_ready(settings.port), _print_failed)


if __name__ == "__main__":
    sys.exit(main())
