"""The object store on any S3-compatible endpoint (AWS S3, MinIO, Ceph ...) through boto3.

boto3 is imported when the first client is made, not at import time, so commands that
never touch S3 start fast. Requests use path-style addressing, which every S3-compatible
server understands. Bodies stream: an iterable body larger than ``multipart_threshold``
goes up as a multipart upload, so memory stays bounded by one part.
"""

from __future__ import annotations

import contextvars
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from openmaker.core.errors import (
    AwsError,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    EntityTooLarge,
    InvalidPartOrder,
    InvalidRequest,
    MalformedXML,
    NoSuchBucket,
    NoSuchKey,
    from_client_error,
)
from openmaker.storage.base import (
    DEFAULT_CONTENT_TYPE,
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
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
    check_bucket_name,
    check_key,
    check_part_number,
    resolve_range,
)

__all__ = ["S3ObjectStore"]

_CHUNK = 1024 * 1024
_DEFAULT_REGION = "us-east-1"
# System headers S3 stores with an object and returns verbatim on GET/HEAD.
_STORED_HEADERS = frozenset({
    "cache-control", "content-disposition", "content-encoding", "content-language",
    "expires", "x-amz-storage-class", "x-amz-website-redirect-location",
})
# Fields of S3's <Error> document worth keeping on the translated error.
_ERROR_FIELDS = frozenset({
    "BucketName", "Key", "UploadId", "PartNumber", "ETag", "ProposedSize", "MinSizeAllowed",
    "RangeRequested", "ActualObjectSize", "ArgumentName", "ArgumentValue", "Size",
    "MaxSizeAllowed", "Condition",
})
# Headers for the request being made on this thread/task, added just before signing.
_extra_headers: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "openmaker_s3_extra_headers", default=None
)


def _add_extra_headers(request: Any, **_kwargs: Any) -> None:
    extra = _extra_headers.get()
    if extra:
        for name, value in extra.items():
            request.headers[name] = value


def _parts_from_etag(etag: str) -> int | None:
    _, dash, count = etag.strip('"').rpartition("-")
    return int(count) if dash and count.isdigit() else None


def _utc(value: datetime | None) -> datetime:
    return value.astimezone(UTC) if value is not None else datetime.now(UTC)


def _range_header(byte_range: tuple[int | None, int | None]) -> str:
    first, last = byte_range
    return f"bytes={'' if first is None else first}-{'' if last is None else last}"


