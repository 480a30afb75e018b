"""The local compute backend: each process of a job is a child process of the server.

Every process runs in its own session (so its own process group), with exactly the
environment its spec gives, stdin from /dev/null (or a file) and stdout and stderr merged
into one pipe that a reader thread turns into lines. A waiter thread per process reaps it;
when a process exits, whatever it left running in its process group is killed, as a
container's processes die with its main process. Stopping signals whole process groups,
so the children a user's script spawned go too.

``process_start_time`` and ``is_same_process`` let a restarted server tell whether a pid
it recorded still belongs to the process it started.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

from openmaker.compute.base import (
    DEFAULT_STOP_GRACE_SECONDS,
    MAX_LINE_BYTES,
    ComputeBackend,
    ComputeError,
    ExitCallback,
    JobHandle,
    OutputCallback,
    ProcessSpec,
    check_specs,
)

_log = logging.getLogger(__name__)

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# How long an exited process's output may take to drain; only a descendant that left the
# process group (setsid) and keeps the pipe open makes it take longer.
DRAIN_SECONDS = 2.0
# How long stop() waits for processes to go after SIGKILL.
KILL_WAIT_SECONDS = 1.0

# Marks a job's own reader and waiter threads, where the callbacks run.
_callback_thread = threading.local()


def process_environment(spec: ProcessSpec) -> dict[str, str]:
    """The environment ``spec``'s process gets: its ``env`` plus a minimal ``PATH``,
    ``HOME`` (the working directory) and ``LANG`` where ``env`` has none."""
    env = {str(key): str(value) for key, value in spec.env.items()}
    env.setdefault("PATH", MINIMAL_PATH)
    env.setdefault("HOME", str(spec.cwd))
    env.setdefault("LANG", "C.UTF-8")
    return env


def _read_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, if readable."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; it ends at the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[19])  # fields 3 (state) and 22 (starttime)
    except (IndexError, ValueError):
        return None


def _has_proc() -> bool:
    return Path("/proc/self/stat").is_file()


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, from /proc on Linux); ``None``
    where there is no such process or the platform does not say."""
    stat = _read_stat(pid) if pid > 0 else None
    return stat[1] if stat else None


