"""The object store interface: S3's data model behind a few primitive methods.

Two implementations pass the same test suite: :class:`~openmaker.storage.local.LocalObjectStore`
(a directory, the default) and :class:`~openmaker.storage.s3.S3ObjectStore` (any
S3-compatible endpoint through boto3). Errors are the S3 errors of ``core/errors.py``
(``NoSuchBucket``, ``NoSuchKey``, ``InvalidRange``, ``EntityTooSmall`` ...).

Bodies are passed as ``bytes`` or as an iterable of ``bytes`` chunks. An iterable may
raise part-way (a digest mismatch found at the end of the upload, a client that went
away); the store then keeps nothing of that write.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

Body = bytes | Iterable[bytes]

MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_SINGLE_PUT_SIZE = 5 * 1024 * 1024 * 1024
MAX_KEY_BYTES = 1024
DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 reports when none was given


@dataclass(frozen=True)
class BucketInfo:
    name: str
    creation_date: datetime
    region: str


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD returns. ``headers`` holds stored system headers (Content-Encoding,
    Cache-Control, Content-Disposition, Content-Language, Expires, x-amz-checksum-*,
    x-amz-storage-class ...) with lower-case names, returned verbatim on GET/HEAD."""

    bucket: str
    key: str
    size: int
    etag: str  # with the surrounding double quotes, as S3 sends it
    last_modified: datetime  # timezone-aware UTC
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-*, names lower-case
    headers: dict[str, str] = field(default_factory=dict)
    parts_count: int | None = None  # set for objects made by a multipart upload


@dataclass(frozen=True)
class ListPage:
    objects: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    # the last key or common prefix returned; continue a listing with start_after=next_marker
    next_marker: str | None = None


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class PartsPage:
    parts: list[PartInfo]
    is_truncated: bool
    next_part_number_marker: int | None


@dataclass(frozen=True)
class UploadInfo:
    bucket: str
    key: str
    upload_id: str
    initiated: datetime
    content_type: str = DEFAULT_CONTENT_TYPE
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class ObjectReader(abc.ABC):
    """An open object: a consistent snapshot of one version, read in chunks.

    ``start``/``end`` are the inclusive byte positions served (the whole object when no
    range was asked for); ``length`` is ``end - start + 1``.
    """

    info: ObjectInfo
    start: int
    end: int

    @property
    def length(self) -> int:
        return max(0, self.end - self.start + 1)

    @abc.abstractmethod
    def read(self, size: int = -1) -> bytes: ...

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            while chunk := self.read(chunk_size):
                yield chunk
        finally:
            self.close()

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObjectStore(abc.ABC):
    """S3 buckets and objects. Keys are ``str``; ETags carry their quotes."""

    def close(self) -> None:  # noqa: B027 - most stores hold nothing open
        """Release what the store holds open (lock files, connections)."""

    # -- buckets --------------------------------------------------------------------------
    @abc.abstractmethod
    def create_bucket(self, bucket: str, region: str | None = None) -> BucketInfo:
        """Raises ``InvalidBucketName``, ``BucketAlreadyOwnedByYou``."""

    @abc.abstractmethod
    def delete_bucket(self, bucket: str) -> None:
        """Raises ``NoSuchBucket``, ``BucketNotEmpty`` (objects or open uploads remain)."""

    @abc.abstractmethod
    def head_bucket(self, bucket: str) -> BucketInfo:
        """Raises ``NoSuchBucket``."""

    @abc.abstractmethod
    def list_buckets(self) -> list[BucketInfo]:
        """All buckets, sorted by name."""

    # -- objects --------------------------------------------------------------------------
    @abc.abstractmethod
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
        """Store a whole object atomically: readers see the old or the new one, never a mix."""

    @abc.abstractmethod
    def open_object(
        self, bucket: str, key: str, byte_range: tuple[int | None, int | None] | None = None
    ) -> ObjectReader:
        """Open for reading. ``byte_range`` is ``(first, last)`` inclusive as in an HTTP
        Range header: ``(10, None)`` from byte 10 on, ``(None, 100)`` the last 100 bytes.
        A range starting past the end raises ``InvalidRange``; a last position past the
        end is clipped."""

    @abc.abstractmethod
    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """Raises ``NoSuchBucket``, ``NoSuchKey``."""

    @abc.abstractmethod
    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str | None = None,
        start_after: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        """Keys in UTF-8 byte order. With a delimiter, keys sharing ``prefix + ... +
        delimiter`` roll up into one common prefix (counted once against ``max_keys``)."""

    @abc.abstractmethod
    def delete_object(self, bucket: str, key: str) -> None:
        """Deleting a missing key succeeds (as in S3); a missing bucket raises."""

    def delete_objects(self, bucket: str, keys: list[str]) -> list[tuple[str, Exception | None]]:
        """Delete several keys; one result per key, ``None`` for success."""
        self.head_bucket(bucket)
        results: list[tuple[str, Exception | None]] = []
        for key in keys:
            try:
                self.delete_object(bucket, key)
                results.append((key, None))
            except Exception as exc:  # reported per key, as DeleteObjects does
                results.append((key, exc))
        return results

    @abc.abstractmethod
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
        """Copy an object. ``metadata``/``content_type``/``headers`` None keeps the
        source's (S3's MetadataDirective COPY); given, they replace it (REPLACE)."""

    def get_object(
        self, bucket: str, key: str, byte_range: tuple[int | None, int | None] | None = None
    ) -> bytes:
        with self.open_object(bucket, key, byte_range) as reader:
            return reader.read()

    # -- multipart uploads ----------------------------------------------------------------
    @abc.abstractmethod
    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> UploadInfo: ...

    @abc.abstractmethod
    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> PartInfo:
        """Store one part (1..10000); uploading a number again replaces that part."""

    @abc.abstractmethod
    def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        source_bucket: str,
        source_key: str,
        byte_range: tuple[int, int] | None = None,
    ) -> PartInfo: ...

    @abc.abstractmethod
    def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number_marker: int = 0,
        max_parts: int = 1000,
    ) -> PartsPage: ...

    @abc.abstractmethod
    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Assemble the listed ``(part_number, etag)`` parts in order. Raises
        ``InvalidPartOrder`` (not ascending), ``InvalidPart`` (missing or ETag differs),
        ``EntityTooSmall`` (a part other than the last below 5 MiB). The ETag is the MD5
        of the parts' binary MD5s followed by ``-<number of parts>``."""

    @abc.abstractmethod
    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Raises ``NoSuchUpload``."""

    @abc.abstractmethod
    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        """Open uploads sorted by key then initiation time."""
