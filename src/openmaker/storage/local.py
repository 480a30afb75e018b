"""The object store in a local directory: buckets are folders, objects are plain files.

Layout under ``root`` (``$OPENMAKER_HOME/storage``)::

    <bucket>/<key>                  user data only, browsable as ordinary files
    .openmaker/buckets/<bucket>.json    creation date and region
    .openmaker/meta/<bucket>/<hh>/<hash>.jsonl  per-key sidecar: ETag, content type ...
    .openmaker/overflow/<bucket>/<hh>/<hash>    keys that cannot be a plain path
    .openmaker/uploads/<bucket>/<upload-id>/    multipart state and parts
    .openmaker/tmp/                 temp files (same filesystem, so rename is atomic)
    .openmaker/locks/               per-key stripe lock files

A key is stored at its own path unless it cannot be one (an empty or ``.`` segment, a
folder marker ending in ``/``, a segment over 255 bytes, a reserved first segment, or a
file/directory clash such as ``a/b`` next to ``a/b/c``); those keys live in the overflow
area, addressed by a hash of the key, whose sidecar records the key itself.

A write streams the body into a temp file (computing its MD5), then, under the key's
stripe lock, appends the new version's entry to the key's sidecar and renames the data
into place. Sidecar entries name the data file version they describe (inode, size and a
unique mtime the writer sets), and older entries stay until the sidecar is compacted: a
reader that opened a data file picks the entry of exactly that version, with no lock, even
while a writer replaces the object. A data file with no matching entry (a crash between
the append and the rename, or a file copied in by hand) gets its metadata recomputed and
saved.

With ``fsync=False`` a process crash is still safe, but a power cut may lose recent
writes (a file may come back empty or short; its metadata is then recomputed to match).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import heapq
import itertools
import json
import os
import secrets
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from openmaker.core.errors import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooLarge,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
)
from openmaker.storage.base import (
    DEFAULT_CONTENT_TYPE,
    MAX_KEY_BYTES,
    MAX_PART_SIZE,
    MAX_SINGLE_PUT_SIZE,
    MIN_PART_SIZE,
    Body,
    BucketInfo,
    ListPage,
    ObjectInfo,
    ObjectReader,
    ObjectStore,
    PartInfo,
    PartsPage,
    UploadInfo,
)
from openmaker.storage.names import (
    body_chunks,
    bucket_name_problem,
    check_bucket_name,
    check_key,
    check_part_number,
    resolve_range,
)

__all__ = ["LocalObjectStore"]

_CHUNK = 1024 * 1024
_NAME_MAX = 255  # bytes in one path segment on Linux/macOS filesystems
# Keeps the store's own directory name unambiguous: a tree holding ``.openmaker`` is a store root.
_RESERVED_FIRST_SEGMENTS = frozenset({b".openmaker"})
_SYSTEM_DIR = b".openmaker"
_TMP_MAX_AGE_S = 24 * 3600
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
# Opening a FIFO someone left in a bucket must not block; regular files ignore the flag.
_O_READ_DATA = _O_READ | getattr(os, "O_NONBLOCK", 0)
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_O_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
# A sidecar is rewritten with its last few entries once it grows past this size.
_SIDECAR_COMPACT_BYTES = 8192
_SIDECAR_KEEP = 4
_MISSING = (FileNotFoundError, NotADirectoryError)
_json_decode = json.JSONDecoder().decode
_OBJECT, _PREFIX = 0, 1

_NO_SUCH_UPLOAD = (
    "The specified upload does not exist. The upload ID may be invalid, "
    "or the upload may have been aborted or completed."
)
_INVALID_PART = (
    "One or more of the specified parts could not be found.  The part may not have been "
    "uploaded, or the specified entity tag may not have matched the part's entity tag."
)


def _key_hash(key_bytes: bytes) -> bytes:
    return hashlib.blake2b(key_bytes, digest_size=16).hexdigest().encode()


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _quote(etag: str) -> str:
    return f'"{etag}"'


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    data = os.read(fd, 65536)
    if len(data) < 65536:
        return data
    chunks = [data]
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _md5_of_fd(fd: int, size: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _copy_fd(src: int, dst: int, count: int) -> None:
    """Copy ``count`` bytes from ``src``'s offset to ``dst``'s, in the kernel where it can."""
    remaining = count
    try:
        while remaining > 0:
            copied = os.copy_file_range(src, dst, min(remaining, 1 << 30))
            if copied == 0:
                break
            remaining -= copied
    except OSError as exc:
        # Not every filesystem (or kernel) can copy between these two files.
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while remaining > 0:
        chunk = os.read(src, min(_CHUNK, remaining))
        if not chunk:
            break
        _write_all(dst, chunk)
        remaining -= len(chunk)
    if remaining:
        raise OSError(errno.EIO, "the source file ended early while copying")


def _fsync_dir(path: bytes) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _match(sidecar: bytes | None, key: str, st: os.stat_result) -> dict | None:
    """The sidecar entry describing exactly this version of the data file."""
    if not sidecar:
        return None
    # Entries start with their version, so only the matching line needs parsing.
    version = b'{"i":%d,"s":%d,"m":%d,' % (st.st_ino, st.st_size, st.st_mtime_ns)
    end = len(sidecar)
    while (start := sidecar.rfind(version, 0, end)) != -1:
        if start == 0 or sidecar[start - 1] == 0x0A:  # at the start of a line
            stop = sidecar.find(b"\n", start)
            try:
                line = sidecar[start: stop if stop != -1 else len(sidecar)]
                entry = _json_decode(line.decode())
            except ValueError:  # torn by a crash mid-append
                entry = None
            if entry is not None and entry.get("k") == key:
                return entry
        end = start
    return None


def _sidecar_key(sidecar: bytes | None) -> str | None:
    """The key a sidecar belongs to (from its last intact entry)."""
    for line in reversed((sidecar or b"").split(b"\n")):
        if line:
            try:
                return json.loads(line)["k"]
            except (ValueError, KeyError, TypeError):
                continue
    return None


def _exchange_function() -> Callable[[bytes, bytes], int] | None:
    """A function swapping two paths atomically (Linux renameat2), returning an errno."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2

    def exchange(first: bytes, second: bytes) -> int:
        if renameat2(at_fdcwd, first, at_fdcwd, second, rename_exchange) == 0:
            return 0
        return ctypes.get_errno()

    return exchange


