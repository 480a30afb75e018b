"""S3 REST through a real server on loopback, driven by real boto3 (and raw HTTP where
boto3 would refuse to send the bad request)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def raw(server, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), data


# -- buckets --------------------------------------------------------------------------------
def test_bucket_lifecycle(s3):
    s3.create_bucket(Bucket="lifecycle-bucket")
    assert "lifecycle-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.head_bucket(Bucket="lifecycle-bucket")["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket="lifecycle-bucket")
    assert error_code(excinfo) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="lifecycle-bucket", Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket="lifecycle-bucket")
    assert error_code(excinfo) == "BucketNotEmpty"
    s3.delete_object(Bucket="lifecycle-bucket", Key="k")
    s3.delete_bucket(Bucket="lifecycle-bucket")
    with pytest.raises(ClientError) as excinfo:
        s3.head_bucket(Bucket="lifecycle-bucket")
    assert status_of(excinfo) == 404


def test_bucket_location_region(s3):
    s3.create_bucket(Bucket="eu-bucket-loc",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket="eu-bucket-loc")["LocationConstraint"] == "eu-west-1"
    s3.create_bucket(Bucket="us-bucket-loc")
    assert s3.get_bucket_location(Bucket="us-bucket-loc")["LocationConstraint"] is None


def test_invalid_bucket_name_is_refused(server):
    status, _, body = raw(server, "PUT", "/Invalid_Bucket")
    assert status == 400 and b"<Code>InvalidBucketName</Code>" in body


def test_missing_bucket_and_key(s3, bucket):
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket="no-such-bucket-here", Key="k")
    assert error_code(excinfo) == "NoSuchBucket"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="missing")
    assert error_code(excinfo) == "NoSuchKey" and status_of(excinfo) == 404
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert error_code(excinfo) == "NoSuchBucket"


# -- objects --------------------------------------------------------------------------------
def test_put_get_head_with_metadata(s3, bucket):
    body = b"hello openmaker"
    put = s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=body, ContentType="text/plain",
                        Metadata={"owner": "ada"}, CacheControl="max-age=60")
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/hello.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"owner": "ada"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]


def test_empty_object_and_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


@pytest.mark.parametrize("spec, expected", [
    ("bytes=0-4", b"01234"), ("bytes=5-", b"56789"), ("bytes=-3", b"789"),
    ("bytes=8-100", b"89"),
])
def test_byte_ranges(s3, bucket, spec, expected):
    s3.put_object(Bucket=bucket, Key="digits", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="digits", Range=spec)
    assert got["Body"].read() == expected
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"].endswith("/10")


def test_unsatisfiable_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="digits", Body=b"0123456789")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="digits", Range="bytes=10-20")
    assert error_code(excinfo) == "InvalidRange" and status_of(excinfo) == 416


def test_conditional_get(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"abc")["ETag"]
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status_of(excinfo) == 304
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert error_code(excinfo) == "PreconditionFailed" and status_of(excinfo) == 412
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"abc"


def test_large_object_streams_back(s3, bucket):
    data = bytes(range(256)) * (3 * MIB // 256 + 7)
    s3.put_object(Bucket=bucket, Key="large", Body=data)
    assert s3.get_object(Bucket=bucket, Key="large")["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="large", Range="bytes=1000000-1000009")[
        "Body"].read() == data[1000000:1000010]


def test_delete_objects_batch(s3, bucket):
    for name in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=name, Body=name.encode())
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a"}, {"Key": "b"}, {"Key": "never-existed"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b", "never-existed"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["c"]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_object_and_metadata_directives(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/csv",
                  Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    copied = s3.get_object(Bucket=bucket, Key="copy")
    assert copied["Body"].read() == b"payload"
    assert copied["ContentType"] == "text/csv" and copied["Metadata"] == {"a": "1"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src",
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/plain")
    replaced = s3.head_object(Bucket=bucket, Key="replaced")
    assert replaced["Metadata"] == {"b": "2"} and replaced["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_code(excinfo) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}


def test_unicode_and_special_keys_round_trip(s3, bucket):
    keys = ["spaces in name.txt", "plus+sign", "ünïcödé/файл", "a%2Fb", "q?x=1&y", "dir/", "a//b",
            "tilde~", "semi;colon", "x/./y"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in keys:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())


# -- listing --------------------------------------------------------------------------------
def test_list_with_delimiter_prefix_and_pagination(s3, bucket):
    keys = ["a-c", "a/b", "a/c/d", "a/c/e", "b", "c/1", "c/2"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listing = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listing["Contents"]] == ["a-c", "b"]
    assert [p["Prefix"] for p in listing["CommonPrefixes"]] == ["a/", "c/"]
    nested = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in nested["Contents"]] == ["a/b"]
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["a/c/"]
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 4
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == keys
    v1 = list(s3.get_paginator("list_objects").paginate(Bucket=bucket,
                                                        PaginationConfig={"PageSize": 3}))
    assert [o["Key"] for page in v1 for o in page.get("Contents", [])] == keys
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="a/c/d")
    assert [o["Key"] for o in after["Contents"]] == ["a/c/e", "b", "c/1", "c/2"]


def test_list_rejects_bad_arguments(server, bucket):
    status, _, body = raw(server, "GET", f"/{bucket}?list-type=2&max-keys=lots")
    assert status == 400 and b"InvalidArgument" in body and b"maxKeys" in body
    status, _, body = raw(server, "GET", f"/{bucket}?list-type=2&continuation-token=garbage")
    assert status == 400 and b"InvalidArgument" in body
    status, _, body = raw(server, "GET", f"/{bucket}?list-type=2&encoding-type=base64")
    assert status == 400 and b"encodingType" in body


# -- multipart ------------------------------------------------------------------------------
def _parts(s3, bucket, key, sizes):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key,
                                           ContentType="application/x-test")["UploadId"]
    parts, blobs = [], []
    for number, size in enumerate(sizes, start=1):
        blob = bytes([number]) * size
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=blob)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
        blobs.append(blob)
    return upload_id, parts, blobs


def test_multipart_upload_assembles_with_s3_etag(s3, bucket):
    upload_id, parts, blobs = _parts(s3, bucket, "mp", [5 * MIB, 5 * MIB, 1234])
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=2)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2] and listed["IsTruncated"]
    assert upload_id in [u["UploadId"] for u in
                         s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    digest = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in blobs)).hexdigest()
    assert done["ETag"] == f'"{digest}-3"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(blobs)
    assert got["ContentType"] == "application/x-test"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_undersized_part_is_refused(s3, bucket):
    upload_id, parts, _ = _parts(s3, bucket, "small", [1024, 1024])
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    assert error_code(excinfo) == "EntityTooSmall"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="small")


def test_multipart_missing_or_wrong_part_is_refused(s3, bucket):
    upload_id, parts, _ = _parts(s3, bucket, "gap", [5 * MIB, 10])
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="gap", UploadId=upload_id,
            MultipartUpload={"Parts": [parts[0], {"PartNumber": 3, "ETag": parts[1]["ETag"]}]})
    assert error_code(excinfo) == "InvalidPart"
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="gap", UploadId=upload_id,
            MultipartUpload={"Parts": [parts[0], {"PartNumber": 2, "ETag": '"0000"'}]})
    assert error_code(excinfo) == "InvalidPart"
    with pytest.raises(ClientError) as excinfo:
        s3.complete_multipart_upload(Bucket=bucket, Key="gap", UploadId=upload_id,
                                     MultipartUpload={"Parts": list(reversed(parts))})
    assert error_code(excinfo) == "InvalidPartOrder"
    s3.abort_multipart_upload(Bucket=bucket, Key="gap", UploadId=upload_id)
    with pytest.raises(ClientError) as excinfo:
        s3.list_parts(Bucket=bucket, Key="gap", UploadId=upload_id)
    assert error_code(excinfo) == "NoSuchUpload"


def test_upload_part_copy(s3, bucket):
    source = bytes(range(256)) * (6 * MIB // 256)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    first = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "source"},
                                CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    second = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=upload_id,
                                 PartNumber=2, CopySource={"Bucket": bucket, "Key": "source"},
                                 CopySourceRange=f"bytes={5 * MIB}-{len(source) - 1}")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=upload_id,
                                 MultipartUpload={"Parts": [
                                     {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                                     {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]},
                                 ]})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == source


def test_part_number_out_of_range(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    with pytest.raises(ClientError) as excinfo:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert error_code(excinfo) == "InvalidArgument"


def test_malformed_xml_bodies(server, bucket):
    status, _, body = raw(server, "POST", f"/{bucket}?delete", b"<Delete><Object>",
                          {"Content-MD5": base64.b64encode(
                              hashlib.md5(b"<Delete><Object>").digest()).decode()})
    assert status == 400 and b"<Code>MalformedXML</Code>" in body
    status, _, body = raw(server, "POST", f"/{bucket}/k?uploads")
    upload_id = body.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
    status, _, body = raw(server, "POST", f"/{bucket}/k?uploadId={upload_id}", b"not xml")
    assert status == 400 and b"<Code>MalformedXML</Code>" in body
    status, _, body = raw(server, "POST", f"/{bucket}/k?uploadId={upload_id}",
                          b"<CompleteMultipartUpload></CompleteMultipartUpload>")
    assert status == 400 and b"<Code>MalformedXML</Code>" in body


# -- integrity and bad input ----------------------------------------------------------------
def test_content_md5_mismatch_keeps_nothing(server, s3, bucket):
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, _, body = raw(server, "PUT", f"/{bucket}/md5", b"payload", {"Content-MD5": wrong})
    assert status == 400 and b"<Code>BadDigest</Code>" in body
    status, _, body = raw(server, "PUT", f"/{bucket}/md5", b"payload", {"Content-MD5": "zz"})
    assert status == 400 and b"<Code>InvalidDigest</Code>" in body
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="md5")
    assert status_of(excinfo) == 404


def test_checksum_mismatch_keeps_nothing(server, s3, bucket):
    status, _, body = raw(server, "PUT", f"/{bucket}/crc", b"payload",
                          {"x-amz-checksum-crc32": "AAAAAA=="})
    assert status == 400 and b"BadDigest" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="crc")


def test_checksum_returned_when_asked(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ck", Body=b"checked", ChecksumAlgorithm="SHA256")
    got = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"checked"
    assert got["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(b"checked").digest()).decode()


@pytest.mark.parametrize("path", [
    "/{bucket}/a/../../etc/passwd", "/{bucket}/%2E%2E/secret", "/{bucket}/..",
    "/{bucket}/nul%00byte",
])
def test_traversal_and_nul_keys_are_refused(server, bucket, path):
    status, _, body = raw(server, "PUT", path.format(bucket=bucket), b"x")
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body
    storage = server.home / "storage"
    assert not (storage / "etc").exists() and not (storage / "secret").exists()


def test_overlong_key_is_refused(server, bucket):
    status, _, body = raw(server, "PUT", f"/{bucket}/{'k' * 1025}", b"x")
    assert status == 400 and b"<Code>KeyTooLongError</Code>" in body


def test_unimplemented_subresource_names_itself(server, bucket):
    status, _, body = raw(server, "GET", f"/{bucket}?acl")
    assert status == 501 and b"<Code>NotImplemented</Code>" in body and b"acl" in body


def test_concurrent_writers_leave_one_complete_object(s3, bucket):
    bodies = [bytes([i]) * (256 * 1024 + i) for i in range(8)]
    barrier = threading.Barrier(len(bodies))

    def write(blob):
        barrier.wait()
        s3.put_object(Bucket=bucket, Key="contended", Body=blob)

    with ThreadPoolExecutor(len(bodies)) as pool:
        list(pool.map(write, bodies))
    final = s3.get_object(Bucket=bucket, Key="contended")
    data = final["Body"].read()
    assert data in bodies
    assert final["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


# -- addressing -----------------------------------------------------------------------------
def test_virtual_hosted_style(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="vh/key.txt", Body=b"virtual")
    status, _, body = raw(server, "GET", "/vh/key.txt",
                          headers={"Host": f"{bucket}.localhost:{server.port}"})
    assert status == 200 and body == b"virtual"
    status, _, body = raw(server, "GET", "/?list-type=2&prefix=vh/",
                          headers={"Host": f"{bucket}.s3.localhost:{server.port}"})
    assert status == 200 and b"<Key>vh/key.txt</Key>" in body


def test_presigned_get_and_put(s3, bucket):
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "ps"})
    request = urllib.request.Request(put_url, data=b"presigned body", method="PUT")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "ps"})
    with urllib.request.urlopen(get_url) as response:
        assert response.read() == b"presigned body"


def test_oversized_single_put_is_refused_before_the_body(server, bucket):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("PUT", f"/{bucket}/huge")
    connection.putheader("Content-Length", str(6 * 1024**3))
    connection.putheader("Expect", "100-continue")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 400 and b"<Code>EntityTooLarge</Code>" in body
    status, _, _ = raw(server, "HEAD", f"/{bucket}/huge")
    assert status == 404


def test_oversized_xml_body_is_refused(server, bucket):
    status, _, body = raw(server, "POST", f"/{bucket}?delete", b"<" * (3 * MIB))
    assert status == 400 and b"<Code>EntityTooLarge</Code>" in body


@pytest.mark.parametrize("host, bucket", [
    ("my-bucket.localhost:7777", "my-bucket"), ("my.dotted.bucket.localhost", "my.dotted.bucket"),
    ("data.s3.localhost:7777", "data"), ("logs.s3.amazonaws.com", "logs"),
    ("logs.s3.eu-west-1.amazonaws.com", "logs"), ("localhost:7777", None),
    ("s3.localhost:7777", None), ("127.0.0.1:7777", None), ("[::1]:7777", None),
    ("s3.amazonaws.com", None), ("s3.eu-west-1.amazonaws.com", None),
])
def test_virtual_host_parsing(host, bucket):
    from openmaker.api.s3 import virtual_bucket

    assert virtual_bucket(host) == bucket
