"""Delivering a training job's input channels to one instance: File, Pipe and FastFile.

Follows ``reference/platform.md`` section 2.3:

* Which objects a channel holds: ``S3Prefix`` (every object whose key starts with the URI's
  key, a plain key prefix, folder markers ending in ``/`` excluded), ``ManifestFile`` (a JSON
  ``[{"prefix": "s3://..."}, "rel/key", ...]``) or ``AugmentedManifestFile`` (JSON Lines whose
  ``AttributeNames`` are delivered, one record per attribute).
* ``ShuffleConfig.Seed`` shuffles that list, reproducibly for a (seed, epoch); in Pipe mode it
  is reshuffled every epoch, so with ``ShardedByS3Key`` the shard assignment changes too.
* ``ShardedByS3Key`` deals the list round-robin: instance ``i`` of ``n`` (1-based, as in
  ``algo-<i>``) gets items ``i-1, i-1+n, ...``. SageMaker only documents "each host gets about
  1/N of the objects; hosts beyond the object count get nothing", which this satisfies; whether
  SageMaker deals round-robin or in contiguous runs is unverified.
* File mode copies objects to ``input/data/<channel>/<key relative to the prefix's folder>``,
  byte for byte: ``CompressionType`` and ``RecordWrapperType`` apply to Pipe mode only.
* Pipe mode streams into the FIFO ``input/data/<channel>_<epoch>`` while the job reads: Gzip
  objects are decompressed on the fly and ``RecordWrapperType: RecordIO`` frames each object
  (each augmented-manifest attribute) as one RecordIO record, as SageMaker does. When epoch
  ``e`` has been read to the end (or closed early) its FIFO goes away and ``<channel>_<e+1>``
  appears.
* FastFile mode (no FUSE here): each object is a FIFO at its File-mode path that streams the
  object from the store each time it is opened, so nothing is fetched before a read. See
  :class:`FastFileChannel` for what that cannot do.

Everything streams in bounded chunks and a delivery stops promptly on ``stop()``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import random
import select
import selectors
import struct
import termios
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmaker.core.errors import ValidationException
from openmaker.storage.base import ObjectStore
from openmaker.storage.uri import S3Uri
from openmaker.training.contract import InstanceLayout, fifo_path

CHUNK_SIZE = 256 * 1024
_DRAIN_POLL_SECONDS = 0.001
_POLL_SECONDS = 0.02  # how often waiting FIFOs are checked for a reader, and stop for
_PUMP_BUDGET = 4 * 1024 * 1024  # bytes written to one FIFO before serving the others
_PIPE_SIZE = 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_MAX_RECORD_LENGTH = (1 << 29) - 1  # formats.recordio.MAX_RECORD_LENGTH, without its imports


@dataclass(frozen=True)
class ObjectRef:
    """One item a channel delivers: an object, or one line of an augmented manifest.

    ``relative_path`` is where File and FastFile mode put the object under
    ``input/data/<channel>/``. For a manifest line, ``bucket``/``key`` name the manifest,
    ``line`` its 1-based line and ``attributes`` the selected ``(name, value)`` pairs.
    """

    bucket: str
    key: str
    relative_path: str
    size: int | None = None
    line: int | None = None
    attributes: tuple[tuple[str, Any], ...] | None = None

    @property
    def uri(self) -> str:
        return str(S3Uri(self.bucket, self.key))


@dataclass(frozen=True)
class ChannelSpec:
    """The delivery options of one ``InputDataConfig`` entry, defaults filled in."""

    name: str
    uri: str
    data_type: str = "S3Prefix"
    distribution: str = "FullyReplicated"
    attribute_names: tuple[str, ...] = ()
    input_mode: str = "File"
    content_type: str | None = None
    compression: str = "None"
    record_wrapper: str = "None"
    seed: int | None = None

    @classmethod
    def from_config(cls, channel: Mapping[str, Any], job_input_mode: str = "File") -> ChannelSpec:
        """Read a CreateTrainingJob ``InputDataConfig`` entry; the channel's ``InputMode``
        overrides the job's ``TrainingInputMode``."""
        name = channel.get("ChannelName") or ""
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if not source or not source.get("S3Uri"):
            raise ValidationException(
                f"InputDataConfig channel {name!r} needs DataSource.S3DataSource.S3Uri "
                "(file-system data sources are not delivered by this module)"
            )
        shuffle = channel.get("ShuffleConfig")
        return cls(
            name=name,
            uri=source["S3Uri"],
            data_type=source.get("S3DataType") or "S3Prefix",
            distribution=source.get("S3DataDistributionType") or "FullyReplicated",
            attribute_names=tuple(source.get("AttributeNames") or ()),
            input_mode=channel.get("InputMode") or job_input_mode,
            content_type=channel.get("ContentType"),
            compression=channel.get("CompressionType") or "None",
            record_wrapper=channel.get("RecordWrapperType") or "None",
            seed=None if shuffle is None else int(shuffle["Seed"]),
        )