_exchange = _exchange_function()


def _rename_over(source: bytes, target: bytes) -> None:
    """``os.rename(source, target)``: atomically replace ``target``.

    When ``target`` is a regular file, swap the two and unlink the old one instead: ext4
    (auto_da_alloc) starts writing out the new file's data whenever a rename replaces a
    file, which costs hundreds of microseconds per overwrite and buys nothing when we
    fsync ourselves or were told not to.
    """
    global _exchange
    if _exchange is not None:
        try:
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            failure = _exchange(source, target)
            if failure == 0:
                os.unlink(source)  # now the previous version
                return
            if failure in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                _exchange = None  # the filesystem cannot swap: plain renames from now on
    os.rename(source, target)


def _versioned(st: os.stat_result, key: str, entry: dict) -> dict:
    """A sidecar entry: the data file version first (see _match), then the metadata."""
    return {"i": st.st_ino, "s": st.st_size, "m": st.st_mtime_ns, "k": key, **entry}


class _LocalReader(ObjectReader):
    """Reads one open file with ``pread``: the fd pins the version that was opened."""

    def __init__(self, fd: int, info: ObjectInfo, start: int, end: int) -> None:
        self._fd = fd
        self.info = info
        self.start = start
        self.end = end
        self._pos = start

    def read(self, size: int = -1) -> bytes:
        if self._fd < 0:
            raise ValueError("read from a closed object reader")
        remaining = self.end + 1 - self._pos
        if remaining <= 0:
            return b""
        want = remaining if size is None or size < 0 else min(size, remaining)
        data = os.pread(self._fd, want, self._pos)
        if 0 < len(data) < want:  # pread stops at about 2 GiB per call
            parts = [data]
            got = len(data)
            while got < want and (more := os.pread(self._fd, want - got, self._pos + got)):
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        self._pos += len(data)
        return data

    def fileno(self) -> int:
        """The open file, for ``sendfile``; bytes ``start..end`` are this reader's."""
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __del__(self) -> None:
        self.close()


