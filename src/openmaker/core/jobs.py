"""What every kind of job (training, tuning, processing, transform) shares in its
lifecycle: the runners a server process holds, the ``Stopping`` move of a Stop operation,
and failing the jobs an earlier server left running.

Runners live in the server process, so a job still ``InProgress`` or ``Stopping`` when a
server starts was cut off by the previous one.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from openmaker.core import errors
from openmaker.core.platform import Platform
from openmaker.core.resources import ListQuery, ResourceNotFoundError


class JobRunner(Protocol):
    def terminate(self, grace_seconds: float) -> None: ...


class RunningJobs:
    """The runners of the jobs this server process runs, by job name (case-insensitively:
    job names are unique regardless of case). When the process exits, their processes go
    too; the jobs stay ``InProgress`` in the store and the next server marks them
    ``Failed``."""

    def __init__(self, exit_grace_seconds: float = 2.0) -> None:
        self._runners: dict[str, Any] = {}
        self._lock = threading.Lock()
        atexit.register(self.terminate_all, exit_grace_seconds)

    def add(self, name: str, runner: JobRunner) -> None:
        with self._lock:
            self._runners[name.lower()] = runner

    def get(self, name: str) -> Any:
        """The runner of job ``name``, or None when this process does not run it."""
        with self._lock:
            return self._runners.get(name.lower())

    def forget(self, name: str) -> None:
        """Drop job ``name`` (a runner's ``on_done``)."""
        with self._lock:
            self._runners.pop(name.lower(), None)

    def terminate_all(self, grace_seconds: float) -> None:
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.terminate(grace_seconds=grace_seconds)


class OncePerPlatform:
    """``action(platform)`` the first time it is called for a platform, and never again in
    this process: the recovery every job operation runs first (the server also runs it at
    startup)."""

    def __init__(self, action: Callable[[Platform], Any]) -> None:
        self._action = action
        self._lock = threading.Lock()
        self._done: set[int] = set()

    def __call__(self, platform: Platform) -> None:
        with self._lock:
            if id(platform) in self._done:
                return
            self._action(platform)
            self._done.add(id(platform))


def mark_stopping(platform: Platform, resource_type: str, name: str, *, status_field: str,
                  noun: str, not_found: Callable[[], errors.AwsError],
                  on_stopping: Callable[[dict], None] | None = None) -> None:
    """A Stop operation's change to the record: ``InProgress`` -> ``Stopping`` (and
    ``on_stopping(record)``, a transition say), else a ``ValidationException`` naming the
    status; ``not_found()`` when there is no such job."""

    def stopping(record: dict) -> tuple[dict, str]:
        status = record[status_field]
        if status != "InProgress":
            raise errors.ValidationException(
                f"The {noun} {name} is not running (status {status}); only InProgress jobs "
                "can be stopped.")
        record[status_field] = "Stopping"
        record["LastModifiedTime"] = datetime.now(UTC)
        if on_stopping is not None:
            on_stopping(record)
        return record, "Stopping"

    try:
        platform.resources.update(resource_type, name, mutate=stopping)
    except ResourceNotFoundError:
        raise not_found() from None


def jobs_left_running(platform: Platform, resource_type: str) -> list[str]:
    """The names of the stored jobs of ``resource_type`` that are ``InProgress`` or
    ``Stopping``."""
    names: list[str] = []
    for status in ("InProgress", "Stopping"):
        token = None
        while True:
            page, token = platform.resources.list(
                resource_type, ListQuery(status_equals=status, next_token=token))
            names.extend(resource.name for resource in page)
            if not token:
                break
    return names


def fail_jobs_left_running(platform: Platform, resource_type: str, status_field: str,
                           fail: Callable[[dict], None]) -> list[str]:
    """Apply ``fail`` to every stored job of ``resource_type`` whose ``status_field`` is
    still ``InProgress``/``Stopping`` (an earlier server was running it); their names."""
    names = jobs_left_running(platform, resource_type)

    def mutate(record: dict) -> tuple[dict, str]:
        if record[status_field] in ("InProgress", "Stopping"):
            fail(record)
        return record, record[status_field]

    for name in names:
        platform.resources.update(resource_type, name, mutate=mutate)
    return names
