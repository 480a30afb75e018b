"""S3 over REST-XML: path-style (``/bucket/key``) and virtual-hosted-style
(``bucket.localhost``) requests, translated to object-store calls.

The operation is picked from the method, path and query the way S3 does; its header and
query members are validated against botocore's S3 model (``api/rest_input.py``); upload
bodies stream from the socket through integrity checks (SigV4 payload hash, aws-chunked
decoding, Content-MD5, ``x-amz-checksum-*``) into the store, which keeps nothing of a
body that fails them. Errors leave as S3's ``<Error>`` documents.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from openmaker.api import body as body_checks
from openmaker.api import sigv4
from openmaker.api.app import Protocol
from openmaker.api.http import Request, Response
from openmaker.api.rest_input import parse_rest_input
from openmaker.core import errors, service_models
from openmaker.core.platform import RequestContext
from openmaker.storage.base import (
    MAX_PART_NUMBER,
    MAX_SINGLE_PUT_SIZE,
    ObjectInfo,
)

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_XML_BODY = 2 * 1024 * 1024
INLINE_READ_LIMIT = 256 * 1024  # GET bodies up to this size are read in one go
INLINE_BODY_LIMIT = 1024 * 1024  # upload bodies up to this size are read before dispatch
STREAM_CHUNK = 1024 * 1024

# Headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding",
                  "content-language", "expires", "x-amz-storage-class",
                  "x-amz-website-redirect-location", "x-amz-server-side-encryption")
CHECKSUM_HEADERS = {f"x-amz-checksum-{name}": name
                    for name in ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")}
# Sub-resources S3 has that openmaker does not implement (answered 501, naming them).
UNSUPPORTED_SUBRESOURCES = (
    "accelerate", "acl", "analytics", "attributes", "cors", "encryption",
    "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "logging", "metadataTable",
    "metrics", "notification", "object-lock", "ownershipControls", "policy", "policyStatus",
    "publicAccessBlock", "replication", "requestPayment", "restore", "retention", "select",
    "session", "tagging", "torrent", "versions", "website",
)
STREAMED_OPERATIONS = ("PutObject", "UploadPart")
# Reads that touch a file or two and never wait on a lock or fsync run on the event loop:
# a hop to the thread pool costs several times what they do. A large GET body is still
# streamed from the thread pool (OpenmakerApp.send).
INLINE_OPERATIONS = ("GetObject", "HeadObject", "HeadBucket", "GetBucketLocation",
                     "GetBucketVersioning", "ListBuckets")
XML_BODY_OPERATIONS = ("CreateBucket", "DeleteObjects", "CompleteMultipartUpload")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_VIRTUAL_HOST_SUFFIXES = (".s3.localhost", ".localhost", ".s3.amazonaws.com")
_SERVICE_HOSTS = frozenset({"s3.localhost", "s3.amazonaws.com"})  # path-style endpoints
_REGIONAL_HOST = re.compile(r"^(.+)\.s3[.-][a-z0-9-]+\.amazonaws\.com$")


# -- small helpers --------------------------------------------------------------------------
def iso_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def http_time(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _x(value: object) -> str:
    return escape(str(value))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def xml_response(document: str, status: int = 200) -> Response:
    return Response(status, [("content-type", "application/xml")],
                    (XML_DECLARATION + document).encode())


def virtual_bucket(host: str) -> str | None:
    """The bucket named by a virtual-hosted-style Host header, if it is one."""
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    if name in _SERVICE_HOSTS:
        return None
    for suffix in _VIRTUAL_HOST_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    match = _REGIONAL_HOST.match(name)
    if match and not match.group(1).startswith("s3"):
        return match.group(1)
    return None


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """An HTTP byte range as (first, last); None when absent or not a single valid range
    (S3 then serves the whole object)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _xml_root(body: bytes, operation: str) -> ElementTree.Element:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise errors.MalformedXML(
            "The XML you provided was not well-formed or did not validate against our "
            f"published schema ({operation})."
        ) from None
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return root


