"""The SageMaker processing container contract, without launching anything.

Instance ``algo-<n>`` of a processing job gets what SageMaker mounts into its container,
rooted at ``<home>/work/<job-name>/algo-<n>/`` (the container's ``/``): every input at its
``LocalPath`` under ``opt/ml/processing/``, every output's ``LocalPath`` created before the
entrypoint runs, ``opt/ml/config/processingjobconfig.json`` (the request echoed) and
``opt/ml/config/resourceconfig.json``; ``opt/ml/output/message`` becomes the job's
``ExitMessage``. ``reference/platform.md`` section 3.7.

There is no container, so a container path such as ``/opt/ml/processing/input/data``
names a directory of the job's tree: :func:`translate_argument` rewrites such paths in
``ContainerEntrypoint``/``ContainerArguments`` and :func:`translate_script` in the shell
scripts a job runs from its tree; Python code reaches the tree through ``pathmap/``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from openmaker.training.contract import host_name, write_json_atomic

CONTAINER_ROOT = "/opt/ml"
PROCESSING_ROOT = "/opt/ml/processing/"
CONFIG_FILE = "processingjobconfig.json"
RESOURCE_CONFIG_FILE = "resourceconfig.json"
MAX_EXIT_MESSAGE = 1024
# Interpreters that run the script file given as their first non-option argument.
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh"})
_SHEBANG_SHELL = re.compile(rb"^#!\s*(?:/usr)?/bin/(?:env\s+)?(?:sh|bash|dash|zsh|ksh)\b")


def processing_relative(path: str, field: str) -> PurePosixPath:
    """``path`` relative to ``/opt/ml``; ValueError naming ``field`` unless ``path`` is an
    absolute path under ``/opt/ml/processing/`` without ``..``."""
    posix = PurePosixPath(path)
    if not path.startswith(PROCESSING_ROOT) or ".." in posix.parts \
            or posix == PurePosixPath(PROCESSING_ROOT):
        raise ValueError(f"{field} {path!r} must be a path under {PROCESSING_ROOT} (without "
                         "'..'), where SageMaker mounts processing inputs and outputs")
    return posix.relative_to(CONTAINER_ROOT)


@dataclass(frozen=True)
class ProcessingLayout:
    """Paths of one processing instance's tree under the job's work directory; ``index``
    is 1-based, like the host name ``algo-<index>``."""

    work_dir: Path
    index: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "work_dir", Path(self.work_dir))
        host_name(self.index)

    @property
    def host(self) -> str:
        return host_name(self.index)

    @property
    def base(self) -> Path:
        """What the container sees as ``/``."""
        return self.work_dir / self.host

    @property
    def root(self) -> Path:
        """What the container sees as ``/opt/ml``."""
        return self.base / "opt" / "ml"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def config_file(self) -> Path:
        return self.config_dir / CONFIG_FILE

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / RESOURCE_CONFIG_FILE

    @property
    def message_file(self) -> Path:
        """Its text (first 1 KB over every host) becomes the job's ``ExitMessage``."""
        return self.root / "output" / "message"

    def container_path(self, path: str, field: str = "LocalPath") -> Path:
        """Where the container path ``path`` (under ``/opt/ml/processing/``) lies here."""
        return self.root / processing_relative(path, field)

    def create(self) -> None:
        for directory in (self.config_dir, self.message_file.parent, self.root / "processing"):
            directory.mkdir(parents=True, exist_ok=True)

    def translate(self, path: str) -> str:
        """``path`` with a leading ``/opt/ml`` replaced by this tree's; others unchanged."""
        if path == CONTAINER_ROOT or path.startswith(CONTAINER_ROOT + "/"):
            return str(self.root) + path[len(CONTAINER_ROOT):]
        return path


def translate_argument(argument: str, layout: ProcessingLayout) -> str:
    """A command-line argument with its container path mapped to ``layout``'s tree: the
    whole argument (``/opt/ml/processing/input/x.csv``) or an option's value
    (``--input=/opt/ml/processing/input``)."""
    translated = layout.translate(argument)
    if translated != argument:
        return translated
    option, equals, value = argument.partition("=")
    if equals and option.startswith("-"):
        return f"{option}={layout.translate(value)}"
    return argument