class _S3Reader(ObjectReader):
    """One GetObject response body, read as it arrives."""

    def __init__(self, body: Any, info: ObjectInfo, start: int, end: int) -> None:
        self._body = body
        self.info = info
        self.start = start
        self.end = end

    def read(self, size: int = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def close(self) -> None:
        self._body.close()


class S3ObjectStore(ObjectStore):
    """Buckets and objects on an S3-compatible endpoint (``endpoint_url=None``: AWS)."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        *,
        multipart_threshold: int = 8 * 1024 * 1024,
        part_size: int = 8 * 1024 * 1024,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region or _DEFAULT_REGION
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._clients: dict[str, Any] = {}
        self._client_lock = threading.Lock()
        self._client_error: type[Exception] = Exception
        self._created: dict[str, datetime] = {}  # bucket -> creation date, from ListBuckets

    # -- plumbing -------------------------------------------------------------------------
    def _client_for(self, region: str | None = None) -> Any:
        region = region or self.region
        client = self._clients.get(region)
        if client is not None:
            return client
        with self._client_lock:  # boto3 sessions are not thread-safe; clients are
            client = self._clients.get(region)
            if client is None:
                import boto3.session
                import botocore.config
                import botocore.exceptions

                config = botocore.config.Config(
                    s3={"addressing_style": "path"},
                    signature_version="s3v4",
                    retries={"mode": "standard", "max_attempts": 3},
                    max_pool_connections=32,
                    # Many S3-compatible servers reject the newer default checksum trailers.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                session = boto3.session.Session(
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_access_key,
                    region_name=region,
                )
                client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
                client.meta.events.register("before-sign.s3", _add_extra_headers)
                self._client_error = botocore.exceptions.ClientError
                self._clients[region] = client
        return client

    @property
    def _s3(self) -> Any:
        return self._client_for()

    def _call(self, operation: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        client = self._s3
        token = _extra_headers.set(headers or None)
        try:
            return getattr(client, operation)(**params)
        except self._client_error as exc:
            raise self._translate(exc, params) from None
        finally:
            _extra_headers.reset(token)

    def _translate(self, exc: Exception, params: dict[str, Any]) -> AwsError:
        error = from_client_error(exc)
        fields = getattr(exc, "response", {}).get("Error", {})
        for name, value in fields.items():
            if name in _ERROR_FIELDS and isinstance(value, str):
                error.extra.setdefault(name, value)
        if error.code in ("NoSuchBucket", "BucketNotEmpty", "BucketAlreadyOwnedByYou"):
            error.extra.setdefault("BucketName", params.get("Bucket"))
        if error.code == "NoSuchKey":
            error.extra.setdefault("Key", params.get("Key"))
            error.extra.setdefault("BucketName", params.get("Bucket"))
        if error.code == "NoSuchUpload":
            error.extra.setdefault("UploadId", params.get("UploadId"))
        return error

    def _is_status(self, exc: Exception, status: int) -> bool:
        response = getattr(exc, "response", {}) or {}
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode") == status

    def _object_info(self, bucket: str, key: str, response: dict, size: int) -> ObjectInfo:
        raw = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        headers = {
            name: value for name, value in raw.items()
            if name in _STORED_HEADERS or name.startswith("x-amz-checksum-")
        }
        headers.pop("x-amz-checksum-type", None)
        etag = response.get("ETag", '""')
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=size,
            etag=etag,
            last_modified=_utc(response.get("LastModified")),
            content_type=response.get("ContentType") or DEFAULT_CONTENT_TYPE,
            metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
            headers=headers,
            parts_count=response.get("PartsCount") or _parts_from_etag(etag),
        )

    @staticmethod
    def _put_params(
        content_type: str | None, metadata: dict[str, str] | None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if content_type:
            params["ContentType"] = content_type
        if metadata:
            params["Metadata"] = {k.lower(): v for k, v in metadata.items()}
        return params

    @staticmethod
    def _headers(headers: dict[str, str] | None) -> dict[str, str] | None:
        return {k.lower(): v for k, v in headers.items()} if headers else None

    # -- buckets --------------------------------------------------------------------------
    def create_bucket(self, bucket: str, region: str | None = None) -> BucketInfo:
        check_bucket_name(bucket)
        region = region or self.region
        params: dict[str, Any] = {"Bucket": bucket}
        if region == _DEFAULT_REGION:
            # us-east-1 answers a repeated create with 200 OK instead of an error.
            client = self._s3
            try:
                client.head_bucket(Bucket=bucket)
            except self._client_error as exc:
                if not self._is_status(exc, 404):
                    raise self._translate(exc, params) from None
            else:
                raise BucketAlreadyOwnedByYou(
                    "Your previous request to create the named bucket succeeded and you "
                    "already own it.",
                    BucketName=bucket,
                )
        else:
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client = self._client_for(region)
        self._created.pop(bucket, None)
        try:
            client.create_bucket(**params)
        except self._client_error as exc:
            raise self._translate(exc, params) from None
        return self.head_bucket(bucket)

    def head_bucket(self, bucket: str) -> BucketInfo:
        client = self._s3
        try:
            response = client.head_bucket(Bucket=bucket)
        except self._client_error as exc:
            if self._is_status(exc, 404):
                raise NoSuchBucket(
                    "The specified bucket does not exist", BucketName=bucket
                ) from None
            raise self._translate(exc, {"Bucket": bucket}) from None
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
        # HeadBucket carries no creation date: ListBuckets does, so remember them.
        created = self._created.get(bucket)
        if created is None:
            self.list_buckets()
            created = self._created.get(bucket, datetime.now(UTC))
        return BucketInfo(bucket, created, region or self.region)

    def list_buckets(self) -> list[BucketInfo]:
        buckets = []
        params: dict[str, Any] = {}
        while True:
            response = self._call("list_buckets", **params)
            for entry in response.get("Buckets", []):
                region = entry.get("BucketRegion") or self._bucket_region(entry["Name"])
                info = BucketInfo(entry["Name"], _utc(entry["CreationDate"]), region)
                self._created[info.name] = info.creation_date
                buckets.append(info)
            token = response.get("ContinuationToken")
            if not token:
                break
            params["ContinuationToken"] = token
        buckets.sort(key=lambda info: info.name)
        return buckets

    def _bucket_region(self, bucket: str) -> str:
        client = self._s3
        try:
            location = client.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        except self._client_error:
            return self.region
        return {None: _DEFAULT_REGION, "": _DEFAULT_REGION, "EU": "eu-west-1"}.get(
            location, location
        )

    def delete_bucket(self, bucket: str) -> None:
        uploads = self._call("list_multipart_uploads", Bucket=bucket, MaxUploads=1)
        if uploads.get("Uploads"):
            raise BucketNotEmpty("The bucket you tried to delete is not empty", BucketName=bucket)
        self._call("delete_bucket", Bucket=bucket)
        self._created.pop(bucket, None)

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
        check_key(key)
        params = self._put_params(content_type, metadata)
        extra = self._headers(headers)
        if isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            response = self._call(
                "put_object", extra, Bucket=bucket, Key=key, Body=data, **params
            )
            return self._put_result(bucket, key, response, len(data), content_type, metadata,
                                    extra)
        chunks = body_chunks(body)
        buffer = bytearray()
        for chunk in chunks:
            buffer += chunk
            if len(buffer) > self.multipart_threshold:
                break
        else:
            response = self._call(
                "put_object", extra, Bucket=bucket, Key=key, Body=bytes(buffer), **params
            )
            return self._put_result(bucket, key, response, len(buffer), content_type, metadata,
                                    extra)
        return self._put_multipart(bucket, key, buffer, chunks, params, extra)

    def _put_result(
        self,
        bucket: str,
        key: str,
        response: dict,
        size: int,
        content_type: str | None,
        metadata: dict[str, str] | None,
        headers: dict[str, str] | None,
        parts_count: int | None = None,
    ) -> ObjectInfo:
        # PUT answers no Last-Modified; the server stamps the object about now.
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=size,
            etag=response["ETag"],
            last_modified=datetime.now(UTC),
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            metadata={k.lower(): v for k, v in (metadata or {}).items()},
            headers=dict(headers or {}),
            parts_count=parts_count,
        )

    def _put_multipart(
        self,
        bucket: str,
        key: str,
        buffer: bytearray,
        chunks: Iterator[bytes],
        params: dict[str, Any],
        headers: dict[str, str] | None,
    ) -> ObjectInfo:
        upload = self._call(
            "create_multipart_upload", headers, Bucket=bucket, Key=key, **params
        )
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            exhausted = False
            while True:
                while not exhausted and len(buffer) < self.part_size:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        buffer += chunk
                if not buffer and parts:
                    break
                piece = bytes(buffer[: self.part_size])
                del buffer[: self.part_size]
                size += len(piece)
                if len(parts) == MAX_PART_NUMBER:
                    raise EntityTooLarge(
                        "Your proposed upload exceeds the maximum allowed size",
                        ProposedSize=size, MaxSizeAllowed=MAX_PART_NUMBER * self.part_size,
                    )
                number = len(parts) + 1
                response = self._call(
                    "upload_part", Bucket=bucket, Key=key, UploadId=upload_id,
                    PartNumber=number, Body=piece,
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                if exhausted and not buffer:
                    break
            response = self._call(
                "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            # Nothing of a failed write may stay behind, not even its parts.
            try:
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:  # the original error matters more
                pass
            raise
        return self._put_result(
            bucket, key, response, size, params.get("ContentType"), params.get("Metadata"),
            headers, len(parts),
        )

    def open_object(
        self, bucket: str, key: str, byte_range: tuple[int | None, int | None] | None = None
    ) -> ObjectReader:
        check_key(key)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if byte_range is not None and byte_range != (None, None):
            params["Range"] = _range_header(byte_range)
        response = self._call("get_object", **params)
        body = response["Body"]
        content_range = response.get("ContentRange")
        try:
            if content_range:
                span, _, total = content_range.removeprefix("bytes ").partition("/")
                first, _, last = span.partition("-")
                size, start, end = int(total), int(first), int(last)
            else:
                size = int(response.get("ContentLength", 0))
                if "Range" in params and size == 0:
                    # Some servers answer a range of an empty object with the whole (empty)
                    # object; no range of it is satisfiable, so raise InvalidRange.
                    resolve_range(size, byte_range)
                start, end = 0, size - 1
        except BaseException:
            body.close()
            raise
        return _S3Reader(body, self._object_info(bucket, key, response, size), start, end)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        check_key(key)
        client = self._s3
        try:
            response = client.head_object(Bucket=bucket, Key=key)
        except self._client_error as exc:
            if self._is_status(exc, 404):
                self.head_bucket(bucket)  # raises NoSuchBucket when that is what's missing
                raise NoSuchKey(
                    "The specified key does not exist.", Key=key, BucketName=bucket
                ) from None
            raise self._translate(exc, {"Bucket": bucket, "Key": key}) from None
        return self._object_info(bucket, key, response, int(response.get("ContentLength", 0)))

    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str | None = None,
        start_after: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": max(0, max_keys)}
        if delimiter:
            params["Delimiter"] = delimiter
        if start_after:
            params["StartAfter"] = start_after
        response = self._call("list_objects_v2", **params)
        if max_keys <= 0:
            return ListPage([], [], False)
        objects = [
            ObjectInfo(
                bucket=bucket, key=entry["Key"], size=entry["Size"], etag=entry["ETag"],
                last_modified=_utc(entry["LastModified"]),
                parts_count=_parts_from_etag(entry["ETag"]),
            )
            for entry in response.get("Contents", [])
        ]
        prefixes = [entry["Prefix"] for entry in response.get("CommonPrefixes", [])]
        truncated = bool(response.get("IsTruncated"))
        next_marker = None
        if truncated:
            names = [o.key for o in objects[-1:]] + prefixes[-1:]
            next_marker = max(names, key=lambda name: name.encode()) if names else None
        return ListPage(objects, prefixes, truncated, next_marker)

    def delete_object(self, bucket: str, key: str) -> None:
        check_key(key)
        self._call("delete_object", Bucket=bucket, Key=key)

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
        check_key(key)
        check_key(source_key)
        replace = content_type is not None or metadata is not None or headers is not None
        if (source_bucket, source_key) == (bucket, key) and not replace:
            raise InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to "
                "itself without changing the object's metadata, storage class, website "
                "redirect location or encryption attributes."
            )
        params: dict[str, Any] = {
            "Bucket": bucket, "Key": key,
            "CopySource": {"Bucket": source_bucket, "Key": source_key},
        }
        extra = None
        if replace:
            # REPLACE resets every field; keep the source's for those not given.
            source = self.head_object(source_bucket, source_key)
            params["MetadataDirective"] = "REPLACE"
            params["ContentType"] = content_type if content_type is not None else (
                source.content_type
            )
            params["Metadata"] = {k.lower(): v for k, v in (
                metadata if metadata is not None else source.metadata
            ).items()}
            extra = self._headers(headers if headers is not None else source.headers)
        else:
            params["MetadataDirective"] = "COPY"
        self._call("copy_object", extra, **params)
        return self.head_object(bucket, key)

    # -- multipart uploads ----------------------------------------------------------------
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
        extra = self._headers(headers)
        response = self._call(
            "create_multipart_upload", extra, Bucket=bucket, Key=key,
            **self._put_params(content_type, metadata),
        )
        return UploadInfo(
            bucket, key, response["UploadId"], datetime.now(UTC),
            content_type or DEFAULT_CONTENT_TYPE,
            {k.lower(): v for k, v in (metadata or {}).items()}, dict(extra or {}),
        )

    def upload_part(
        self, bucket: str, key: str, upload_id: str, part_number: int, body: Body
    ) -> PartInfo:
        check_part_number(part_number)
        if isinstance(body, bytes | bytearray | memoryview):
            data: Any = bytes(body)
            size = len(data)
        else:
            # UploadPart needs a length up front: spool to memory, then to disk.
            data = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
            size = 0
            for chunk in body_chunks(body):
                size += len(chunk)
                if size > MAX_PART_SIZE:
                    data.close()
                    raise EntityTooLarge(
                        "Your proposed upload exceeds the maximum allowed size",
                        ProposedSize=size, MaxSizeAllowed=MAX_PART_SIZE,
                    )
                data.write(chunk)
            data.seek(0)
        try:
            response = self._call(
                "upload_part", Bucket=bucket, Key=key, UploadId=upload_id,
                PartNumber=part_number, Body=data,
            )
        finally:
            if not isinstance(data, bytes):
                data.close()
        return PartInfo(part_number, size, response["ETag"], datetime.now(UTC))

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
        params: dict[str, Any] = {
            "Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": part_number,
            "CopySource": {"Bucket": source_bucket, "Key": source_key},
        }
        if byte_range is not None:
            size = byte_range[1] - byte_range[0] + 1
            params["CopySourceRange"] = _range_header(byte_range)
        else:
            size = self.head_object(source_bucket, source_key).size
        result = self._call("upload_part_copy", **params)["CopyPartResult"]
        return PartInfo(part_number, size, result["ETag"], _utc(result.get("LastModified")))

    def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number_marker: int = 0,
        max_parts: int = 1000,
    ) -> PartsPage:
        response = self._call(
            "list_parts", Bucket=bucket, Key=key, UploadId=upload_id,
            PartNumberMarker=part_number_marker, MaxParts=max_parts,
        )
        parts = [
            PartInfo(p["PartNumber"], p["Size"], p["ETag"], _utc(p.get("LastModified")))
            for p in response.get("Parts", [])
        ]
        truncated = bool(response.get("IsTruncated"))
        marker = response.get("NextPartNumberMarker") if truncated else None
        return PartsPage(parts, truncated, int(marker) if marker is not None else None)

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        check_key(key)
        if not parts:
            raise MalformedXML(
                "The XML you provided was not well-formed or did not validate against our "
                "published schema"
            )
        # Checked here too: not every S3-compatible server does.
        for (previous, _), (number, _) in zip(parts, parts[1:], strict=False):
            if number <= previous:
                raise InvalidPartOrder(
                    "The list of parts was not in ascending order. Parts must be ordered by "
                    "part number.",
                    UploadId=upload_id,
                )
        self._call(
            "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [
                {"PartNumber": number, "ETag": etag if etag.startswith('"') else f'"{etag}"'}
                for number, etag in parts
            ]},
        )
        return self.head_object(bucket, key)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self._call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)

    def list_multipart_uploads(self, bucket: str, prefix: str = "") -> list[UploadInfo]:
        uploads = []
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            response = self._call("list_multipart_uploads", **params)
            for entry in response.get("Uploads", []):
                uploads.append(UploadInfo(
                    bucket, entry["Key"], entry["UploadId"], _utc(entry.get("Initiated")),
                ))
            if not response.get("IsTruncated"):
                break
            params["KeyMarker"] = response.get("NextKeyMarker")
            params["UploadIdMarker"] = response.get("NextUploadIdMarker")
        uploads.sort(key=lambda u: (u.key.encode(), u.initiated))
        return uploads