# -- the protocol -------------------------------------------------------------------------
class S3Protocol(Protocol):
    dialect = "s3"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.host_id = base64.b64encode(b"openmaker-" + uuid.uuid4().bytes).decode()

    # routing ---------------------------------------------------------------------------
    def address(self, request: Request) -> tuple[str, str]:
        try:
            path = request.path
        except UnicodeDecodeError:
            raise errors.InvalidArgument("The request path is not valid UTF-8.") from None
        bucket = virtual_bucket(request.host)
        if bucket is not None:
            return bucket, path[1:] if path.startswith("/") else path
        bucket, _, key = path.lstrip("/").partition("/")
        return bucket, key

    @staticmethod
    def operation_name(request: Request, bucket: str, key: str) -> str:
        method, query = request.method, request.query
        unsupported = next((name for name in UNSUPPORTED_SUBRESOURCES if name in query), None)
        if not bucket:
            if method == "GET":
                return "ListBuckets"
            raise errors.MethodNotAllowed(
                "The specified method is not allowed against this resource.", Method=method,
                ResourceType="SERVICE",
            )
        if unsupported is not None:
            raise errors.S3NotImplemented(
                f"The S3 '{unsupported}' sub-resource is not implemented by openmaker.",
                Header=unsupported,
            )
        if not key:
            table = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}
            if method in table:
                return table[method]
            if method == "GET":
                for name, operation in (("location", "GetBucketLocation"),
                                        ("versioning", "GetBucketVersioning"),
                                        ("uploads", "ListMultipartUploads")):
                    if name in query:
                        return operation
                return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
            if method == "POST" and "delete" in query:
                return "DeleteObjects"
        else:
            copy = request.header("x-amz-copy-source") is not None
            if method == "PUT":
                if "uploadId" in query or "partNumber" in query:
                    return "UploadPartCopy" if copy else "UploadPart"
                return "CopyObject" if copy else "PutObject"
            if method == "GET":
                return "ListParts" if "uploadId" in query else "GetObject"
            if method == "HEAD":
                return "HeadObject"
            if method == "DELETE":
                return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
            if method == "POST":
                if "uploads" in query:
                    return "CreateMultipartUpload"
                if "uploadId" in query:
                    return "CompleteMultipartUpload"
        raise errors.MethodNotAllowed(
            "The specified method is not allowed against this resource.", Method=method,
            ResourceType="OBJECT" if key else "BUCKET",
        )

    # handling --------------------------------------------------------------------------
    async def handle(self, request: Request, signed: sigv4.SignedRequest) -> Response:
        bucket, key = self.address(request)
        name = self.operation_name(request, bucket, key)
        operation = service_models.operation_model("s3", name)
        handler = getattr(self, "op_" + name)
        declared_hash = request.header("x-amz-content-sha256")
        if name in STREAMED_OPERATIONS:
            # the payload hash is checked as the body streams (S3Call.upload_stream)
            verified = self.app.authenticate(signed, self.dialect)
            length = request.content_length
            if length is not None and length <= INLINE_BODY_LIMIT:
                # a small body is read here, on the event loop, so the worker thread never
                # has to hop back to the loop for it
                await request.read_body(INLINE_BODY_LIMIT, errors.IncompleteBody(
                    "The body is longer than its Content-Length."))
            body = None
        else:
            body = b""
            if name in XML_BODY_OPERATIONS:
                body = await request.read_body(
                    MAX_XML_BODY,
                    errors.EntityTooLarge(f"XML bodies are limited to {MAX_XML_BODY} bytes."),
                )
            verified = self.app.authenticate(
                signed, self.dialect,
                body_sha256=None if declared_hash else hashlib.sha256(body).hexdigest(),
            )
            if verified is not None and _is_hex_hash(declared_hash):
                body = b"".join(body_checks.verify_sha256([body], declared_hash))
        ctx = self.app.context(request, verified)
        call = S3Call(ctx, request, operation, bucket, key, body, verified)
        if name in INLINE_OPERATIONS:
            response = handler(call)
        else:
            response = await self.app.run(handler, call)
        response.headers.append(("x-amz-request-id", request.request_id))
        response.headers.append(("x-amz-id-2", self.host_id))
        return response

    def error_response(self, request: Request, error: errors.AwsError) -> Response:
        if isinstance(error, errors.ValidationException):
            error = errors.InvalidArgument(error.message)
        headers = [("x-amz-request-id", request.request_id), ("x-amz-id-2", self.host_id)]
        if error.status == 304:
            return Response(304, headers + [(k, str(v)) for k, v in error.extra.items()])
        if request.method == "HEAD":
            return Response(error.status, headers)
        fields = "".join(f"<{k}>{_x(v)}</{k}>" for k, v in error.extra.items()
                         if not k.startswith("_"))
        document = (
            f"<Error><Code>{_x(error.code)}</Code><Message>{_x(error.message)}</Message>"
            f"{fields}<RequestId>{request.request_id}</RequestId>"
            f"<HostId>{self.host_id}</HostId></Error>"
        )
        response = xml_response(document, error.status)
        response.headers.extend(headers)
        return response

    # -- service -------------------------------------------------------------------------
    def op_ListBuckets(self, call: S3Call) -> Response:
        params = call.params()
        prefix = params.get("Prefix", "")
        region = params.get("BucketRegion")
        buckets = [b for b in call.store.list_buckets()
                   if b.name.startswith(prefix) and (region is None or b.region == region)]
        marker = _decode_token(params.get("ContinuationToken"))
        if marker:
            buckets = [b for b in buckets if b.name > marker]
        limit = params.get("MaxBuckets")
        token = ""
        if limit is not None and len(buckets) > limit:
            buckets = buckets[:limit]
            token = f"<ContinuationToken>{_encode_token(buckets[-1].name)}</ContinuationToken>"
        entries = "".join(
            f"<Bucket><Name>{_x(b.name)}</Name><CreationDate>{iso_time(b.creation_date)}"
            f"</CreationDate><BucketRegion>{_x(b.region)}</BucketRegion></Bucket>"
            for b in buckets
        )
        return xml_response(
            f'<ListAllMyBucketsResult xmlns="{NAMESPACE}">{call.owner()}'
            f"<Buckets>{entries}</Buckets>{token}"
            f"{f'<Prefix>{_x(prefix)}</Prefix>' if prefix else ''}</ListAllMyBucketsResult>"
        )

    # -- buckets -------------------------------------------------------------------------
    def op_CreateBucket(self, call: S3Call) -> Response:
        region = "us-east-1"
        payload: dict = {}
        if call.body and call.body.strip():
            root = _xml_root(call.body, "CreateBucket")
            constraint = root.findtext("LocationConstraint")
            if constraint:
                region = constraint
                payload["CreateBucketConfiguration"] = {"LocationConstraint": constraint}
        call.params(payload)
        call.store.create_bucket(call.bucket, region=region)
        return Response(200, [("location", f"/{call.bucket}")])

    def op_DeleteBucket(self, call: S3Call) -> Response:
        call.params()
        call.store.delete_bucket(call.bucket)
        return Response(204)

    def op_HeadBucket(self, call: S3Call) -> Response:
        call.params()
        info = call.store.head_bucket(call.bucket)
        return Response(200, [("x-amz-bucket-region", info.region)])

    def op_GetBucketLocation(self, call: S3Call) -> Response:
        call.params()
        info = call.store.head_bucket(call.bucket)
        region = "" if info.region == "us-east-1" else _x(info.region)
        return xml_response(f'<LocationConstraint xmlns="{NAMESPACE}">{region}'
                            "</LocationConstraint>")

    def op_GetBucketVersioning(self, call: S3Call) -> Response:
        call.params()
        call.store.head_bucket(call.bucket)
        return xml_response(f'<VersioningConfiguration xmlns="{NAMESPACE}"/>')

    def op_ListObjectsV2(self, call: S3Call) -> Response:
        params = call.params()
        token = params.get("ContinuationToken")
        marker = _decode_token(token) if token is not None else None
        if token is not None and marker is None:
            raise errors.InvalidArgument("The continuation token provided is incorrect",
                                         ArgumentName="continuation-token")
        start_after = params.get("StartAfter")
        start = max(filter(None, (marker, start_after)), default=None)
        page, encode = self._list(call, params, start)
        extra = ""
        if token is not None:
            extra += f"<ContinuationToken>{_x(token)}</ContinuationToken>"
        if page.is_truncated and page.next_marker is not None:
            extra += (f"<NextContinuationToken>{_encode_token(page.next_marker)}"
                      "</NextContinuationToken>")
        if start_after:
            extra += f"<StartAfter>{_x(encode(start_after))}</StartAfter>"
        count = len(page.objects) + len(page.common_prefixes)
        return self._list_result(call, params, page, encode,
                                 f"<KeyCount>{count}</KeyCount>{extra}",
                                 owners=params.get("FetchOwner", False))

    def op_ListObjects(self, call: S3Call) -> Response:
        params = call.params()
        marker = params.get("Marker") or None
        page, encode = self._list(call, params, marker)
        extra = f"<Marker>{_x(encode(marker or ''))}</Marker>"
        if page.is_truncated and params.get("Delimiter") and page.next_marker:
            extra += f"<NextMarker>{_x(encode(page.next_marker))}</NextMarker>"
        return self._list_result(call, params, page, encode, extra, owners=True)

    def _list(self, call: S3Call, params: dict, start: str | None):
        max_keys = params.get("MaxKeys", 1000)
        if max_keys < 0:
            raise errors.InvalidArgument("max-keys cannot be negative", ArgumentName="max-keys",
                                         ArgumentValue=max_keys)
        encoding = params.get("EncodingType")
        page = call.store.list_objects(
            call.bucket, prefix=params.get("Prefix", ""), delimiter=params.get("Delimiter") or None,
            start_after=start, max_keys=min(max_keys, 1000),
        )
        def encode(text: str) -> str:
            return quote(text, safe="/") if encoding == "url" else text
        return page, encode

    def _list_result(self, call, params, page, encode, extra: str, owners: bool) -> Response:
        owner = call.owner() if owners else ""
        contents = "".join(
            f"<Contents><Key>{_x(encode(o.key))}</Key>"
            f"<LastModified>{iso_time(o.last_modified)}</LastModified>"
            f"<ETag>{_x(o.etag)}</ETag><Size>{o.size}</Size>{owner}"
            f"<StorageClass>{_x(o.headers.get('x-amz-storage-class', 'STANDARD'))}"
            "</StorageClass></Contents>"
            for o in page.objects
        )
        prefixes = "".join(f"<CommonPrefixes><Prefix>{_x(encode(p))}</Prefix></CommonPrefixes>"
                           for p in page.common_prefixes)
        delimiter = params.get("Delimiter")
        encoding = params.get("EncodingType")
        document = (
            f'<ListBucketResult xmlns="{NAMESPACE}"><Name>{_x(call.bucket)}</Name>'
            f"<Prefix>{_x(encode(params.get('Prefix', '')))}</Prefix>"
            f"<MaxKeys>{params.get('MaxKeys', 1000)}</MaxKeys>"
            f"{f'<Delimiter>{_x(encode(delimiter))}</Delimiter>' if delimiter else ''}"
            f"<IsTruncated>{_bool(page.is_truncated)}</IsTruncated>{extra}"
            f"{f'<EncodingType>{encoding}</EncodingType>' if encoding else ''}"
            f"{contents}{prefixes}</ListBucketResult>"
        )
        return xml_response(document)

    # -- objects -------------------------------------------------------------------------
    def op_PutObject(self, call: S3Call) -> Response:
        params = call.params()
        call.store.head_bucket(call.bucket)
        stream, checksums = call.upload_stream(MAX_SINGLE_PUT_SIZE)
        info = call.store.put_object(
            call.bucket, call.key, stream, content_type=params.get("ContentType"),
            metadata=params.get("Metadata"), headers=call.stored_headers(checksums),
        )
        return Response(200, [("etag", info.etag), *checksums.items()])

    def op_GetObject(self, call: S3Call) -> Response:
        return self._read_object(call, with_body=True)

    def op_HeadObject(self, call: S3Call) -> Response:
        return self._read_object(call, with_body=False)

    def _read_object(self, call: S3Call, with_body: bool) -> Response:
        params = call.params()
        if params.get("PartNumber") is not None:
            raise errors.S3NotImplemented(
                "Reading an object by partNumber is not implemented by openmaker.",
                Header="partNumber",
            )
        byte_range = parse_range(params.get("Range"))
        store = call.store
        if not with_body and byte_range is None:
            info = store.head_object(call.bucket, call.key)
            _check_conditions(params, info)
            headers = _object_headers(info, call.request, params)
            headers.append(("content-length", str(info.size)))
            return Response(200, headers)
        reader = store.open_object(call.bucket, call.key, byte_range)
        try:
            info = reader.info
            _check_conditions(params, info)
            headers = _object_headers(info, call.request, params,
                                      whole=byte_range is None)
            headers.append(("content-length", str(reader.length)))
            status = 200
            if byte_range is not None:
                status = 206
                headers.append(("content-range",
                                f"bytes {reader.start}-{reader.end}/{info.size}"))
            if not with_body or reader.length <= INLINE_READ_LIMIT:
                data = reader.read() if with_body else b""
                reader.close()
                return Response(status, headers, data)
        except BaseException:
            reader.close()
            raise
        return Response(status, headers, reader.iter_chunks(STREAM_CHUNK))

    def op_DeleteObject(self, call: S3Call) -> Response:
        call.params()
        call.store.delete_object(call.bucket, call.key)
        return Response(204)

    def op_DeleteObjects(self, call: S3Call) -> Response:
        call.verify_small_body()
        root = _xml_root(call.body, "DeleteObjects")
        objects = [{"Key": element.findtext("Key")} for element in root.findall("Object")]
        if not objects or len(objects) > 1000 or any(o["Key"] is None for o in objects):
            raise errors.MalformedXML(
                "The XML you provided was not well-formed or did not validate against our "
                "published schema (DeleteObjects takes 1 to 1000 <Object><Key> entries)."
            )
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        call.params({"Delete": {"Objects": objects, "Quiet": quiet}})
        results = call.store.delete_objects(call.bucket, [o["Key"] for o in objects])
        parts = []
        for key, error in results:
            if error is None:
                if not quiet:
                    parts.append(f"<Deleted><Key>{_x(key)}</Key></Deleted>")
            else:
                code = getattr(error, "code", "InternalError")
                message = getattr(error, "message", str(error))
                parts.append(f"<Error><Key>{_x(key)}</Key><Code>{_x(code)}</Code>"
                             f"<Message>{_x(message)}</Message></Error>")
        return xml_response(f'<DeleteResult xmlns="{NAMESPACE}">{"".join(parts)}</DeleteResult>')

    def op_CopyObject(self, call: S3Call) -> Response:
        params = call.params()
        source_bucket, source_key = call.copy_source(params["CopySource"])
        source = call.store.head_object(source_bucket, source_key)
        _check_copy_conditions(params, source)
        directive = params.get("MetadataDirective", "COPY")
        replace = directive == "REPLACE"
        if (source_bucket, source_key) == (call.bucket, call.key) and not replace and not (
            params.get("StorageClass") or params.get("WebsiteRedirectLocation")
        ):
            raise errors.InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to "
                "itself without changing the object's metadata, storage class, website "
                "redirect location or encryption attributes."
            )
        info = call.store.copy_object(
            source_bucket, source_key, call.bucket, call.key,
            content_type=params.get("ContentType") if replace else None,
            metadata=params.get("Metadata", {}) if replace else None,
            headers=call.stored_headers({}) if replace else None,
        )
        return xml_response(
            f'<CopyObjectResult xmlns="{NAMESPACE}"><LastModified>'
            f"{iso_time(info.last_modified)}</LastModified><ETag>{_x(info.etag)}</ETag>"
            "</CopyObjectResult>"
        )

    # -- multipart -----------------------------------------------------------------------
    def op_CreateMultipartUpload(self, call: S3Call) -> Response:
        params = call.params()
        call.store.head_bucket(call.bucket)
        upload = call.store.create_multipart_upload(
            call.bucket, call.key, content_type=params.get("ContentType"),
            metadata=params.get("Metadata"), headers=call.stored_headers({}),
        )
        return xml_response(
            f'<InitiateMultipartUploadResult xmlns="{NAMESPACE}"><Bucket>{_x(call.bucket)}'
            f"</Bucket><Key>{_x(call.key)}</Key><UploadId>{_x(upload.upload_id)}</UploadId>"
            "</InitiateMultipartUploadResult>"
        )

    def op_UploadPart(self, call: S3Call) -> Response:
        params = call.params()
        number = _part_number(params)
        call.store.head_bucket(call.bucket)
        stream, checksums = call.upload_stream(MAX_SINGLE_PUT_SIZE)
        part = call.store.upload_part(call.bucket, call.key, params["UploadId"], number, stream)
        return Response(200, [("etag", part.etag), *checksums.items()])

    def op_UploadPartCopy(self, call: S3Call) -> Response:
        params = call.params()
        number = _part_number(params)
        source_bucket, source_key = call.copy_source(params["CopySource"])
        source = call.store.head_object(source_bucket, source_key)
        _check_copy_conditions(params, source)
        byte_range = None
        if params.get("CopySourceRange"):
            parsed = parse_range(params["CopySourceRange"])
            if parsed is None or parsed[0] is None or parsed[1] is None:
                raise errors.InvalidArgument(
                    "The x-amz-copy-source-range value must be of the form bytes=first-last "
                    "where first and last are the zero-based offsets of the first and last "
                    "bytes to copy", ArgumentName="x-amz-copy-source-range",
                    ArgumentValue=params["CopySourceRange"],
                )
            if parsed[1] >= source.size:
                raise errors.InvalidRange(
                    "The requested range is not satisfiable",
                    RangeRequested=params["CopySourceRange"], ActualObjectSize=source.size,
                )
            byte_range = (parsed[0], parsed[1])
        part = call.store.upload_part_copy(call.bucket, call.key, params["UploadId"], number,
                                           source_bucket, source_key, byte_range)
        return xml_response(
            f'<CopyPartResult xmlns="{NAMESPACE}"><LastModified>{iso_time(part.last_modified)}'
            f"</LastModified><ETag>{_x(part.etag)}</ETag></CopyPartResult>"
        )

    def op_CompleteMultipartUpload(self, call: S3Call) -> Response:
        call.verify_small_body()
        root = _xml_root(call.body, "CompleteMultipartUpload") if call.body.strip() else None
        parts = []
        for element in root.findall("Part") if root is not None else []:
            number, etag = element.findtext("PartNumber"), element.findtext("ETag")
            if number is None or etag is None or not number.strip().isdigit():
                raise errors.MalformedXML(
                    "The XML you provided was not well-formed or did not validate against "
                    "our published schema (each <Part> needs <PartNumber> and <ETag>)."
                )
            parts.append({"PartNumber": int(number), "ETag": etag.strip()})
        if not parts:
            raise errors.MalformedXML(
                "The XML you provided was not well-formed or did not validate against our "
                "published schema (CompleteMultipartUpload needs at least one <Part>)."
            )
        params = call.params({"MultipartUpload": {"Parts": parts}})
        info = call.store.complete_multipart_upload(
            call.bucket, call.key, params["UploadId"],
            [(p["PartNumber"], p["ETag"]) for p in parts],
        )
        location = f"{call.request.header('host', '')}/{call.bucket}/{quote(call.key)}"
        return xml_response(
            f'<CompleteMultipartUploadResult xmlns="{NAMESPACE}">'
            f"<Location>http://{_x(location)}</Location><Bucket>{_x(call.bucket)}</Bucket>"
            f"<Key>{_x(call.key)}</Key><ETag>{_x(info.etag)}</ETag>"
            "</CompleteMultipartUploadResult>"
        )

    def op_AbortMultipartUpload(self, call: S3Call) -> Response:
        params = call.params()
        call.store.abort_multipart_upload(call.bucket, call.key, params["UploadId"])
        return Response(204)

    def op_ListParts(self, call: S3Call) -> Response:
        params = call.params()
        marker = params.get("PartNumberMarker") or 0
        max_parts = min(params.get("MaxParts", 1000), 1000)
        page = call.store.list_parts(call.bucket, call.key, params["UploadId"],
                                     part_number_marker=marker, max_parts=max_parts)
        entries = "".join(
            f"<Part><PartNumber>{p.part_number}</PartNumber><LastModified>"
            f"{iso_time(p.last_modified)}</LastModified><ETag>{_x(p.etag)}</ETag>"
            f"<Size>{p.size}</Size></Part>"
            for p in page.parts
        )
        next_marker = page.next_part_number_marker
        return xml_response(
            f'<ListPartsResult xmlns="{NAMESPACE}"><Bucket>{_x(call.bucket)}</Bucket>'
            f"<Key>{_x(call.key)}</Key><UploadId>{_x(params['UploadId'])}</UploadId>"
            f"<PartNumberMarker>{marker}</PartNumberMarker>"
            + (f"<NextPartNumberMarker>{next_marker}</NextPartNumberMarker>"
               if next_marker else "") +
            f"<MaxParts>{max_parts}</MaxParts><IsTruncated>{_bool(page.is_truncated)}"
            f"</IsTruncated>{entries}<StorageClass>STANDARD</StorageClass>"
            f"{call.owner('Initiator')}{call.owner()}</ListPartsResult>"
        )

    def op_ListMultipartUploads(self, call: S3Call) -> Response:
        params = call.params()
        prefix = params.get("Prefix", "")
        key_marker = params.get("KeyMarker", "")
        id_marker = params.get("UploadIdMarker", "")
        max_uploads = min(params.get("MaxUploads", 1000), 1000)
        uploads = [
            u for u in call.store.list_multipart_uploads(call.bucket, prefix=prefix)
            if not key_marker or u.key > key_marker
            or (u.key == key_marker and id_marker and u.upload_id > id_marker)
        ]
        truncated = len(uploads) > max_uploads
        uploads = uploads[:max_uploads]
        next_markers = ""
        if truncated and uploads:
            next_markers = (f"<NextKeyMarker>{_x(uploads[-1].key)}</NextKeyMarker>"
                            f"<NextUploadIdMarker>{_x(uploads[-1].upload_id)}"
                            "</NextUploadIdMarker>")
        entries = "".join(
            f"<Upload><Key>{_x(u.key)}</Key><UploadId>{_x(u.upload_id)}</UploadId>"
            f"{call.owner('Initiator')}{call.owner()}<StorageClass>STANDARD</StorageClass>"
            f"<Initiated>{iso_time(u.initiated)}</Initiated></Upload>"
            for u in uploads
        )
        return xml_response(
            f'<ListMultipartUploadsResult xmlns="{NAMESPACE}"><Bucket>{_x(call.bucket)}'
            f"</Bucket><KeyMarker>{_x(key_marker)}</KeyMarker><UploadIdMarker>"
            f"{_x(id_marker)}</UploadIdMarker>{next_markers}<Prefix>{_x(prefix)}</Prefix>"
            f"<MaxUploads>{max_uploads}</MaxUploads><IsTruncated>{_bool(truncated)}"
            f"</IsTruncated>{entries}</ListMultipartUploadsResult>"
        )