def command_line(app: Mapping[str, Any], image_entrypoint: Sequence[str]) -> list[str]:
    """The container's command line under Docker's override rules: ``ContainerEntrypoint``
    replaces the image's ENTRYPOINT (and drops its CMD); ``ContainerArguments`` follow the
    entrypoint in force. Empty when neither the request nor the image says what to run."""
    entrypoint = list(app.get("ContainerEntrypoint") or image_entrypoint)
    return entrypoint + list(app.get("ContainerArguments") or [])


def script_to_translate(argv: Sequence[str], layout: ProcessingLayout) -> Path | None:
    """The shell script of the job's tree that ``argv`` runs (``/bin/bash <tree>/x.sh``, or
    a ``#!/bin/sh`` file run directly), whose container paths must be mapped; else None."""
    if not argv:
        return None
    program = Path(argv[0])
    candidate: str | None = None
    if program.name in SHELLS:
        candidate = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    elif program.is_relative_to(layout.base):
        candidate = argv[0]
    if candidate is None:
        return None
    path = Path(candidate)
    if not path.is_relative_to(layout.base) or path.is_symlink() or not path.is_file():
        return None
    if program.name not in SHELLS:
        with open(path, "rb") as handle:
            if not _SHEBANG_SHELL.match(handle.readline()):
                return None
    return path


def translate_script(path: Path, layout: ProcessingLayout) -> bool:
    """Rewrite ``/opt/ml`` container paths in the shell script at ``path`` (a delivered
    copy in the job's tree) to ``layout``'s tree, atomically; whether anything changed."""
    data = path.read_bytes()
    translated = re.sub(rb"(?<![\w./-])/opt/ml(?=/|\b)", os.fsencode(layout.root), data)
    if translated == data:
        return False
    mode = path.stat().st_mode
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(translated)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
    return True


# ---------------------------------------------------------------- config files


def processing_job_config(record: Mapping[str, Any]) -> dict[str, Any]:
    """``processingjobconfig.json``: the request as SageMaker echoes it to the container,
    every S3 input with ``S3DownloadMode: StartOfJob``."""
    inputs = []
    for entry in record.get("ProcessingInputs") or []:
        entry = json.loads(json.dumps(entry, default=str))
        if "S3Input" in entry:
            entry["S3Input"].setdefault("S3DownloadMode", "StartOfJob")
        inputs.append(entry)
    config: dict[str, Any] = {
        "ProcessingJobArn": record["ProcessingJobArn"],
        "ProcessingJobName": record["ProcessingJobName"],
        "AppSpecification": record["AppSpecification"],
        "Environment": record.get("Environment") or {},
        "NetworkConfig": record.get("NetworkConfig") or {},
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": record.get("ProcessingOutputConfig") or {"Outputs": []},
        "ProcessingResources": record["ProcessingResources"],
        "RoleArn": record.get("RoleArn"),
        "StoppingCondition": record.get("StoppingCondition") or {},
    }
    return json.loads(json.dumps(config, default=str))


def instance_count(record: Mapping[str, Any]) -> int:
    return int(record["ProcessingResources"]["ClusterConfig"].get("InstanceCount", 1))


def resource_config(record: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``resourceconfig.json`` of instance ``index`` (1-based)."""
    hosts = sorted(host_name(n) for n in range(1, instance_count(record) + 1))
    return {"current_host": host_name(index), "hosts": hosts}


def write_config(layout: ProcessingLayout, record: Mapping[str, Any]) -> None:
    write_json_atomic(layout.config_file, processing_job_config(record))
    write_json_atomic(layout.resource_config_file, resource_config(record, layout.index))


def exit_message(layouts: Sequence[ProcessingLayout]) -> str:
    """``ExitMessage``: every host's ``/opt/ml/output/message`` in host order, concatenated
    and cut to 1024 bytes; UnicodeDecodeError when one is not UTF-8."""
    messages = []
    for layout in layouts:
        path = layout.message_file
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            data.decode("utf-8")  # non-UTF-8 text fails the job, as on SageMaker
            messages.append(data)
    # A character cut in two at the 1 KB mark is dropped rather than mangled.
    return b"".join(messages)[:MAX_EXIT_MESSAGE].decode("utf-8", errors="ignore")