# -- which objects --------------------------------------------------------------------------
def _no_objects(spec: ChannelSpec) -> ValidationException:
    return ValidationException(
        f'No S3 objects found under S3 URL "{spec.uri}" given in input data source '
        f"(channel {spec.name!r}). Please ensure that the bucket exists in the selected region, "
        "that objects exist under that S3 prefix, and that the role has read access to them."
    )


def _folder_of(key: str) -> str:
    """The part of a key prefix up to and including its last ``/``: what File mode strips."""
    return key[: key.rfind("/") + 1]


def _list_prefix(store: ObjectStore, bucket: str, prefix: str) -> Iterator[tuple[str, int]]:
    marker: str | None = None
    while True:
        page = store.list_objects(bucket, prefix=prefix, start_after=marker)
        for info in page.objects:
            yield info.key, info.size
        if not page.is_truncated or not page.next_marker:
            return
        marker = page.next_marker


def _manifest_entries(store: ObjectStore, spec: ChannelSpec, uri: S3Uri) -> list[ObjectRef]:
    try:
        manifest = json.loads(store.get_object(uri.bucket, uri.key))
    except ValueError as exc:
        raise ValidationException(
            f"the manifest {spec.uri} of channel {spec.name!r} is not valid JSON: {exc}"
        ) from None
    if (
        not isinstance(manifest, list)
        or not manifest
        or not isinstance(manifest[0], dict)
        or not isinstance(manifest[0].get("prefix"), str)
        or not all(isinstance(entry, str) and entry for entry in manifest[1:])
    ):
        raise ValidationException(
            f"the manifest {spec.uri} of channel {spec.name!r} must be a JSON list "
            '[{"prefix": "s3://bucket/prefix/"}, "relative/key", ...]'
        )
    prefix = S3Uri.parse(manifest[0]["prefix"])
    base = _folder_of(prefix.key)
    refs = []
    for entry in manifest[1:]:
        key = prefix.key + entry
        refs.append(ObjectRef(prefix.bucket, key, key[len(base):]))
    return refs


