"""CheckpointConfig: the checkpoint folder (``/opt/ml/checkpoints`` by default) restored from
``CheckpointConfig.S3Uri`` when a job starts and synced back to it, uncompressed, while
the job trains (``reference/platform.md`` 2.2, 2.4, 4.1). Restoring is also how a job
resumes after a spot interruption.

Keys are ``<S3Uri key>/<path relative to the checkpoint folder>``; the S3Uri's key is
always taken as a folder, so ``s3://b/ckpt`` and ``s3://b/ckpt/`` are the same place.

Decisions, where SageMaker's behaviour is not documented (UNVERIFIED):

- Files deleted locally are not deleted in S3, and objects added to S3 after the job
  started are not pulled.
- Every instance of a job syncs to the same prefix, so ``algo-1`` and ``algo-2`` writing
  the same relative path overwrite each other (the last upload wins); scripts that need
  one checkpoint per host put the host name in the file name. How SageMaker separates
  instances, if at all, is not checked.
- Every file is uploaded, temporary files of atomic writers included. A file that changes
  while it is read is not uploaded that pass (never torn), and one renamed away before
  the next pass is never uploaded at all, so in practice only temporary files that sit
  still for a whole pass reach S3. The final sync at ``stop()`` catches up with the rest.
- Symbolic links to files are uploaded as the file they point to (as ``aws s3 sync``
  does); links to folders are not followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openmaker.core import errors
from openmaker.storage.base import ObjectInfo, ObjectStore
from openmaker.storage.uri import S3Uri

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
# A file modified this recently when it is read may change again within the same
# timestamp tick, unseen by (size, mtime_ns): it is uploaded again on the next pass.
RACY_WINDOW_NS = 50_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Signature = tuple[int, int]  # (size, mtime_ns) of a local file


class _FileChanged(Exception):
    """The file changed while it was read; the store discards what it was given."""


def _prefix(uri: S3Uri) -> str:
    return uri.key if not uri.key or uri.key.endswith("/") else uri.key + "/"


def _mtime_ns(moment: datetime) -> int:
    """``moment`` as integer nanoseconds since the epoch, without float rounding."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def list_checkpoint_objects(store: ObjectStore, uri: S3Uri) -> list[ObjectInfo]:
    """Every object under ``uri``'s prefix, all pages."""
    prefix = _prefix(uri)
    objects: list[ObjectInfo] = []
    marker: str | None = None
    while True:
        page = store.list_objects(uri.bucket, prefix=prefix, start_after=marker)
        objects.extend(page.objects)
        if not page.is_truncated or not page.next_marker:
            return objects
        marker = page.next_marker


def checkpoint_path(local_dir: Path, relative_key: str) -> Path:
    """Where the object ``<prefix><relative_key>`` lands under ``local_dir``; raises
    ``ValidationException`` for keys that would land outside it or that name no file."""
    parts = relative_key.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\0" in relative_key:
        raise errors.ValidationException(
            f"CheckpointConfig.S3Uri: object key part {relative_key!r} cannot be restored "
            "into the checkpoint folder (empty, '.' or '..' path segments are refused); "
            "rename or delete that object"
        )
    root = local_dir.resolve()
    target = local_dir.joinpath(*parts)
    if not target.resolve().is_relative_to(root):
        raise errors.ValidationException(
            f"CheckpointConfig.S3Uri: object key part {relative_key!r} would be restored "
            "outside the checkpoint folder"
        )
    return target


def restore_checkpoints(store: ObjectStore, uri: S3Uri, local_dir: Path) -> int:
    """Copy every object under ``uri`` into ``local_dir`` and return how many were copied.

    Every key is checked before anything is written. Each file is written atomically
    (a temporary file renamed into place) and gets the object's LastModified as its
    modification time, which lets :class:`CheckpointSync` recognise it as already in S3.
    Objects whose key ends in ``/`` (folder markers) become empty folders.
    """
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    prefix = _prefix(uri)
    files: list[tuple[ObjectInfo, Path]] = []
    folders: list[Path] = []
    for info in list_checkpoint_objects(store, uri):
        relative = info.key[len(prefix):]
        if relative == "":
            continue  # the prefix's own folder marker
        if relative.endswith("/"):
            folders.append(checkpoint_path(local_dir, relative[:-1]))
        else:
            files.append((info, checkpoint_path(local_dir, relative)))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for info, target in files:
        _download(store, info, target)
    return len(files)


