"""SigV4 authentication on a server with access keys, end to end with boto3 and raw HTTP."""

from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from tests.conftest import TEST_KEY_ID, TEST_SECRET

from openmaker.api.server import check_bind_allowed
from openmaker.config import ConfigError, load_settings


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def status(excinfo) -> int:
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def good(auth_server):
    return lambda service: auth_server.client(service, TEST_KEY_ID, TEST_SECRET)


def test_signed_requests_by_a_known_key_succeed(good):
    s3 = good("s3")
    s3.create_bucket(Bucket="auth-ok")
    s3.put_object(Bucket="auth-ok", Key="k", Body=b"signed")
    assert s3.get_object(Bucket="auth-ok", Key="k")["Body"].read() == b"signed"
    assert good("sagemaker").list_models()["Models"] == []
    assert good("sts").get_caller_identity()["UserId"] == TEST_KEY_ID


def test_signed_multipart_upload(good, tmp_path):
    s3 = good("s3")
    s3.create_bucket(Bucket="auth-multipart")
    path = tmp_path / "big.bin"
    path.write_bytes(b"m" * (17 * 1024 * 1024))
    s3.upload_file(str(path), "auth-multipart", "big.bin")
    assert s3.head_object(Bucket="auth-multipart", Key="big.bin")["ETag"].endswith('-3"')


def test_wrong_secret_is_refused(auth_server):
    with pytest.raises(ClientError) as excinfo:
        auth_server.client("s3", TEST_KEY_ID, "wrong").list_buckets()
    assert code(excinfo) == "SignatureDoesNotMatch" and status(excinfo) == 403
    with pytest.raises(ClientError) as excinfo:
        auth_server.client("sagemaker", TEST_KEY_ID, "wrong").list_models()
    assert code(excinfo) == "InvalidSignatureException" and status(excinfo) == 403
    with pytest.raises(ClientError) as excinfo:
        auth_server.client("sts", TEST_KEY_ID, "wrong").get_caller_identity()
    assert code(excinfo) == "SignatureDoesNotMatch" and status(excinfo) == 403


def test_unknown_key_is_refused(auth_server):
    with pytest.raises(ClientError) as excinfo:
        auth_server.client("s3", "AKIDUNKNOWN", TEST_SECRET).list_buckets()
    assert code(excinfo) == "InvalidAccessKeyId" and status(excinfo) == 403
    with pytest.raises(ClientError) as excinfo:
        auth_server.client("sagemaker", "AKIDUNKNOWN", TEST_SECRET).list_models()
    assert code(excinfo) == "UnrecognizedClientException" and status(excinfo) == 403


def _raw(auth_server, method, path, headers, body=b""):
    connection = http.client.HTTPConnection("127.0.0.1", auth_server.port, timeout=30)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def test_unsigned_requests_are_refused(auth_server):
    status_code, body = _raw(auth_server, "GET", "/", {})
    assert status_code == 403 and b"<Code>AccessDenied</Code>" in body
    status_code, body = _raw(auth_server, "POST", "/", {
        "X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"},
        b"{}")
    assert status_code == 403 and b"MissingAuthenticationToken" in body


def _signed(auth_server, service, body, when=None, secret=TEST_SECRET, target=None):
    url = f"{auth_server.url}/"
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    signer = SigV4Auth(Credentials(TEST_KEY_ID, secret), service, "us-east-1")
    moment = (when or datetime.now(UTC)).replace(tzinfo=None)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
        signer.add_auth(request)
    return dict(request.headers.items())


def test_forged_body_is_refused(auth_server):
    headers = _signed(auth_server, "sagemaker", b"{}", target="SageMaker.ListModels")
    status_code, body = _raw(auth_server, "POST", "/", headers, b'{"MaxResults": 5}')
    assert status_code == 403 and b"InvalidSignatureException" in body


def test_forged_header_is_refused(auth_server):
    headers = _signed(auth_server, "sagemaker", b"{}", target="SageMaker.ListModels")
    headers["X-Amz-Target"] = "SageMaker.ListEndpoints"
    status_code, body = _raw(auth_server, "POST", "/", headers, b"{}")
    assert status_code == 403 and b"InvalidSignatureException" in body


def test_clock_skew_is_refused(auth_server):
    stale = datetime.now(UTC) - timedelta(minutes=20)
    headers = _signed(auth_server, "sagemaker", b"{}", when=stale, target="SageMaker.ListModels")
    status_code, body = _raw(auth_server, "POST", "/", headers, b"{}")
    assert status_code == 403 and b"Signature expired" in body


@pytest.mark.parametrize("signature_version", ["s3", "s3v4"])
def test_presigned_urls(auth_server, signature_version):
    s3 = auth_server.client("s3", TEST_KEY_ID, TEST_SECRET, signature_version=signature_version)
    bucket = f"auth-presign-{signature_version}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"shared")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"shared"
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(url.replace("/k?", "/other?"))
    assert excinfo.value.code == 403
    short = s3.generate_presigned_url("get_object", ExpiresIn=1,
                                      Params={"Bucket": bucket, "Key": "k"})
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(short)
    assert excinfo.value.code == 403 and b"expired" in excinfo.value.read()
    lengthened = re.sub(r"(X-Amz-Expires=|Expires=)(\d+)",
                        lambda m: m.group(1) + str(int(m.group(2)) + 3600), short)
    assert lengthened != short
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(lengthened)
    assert excinfo.value.code == 403


def test_no_keys_means_loopback_only(tmp_path, monkeypatch):
    for name in ("OPENMAKER_ACCESS_KEY_ID", "OPENMAKER_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="without access keys"):
        check_bind_allowed(load_settings(tmp_path, host="0.0.0.0"))
    check_bind_allowed(load_settings(tmp_path, host="127.0.0.1"))
    check_bind_allowed(load_settings(tmp_path, host="::1"))
    monkeypatch.setenv("OPENMAKER_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("OPENMAKER_SECRET_ACCESS_KEY", "s")
    check_bind_allowed(load_settings(tmp_path, host="0.0.0.0"))