class S3Call:
    """One S3 request being served (runs in a worker thread)."""

    def __init__(self, ctx: RequestContext, request: Request, operation,
                 bucket: str, key: str, body: bytes | None,
                 verified: sigv4.VerifiedSignature | None) -> None:
        self.ctx = ctx
        self.request = request
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.body = body
        self.verified = verified
        self.store = ctx.platform.objects

    def params(self, payload: dict | None = None) -> dict:
        uri = {"Bucket": self.bucket}
        if self.key:
            uri["Key"] = self.key
        return parse_rest_input(self.operation, self.request, uri, payload)

    def owner(self, tag: str = "Owner") -> str:
        account = self.ctx.account_id
        return f"<{tag}><ID>{account}</ID><DisplayName>openmaker</DisplayName></{tag}>"

    def stored_headers(self, checksums: dict[str, str]) -> dict[str, str]:
        headers = {name: value for name in STORED_HEADERS
                   if (value := self.request.header(name)) is not None}
        encoding = headers.get("content-encoding")
        if encoding is not None:
            kept = [e for e in (p.strip() for p in encoding.split(",")) if e != "aws-chunked"]
            if kept:
                headers["content-encoding"] = ", ".join(kept)
            else:
                del headers["content-encoding"]
        headers.update(checksums)
        return headers

    def copy_source(self, value: str) -> tuple[str, str]:
        source = unquote(value.split("?versionId=", 1)[0]).lstrip("/")
        bucket, _, key = source.partition("/")
        if not bucket or not key:
            raise errors.InvalidArgument("Copy Source must mention the source bucket and key: "
                                         "sourcebucket/sourcekey",
                                         ArgumentName="x-amz-copy-source", ArgumentValue=value)
        return bucket, key

    def verify_small_body(self) -> None:
        """Content-MD5 and x-amz-checksum-* on a body read whole (DeleteObjects ...)."""
        chunks: object = [self.body]
        md5 = self.request.header("content-md5")
        if md5 is not None:
            chunks = body_checks.verify_content_md5(chunks, md5)
        for header, algorithm in CHECKSUM_HEADERS.items():
            value = self.request.header(header)
            if value is not None:
                chunks = body_checks.verify_checksum(chunks, algorithm, value)
        b"".join(chunks)

    def upload_stream(self, max_size: int):
        """The request body as verified chunks, and the checksum headers to store/echo."""
        request = self.request
        declared = request.header("x-amz-content-sha256") or ""
        encoding = request.header("content-encoding") or ""
        chunked = declared.startswith("STREAMING-") or "aws-chunked" in encoding
        if chunked:
            decoded = request.header("x-amz-decoded-content-length")
            if decoded is None:
                raise errors.MissingContentLength(
                    "aws-chunked uploads need x-amz-decoded-content-length."
                )
            length = _int_header(decoded, "x-amz-decoded-content-length")
        else:
            length = request.content_length
            if length is None:
                raise errors.MissingContentLength("You must provide the Content-Length HTTP "
                                                  "header.")
        if length > max_size:
            raise errors.EntityTooLarge(
                "Your proposed upload exceeds the maximum allowed size",
                ProposedSize=length, MaxSizeAllowed=max_size,
            )
        chunks = request.iter_body()
        if chunked:
            chunks = body_checks.decode_aws_chunked(
                chunks, verified=self.verified, payload_mode=declared or "UNSIGNED-PAYLOAD",
                decoded_length=length, declared_trailer=request.header("x-amz-trailer"),
            )
        elif self.verified is not None and _is_hex_hash(declared):
            chunks = body_checks.verify_sha256(chunks, declared)
        md5 = request.header("content-md5")
        if md5 is not None:
            chunks = body_checks.verify_content_md5(chunks, md5)
        checksums: dict[str, str] = {}
        for header, algorithm in CHECKSUM_HEADERS.items():
            value = request.header(header)
            if value is not None:
                chunks = body_checks.verify_checksum(chunks, algorithm, value)
                checksums[header] = value
        return _exact_length(chunks, length), checksums


