"""Compute backends: where a job's processes (one per instance) run.

``open_compute_backend(settings)`` returns the configured :class:`ComputeBackend`. Today
that is always :class:`LocalBackend` (local child processes, stdlib only); a Ray backend
will be chosen here from a compute setting once it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from openmaker.compute.base import (
    DEFAULT_STOP_GRACE_SECONDS,
    MAX_LINE_BYTES,
    ComputeBackend,
    ComputeError,
    ExitCallback,
    JobHandle,
    OutputCallback,
    ProcessSpec,
)
from openmaker.compute.local import (
    LocalBackend,
    LocalJobHandle,
    is_same_process,
    process_start_time,
)

if TYPE_CHECKING:
    from openmaker.config import Settings

__all__ = [
    "DEFAULT_STOP_GRACE_SECONDS",
    "MAX_LINE_BYTES",
    "ComputeBackend",
    "ComputeError",
    "ExitCallback",
    "JobHandle",
    "LocalBackend",
    "LocalJobHandle",
    "OutputCallback",
    "ProcessSpec",
    "is_same_process",
    "open_compute_backend",
    "process_start_time",
]


def open_compute_backend(settings: Settings) -> ComputeBackend:
    """The compute backend ``settings`` configure.

    Settings have no compute field yet, so this is always the local backend. When the Ray
    backend lands, choose here from that field (``"local"`` or ``"ray"``), importing Ray's
    module only when it is chosen, and reject unknown values naming the setting.
    """
    del settings  # no compute setting yet
    return LocalBackend()