def _augmented_lines(store: ObjectStore, spec: ChannelSpec, uri: S3Uri) -> list[ObjectRef]:
    if not spec.attribute_names:
        raise ValidationException(
            f"channel {spec.name!r} uses an AugmentedManifestFile: "
            "S3DataSource.AttributeNames must list the attributes to deliver (1-16 names)"
        )
    refs = []
    with store.open_object(uri.bucket, uri.key) as reader:
        for number, line in enumerate(_lines(reader.iter_chunks(CHUNK_SIZE)), start=1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except ValueError as exc:
                raise ValidationException(
                    f"line {number} of the augmented manifest {spec.uri} (channel "
                    f"{spec.name!r}) is not valid JSON: {exc}"
                ) from None
            if not isinstance(document, dict):
                raise ValidationException(
                    f"line {number} of the augmented manifest {spec.uri} must be a JSON object"
                )
            missing = [name for name in spec.attribute_names if name not in document]
            if missing:
                raise ValidationException(
                    f"line {number} of the augmented manifest {spec.uri} (channel "
                    f"{spec.name!r}) has no attribute {missing[0]!r} named in AttributeNames"
                )
            attributes = tuple((name, document[name]) for name in spec.attribute_names)
            refs.append(ObjectRef(uri.bucket, uri.key, "", line=number, attributes=attributes))
    return refs


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        yield from whole
    if rest:
        yield rest


def list_channel_objects(store: ObjectStore, spec: ChannelSpec) -> list[ObjectRef]:
    """Every item of the channel in delivery order (keys in byte order for ``S3Prefix``,
    manifest order otherwise), before shuffling and sharding; none raises the error
    SageMaker gives."""
    uri = S3Uri.parse(spec.uri)
    if spec.data_type == "S3Prefix":
        base = _folder_of(uri.key)
        refs = [
            ObjectRef(uri.bucket, key, key[len(base):], size)
            for key, size in _list_prefix(store, uri.bucket, uri.key)
            if not key.endswith("/")
        ]
    elif spec.data_type == "ManifestFile":
        refs = _manifest_entries(store, spec, uri)
    elif spec.data_type == "AugmentedManifestFile":
        refs = _augmented_lines(store, spec, uri)
    else:
        raise ValidationException(
            f"channel {spec.name!r}: S3DataType {spec.data_type!r} is not supported; "
            "use S3Prefix, ManifestFile or AugmentedManifestFile"
        )
    if not refs:
        raise _no_objects(spec)
    return refs


def epoch_objects(
    objects: list[ObjectRef],
    spec: ChannelSpec,
    *,
    epoch: int = 0,
    instance_index: int = 1,
    instance_count: int = 1,
) -> list[ObjectRef]:
    """The items instance ``instance_index`` (1-based) gets in ``epoch``: shuffled with
    ``ShuffleConfig.Seed`` for that epoch, then dealt round-robin under ``ShardedByS3Key``."""
    if not 1 <= instance_index <= instance_count:
        raise ValueError(
            f"instance_index must be 1..{instance_count} (algo-1 is 1), got {instance_index}"
        )
    items = list(objects)
    if spec.seed is not None:
        # A string seed is hashed with SHA-512 by random, so it is stable across runs.
        random.Random(f"{spec.seed}:{epoch}").shuffle(items)
    if spec.distribution == "ShardedByS3Key":
        items = items[instance_index - 1 :: instance_count]
    elif spec.distribution != "FullyReplicated":
        raise ValidationException(
            f"channel {spec.name!r}: S3DataDistributionType {spec.distribution!r} is not "
            "valid; use FullyReplicated or ShardedByS3Key"
        )
    return items


def resolve_channel_objects(
    store: ObjectStore,
    channel: Mapping[str, Any],
    *,
    instance_index: int = 1,
    instance_count: int = 1,
    epoch: int = 0,
) -> list[ObjectRef]:
    """The items of one ``InputDataConfig`` entry that instance ``instance_index``
    (1-based, ``algo-<index>``) of ``instance_count`` receives in ``epoch``."""
    spec = ChannelSpec.from_config(channel)
    return epoch_objects(
        list_channel_objects(store, spec),
        spec,
        epoch=epoch,
        instance_index=instance_index,
        instance_count=instance_count,
    )


# -- File mode ------------------------------------------------------------------------------
def _local_path(directory: Path, ref: ObjectRef) -> Path:
    parts = ref.relative_path.split("/")
    if (
        not ref.relative_path
        or ref.relative_path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or "\0" in ref.relative_path
    ):
        raise ValidationException(
            f"object {ref.uri} cannot be delivered as a file: its path under the channel, "
            f"{ref.relative_path!r}, has an empty, '.' or '..' segment"
        )
    path = directory.joinpath(*parts)
    if not path.resolve().is_relative_to(directory.resolve()):
        raise ValidationException(f"object {ref.uri} would be written outside {directory}")
    return path


def materialise(
    store: ObjectStore, objects: Iterable[ObjectRef], layout: InstanceLayout, channel: str
) -> int:
    """File mode: copy each object to ``input/data/<channel>/<relative path>``, streaming
    and byte for byte (no decompression, as in SageMaker). Returns the bytes copied."""
    directory = layout.channel_dir(channel)
    directory.mkdir(parents=True, exist_ok=True)
    copied = 0
    for ref in objects:
        if ref.attributes is not None:
            raise ValidationException(
                f"channel {channel!r}: AugmentedManifestFile data is delivered in Pipe mode "
                "only; set InputMode to Pipe"
            )
        path = _local_path(directory, ref)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ValidationException(
                f"object {ref.uri} cannot be delivered: a file already stands where its "
                f"folder {path.parent.relative_to(directory)} would be"
            ) from None
        partial = path.with_name(f".{path.name}.partial")
        with store.open_object(ref.bucket, ref.key) as reader, open(partial, "wb") as file:
            for chunk in reader.iter_chunks(CHUNK_SIZE):
                file.write(chunk)
                copied += len(chunk)
        try:
            os.replace(partial, path)
        except IsADirectoryError:
            partial.unlink()
            raise ValidationException(
                f"object {ref.uri} cannot be delivered: a folder already stands at "
                f"{path.relative_to(directory)}"
            ) from None
    return copied


# -- Pipe-mode byte streams ----------------------------------------------------------------
def _gunzip(chunks: Iterable[bytes], name: str) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream, never holding more than a chunk."""
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    fed = False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                fed = True
                out = decompressor.decompress(data, CHUNK_SIZE)
                if out:
                    yield out
                if decompressor.eof:
                    data = decompressor.unused_data
                    decompressor = zlib.decompressobj(_GZIP_WBITS)
                    fed = False
                else:
                    data = decompressor.unconsumed_tail
        while fed and not decompressor.eof:
            out = decompressor.decompress(b"", CHUNK_SIZE) or decompressor.flush()
            if not out:
                break
            yield out
    except zlib.error as exc:
        raise ValueError(
            f"{name} is not valid gzip data (CompressionType is Gzip): {exc}"
        ) from None
    if fed and not decompressor.eof:
        raise ValueError(f"{name} ends in the middle of a gzip stream (CompressionType is Gzip)")


@dataclass
class FileSpan:
    """Bytes ``offset`` .. ``offset + length`` of an open file, which the FIFO server
    splices into the pipe in the kernel instead of copying them through Python."""

    fd: int
    offset: int
    length: int


def _object_body(store: ObjectStore, bucket: str, key: str, gzip: bool,
                 spans: bool = False) -> Iterator[bytes | FileSpan]:
    """The object's bytes in chunks; with ``spans``, an uncompressed object the store
    keeps in a local file comes as one :class:`FileSpan` of that file instead."""
    reader = store.open_object(bucket, key)
    try:
        fileno = getattr(reader, "fileno", None)
        if spans and not gzip and fileno is not None and hasattr(os, "splice"):
            yield FileSpan(fileno(), reader.start, reader.length)
            return
        chunks = reader.iter_chunks(CHUNK_SIZE)
        if gzip:
            yield from _gunzip(chunks, str(S3Uri(bucket, key)))
        else:
            yield from chunks
    finally:
        reader.close()


def _framed_object(store: ObjectStore, bucket: str, key: str, gzip: bool) -> Iterator[bytes]:
    """One object as one RecordIO record, streamed; a gzip object is decompressed twice
    (once to learn the record length) rather than held in memory."""
    from openmaker.formats.recordio import RECORDIO_MAGIC

    name = str(S3Uri(bucket, key))
    if gzip:
        length = sum(len(chunk) for chunk in _object_body(store, bucket, key, True))
    else:
        length = store.head_object(bucket, key).size
    if length > _MAX_RECORD_LENGTH:
        raise ValueError(
            f"{name} holds {length} bytes, more than the {_MAX_RECORD_LENGTH} one RecordIO "
            "record can hold (RecordWrapperType RecordIO wraps each object as one record)"
        )
    yield struct.pack("<II", RECORDIO_MAGIC, length)
    sent = 0
    body = _object_body(store, bucket, key, gzip)
    try:
        for chunk in body:
            sent += len(chunk)
            if sent > length:
                break
            yield chunk
    finally:
        body.close()
    if sent != length:
        raise ValueError(f"{name} changed while it was being streamed")
    yield b"\0" * (-length % 4)


def _framed_bytes(payload: bytes) -> bytes:
    from openmaker.formats.recordio import frame_record

    return frame_record(payload)


def pipe_stream(
    store: ObjectStore, objects: Iterable[ObjectRef], spec: ChannelSpec
) -> Iterator[bytes | FileSpan]:
    """The bytes of one Pipe-mode epoch, as chunks of at most ``CHUNK_SIZE`` (plus headers),
    or :class:`FileSpan` s of whole local object files (plain objects on a local store).

    Objects follow one another; with ``RecordWrapperType: RecordIO`` each object is one
    record. An augmented-manifest line gives one record per attribute: the object an
    ``s3://`` value names, else the value (a string as UTF-8, anything else as JSON).
    """
    gzip = spec.compression == "Gzip"
    wrap = spec.record_wrapper == "RecordIO"
    for ref in objects:
        if ref.attributes is None:
            targets: list[S3Uri | bytes] = [S3Uri(ref.bucket, ref.key)]
        else:
            targets = []
            for _, value in ref.attributes:
                if isinstance(value, str) and value.startswith("s3://"):
                    targets.append(S3Uri.parse(value))
                elif isinstance(value, str):
                    targets.append(value.encode())
                else:
                    targets.append(json.dumps(value, separators=(",", ":")).encode())
        for target in targets:
            if isinstance(target, bytes):
                yield _framed_bytes(target) if wrap else target
            elif wrap:
                yield from _framed_object(store, target.bucket, target.key, gzip)
            else:
                yield from _object_body(store, target.bucket, target.key, gzip, spans=True)


def _span_chunks(span: FileSpan) -> Iterator[bytes]:
    # For files whose file system cannot splice.
    offset, end = span.offset, span.offset + span.length
    while offset < end:
        chunk = os.pread(span.fd, min(CHUNK_SIZE, end - offset), offset)
        if not chunk:
            raise ValueError("an object's file ended before its length while being streamed")
        offset += len(chunk)
        yield chunk


# -- serving FIFOs --------------------------------------------------------------------------
@dataclass(eq=False)
class _Feed:
    """A FIFO waiting for a reader, then being written from ``source()``."""

    path: Path
    source: Callable[[], Iterator[bytes]]
    done: Callable[[_Feed, BaseException | None], None]
    fd: int = -1
    chunks: Iterator[bytes | FileSpan] | None = None
    pending: memoryview = field(default_factory=lambda: memoryview(b""))
    span: FileSpan | None = None  # being spliced; ``pending`` is empty meanwhile


def _reader_gone(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(mask & select.POLLERR for _, mask in poller.poll(0))


def _unread_bytes(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class _FifoServer:
    """One thread writing any number of FIFOs without blocking on any of them.

    A FIFO is opened for writing only once a reader has it open (``O_NONBLOCK`` opens fail
    with ``ENXIO`` before that, so nothing waits on an absent reader); writes are
    non-blocking and multiplexed; after the last byte the FIFO is held until the reader has
    taken everything (or closed), then closed so the reader sees end of file.
    """

    def __init__(self, name: str) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Feed] = []
        self._writing: dict[int, _Feed] = {}
        self._draining: list[_Feed] = []
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def serve(self, feed: _Feed) -> None:
        with self._lock:
            self._waiting.append(feed)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._accept()
                for key, _ in self._selector.select(_POLL_SECONDS if self._writing else 0):
                    self._pump(key.data)
                for feed in list(self._draining):
                    if _reader_gone(feed.fd) or _unread_bytes(feed.fd) == 0:
                        self._draining.remove(feed)
                        self._finish(feed, None)
                if not self._writing:
                    # A drained FIFO's reader waits for end of file: look again soon.
                    self._stop.wait(_DRAIN_POLL_SECONDS if self._draining else _POLL_SECONDS)
        finally:
            self._shutdown()

    def _accept(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for feed in waiting:
            try:
                fd = os.open(feed.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no reader yet
                    continue
                with self._lock:
                    self._waiting.remove(feed)
                feed.done(feed, exc)
                continue
            with self._lock:
                self._waiting.remove(feed)
            with contextlib.suppress(OSError):  # a bigger pipe means fewer wake-ups
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            feed.fd = fd
            feed.chunks = feed.source()
            self._writing[fd] = feed
            self._selector.register(fd, selectors.EVENT_WRITE, feed)

    def _pump(self, feed: _Feed) -> None:
        assert feed.chunks is not None
        written = 0
        try:
            while written < _PUMP_BUDGET:
                if feed.span is not None:
                    count = self._splice(feed)
                    if count < 0:
                        return  # the pipe is full
                    written += count
                    continue
                if not feed.pending:
                    chunk = next(feed.chunks, None)
                    if chunk is None:
                        self._selector.unregister(feed.fd)
                        del self._writing[feed.fd]
                        self._draining.append(feed)
                        return
                    if isinstance(chunk, FileSpan):
                        feed.span = chunk
                    else:
                        feed.pending = memoryview(chunk)
                    continue
                count = os.write(feed.fd, feed.pending)
                written += count
                feed.pending = feed.pending[count:]
                if feed.pending:
                    return  # the pipe is full
        except BlockingIOError:
            return
        except BrokenPipeError:  # the reader closed early, as a job may
            self._drop(feed, None)
        except Exception as exc:
            self._drop(feed, exc)

    @staticmethod
    def _splice(feed: _Feed) -> int:
        """Splice the next piece of ``feed.span`` into the pipe: the bytes moved, or -1 when
        the pipe is full."""
        span = feed.span
        assert span is not None and feed.chunks is not None
        if span.length == 0:
            feed.span = None
            return 0
        try:
            count = os.splice(span.fd, feed.fd, min(span.length, _PIPE_SIZE),
                              offset_src=span.offset, flags=os.SPLICE_F_NONBLOCK)
        except BlockingIOError:
            return -1
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            feed.chunks = itertools.chain(_span_chunks(span), feed.chunks)
            feed.span = None
            return 0
        if count == 0:
            raise ValueError("an object's file ended before its length while being streamed")
        span.offset += count
        span.length -= count
        return count

    def _drop(self, feed: _Feed, error: BaseException | None) -> None:
        self._selector.unregister(feed.fd)
        del self._writing[feed.fd]
        self._finish(feed, error)

    def _finish(self, feed: _Feed, error: BaseException | None) -> None:
        # ``done`` replaces or removes the FIFO before the reader sees end of file, so a
        # reader that opens the path again right away cannot get the finished pipe.
        try:
            feed.done(feed, error)
        finally:
            self._close(feed)

    @staticmethod
    def _close(feed: _Feed) -> None:
        if feed.chunks is not None and hasattr(feed.chunks, "close"):
            with contextlib.suppress(Exception):
                feed.chunks.close()  # type: ignore[union-attr]
        if feed.fd >= 0:
            os.close(feed.fd)
            feed.fd = -1

    def _shutdown(self) -> None:
        for feed in [*self._writing.values(), *self._draining]:
            self._close(feed)
        self._writing.clear()
        self._draining.clear()
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for feed in waiting:
            # A reader blocked opening the FIFO gets end of file instead of waiting forever.
            with contextlib.suppress(OSError):
                os.close(os.open(feed.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        self._selector.close()


def _make_fifo(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.mkfifo(path, 0o600)


class PipeChannel:
    """Pipe mode for one channel on one instance: ``input/data/<channel>_<epoch>`` FIFOs.

    ``start()`` creates ``<channel>_0`` and a thread that streams the epoch into it once the
    job opens it; when the job has read it all (or closed it) the FIFO is removed and
    ``<channel>_1`` created, and so on. A failure while streaming (a missing object, bad
    gzip) closes the FIFO early, stops further epochs and is kept in ``error``.
    """

    def __init__(
        self,
        store: ObjectStore,
        channel: Mapping[str, Any],
        layout: InstanceLayout,
        *,
        instance_index: int | None = None,
        instance_count: int = 1,
        objects: list[ObjectRef] | None = None,
    ) -> None:
        self.spec = ChannelSpec.from_config(channel, "Pipe")
        self.store = store
        self.layout = layout
        self.instance_index = layout.index if instance_index is None else instance_index
        self.instance_count = instance_count
        self.objects = list_channel_objects(store, self.spec) if objects is None else objects
        epoch_objects(self.objects, self.spec, instance_index=self.instance_index,
                      instance_count=instance_count)  # validates index and distribution
        self.epoch = 0
        self.error: BaseException | None = None
        self._server = _FifoServer(f"openmaker-pipe-{self.spec.name}")
        self._started = False

    @property
    def path(self) -> Path:
        """The FIFO of the epoch now offered."""
        return fifo_path(self.layout, self.spec.name, self.epoch)

    def epoch_items(self, epoch: int) -> list[ObjectRef]:
        """What this instance streams in ``epoch``."""
        return epoch_objects(self.objects, self.spec, epoch=epoch,
                             instance_index=self.instance_index,
                             instance_count=self.instance_count)

    def start(self) -> PipeChannel:
        self.layout.input_data_dir.mkdir(parents=True, exist_ok=True)
        self._offer(0)
        self._started = True
        self._server.start()
        return self

    def _offer(self, epoch: int) -> None:
        self.epoch = epoch
        path = fifo_path(self.layout, self.spec.name, epoch)
        _make_fifo(path)
        self._server.serve(_Feed(
            path, lambda: pipe_stream(self.store, self.epoch_items(epoch), self.spec), self._done
        ))

    def _done(self, feed: _Feed, error: BaseException | None) -> None:
        with contextlib.suppress(FileNotFoundError):
            feed.path.unlink()
        if error is not None:
            self.error = error
            return
        self._offer(self.epoch + 1)

    def stop(self) -> None:
        """Stop streaming (the job sees end of file) and remove the FIFO; prompt and
        idempotent."""
        self._server.stop()
        if self._started:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> PipeChannel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FastFileChannel:
    """FastFile mode without FUSE: every object is a FIFO at its File-mode path that
    streams the object from the store each time it is opened, so data is fetched only when
    (and as) the job reads it, and a job that reads a few files fetches only those.

    Limits of this stand-in for SageMaker's lazy mount: files read sequentially only (no
    seek, no ``mmap``; ``stat`` shows size 0), one reader at a time per file (two concurrent
    opens share one stream), and reading a file twice fetches it twice. Waiting FIFOs are
    checked for readers every 20 ms, a cost that grows with the number of objects.
    """

    def __init__(
        self, store: ObjectStore, objects: Iterable[ObjectRef], layout: InstanceLayout,
        channel: str,
    ) -> None:
        self.store = store
        self.objects = list(objects)
        self.directory = layout.channel_dir(channel)
        self.errors: list[BaseException] = []
        self._paths = []
        for ref in self.objects:
            if ref.attributes is not None:
                raise ValidationException(
                    f"channel {channel!r}: FastFile mode requires S3DataType S3Prefix"
                )
            self._paths.append(_local_path(self.directory, ref))
        self._server = _FifoServer(f"openmaker-fastfile-{channel}")

    def start(self) -> FastFileChannel:
        self.directory.mkdir(parents=True, exist_ok=True)
        for ref, path in zip(self.objects, self._paths, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            _make_fifo(path)
            self._server.serve(self._feed(ref, path))
        self._server.start()
        return self

    def _feed(self, ref: ObjectRef, path: Path) -> _Feed:
        def done(feed: _Feed, error: BaseException | None) -> None:
            if error is not None:
                self.errors.append(error)
            # A fresh FIFO renamed over the old one: the reader still holding the old one
            # cannot be written to again, and the next open gets the object from the start.
            fresh = path.with_name(f".{path.name}.{os.getpid()}.fifo")
            _make_fifo(fresh)
            os.replace(fresh, path)
            self._server.serve(self._feed(ref, path))

        return _Feed(path, lambda: _object_body(self.store, ref.bucket, ref.key, False), done)

    def stop(self) -> None:
        """Stop serving (open readers see end of file) and remove the FIFOs."""
        self._server.stop()
        for path in self._paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def __enter__(self) -> FastFileChannel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def deliver_channel(
    store: ObjectStore,
    channel: Mapping[str, Any],
    layout: InstanceLayout,
    *,
    instance_count: int = 1,
    job_input_mode: str = "File",
) -> PipeChannel | FastFileChannel | None:
    """Deliver one ``InputDataConfig`` entry to ``layout``'s instance by its input mode:
    File copies now and returns None; Pipe and FastFile return a started channel to
    ``stop()`` when the job ends."""
    spec = ChannelSpec.from_config(channel, job_input_mode)
    objects = list_channel_objects(store, spec)
    if spec.input_mode == "Pipe":
        return PipeChannel(store, channel, layout, instance_count=instance_count,
                           objects=objects).start()
    mine = epoch_objects(objects, spec, instance_index=layout.index,
                         instance_count=instance_count)
    if spec.input_mode == "FastFile":
        if spec.data_type != "S3Prefix":
            raise ValidationException(
                f"channel {spec.name!r}: FastFile mode requires S3DataType S3Prefix"
            )
        return FastFileChannel(store, mine, layout, spec.name).start()
    if spec.input_mode != "File":
        raise ValidationException(
            f"channel {spec.name!r}: InputMode {spec.input_mode!r} is not valid; "
            "use File, Pipe or FastFile"
        )
    materialise(store, mine, layout, spec.name)
    return None