def is_same_process(pid: int, start_time: int | None) -> bool:
    """Whether ``pid`` is still the live process that started at ``start_time`` (as
    recorded from :func:`process_start_time`). Without /proc, or with no recorded start
    time, only whether ``pid`` is alive."""
    if pid <= 0:
        return False
    if _has_proc():
        stat = _read_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or exited and not yet reaped
            return False
        return start_time is None or stat[1] == start_time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Process:
    """One running process of a job and what is known about it."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.popen = popen
        self.start_time = process_start_time(popen.pid)
        self.exit_code: int | None = None  # set when reaped
        self.finished = False  # reaped, output delivered and on_exit called


class LocalJobHandle(JobHandle):
    """A job whose processes are local child processes."""

    def __init__(
        self, job_id: str, on_output: OutputCallback, on_exit: ExitCallback | None
    ) -> None:
        self.job_id = job_id
        self.timed_out = False
        self._on_output = on_output
        self._on_exit = on_exit
        self._processes: dict[str, _Process] = {}
        self._changed = threading.Condition()

    # --- starting -------------------------------------------------------------------

    def _launch(self, spec: ProcessSpec) -> None:
        stdin = spec.stdin.open("rb") if spec.stdin is not None else None
        try:
            popen = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=process_environment(spec),
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,
            )
        finally:
            if stdin is not None:
                stdin.close()
        process = _Process(spec.name, popen)
        with self._changed:
            self._processes[spec.name] = process
        prefix = f"openmaker-{self.job_id}-{spec.name}"
        reader = threading.Thread(
            target=self._read_output, args=(process,), name=f"{prefix}-output", daemon=True
        )
        reader.start()
        threading.Thread(
            target=self._await_exit, args=(process, reader), name=f"{prefix}-exit", daemon=True
        ).start()

    def _enforce_runtime(self, limit: float, grace_seconds: float) -> None:
        if self.wait(limit) is None:
            self.timed_out = True
            self.stop(grace_seconds)

    # --- threads --------------------------------------------------------------------

    def _read_output(self, process: _Process) -> None:
        _callback_thread.handle = self
        stream = process.popen.stdout
        assert stream is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while chunk := stream.readline(MAX_LINE_BYTES):
                # A piece of an over-long line may end inside a character: keep its bytes.
                piece = len(chunk) == MAX_LINE_BYTES and not chunk.endswith(b"\n")
                line = decoder.decode(chunk, final=not piece)
                if line.endswith("\n"):
                    line = line[:-2] if line.endswith("\r\n") else line[:-1]
                try:
                    self._on_output(process.name, line)
                except Exception:
                    _log.exception("output callback failed for %s/%s", self.job_id, process.name)
        except (OSError, ValueError):  # the pipe was closed under us
            pass
        finally:
            stream.close()

    def _await_exit(self, process: _Process, reader: threading.Thread) -> None:
        _callback_thread.handle = self
        pid = process.popen.pid
        if hasattr(os, "waitid"):
            # Wait without reaping: the zombie keeps its pid, so the group id can't be reused
            # before the rest of the group is killed.
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        else:
            process.popen.wait()
        _signal_group(pid, signal.SIGKILL)
        with self._changed:
            process.exit_code = process.popen.wait()
            self._changed.notify_all()
        reader.join(DRAIN_SECONDS)
        if self._on_exit is not None:
            try:
                self._on_exit(process.name, process.exit_code)
            except Exception:
                _log.exception("exit callback failed for %s/%s", self.job_id, process.name)
        with self._changed:
            process.finished = True
            self._changed.notify_all()

    # --- JobHandle ------------------------------------------------------------------

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self._processes.items()}

    @property
    def start_times(self) -> dict[str, int | None]:
        """Process name -> start time, for :func:`is_same_process` after a restart."""
        return {name: p.start_time for name, p in self._processes.items()}

    @property
    def exit_codes(self) -> dict[str, int | None]:
        with self._changed:
            return {name: p.exit_code for name, p in self._processes.items()}

    def _check_not_in_callback(self, timeout: float | None) -> None:
        if getattr(_callback_thread, "handle", None) is self and timeout != 0:
            raise RuntimeError(
                f"waiting on job {self.job_id} from its own on_output/on_exit callback would "
                "deadlock; use poll() or stop() there"
            )

    def wait(self, timeout: float | None = None) -> dict[str, int] | None:
        self._check_not_in_callback(timeout)
        with self._changed:
            processes = list(self._processes.values())
            if not self._changed.wait_for(lambda: all(p.finished for p in processes), timeout):
                return None
            return self._finished_codes(processes)

    def wait_any(self, timeout: float | None = None) -> dict[str, int] | None:
        self._check_not_in_callback(timeout)
        with self._changed:
            processes = list(self._processes.values())
            if not self._changed.wait_for(lambda: any(p.finished for p in processes), timeout):
                return None
            return self._finished_codes(processes)

    @staticmethod
    def _finished_codes(processes: list[_Process]) -> dict[str, int]:
        return {p.name: p.exit_code for p in processes if p.finished and p.exit_code is not None}

    def stop(self, grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS) -> dict[str, int | None]:
        """Stop every process (see :meth:`JobHandle.stop`). Called from one of the job's own
        callbacks, it sends SIGTERM and returns at once, the rest carrying on in a thread."""
        if getattr(_callback_thread, "handle", None) is self:
            self._signal_running(signal.SIGTERM)
            threading.Thread(
                target=self.stop, args=(grace_seconds,), name=f"openmaker-{self.job_id}-stop",
                daemon=True,
            ).start()
            return self.exit_codes
        self._signal_running(signal.SIGTERM)
        if self.wait(max(grace_seconds, 0.0)) is None:
            self._signal_running(signal.SIGKILL)
            self.wait(KILL_WAIT_SECONDS)
        return self.exit_codes

    def _signal_running(self, sig: signal.Signals) -> None:
        # Under the lock no process is reaped, so each group id still names our group.
        with self._changed:
            for process in self._processes.values():
                if process.exit_code is None:
                    _signal_group(process.popen.pid, sig)


class LocalBackend(ComputeBackend):
    """Runs each process of a job as a local child process in its own session."""

    name = "local"

    def start(
        self,
        job_id: str,
        specs: list[ProcessSpec],
        on_output: OutputCallback,
        *,
        on_exit: ExitCallback | None = None,
        max_runtime_seconds: float | None = None,
        stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS,
    ) -> LocalJobHandle:
        check_specs(specs)
        handle = LocalJobHandle(job_id, on_output, on_exit)
        for spec in specs:
            try:
                handle._launch(spec)
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                handle.stop(grace_seconds=0)
                raise ComputeError(
                    f"could not start process {spec.name!r} of job {job_id!r} "
                    f"({spec.argv[0]!r} in {str(spec.cwd)!r}): {exc}"
                ) from exc
        if max_runtime_seconds is not None:
            threading.Thread(
                target=handle._enforce_runtime,
                args=(max_runtime_seconds, stop_grace_seconds),
                name=f"openmaker-{job_id}-runtime",
                daemon=True,
            ).start()
        return handle