def _exact_length(chunks, length: int):
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > length:
            raise errors.InvalidRequest("The body is longer than its declared length.")
        yield chunk
    if received != length:
        raise errors.IncompleteBody(
            "You did not provide the number of bytes specified by the Content-Length HTTP "
            "header."
        )


def _int_header(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise errors.InvalidArgument(f"{name} must be a non-negative integer",
                                     ArgumentName=name, ArgumentValue=value)
    return number


def _is_hex_hash(value: str | None) -> bool:
    return value is not None and len(value) == 64 and all(
        c in "0123456789abcdef" for c in value.lower()
    )


def _part_number(params: dict) -> int:
    number = params.get("PartNumber")
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise errors.InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            ArgumentName="partNumber", ArgumentValue=number,
        )
    return number


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(("om1:" + marker).encode()).decode()


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return text[4:] if text.startswith("om1:") else None


def _object_headers(info: ObjectInfo, request: Request, params: dict,
                    whole: bool = True) -> list[tuple[str, str]]:
    headers = [
        ("content-type", params.get("ResponseContentType") or info.content_type),
        ("etag", info.etag),
        ("last-modified", http_time(info.last_modified)),
        ("accept-ranges", "bytes"),
    ]
    checksum_mode = (request.header("x-amz-checksum-mode") or "").upper() == "ENABLED"
    for name, value in info.headers.items():
        if name in CHECKSUM_HEADERS and not (checksum_mode and whole):
            continue
        headers.append((name, value))
    overrides = {"content-disposition": "ResponseContentDisposition",
                 "content-encoding": "ResponseContentEncoding",
                 "content-language": "ResponseContentLanguage",
                 "cache-control": "ResponseCacheControl"}
    for header, member in overrides.items():
        if params.get(member):
            headers = [(k, v) for k, v in headers if k != header] + [(header, params[member])]
    if params.get("ResponseExpires") is not None:
        headers = [(k, v) for k, v in headers if k != "expires"]
        headers.append(("expires", http_time(params["ResponseExpires"])))
    headers.extend((f"x-amz-meta-{k}", v) for k, v in info.metadata.items())
    if info.parts_count:
        headers.append(("x-amz-mp-parts-count", str(info.parts_count)))
    return headers


