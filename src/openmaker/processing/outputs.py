"""Uploading a processing job's ``ProcessingOutputConfig.Outputs``.

Each output's ``LocalPath`` directory (on every instance) goes to its ``S3Uri`` prefix, a
file at ``<LocalPath>/a/b.csv`` becoming ``<S3Uri>/a/b.csv``; instances write into the
same prefix, so equal names overwrite each other, as on SageMaker. Symbolic links are
never followed (neither files nor folders), as SageMaker documents.

* ``EndOfJob``: uploaded once the job's processes have exited, when the job completed.
  A failed or stopped job uploads nothing from EndOfJob outputs (SageMaker's behaviour
  here is UNVERIFIED; the SDK's local mode uploads even after a failure).
* ``Continuous``: :class:`ContinuousUpload` uploads each file as it appears or changes
  while the job runs (once its size and modification time held still for one poll, so a
  file being written is not uploaded half-way), and a last time when the job ends
  whatever its outcome.

Every object is stored whole (the object store's ``put_object`` is atomic).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from openmaker.processing.contract import ProcessingLayout
from openmaker.storage.base import ObjectStore
from openmaker.storage.uri import S3Uri

CHUNK_SIZE = 1024 * 1024
CONTINUOUS_POLL_SECONDS = 0.25


def output_files(directory: Path) -> Iterator[tuple[str, Path]]:
    """``(relative posix path, path)`` of every regular file under ``directory``, without
    following symbolic links."""
    if not directory.is_dir() or directory.is_symlink():
        return
    for folder, subfolders, files in os.walk(directory, followlinks=False):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(directory).as_posix(), path


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def upload_file(store: ObjectStore, uri: S3Uri, relative: str, path: Path) -> None:
    target = uri.join(relative)
    store.put_object(target.bucket, target.key, _chunks(path))


def s3_outputs(record: Mapping[str, Any], mode: str) -> list[dict[str, Any]]:
    """The job's ``S3Output``s with ``S3UploadMode`` ``mode`` that openmaker uploads (not
    those the application manages itself, ``AppManaged``)."""
    outputs = (record.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    return [entry["S3Output"] for entry in outputs
            if entry.get("S3Output") and not entry.get("AppManaged")
            and entry["S3Output"].get("LocalPath")
            and entry["S3Output"].get("S3UploadMode") == mode]


def upload_outputs(store: ObjectStore, outputs: Sequence[Mapping[str, Any]],
                   layouts: Sequence[ProcessingLayout]) -> int:
    """Upload every file of ``outputs`` on every instance; the number of files."""
    count = 0
    for output in outputs:
        uri = S3Uri.parse(output["S3Uri"])
        for layout in layouts:
            for relative, path in output_files(layout.container_path(output["LocalPath"])):
                upload_file(store, uri, relative, path)
                count += 1
    return count


class ContinuousUpload:
    """A thread uploading the ``Continuous`` outputs' files as they appear or change."""

    def __init__(self, store: ObjectStore, outputs: Sequence[Mapping[str, Any]],
                 layouts: Sequence[ProcessingLayout]) -> None:
        self.store = store
        self.targets = [(S3Uri.parse(output["S3Uri"]), layout.container_path(output["LocalPath"]))
                        for output in outputs for layout in layouts]
        self.error: BaseException | None = None
        self._uploaded: dict[Path, tuple[int, int]] = {}
        self._seen: dict[Path, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openmaker-continuous-upload",
                                        daemon=True)

    def start(self) -> ContinuousUpload:
        if self.targets:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(CONTINUOUS_POLL_SECONDS):
            try:
                self.sync(settled_only=True)
            except Exception as exc:  # kept for the job's end; uploading goes on
                self.error = exc

    def sync(self, *, settled_only: bool = False) -> None:
        """Upload new and changed files; with ``settled_only`` only those whose size and
        modification time did not change since the previous call."""
        for uri, directory in self.targets:
            for relative, path in output_files(directory):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                state = (stat.st_size, stat.st_mtime_ns)
                previous, self._seen[path] = self._seen.get(path), state
                if self._uploaded.get(path) == state:
                    continue
                if settled_only and previous != state:
                    continue
                upload_file(self.store, uri, relative, path)
                self._uploaded[path] = state

    def stop(self) -> None:
        """Stop the thread and upload what is left (the job has ended)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.targets:
            self.sync()