class LocalObjectStore(ObjectStore):
    """S3 buckets and objects in a directory (see the module docstring for the layout).

    ``fsync`` makes every acknowledged write survive a power cut; ``min_part_size`` is the
    smallest size allowed for a multipart part other than the last (S3's 5 MiB by
    default); ``lock_stripes`` is the number of lock files keys are hashed onto.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fsync: bool = True,
        *,
        region: str = "us-east-1",
        min_part_size: int = MIN_PART_SIZE,
        lock_stripes: int = 64,
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.fsync = fsync
        self.region = region
        self.min_part_size = min_part_size
        self._root = os.fsencode(self.root)
        system = self._root + b"/" + _SYSTEM_DIR
        self._buckets = system + b"/buckets"
        self._meta = system + b"/meta"
        self._overflow = system + b"/overflow"
        self._uploads = system + b"/uploads"
        self._tmp = system + b"/tmp"
        self._locks = system + b"/locks"
        for path in (self._buckets, self._meta, self._overflow, self._uploads, self._tmp,
                     self._locks):
            os.makedirs(path, exist_ok=True)
        self._stripes = lock_stripes
        self._pid = os.getpid()
        self._lock_fds: list[int | None] = [None] * lock_stripes
        self._thread_locks = [threading.Lock() for _ in range(lock_stripes)]
        self._tmp_prefix = b""
        self._tmp_counter = itertools.count()
        self._clock_lock = threading.Lock()
        self._last_ns = 0
        self._valid_buckets: set[str] = set()
        self._reset_identity()
        self._remove_stale_temp_files()

    def close(self) -> None:
        """Close the lock files this store keeps open (reopened if the store is used again).

        Call it when no operation of this store is in progress: closing a lock file
        releases the lock held through it.
        """
        if self._pid != os.getpid():
            return  # a forked child's copies belong to its parent
        for stripe, fd in enumerate(self._lock_fds):
            if fd is not None:
                self._lock_fds[stripe] = None
                os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown, or __init__ failed part-way
            pass

    # -- process-level plumbing ----------------------------------------------------------
    def _reset_identity(self) -> None:
        self._pid = os.getpid()
        self._tmp_prefix = f"{self._pid}-{secrets.token_hex(4)}-".encode()

    def _after_fork(self) -> None:
        # A forked child shares the parent's lock-file descriptions (and so its flocks)
        # and may have copied a held thread lock: start over with its own.
        self._reset_identity()
        self._lock_fds = [None] * self._stripes
        self._thread_locks = [threading.Lock() for _ in range(self._stripes)]

    def _remove_stale_temp_files(self) -> None:
        cutoff = time.time() - _TMP_MAX_AGE_S
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                except OSError:
                    pass

    def _acquire(self, stripe: int) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        lock = self._thread_locks[stripe]
        lock.acquire()  # flock does not exclude other threads of this process
        try:
            fd = self._lock_fds[stripe]
            if fd is None:
                path = self._locks + b"/%02d" % stripe
                fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
                self._lock_fds[stripe] = fd
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            lock.release()
            raise

    def _release(self, stripe: int) -> None:
        fd = self._lock_fds[stripe]
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._thread_locks[stripe].release()

    def _stripe(self, key_hash: bytes) -> int:
        return int(key_hash[:8], 16) % self._stripes

    def _unique_ns(self) -> int:
        with self._clock_lock:
            now = time.time_ns()
            self._last_ns = now = max(now, self._last_ns + 1)
        return now

    def _temp_path(self) -> bytes:
        return self._tmp + b"/" + self._tmp_prefix + b"%d" % next(self._tmp_counter)

    # -- paths ----------------------------------------------------------------------------
    def _check_bucket(self, bucket: str) -> bytes:
        """The bucket's directory, which must exist (raises ``NoSuchBucket``)."""
        path = self._bucket_path(bucket)
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                return path
        except OSError:
            pass
        raise _no_such_bucket(bucket)

    def _bucket_path(self, bucket: str) -> bytes:
        if bucket not in self._valid_buckets:
            if bucket_name_problem(bucket) is not None:
                raise _no_such_bucket(bucket)  # such a bucket can never have been created
            if len(self._valid_buckets) > 10_000:
                self._valid_buckets.clear()
            self._valid_buckets.add(bucket)
        return self._root + b"/" + bucket.encode()

    def _plain_path(self, bucket_dir: bytes, kb: bytes) -> bytes | None:
        """Where the key lives as an ordinary file, or None if it must use the overflow."""
        if kb[-1:] == b"/" or len(bucket_dir) + len(kb) > 4000:
            return None
        segments = kb.split(b"/")
        if segments[0] in _RESERVED_FIRST_SEGMENTS:
            return None
        for segment in segments:
            if not segment or segment in (b".", b"..") or len(segment) > _NAME_MAX:
                return None
        return bucket_dir + b"/" + kb

    def _meta_path(self, bb: bytes, key_hash: bytes) -> bytes:
        return b"%s/%s/%s/%s.jsonl" % (self._meta, bb, key_hash[:2], key_hash)

    def _overflow_path(self, bb: bytes, key_hash: bytes) -> bytes:
        return b"%s/%s/%s/%s" % (self._overflow, bb, key_hash[:2], key_hash)

    # -- small file helpers ---------------------------------------------------------------
    def _read_json(self, path: bytes) -> dict | None:
        try:
            fd = os.open(path, _O_READ)
        except _MISSING:
            return None
        try:
            data = _read_all(fd)
        finally:
            os.close(fd)
        try:
            return json.loads(data)
        except ValueError:  # a torn write after a crash without fsync: treat as absent
            return None

    def _write_json(self, path: bytes, doc: dict) -> None:
        """Replace ``path`` atomically (temp file + rename)."""
        self._write_bytes(path, json.dumps(doc, separators=(",", ":")).encode())

    def _write_bytes(self, path: bytes, data: bytes) -> None:
        tmp = self._temp_path()
        fd = os.open(tmp, _O_NEW, 0o644)
        try:
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            try:
                _rename_over(tmp, path)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                _rename_over(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if self.fsync:
            _fsync_dir(os.path.dirname(path))

    def _read_sidecar(self, path: bytes) -> bytes | None:
        try:
            fd = os.open(path, _O_READ)
        except _MISSING:
            return None
        try:
            return _read_all(fd)
        finally:
            os.close(fd)

    def _append_entry(self, path: bytes, entry: dict) -> None:
        """Add a version's entry to a key's sidecar (caller holds the key's lock)."""
        # Each entry gets its own line even after a torn append left half a line behind.
        record = b"\n" + json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        try:
            fd = os.open(path, _O_APPEND, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, _O_APPEND, 0o644)
        try:
            _write_all(fd, record)
            size = os.lseek(fd, 0, os.SEEK_CUR)
            if self.fsync:
                os.fdatasync(fd)
                if size == len(record):  # a new sidecar: make its name durable too
                    _fsync_dir(os.path.dirname(path))
        finally:
            os.close(fd)
        if size > _SIDECAR_COMPACT_BYTES:
            lines = [line for line in self._read_sidecar(path).split(b"\n") if line]
            self._write_bytes(path, b"\n".join(lines[-_SIDECAR_KEEP:]) + b"\n")

    # -- writing data ---------------------------------------------------------------------
    def _spool(self, body: Body, limit: int) -> tuple[bytes, int, str, int]:
        """Stream ``body`` into a new temp file: (path, open fd, MD5 hex, size)."""
        path = self._temp_path()
        fd = os.open(path, _O_NEW, 0o666)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            size = 0
            for chunk in body_chunks(body):
                size += len(chunk)
                if size > limit:
                    raise EntityTooLarge(
                        "Your proposed upload exceeds the maximum allowed size",
                        ProposedSize=size, MaxSizeAllowed=limit,
                    )
                digest.update(chunk)
                _write_all(fd, chunk)
            return path, fd, digest.hexdigest(), size
        except BaseException:
            os.close(fd)
            _unlink_quietly(path)
            raise

    def _seal(self, fd: int) -> os.stat_result:
        """Stamp the temp file with a unique mtime, flush it, close it; its final stat."""
        ns = self._unique_ns()
        try:
            os.utime(fd, ns=(ns, ns))
            if self.fsync:
                os.fsync(fd)
            # Read back what the filesystem kept: some round timestamps.
            return os.fstat(fd)
        finally:
            os.close(fd)

    def _seal_or_discard(self, fd: int, tmp: bytes) -> os.stat_result:
        try:
            return self._seal(fd)
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def _commit(
        self,
        bucket: str,
        key: str,
        kb: bytes,
        tmp: bytes,
        st: os.stat_result,
        entry: dict,
        bucket_dir: bytes | None = None,
    ) -> ObjectInfo:
        """Publish the sealed temp file ``tmp`` as the object; removes ``tmp`` on failure."""
        bb = bucket.encode()
        key_hash = _key_hash(kb)
        stripe = self._stripe(key_hash)
        entry = _versioned(st, key, entry)
        try:
            if bucket_dir is None:
                bucket_dir = self._check_bucket(bucket)
            self._acquire(stripe)
            try:
                # The entry goes first: once the data is visible its entry already exists.
                self._append_entry(self._meta_path(bb, key_hash), entry)
                self._place(bucket, bucket_dir, bb, kb, key_hash, tmp)
            finally:
                self._release(stripe)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return _info(bucket, key, entry, st)

    def _place(
        self, bucket: str, bucket_dir: bytes, bb: bytes, kb: bytes, key_hash: bytes, tmp: bytes
    ) -> None:
        overflow = self._overflow_path(bb, key_hash)
        plain = self._plain_path(bucket_dir, kb)
        if plain is not None:
            for _attempt in range(16):
                try:
                    _rename_over(tmp, plain)
                except FileNotFoundError:
                    # A parent folder is missing (new, or just removed by a delete).
                    if not self._make_parents(bucket, bucket_dir, kb):
                        break
                    continue
                except NotADirectoryError:
                    break  # a parent is an object (``a/b`` exists, this is ``a/b/c``)
                except IsADirectoryError:
                    try:
                        os.rmdir(plain)  # only a leftover empty folder may be replaced
                    except OSError:
                        break  # ``a/b/...`` objects exist, this is ``a/b``
                    continue
                _unlink_quietly(overflow)
                if self.fsync:
                    _fsync_dir(os.path.dirname(plain))
                return
        try:
            _rename_over(tmp, overflow)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(overflow), exist_ok=True)
            _rename_over(tmp, overflow)
        if plain is not None:
            _unlink_quietly(plain)
        if self.fsync:
            _fsync_dir(os.path.dirname(overflow))

    def _make_parents(self, bucket: str, bucket_dir: bytes, kb: bytes) -> bool:
        """Create the key's parent folders; False when an object is in the way."""
        path = bucket_dir
        for segment in kb.split(b"/")[:-1]:
            path += b"/" + segment
            try:
                os.mkdir(path)
            except FileExistsError:
                if not os.path.isdir(path):
                    return False
            except FileNotFoundError:
                if not os.path.isdir(bucket_dir):
                    raise _no_such_bucket(bucket) from None
                return True  # a delete pruned a folder meanwhile: the caller tries again
            except NotADirectoryError:
                return False
        return True

    # -- reading --------------------------------------------------------------------------
    def _locate(
        self, bucket: str, kb: bytes, key_hash: bytes, want_fd: bool
    ) -> tuple[int, os.stat_result] | None:
        """The object's current data file: (fd or -1, stat), plain path before overflow."""
        bucket_dir = self._bucket_path(bucket)
        plain = self._plain_path(bucket_dir, kb)
        for path in (plain, self._overflow_path(bucket.encode(), key_hash)):
            if path is None:
                continue
            if want_fd:
                try:
                    fd = os.open(path, _O_READ_DATA)
                except _MISSING:
                    continue
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    return fd, st
                os.close(fd)
            else:
                try:
                    st = os.stat(path)
                except _MISSING:
                    continue
                if stat.S_ISREG(st.st_mode):
                    return -1, st
        return None

    def _current(self, bucket: str, key: str, kb: bytes, want_fd: bool) -> tuple[int, ObjectInfo]:
        key_hash = _key_hash(kb)
        found = self._locate(bucket, kb, key_hash, want_fd)
        if found is not None:
            fd, st = found
            entry = _match(self._read_sidecar(self._meta_path(bucket.encode(), key_hash)), key, st)
            if entry is not None:
                return fd, _info(bucket, key, entry, st)
            if fd >= 0:
                os.close(fd)
        else:
            self._check_bucket(bucket)
            raise NoSuchKey("The specified key does not exist.", Key=key, BucketName=bucket)
        # Rare: a writer replaced the object twice while we looked, a crash left the data
        # without its entry, or someone copied the file in by hand. Look again under the
        # key's lock, where data and sidecar agree or the entry must be rebuilt.
        stripe = self._stripe(key_hash)
        self._acquire(stripe)
        try:
            found = self._locate(bucket, kb, key_hash, True)
            if found is None:
                self._check_bucket(bucket)
                raise NoSuchKey("The specified key does not exist.", Key=key, BucketName=bucket)
            fd, st = found
            try:
                meta_path = self._meta_path(bucket.encode(), key_hash)
                entry = _match(self._read_sidecar(meta_path), key, st)
                if entry is None:
                    entry = _versioned(st, key, {"e": _md5_of_fd(fd, st.st_size)})
                    self._append_entry(meta_path, entry)
            except BaseException:
                os.close(fd)
                raise
        finally:
            self._release(stripe)
        if not want_fd:
            os.close(fd)
            fd = -1
        return fd, _info(bucket, key, entry, st)

    # -- buckets --------------------------------------------------------------------------
    def create_bucket(self, bucket: str, region: str | None = None) -> BucketInfo:
        check_bucket_name(bucket)
        path = self._bucket_path(bucket)
        try:
            os.mkdir(path)  # the atomic claim on the name
        except FileExistsError:
            raise BucketAlreadyOwnedByYou(
                "Your previous request to create the named bucket succeeded and you already "
                "own it.",
                BucketName=bucket,
            ) from None
        info = BucketInfo(bucket, datetime.now(UTC), region or self.region)
        self._write_json(
            self._buckets + b"/" + bucket.encode() + b".json",
            {"created": info.creation_date.isoformat(), "region": info.region},
        )
        if self.fsync:
            _fsync_dir(self._root)
        return info

    def head_bucket(self, bucket: str) -> BucketInfo:
        path = self._check_bucket(bucket)
        return self._bucket_info(bucket, path)

    def _bucket_info(self, bucket: str, path: bytes) -> BucketInfo:
        doc = self._read_json(self._buckets + b"/" + bucket.encode() + b".json")
        if doc is not None:
            return BucketInfo(bucket, datetime.fromisoformat(doc["created"]), doc["region"])
        # A folder made by hand: it is a bucket too, dated by the folder.
        return BucketInfo(bucket, _utc(os.stat(path).st_mtime_ns), self.region)

    def list_buckets(self) -> list[BucketInfo]:
        buckets = []
        with os.scandir(self._root) as entries:
            for entry in entries:
                name = os.fsdecode(entry.name)
                if entry.is_dir() and bucket_name_problem(name) is None:
                    try:
                        buckets.append(self._bucket_info(name, os.fsencode(entry.path)))
                    except FileNotFoundError:
                        pass  # deleted while listing
        buckets.sort(key=lambda info: info.name)
        return buckets

    def delete_bucket(self, bucket: str) -> None:
        path = self._check_bucket(bucket)
        bb = bucket.encode()
        not_empty = BucketNotEmpty("The bucket you tried to delete is not empty", BucketName=bucket)
        if (_has_file(path) or _has_file(self._overflow + b"/" + bb)
                or _has_entry(self._uploads + b"/" + bb)):
            raise not_empty
        # Bottom-up rmdir, never rmtree: an object written meanwhile makes it fail.
        for dirpath, _dirs, _files in os.walk(path, topdown=False):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise not_empty from None
                raise
        for area in (self._meta, self._overflow, self._uploads):
            shutil.rmtree(area + b"/" + bb, ignore_errors=True)
        _unlink_quietly(self._buckets + b"/" + bb + b".json")
        if self.fsync:
            _fsync_dir(self._root)

    # -- objects --------------------------------------------------------------------------
    def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ObjectInfo:
        kb = check_key(key)
        bucket_dir = self._check_bucket(bucket)  # fail before reading a large body
        tmp, fd, md5, _size = self._spool(body, MAX_SINGLE_PUT_SIZE)
        st = self._seal_or_discard(fd, tmp)
        entry = _entry(md5, content_type, metadata, headers, None)
        return self._commit(bucket, key, kb, tmp, st, entry, bucket_dir)

    def open_object(
        self, bucket: str, key: str, byte_range: tuple[int | None, int | None] | None = None
    ) -> ObjectReader:
        kb = check_key(key)
        fd, info = self._current(bucket, key, kb, True)
        try:
            start, end = resolve_range(info.size, byte_range)
        except BaseException:
            os.close(fd)
            raise
        return _LocalReader(fd, info, start, end)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        kb = check_key(key)
        return self._current(bucket, key, kb, False)[1]

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The file holding the object when it is stored at its own path (to hard-link or
        mount it), else None. Don't write to it: overwrite the object instead."""
        kb = check_key(key)
        plain = self._plain_path(self._bucket_path(bucket), kb)
        if plain is not None and os.path.isfile(plain):
            return Path(os.fsdecode(plain))
        return None

    def delete_object(self, bucket: str, key: str) -> None:
        kb = check_key(key)
        bucket_dir = self._check_bucket(bucket)
        bb = bucket.encode()
        key_hash = _key_hash(kb)
        plain = self._plain_path(bucket_dir, kb)
        stripe = self._stripe(key_hash)
        self._acquire(stripe)
        try:
            removed_plain = plain is not None and _unlink_quietly(plain)
            _unlink_quietly(self._overflow_path(bb, key_hash))
            _unlink_quietly(self._meta_path(bb, key_hash))
        finally:
            self._release(stripe)
        if removed_plain:
            parent = os.path.dirname(plain)
            if self.fsync:
                _fsync_dir(parent)
            # Prune folders the delete emptied, as S3 has no folders to leave behind.
            while len(parent) > len(bucket_dir):
                try:
                    os.rmdir(parent)
                except OSError:
                    break
                parent = os.path.dirname(parent)

    def copy_object(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ObjectInfo:
        kb = check_key(key)
        source_kb = check_key(source_key)
        if ((source_bucket, source_key) == (bucket, key)
                and content_type is None and metadata is None and headers is None):
            raise InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to "
                "itself without changing the object's metadata, storage class, website "
                "redirect location or encryption attributes."
            )
        self._check_bucket(bucket)
        fd, source = self._current(source_bucket, source_key, source_kb, True)
        tmp = self._temp_path()
        try:
            out = os.open(tmp, _O_NEW, 0o666)
            try:
                if source.parts_count is None:
                    _copy_fd(fd, out, source.size)
                    md5 = source.etag.strip('"')
                else:
                    # A copy is a single-part object: its ETag is the MD5 of its data.
                    digest = hashlib.md5(usedforsecurity=False)
                    offset = 0
                    while chunk := os.pread(fd, _CHUNK, offset):
                        digest.update(chunk)
                        _write_all(out, chunk)
                        offset += len(chunk)
                    md5 = digest.hexdigest()
            except BaseException:
                os.close(out)
                _unlink_quietly(tmp)
                raise
        finally:
            os.close(fd)
        st = self._seal_or_discard(out, tmp)
        entry = _entry(
            md5,
            source.content_type if content_type is None else content_type,
            source.metadata if metadata is None else metadata,
            source.headers if headers is None else headers,
            None,
        )
        return self._commit(bucket, key, kb, tmp, st, entry)

    # -- listing --------------------------------------------------------------------------
    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str | None = None,
        start_after: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        bucket_dir = self._check_bucket(bucket)
        if max_keys <= 0:
            return ListPage([], [], False)
        pb = prefix.encode()
        db = delimiter.encode() if delimiter else None
        after = start_after.encode() if start_after else b""
        # Start at the deepest folder every matching plain key must be under.
        base = pb[: pb.rfind(b"/") + 1]
        if not base:
            plain: Iterator = self._walk(bucket_dir, b"", pb, db, after)
        elif self._plain_path(bucket_dir, base[:-1]) is not None:
            plain = self._walk(bucket_dir + b"/" + base[:-1], base, pb, db, after)
        else:
            plain = iter(())  # e.g. prefix "a//b" or "../": no plain key can start so
        overflow = self._overflow_items(bucket.encode(), pb, db, after)
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = None
        truncated = False
        for name, kind, payload in heapq.merge(plain, overflow, key=lambda item: item[0]):
            if name == last:
                continue  # the same prefix from several folders, or a key mid-move
            try:
                text = name.decode("utf-8")
            except UnicodeDecodeError:
                continue  # a file copied in by hand whose name is no S3 key
            if kind == _PREFIX:
                item: ObjectInfo | str = text
            else:
                item = self._listed_info(bucket, text, name, payload)
                if item is None:
                    continue
            if len(objects) + len(prefixes) == max_keys:
                truncated = True
                break
            if kind == _PREFIX:
                prefixes.append(text)
            else:
                objects.append(item)  # type: ignore[arg-type]
            last = name
        next_marker = last.decode("utf-8") if truncated and last is not None else None
        return ListPage(objects, prefixes, truncated, next_marker)

    def _walk(
        self, path: bytes, rel: bytes, pb: bytes, db: bytes | None, after: bytes
    ) -> Iterator[tuple[bytes, int, object]]:
        """Plain keys under folder ``path`` (key prefix ``rel``) in S3 order, rolled up
        into common prefixes where a delimiter says so."""
        entries = []
        try:
            with os.scandir(path) as scan:
                for entry in scan:
                    if not rel and entry.name in _RESERVED_FIRST_SEGMENTS:
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            # A folder sorts as its name plus '/', like the keys inside it.
                            entries.append((rel + entry.name + b"/", True, entry))
                        elif entry.is_file():
                            entries.append((rel + entry.name, False, entry))
                    except OSError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            return
        entries.sort(key=lambda item: item[0])
        for name, is_dir, entry in entries:
            if is_dir:
                if not (name.startswith(pb) or pb.startswith(name)):
                    continue
                if after and name < after and not after.startswith(name):
                    continue  # every key in this folder sorts before start_after
                if db is not None and name.startswith(pb):
                    cut = name.find(db, len(pb))
                    if cut != -1 and cut + len(db) <= len(name):
                        common = name[: cut + len(db)]
                        # One rolled-up prefix for the whole folder, without walking it.
                        if common > after and _has_file(entry.path):
                            yield common, _PREFIX, None
                        continue
                yield from self._walk(entry.path, name, pb, db, after)
            else:
                if not name.startswith(pb) or name <= after or len(name) > MAX_KEY_BYTES:
                    continue
                if db is not None:
                    cut = name.find(db, len(pb))
                    if cut != -1:
                        common = name[: cut + len(db)]
                        if common > after:
                            yield common, _PREFIX, None
                        continue
                yield name, _OBJECT, entry

    def _overflow_items(
        self, bb: bytes, pb: bytes, db: bytes | None, after: bytes
    ) -> list[tuple[bytes, int, object]]:
        items = []
        top = self._overflow + b"/" + bb
        try:
            shards = sorted(os.listdir(top))
        except FileNotFoundError:
            return items
        for shard in shards:
            try:
                names = os.listdir(top + b"/" + shard)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for key_hash in names:
                sidecar = self._read_sidecar(self._meta_path(bb, key_hash))
                key = _sidecar_key(sidecar)
                if key is None:
                    continue  # the data of a half-finished delete
                kb = key.encode()
                if not kb.startswith(pb) or kb <= after:
                    continue
                if db is not None:
                    cut = kb.find(db, len(pb))
                    if cut != -1:
                        common = kb[: cut + len(db)]
                        if common > after:
                            items.append((common, _PREFIX, None))
                        continue
                items.append((kb, _OBJECT, (top + b"/" + shard + b"/" + key_hash, sidecar)))
        items.sort(key=lambda item: item[0])
        return items

    def _listed_info(self, bucket: str, key: str, kb: bytes, payload: object) -> ObjectInfo | None:
        try:
            if isinstance(payload, tuple):
                path, sidecar = payload
                st = os.stat(path)
            else:
                st = payload.stat()  # type: ignore[attr-defined]
                sidecar = self._read_sidecar(self._meta_path(bucket.encode(), _key_hash(kb)))
            entry = _match(sidecar, key, st)
            if entry is not None:
                return _info(bucket, key, entry, st)
            return self._current(bucket, key, kb, False)[1]
        except (NoSuchKey, FileNotFoundError):
            return None  # deleted while listing

    # -- multipart uploads ----------------------------------------------------------------
    def _upload_dir(self, bucket: str, key: str, upload_id: str) -> tuple[bytes, dict]:
        self._check_bucket(bucket)
        if (not isinstance(upload_id, str) or not 0 < len(upload_id) <= 128
                or not upload_id.replace("-", "").replace("_", "").isalnum()
                or not upload_id.isascii()):
            raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload_id)
        path = b"%s/%s/%s" % (self._uploads, bucket.encode(), upload_id.encode())
        doc = self._read_json(path + b"/upload.json")
        if doc is None or doc["key"] != key:
            raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload_id)
        return path, doc

    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> UploadInfo:
        check_key(key)
        self._check_bucket(bucket)
        upload_id = secrets.token_urlsafe(36)
        path = b"%s/%s/%s" % (self._uploads, bucket.encode(), upload_id.encode())
        os.makedirs(path)
        info = UploadInfo(
            bucket, key, upload_id, datetime.now(UTC),
            content_type or DEFAULT_CONTENT_TYPE,
            _lower(metadata), _lower(headers),
        )
        self._write_json(path + b"/upload.json", {
            "key": key, "initiated": info.initiated.isoformat(), "t": info.content_type,
            "u": info.metadata, "h": info.headers,
        })
        return info

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> PartInfo:
        check_part_number(part_number)
        path, _doc = self._upload_dir(bucket, key, upload_id)
        tmp, fd, md5, _size = self._spool(body, MAX_PART_SIZE)
        st = self._seal_or_discard(fd, tmp)
        part = path + b"/%05d" % part_number
        try:
            _rename_over(tmp, part)
        except FileNotFoundError:
            _unlink_quietly(tmp)
            raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload_id) from None
        except BaseException:
            _unlink_quietly(tmp)
            raise
        # Written after the part: a reader that sees the new part with the old digest
        # notices the version mismatch and recomputes (see _part_md5).
        try:
            self._write_json(part + b".md5", _part_doc(st, md5))
        except FileNotFoundError:
            raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload_id) from None
        return PartInfo(part_number, st.st_size, _quote(md5), _utc(st.st_mtime_ns))

    def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        source_bucket: str,
        source_key: str,
        byte_range: tuple[int, int] | None = None,
    ) -> PartInfo:
        check_part_number(part_number)
        self._upload_dir(bucket, key, upload_id)
        with self.open_object(source_bucket, source_key, byte_range) as reader:
            return self.upload_part(bucket, key, upload_id, part_number, reader.iter_chunks())

    def _part_md5(self, part: bytes, fd: int, st: os.stat_result) -> str:
        doc = self._read_json(part + b".md5")
        if (doc is not None and doc["i"] == st.st_ino and doc["s"] == st.st_size
                and doc["m"] == st.st_mtime_ns):
            return doc["e"]
        md5 = _md5_of_fd(fd, st.st_size)
        try:
            self._write_json(part + b".md5", _part_doc(st, md5))
        except FileNotFoundError:
            pass  # aborted meanwhile
        return md5

    def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number_marker: int = 0,
        max_parts: int = 1000,
    ) -> PartsPage:
        path, _doc = self._upload_dir(bucket, key, upload_id)
        numbers = sorted(
            int(name) for name in os.listdir(path) if name.isdigit() and int(name) > 0
        )
        numbers = [n for n in numbers if n > part_number_marker]
        page, rest = numbers[: max(0, max_parts)], numbers[max(0, max_parts):]
        parts = []
        for number in page:
            part = path + b"/%05d" % number
            try:
                fd = os.open(part, _O_READ)
            except FileNotFoundError:
                continue
            try:
                st = os.fstat(fd)
                md5 = self._part_md5(part, fd, st)
            finally:
                os.close(fd)
            parts.append(PartInfo(number, st.st_size, _quote(md5), _utc(st.st_mtime_ns)))
        truncated = bool(rest)
        return PartsPage(parts, truncated, parts[-1].part_number if truncated and parts else None)

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        kb = check_key(key)
        path, doc = self._upload_dir(bucket, key, upload_id)
        if not parts:
            raise MalformedXML(
                "The XML you provided was not well-formed or did not validate against our "
                "published schema"
            )
        for (previous, _), (number, _) in itertools.pairwise(parts):
            if number <= previous:
                raise InvalidPartOrder(
                    "The list of parts was not in ascending order. Parts must be ordered by "
                    "part number.",
                    UploadId=upload_id,
                )
        # Check every part before copying any byte.
        for index, (number, etag) in enumerate(parts):
            part = path + b"/%05d" % number
            size = self._verified_part(part, number, etag, upload_id)[1].st_size
            if index < len(parts) - 1 and size < self.min_part_size:
                raise EntityTooSmall(
                    "Your proposed upload is smaller than the minimum allowed size",
                    ProposedSize=size, MinSizeAllowed=self.min_part_size,
                    PartNumber=number, ETag=etag,
                )
        tmp = self._temp_path()
        out = os.open(tmp, _O_NEW, 0o666)
        try:
            digests = bytearray()
            for number, etag in parts:
                part = path + b"/%05d" % number
                fd, st, md5 = self._verified_part(part, number, etag, upload_id, keep_open=True)
                try:
                    _copy_fd(fd, out, st.st_size)
                finally:
                    os.close(fd)
                digests += bytes.fromhex(md5)
        except BaseException:
            os.close(out)
            _unlink_quietly(tmp)
            raise
        st = self._seal_or_discard(out, tmp)
        etag = f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"
        entry = _entry(etag, doc["t"], doc["u"], doc["h"], len(parts))
        info = self._commit(bucket, key, kb, tmp, st, entry)
        shutil.rmtree(path, ignore_errors=True)
        return info

    def _verified_part(
        self, part: bytes, number: int, etag: str, upload_id: str, keep_open: bool = False
    ) -> tuple[int, os.stat_result, str]:
        try:
            fd = os.open(part, _O_READ)
        except FileNotFoundError:
            raise InvalidPart(
                _INVALID_PART, UploadId=upload_id, PartNumber=number, ETag=etag
            ) from None
        try:
            st = os.fstat(fd)
            md5 = self._part_md5(part, fd, st)
            if md5 != etag.strip('"'):
                raise InvalidPart(_INVALID_PART, UploadId=upload_id, PartNumber=number, ETag=etag)
        except BaseException:
            os.close(fd)
            raise
        if not keep_open:
            os.close(fd)
            fd = -1
        return fd, st, md5

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        path, _doc = self._upload_dir(bucket, key, upload_id)
        # Rename first so a concurrent part upload cannot land in a half-removed folder.
        doomed = self._temp_path()
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            raise NoSuchUpload(_NO_SUCH_UPLOAD, UploadId=upload_id) from None
        shutil.rmtree(doomed, ignore_errors=True)

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        self._check_bucket(bucket)
        top = self._uploads + b"/" + bucket.encode()
        try:
            names = os.listdir(top)
        except FileNotFoundError:
            return []
        uploads = []
        for name in names:
            doc = self._read_json(top + b"/" + name + b"/upload.json")
            if doc is None or not doc["key"].startswith(prefix):
                continue
            uploads.append(UploadInfo(
                bucket, doc["key"], name.decode(), datetime.fromisoformat(doc["initiated"]),
                doc["t"], doc["u"], doc["h"],
            ))
        uploads.sort(key=lambda u: (u.key.encode(), u.initiated))
        return uploads