def _etag_matches(condition: str, etag: str) -> bool:
    wanted = [c.strip() for c in condition.split(",")]
    return "*" in wanted or etag in wanted or etag.strip('"') in (w.strip('"') for w in wanted)


def _check_conditions(params: dict, info: ObjectInfo) -> None:
    """If-Match / If-Unmodified-Since (412) and If-None-Match / If-Modified-Since (304)."""
    modified = info.last_modified.replace(microsecond=0)
    if params.get("IfMatch") is not None:
        if not _etag_matches(params["IfMatch"], info.etag):
            raise errors.PreconditionFailed("At least one of the pre-conditions you specified "
                                            "did not hold", Condition="If-Match")
    elif params.get("IfUnmodifiedSince") is not None and modified > params["IfUnmodifiedSince"]:
        raise errors.PreconditionFailed("At least one of the pre-conditions you specified did "
                                        "not hold", Condition="If-Unmodified-Since")
    not_modified = errors.NotModified("Not Modified", ETag=info.etag,
                                      **{"Last-Modified": http_time(info.last_modified)})
    if params.get("IfNoneMatch") is not None:
        if _etag_matches(params["IfNoneMatch"], info.etag):
            raise not_modified
    elif params.get("IfModifiedSince") is not None and modified <= params["IfModifiedSince"]:
        raise not_modified


def _check_copy_conditions(params: dict, source: ObjectInfo) -> None:
    modified = source.last_modified.replace(microsecond=0)
    failed = None
    if params.get("CopySourceIfMatch") is not None:
        if not _etag_matches(params["CopySourceIfMatch"], source.etag):
            failed = "x-amz-copy-source-If-Match"
    elif (params.get("CopySourceIfUnmodifiedSince") is not None
          and modified > params["CopySourceIfUnmodifiedSince"]):
        failed = "x-amz-copy-source-If-Unmodified-Since"
    if params.get("CopySourceIfNoneMatch") is not None:
        if _etag_matches(params["CopySourceIfNoneMatch"], source.etag):
            failed = "x-amz-copy-source-If-None-Match"
    elif (params.get("CopySourceIfModifiedSince") is not None
          and modified <= params["CopySourceIfModifiedSince"]):
        failed = "x-amz-copy-source-If-Modified-Since"
    if failed:
        raise errors.PreconditionFailed(
            "At least one of the pre-conditions you specified did not hold", Condition=failed
        )
