"""The compute backend interface: start a job's processes, stream their output, wait for
them and stop them.

A job is one process per instance (``algo-1``, ``algo-2``, ...), all started at once. A
backend only runs processes; what they run (the SageMaker container contract, channels,
``SM_*`` variables) and what a failed instance means for the job are the caller's business.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STOP_GRACE_SECONDS = 10.0
# Lines longer than this are delivered in pieces of at most this many bytes.
MAX_LINE_BYTES = 256 * 1024

OutputCallback = Callable[[str, str], None]
"""``on_output(process_name, line)``: one line of a process's stdout or stderr, without
its line ending."""
ExitCallback = Callable[[str, int], None]
"""``on_exit(process_name, exit_code)``: a process exited, after all its output was
delivered. A negative code ``-N`` means the process was killed by signal ``N``."""


class ComputeError(RuntimeError):
    """A job's processes could not be started; the message says which one and why."""


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a job: its name, command line, working directory and environment.

    The process gets exactly ``env`` (plus a minimal ``PATH``, ``HOME`` and ``LANG`` where
    ``env`` has none), never the server's environment. Python children should be given
    ``PYTHONUNBUFFERED=1`` for their output to arrive line by line.
    """

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    stdin: Path | None = None  # a regular file fed to stdin; None means /dev/null


class JobHandle(abc.ABC):
    """A started job: its processes' exit codes, waiting for them, and stopping them."""

    job_id: str
    timed_out: bool = False  # set when the job was stopped for exceeding its runtime limit

    @property
    @abc.abstractmethod
    def pids(self) -> dict[str, int]:
        """Process name -> pid (a backend without OS processes may return an empty dict)."""

    @property
    @abc.abstractmethod
    def exit_codes(self) -> dict[str, int | None]:
        """Process name -> exit code, ``None`` while the process runs."""

    @property
    def running(self) -> bool:
        """Whether any process of the job is still running."""
        return self.poll() is None

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> dict[str, int] | None:
        """Wait for every process to exit and its output to be delivered; the exit codes,
        or ``None`` if ``timeout`` seconds passed first."""

    @abc.abstractmethod
    def wait_any(self, timeout: float | None = None) -> dict[str, int] | None:
        """Wait until at least one process has exited; the exit codes of those that have,
        or ``None`` if ``timeout`` seconds passed first."""

    def poll(self) -> dict[str, int] | None:
        """The exit codes if every process has exited, else ``None``; never blocks."""
        return self.wait(timeout=0)

    @abc.abstractmethod
    def stop(self, grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS) -> dict[str, int | None]:
        """Ask every process to stop (SIGTERM), kill what is left after ``grace_seconds``
        (SIGKILL), and return the exit codes once all have exited."""


class ComputeBackend(abc.ABC):
    """Where a job's processes run: local processes or a Ray cluster."""

    name: str

    @abc.abstractmethod
    def start(
        self,
        job_id: str,
        specs: list[ProcessSpec],
        on_output: OutputCallback,
        *,
        on_exit: ExitCallback | None = None,
        max_runtime_seconds: float | None = None,
        stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS,
    ) -> JobHandle:
        """Start every process of ``specs`` at once and return without waiting for them.

        Each line a process writes to stdout or stderr goes to ``on_output``; ``on_exit``
        is told when each process exits. With ``max_runtime_seconds`` the job is stopped
        (with ``stop_grace_seconds`` of grace) once it has run that long, and its handle's
        ``timed_out`` is set. Callbacks run on backend threads, several at once, and must
        not block for long; they may call the handle's ``stop()`` and ``poll()`` (e.g. to
        stop the rest of a job when one process fails), not wait on it.
        Raises :class:`ComputeError` (having stopped any already started) when a process
        cannot be started.
        """


def check_specs(specs: list[ProcessSpec]) -> None:
    """Reject a job with no processes, an empty command line or two processes of one name."""
    if not specs:
        raise ComputeError("a job needs at least one process")
    seen: set[str] = set()
    for spec in specs:
        if not spec.name:
            raise ComputeError("every process of a job needs a name (e.g. 'algo-1')")
        if spec.name in seen:
            raise ComputeError(f"two processes of the job are named {spec.name!r}")
        seen.add(spec.name)
        if not spec.argv:
            raise ComputeError(f"process {spec.name!r} has an empty command line (argv)")