def _no_such_bucket(bucket: str) -> NoSuchBucket:
    return NoSuchBucket("The specified bucket does not exist", BucketName=bucket)


def _unlink_quietly(path: bytes) -> bool:
    try:
        os.unlink(path)
        return True
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def _has_file(path: bytes) -> bool:
    """Whether any regular file lies under ``path`` (stops at the first one)."""
    try:
        with os.scandir(path) as scan:
            folders = []
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file():
                    return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(_has_file(folder) for folder in folders)


def _has_entry(path: bytes) -> bool:
    try:
        with os.scandir(path) as scan:
            return next(scan, None) is not None
    except (FileNotFoundError, NotADirectoryError):
        return False


def _lower(mapping: dict[str, str] | None) -> dict[str, str]:
    return {name.lower(): value for name, value in mapping.items()} if mapping else {}


def _entry(
    etag: str,
    content_type: str | None,
    metadata: dict[str, str] | None,
    headers: dict[str, str] | None,
    parts: int | None,
) -> dict:
    entry: dict = {"e": etag}
    if content_type and content_type != DEFAULT_CONTENT_TYPE:
        entry["t"] = content_type
    if metadata:
        entry["u"] = _lower(metadata)
    if headers:
        entry["h"] = _lower(headers)
    if parts is not None:
        entry["p"] = parts
    return entry


def _info(bucket: str, key: str, entry: dict, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=key,
        size=st.st_size,
        etag=_quote(entry["e"]),
        last_modified=_utc(st.st_mtime_ns),
        content_type=entry.get("t", DEFAULT_CONTENT_TYPE),
        metadata=entry.get("u") or {},  # entries are parsed afresh per call: no copy
        headers=entry.get("h") or {},
        parts_count=entry.get("p"),
    )


def _part_doc(st: os.stat_result, md5: str) -> dict:
    return {"i": st.st_ino, "s": st.st_size, "m": st.st_mtime_ns, "e": md5}