def _download(store: ObjectStore, info: ObjectInfo, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".restoring",
                                     dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle, store.open_object(info.bucket, info.key) as reader:
            for chunk in reader.iter_chunks(CHUNK_SIZE):
                handle.write(chunk)
        stamp = _mtime_ns(info.last_modified)
        os.utime(temporary, ns=(stamp, stamp))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _local_files(local_dir: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every file under ``local_dir``; links to files
    included, links to folders not followed."""
    for folder, _dirs, names in os.walk(local_dir):
        base = Path(folder)
        for name in names:
            path = base / name
            yield path.relative_to(local_dir).as_posix(), path


class CheckpointSync:
    """Uploads new and changed files of one or more checkpoint folders (one per instance)
    to ``uri``, every ``interval_seconds`` in a background thread and once more at
    :meth:`stop`.

    A file is uploaded when its (size, mtime_ns) differs from the last upload of it. On
    the first pass, files whose size and modification time equal those of the object
    already at their key (as :func:`restore_checkpoints` leaves them) count as uploaded.
    Errors are logged and the file is tried again on the next pass; they never end the
    thread.
    """

    def __init__(self, store: ObjectStore, uri: S3Uri, local_dirs: list[Path], *,
                 interval_seconds: float = 1.0) -> None:
        self.store = store
        self.uri = uri
        self.local_dirs = [Path(directory) for directory in local_dirs]
        self.interval_seconds = interval_seconds
        self._prefix = _prefix(uri)
        self._uploaded: dict[tuple[int, str], Signature] = {}
        self._in_s3: dict[str, Signature] | None = None  # the first pass's listing
        self._failed: dict[tuple[int, str], Signature] = {}  # logged at warning level once
        self._lock = threading.Lock()  # one pass at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CheckpointSync:
        self._thread = threading.Thread(target=self._loop, name="openmaker-checkpoint-sync",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the background thread and upload what changed since its last pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self.sync_now()
        except Exception:
            log.exception("checkpoint sync to %s: the final sync failed", self.uri)

    def _loop(self) -> None:
        last_error = ""
        while not self._stop.wait(self.interval_seconds):
            try:
                self.sync_now()
                last_error = ""
            except Exception as exc:
                # The same failure every pass (a missing bucket) is logged in full once.
                error = f"{type(exc).__name__}: {exc}"
                if error != last_error:
                    log.warning("checkpoint sync to %s failed; retrying every %gs", self.uri,
                                self.interval_seconds, exc_info=True)
                last_error = error

    def sync_now(self) -> int:
        """Upload the files that are new or changed since they were last uploaded; return
        how many were uploaded."""
        with self._lock:
            if self._in_s3 is None:
                self._in_s3 = {info.key: (info.size, _mtime_ns(info.last_modified))
                               for info in list_checkpoint_objects(self.store, self.uri)}
                first_pass = True
            else:
                first_pass = False
            uploaded = 0
            for index, local_dir in enumerate(self.local_dirs):
                if not local_dir.is_dir():
                    continue
                for relative, path in _local_files(local_dir):
                    if self._sync_file(index, relative, path, first_pass):
                        uploaded += 1
            return uploaded

    def _sync_file(self, index: int, relative: str, path: Path, first_pass: bool) -> bool:
        try:
            before = path.stat()
        except OSError:
            return False  # gone since the walk, or a dangling link
        if not stat.S_ISREG(before.st_mode):
            return False
        signature = (before.st_size, before.st_mtime_ns)
        racy = time.time_ns() - before.st_mtime_ns < RACY_WINDOW_NS
        known = (index, relative)
        if self._uploaded.get(known) == signature:
            return False
        key = self._prefix + relative
        if first_pass and self._in_s3 is not None and self._in_s3.get(key) == signature:
            self._uploaded[known] = signature
            return False
        try:
            self.store.put_object(self.uri.bucket, key, _stable_chunks(path, signature))
        except _FileChanged:
            return False  # still being written; the next pass tries again
        except FileNotFoundError:
            return False
        except Exception as exc:
            level = logging.DEBUG if self._failed.get(known) == signature else logging.WARNING
            log.log(level, "checkpoint sync: uploading %s to s3://%s/%s failed: %s",
                    path, self.uri.bucket, key, exc)
            self._failed[known] = signature
            return False
        if racy:
            self._uploaded.pop(known, None)
        else:
            self._uploaded[known] = signature
        self._failed.pop(known, None)
        return True


def _stable_chunks(path: Path, signature: Signature) -> Iterator[bytes]:
    """The file's bytes; raises :class:`_FileChanged` at the end (so the store keeps
    nothing) when its size or modification time moved while it was read."""
    with open(path, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if (opened.st_size, opened.st_mtime_ns) != signature:
            raise _FileChanged(path)
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != signature:
        raise _FileChanged(path)
