"""SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import (
    HmacV1Auth,
    HmacV1QueryAuth,
    S3SigV4Auth,
    S3SigV4QueryAuth,
    SigV4Auth,
    SigV4QueryAuth,
)
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from openmaker.api import sigv4
from openmaker.api.sigv4 import (
    CredentialScope,
    SignedRequest,
    VerifiedSignature,
    credential_scope,
    verify,
)
from openmaker.core import errors

ACCESS_KEY = "AKIDOPENMAKER0001"
SECRET = "s3cr3t/Key+with=odd+chars"
CREDS = Credentials(ACCESS_KEY, SECRET)
SIGNED_AT = datetime(2026, 1, 1, 12, 0, 0)  # botocore's clock is naive UTC
NOW = SIGNED_AT.replace(tzinfo=UTC)
ENDPOINT = "http://localhost:9000"


def secrets(key: str) -> str | None:
    return SECRET if key == ACCESS_KEY else None


def host_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def to_signed(prepared) -> SignedRequest:
    """What a server would see on the wire for a botocore prepared request."""
    parts = urlsplit(prepared.url)
    headers = []
    for name, value in prepared.headers.items():
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        headers.append((name.lower(), value))
    if not any(name == "host" for name, _ in headers):
        headers.append(("host", host_of(prepared.url)))
    return SignedRequest(prepared.method, parts.path, parts.query, headers)


def body_hash(prepared) -> str:
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return hashlib.sha256(body).hexdigest()


def sign(
    signer_cls,
    method: str,
    url: str,
    *,
    service: str,
    region: str = "us-east-1",
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    params=None,
    credentials: Credentials = CREDS,
    at: datetime = SIGNED_AT,
    context: dict | None = None,
    **signer_kwargs,
):
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params)
    request.context.update(context or {})
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=at):
        signer_cls(credentials, service, region, **signer_kwargs).add_auth(request)
    return request.prepare()


def check(prepared, dialect: str, *, now: datetime = NOW, secret_for=secrets, **kwargs):
    return verify(
        to_signed(prepared),
        secret_for=secret_for,
        now=now,
        max_skew_seconds=900,
        dialect=dialect,
        body_sha256=kwargs.pop("body_sha256", body_hash(prepared)),
        **kwargs,
    )


def with_header(request: SignedRequest, name: str, value: str) -> SignedRequest:
    headers = [(k, v) for k, v in request.headers if k != name] + [(name, value)]
    return SignedRequest(request.method, request.raw_path, request.query_string, headers)


def json_request(headers: dict[str, str] | None = None, **kwargs):
    return sign(
        SigV4Auth, "POST", f"{ENDPOINT}/", service="sagemaker",
        body=b'{"MaxResults": 10}',
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs",
                 "Content-Type": "application/x-amz-json-1.1", **(headers or {})},
        **kwargs,
    )


def s3_request(path: str = "/bucket/key.txt", body: bytes = b"hello", **kwargs):
    return sign(S3SigV4Auth, "PUT", f"{ENDPOINT}{path}", service="s3", body=body, **kwargs)


# --- header authentication ----------------------------------------------------------------


def test_json_header_signature_verifies():
    result = check(json_request(), "json")
    assert isinstance(result, VerifiedSignature)
    assert (result.access_key_id, result.region, result.service) == (
        ACCESS_KEY, "us-east-1", "sagemaker")
    assert result.payload_hash == hashlib.sha256(b'{"MaxResults": 10}').hexdigest()
    assert result.amz_date == "20260101T120000Z"
    assert result.scope == "20260101/us-east-1/sagemaker/aws4_request"
    assert not result.presigned
    assert "x-amz-target" in result.signed_headers


def test_s3_header_signature_verifies_with_declared_payload_hash():
    result = check(s3_request(), "s3", body_sha256=None)
    assert result.service == "s3"
    assert result.payload_hash == hashlib.sha256(b"hello").hexdigest()
    expected_seed = to_signed(s3_request()).headers
    auth = dict(expected_seed)["authorization"]
    assert auth.endswith(f"Signature={result.seed_signature}")


def test_query_dialect_verifies_a_form_encoded_sts_call():
    prepared = sign(
        SigV4Auth, "POST", f"{ENDPOINT}/", service="sts",
        body="Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert check(prepared, "query").service == "sts"


def test_session_token_is_reported():
    creds = Credentials(ACCESS_KEY, SECRET, "session-token/abc==")
    assert check(json_request(credentials=creds), "json").security_token == "session-token/abc=="


def test_date_header_is_used_when_botocore_signs_with_it():
    prepared = json_request(headers={"Date": "placeholder"})
    assert "X-Amz-Date" not in prepared.headers
    assert check(prepared, "json").amz_date == "20260101T120000Z"


def test_unsigned_headers_added_later_do_not_matter():
    request = with_header(to_signed(json_request()), "user-agent", "curl/8")
    verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="json",
           body_sha256=body_hash(json_request()))


def test_repeated_headers_are_joined_and_whitespace_collapsed():
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/bucket/k", headers={})
    request.headers.add_header("X-Amz-Meta-Multi", "  one   two ")
    request.headers.add_header("X-Amz-Meta-Multi", "three")
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=SIGNED_AT):
        S3SigV4Auth(CREDS, "s3", "us-east-1").add_auth(request)
    headers = [(k.lower(), v) for k, v in request.headers.items()] + [("host", "localhost:9000")]
    signed = SignedRequest("GET", "/bucket/k", "", headers)
    assert [v for k, v in signed.headers if k == "x-amz-meta-multi"] == ["  one   two ", "three"]
    verify(signed, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")


# --- paths and queries ----------------------------------------------------------------------

S3_KEYS = [
    "plain.txt",
    "with space/and+plus=equals.csv",
    "percent%2Fslash/%41",
    "unicode/ü-日本語/ß.bin",
    "tilde~/(parens)!*'&$@,;:",
    "dots/./and/../segments//double",
]


@pytest.mark.parametrize("key", S3_KEYS)
def test_s3_paths_are_signed_verbatim(key):
    path = "/bucket/" + quote(key, safe="/~")
    prepared = s3_request(path)
    assert urlsplit(prepared.url).path == path
    check(prepared, "s3")


@pytest.mark.parametrize("raw_path", [
    "/endpoints/my%20endpoint/invocations",
    "/functions/a%2Fb/c+d=e",
    "/caf%C3%A9/%E6%97%A5/~user",
    "/a/./b/../c//d/",
    "/",
])
def test_non_s3_paths_are_normalised_and_encoded_again(raw_path):
    prepared = sign(SigV4Auth, "GET", f"{ENDPOINT}{raw_path}", service="sagemaker")
    assert urlsplit(prepared.url).path == raw_path
    check(prepared, "json")


def test_non_s3_canonical_path_double_encodes_like_botocore():
    signer = SigV4Auth(CREDS, "sagemaker", "us-east-1")
    for raw in ["/a%2Fb/c d", "/x/./y/../z//", "/%E2%82%AC", ""]:
        assert sigv4._canonical_path(raw, s3=False) == signer._normalize_url_path(raw)


def test_query_parameters_from_params_with_repeats_and_reserved_characters():
    params = [("tag", "b"), ("tag", "a"), ("prefix", "a b/c+d=e&f"), ("ü", "~x*"), ("empty", "")]
    prepared = sign(S3SigV4Auth, "GET", f"{ENDPOINT}/bucket", service="s3", params=params)
    check(prepared, "s3")


def test_query_written_into_the_url_with_valueless_keys():
    prepared = sign(S3SigV4Auth, "GET", f"{ENDPOINT}/bucket?uploads&list-type=2&k=%20x",
                    service="s3")
    check(prepared, "s3")


def test_raw_query_text_signed_verbatim_by_botocore_still_verifies():
    # botocore signs a query already present in the URL as written ('+' stays '+').
    prepared = sign(SigV4Auth, "GET", f"{ENDPOINT}/?b=x+y&a=1&a=0", service="sagemaker")
    check(prepared, "json")


def test_canonical_query_reencodes_with_aws_rules():
    params = sigv4._parse_query("b=%7e+%2a&a=x%2fy&a&c=%E2%82%AC&d=%2B")
    assert sigv4._canonical_query(params, presigned=False) == (
        "a=&a=x%2Fy&b=~%20%2A&c=%E2%82%AC&d=%2B"
    )


# --- presigned URLs -------------------------------------------------------------------------


def presigned(path="/bucket/key.txt", *, query="", expires=3600, method="GET"):
    url = f"{ENDPOINT}{path}" + (f"?{query}" if query else "")
    return sign(S3SigV4QueryAuth, method, url, service="s3", expires=expires)


def test_presigned_url_verifies_with_unsigned_payload():
    result = check(presigned(query="versionId=v1&response-content-type=text%2Fplain"), "s3",
                   body_sha256=None)
    assert result.presigned and result.payload_hash == "UNSIGNED-PAYLOAD"


def test_presigned_url_from_a_real_client_verifies():
    s3 = boto3.client(
        "s3", endpoint_url=ENDPOINT, region_name="eu-west-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": "dir/a b+c.txt"}, ExpiresIn=600
    )
    parts = urlsplit(url)
    request = SignedRequest("GET", parts.path, parts.query, [("host", "localhost:9000")])
    result = verify(request, secret_for=secrets, now=datetime.now(UTC),
                    max_skew_seconds=900, dialect="s3")
    assert result.region == "eu-west-1" and result.presigned


def test_presigned_url_past_its_expiry_is_denied():
    with pytest.raises(errors.AccessDenied, match="Request has expired") as info:
        check(presigned(expires=60), "s3", now=NOW + timedelta(seconds=61))
    assert info.value.extra["X-Amz-Expires"] == "60"


def test_presigned_url_from_the_future_is_not_valid_yet():
    with pytest.raises(errors.AccessDenied, match="not valid yet"):
        check(presigned(), "s3", now=NOW - timedelta(hours=1))


@pytest.mark.parametrize("change", ["path", "query", "expires", "signature", "add-param"])
def test_tampered_presigned_url_is_rejected(change):
    request = to_signed(presigned(query="versionId=v1"))
    query = request.query_string
    if change == "path":
        request.raw_path = "/bucket/other.txt"
    elif change == "query":
        request.query_string = query.replace("versionId=v1", "versionId=v2")
    elif change == "expires":
        request.query_string = query.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200")
    elif change == "signature":
        signature = query.rsplit("X-Amz-Signature=", 1)[1]
        request.query_string = query.replace(signature, "0" * 64)
    else:
        request.query_string = query + "&acl="
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")


def test_presigned_non_s3_request_verifies_with_body_hash():
    prepared = sign(SigV4QueryAuth, "GET", f"{ENDPOINT}/?Action=GetCallerIdentity"
                    "&Version=2011-06-15", service="sts", expires=900)
    assert check(prepared, "query").presigned


def test_presigned_expiry_beyond_a_week_is_malformed():
    with pytest.raises(errors.AuthorizationHeaderMalformed, match="less than a week"):
        check(presigned(expires=604801), "s3")


def test_header_and_query_auth_together_are_refused():
    request = to_signed(presigned())
    request.headers.append(("authorization", dict(to_signed(s3_request()).headers)[
        "authorization"]))
    with pytest.raises(errors.InvalidArgument, match="Only one auth mechanism"):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")


# --- failures per dialect -------------------------------------------------------------------


@pytest.mark.parametrize(("dialect", "error"), [
    ("json", errors.MissingAuthenticationToken),
    ("query", errors.MissingAuthenticationToken),
    ("s3", errors.AccessDenied),
])
def test_unsigned_request_is_refused(dialect, error):
    request = SignedRequest("GET", "/", "", [("host", "localhost")])
    with pytest.raises(error) as info:
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect=dialect,
               body_sha256=sigv4.EMPTY_SHA256)
    if dialect == "s3":
        assert "Anonymous access is forbidden" in info.value.message


@pytest.mark.parametrize(("dialect", "error"), [
    ("json", errors.UnrecognizedClientException),
    ("query", errors.InvalidClientTokenId),
    ("s3", errors.InvalidAccessKeyId),
])
def test_unknown_access_key(dialect, error):
    prepared = s3_request() if dialect == "s3" else json_request()
    with pytest.raises(error):
        check(prepared, dialect, secret_for=lambda key: None)


@pytest.mark.parametrize(("dialect", "error"), [
    ("json", errors.InvalidSignatureException),
    ("query", errors.SignatureDoesNotMatch),
    ("s3", errors.SignatureDoesNotMatch),
])
def test_wrong_secret(dialect, error):
    prepared = s3_request() if dialect == "s3" else json_request()
    with pytest.raises(error) as info:
        check(prepared, dialect, secret_for=lambda key: "not-the-secret")
    if dialect == "s3":
        assert info.value.extra["AWSAccessKeyId"] == ACCESS_KEY
        assert info.value.extra["CanonicalRequest"].startswith("PUT\n/bucket/key.txt\n")
    else:
        assert "The Canonical String for this request should have been" in info.value.message


@pytest.mark.parametrize("offset", [timedelta(minutes=16), timedelta(minutes=-16)])
def test_clock_skew_json(offset):
    with pytest.raises(errors.SignatureExpired) as info:
        check(json_request(), "json", now=NOW + offset)
    assert info.value.code == "InvalidSignatureException"
    if offset > timedelta(0):
        assert info.value.message == (
            "Signature expired: 20260101T120000Z is now earlier than 20260101T120100Z "
            "(20260101T121600Z - 15 min.)"
        )
    else:
        assert info.value.message.startswith("Signature not yet current: 20260101T120000Z")


def test_clock_skew_s3_and_query():
    with pytest.raises(errors.RequestTimeTooSkewed) as info:
        check(s3_request(), "s3", now=NOW + timedelta(minutes=20))
    assert info.value.extra["MaxAllowedSkewMilliseconds"] == "900000"
    with pytest.raises(errors.SignatureDoesNotMatch, match="Signature expired"):
        check(json_request(), "query", now=NOW + timedelta(minutes=20))


def test_skew_within_the_window_is_accepted():
    check(json_request(), "json", now=NOW + timedelta(minutes=14))
    check(json_request(), "json", now=(NOW - timedelta(minutes=14)).replace(tzinfo=None))


@pytest.mark.parametrize(("dialect", "error"), [
    ("json", errors.InvalidSignatureException),
    ("query", errors.SignatureDoesNotMatch),
    ("s3", errors.AuthorizationHeaderMalformed),
])
def test_scope_date_must_equal_request_date(dialect, error):
    prepared = s3_request() if dialect == "s3" else json_request()
    request = with_header(to_signed(prepared), "x-amz-date", "20260102T000500Z")
    with pytest.raises(error, match="[Dd]ate"):
        verify(request, secret_for=secrets, now=datetime(2026, 1, 2, 0, 5, tzinfo=UTC),
               max_skew_seconds=900, dialect=dialect, body_sha256=body_hash(prepared))


@pytest.mark.parametrize(("dialect", "error", "header", "value"), [
    ("json", errors.InvalidSignatureException, "x-amz-target", "SageMaker.DeleteModel"),
    ("json", errors.InvalidSignatureException, "content-type", "text/plain"),
    ("s3", errors.SignatureDoesNotMatch, "host", "evil.example:9000"),
    ("s3", errors.SignatureDoesNotMatch, "x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
])
def test_tampered_signed_header(dialect, error, header, value):
    prepared = s3_request() if dialect == "s3" else json_request()
    request = with_header(to_signed(prepared), header, value)
    with pytest.raises(error):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect=dialect,
               body_sha256=body_hash(prepared))


def test_tampered_path_and_query_and_method():
    base = to_signed(sign(S3SigV4Auth, "GET", f"{ENDPOINT}/bucket/key?versionId=1", service="s3"))
    variants = [
        SignedRequest(base.method, "/bucket/kez", base.query_string, base.headers),
        SignedRequest(base.method, base.raw_path, "versionId=2", base.headers),
        SignedRequest(base.method, base.raw_path, "versionId=1&x=", base.headers),
        SignedRequest("DELETE", base.raw_path, base.query_string, base.headers),
    ]
    for request in variants:
        with pytest.raises(errors.SignatureDoesNotMatch):
            verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")


def test_json_body_must_match_the_signed_hash():
    with pytest.raises(errors.InvalidSignatureException):
        check(json_request(), "json", body_sha256=hashlib.sha256(b"{}").hexdigest())


def test_declared_body_hash_must_match_the_body_for_json():
    prepared = json_request(headers={"X-Amz-Content-SHA256": "0" * 64})
    with pytest.raises(errors.InvalidSignatureException, match="does not match"):
        check(prepared, "json")


def test_non_s3_verification_needs_a_body_hash():
    with pytest.raises(ValueError, match="body_sha256"):
        check(json_request(), "json", body_sha256=None)


def resign_authorization(request: SignedRequest, signed_headers: str) -> SignedRequest:
    """Re-sign with a chosen SignedHeaders list (botocore always includes host)."""
    headers = dict(request.headers)
    date = headers["x-amz-date"]
    scope = f"{date[:8]}/us-east-1/s3/aws4_request"
    names = signed_headers.split(";")
    canonical = "\n".join([
        request.method, request.raw_path, request.query_string,
        "".join(f"{n}:{headers[n].strip()}\n" for n in names), signed_headers,
        headers["x-amz-content-sha256"],
    ])
    key = sigv4.signing_key(SECRET, date[:8], "us-east-1", "s3")
    string_to_sign = sigv4._string_to_sign(date, scope, canonical)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    auth = (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}")
    return with_header(request, "authorization", auth)


def test_hand_made_signature_is_accepted_and_host_is_required():
    request = to_signed(s3_request())
    good = resign_authorization(request, "host;x-amz-content-sha256;x-amz-date")
    verify(good, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")
    no_host = resign_authorization(request, "x-amz-content-sha256;x-amz-date")
    with pytest.raises(errors.AuthorizationHeaderMalformed, match="'Host'"):
        verify(no_host, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")
    json = with_header(no_host, "authorization",
                       dict(no_host.headers)["authorization"].replace("/s3/", "/sagemaker/"))
    with pytest.raises(errors.IncompleteSignatureException, match="'Host'"):
        verify(json, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="json",
               body_sha256=sigv4.EMPTY_SHA256)


def test_s3_unsigned_amz_headers_are_refused():
    request = with_header(to_signed(s3_request()), "x-amz-acl", "public-read")
    with pytest.raises(errors.AccessDenied) as info:
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")
    assert info.value.extra["HeadersNotSigned"] == "x-amz-acl"


def test_s3_needs_a_content_sha256_header():
    prepared = sign(SigV4Auth, "GET", f"{ENDPOINT}/bucket/key", service="s3")
    with pytest.raises(errors.InvalidRequest, match="x-amz-content-sha256"):
        check(prepared, "s3")


def test_s3_payload_modes_are_accepted_and_junk_refused():
    unsigned = s3_request(context={"client_config": SimpleNamespace(
        s3={"payload_signing_enabled": False})})
    assert check(unsigned, "s3").payload_hash == "UNSIGNED-PAYLOAD"
    trailer = s3_request(context={"checksum": {"request_algorithm": {
        "in": "trailer", "name": "x-amz-checksum-crc32", "algorithm": "crc32"}}})
    assert check(trailer, "s3").payload_hash == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    junk = sign(SigV4Auth, "PUT", f"{ENDPOINT}/bucket/key", service="s3",
                headers={"X-Amz-Content-SHA256": "nonsense"})
    with pytest.raises(errors.InvalidArgument, match="x-amz-content-sha256"):
        check(junk, "s3")


@pytest.mark.parametrize("authorization", [
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request",
    "AWS4-HMAC-SHA256 Credential=AKID/2026-01-01/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=abc",
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3, SignedHeaders=host, "
    "Signature=abc",
    "AWS4-HMAC-SHA256 Credential=a, Credential=b, SignedHeaders=host, Signature=abc",
    "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=Host;;x, Signature=abc",
    "AWS4-HMAC-SHA256",
    "",
])
@pytest.mark.parametrize(("dialect", "error"), [
    ("json", errors.IncompleteSignatureException),
    ("query", errors.IncompleteSignatureException),
    ("s3", errors.AuthorizationHeaderMalformed),
])
def test_malformed_authorization(authorization, dialect, error):
    request = SignedRequest("GET", "/", "", [
        ("host", "localhost"), ("x-amz-date", "20260101T120000Z"),
        ("x-amz-content-sha256", sigv4.EMPTY_SHA256), ("authorization", authorization)])
    with pytest.raises(error):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect=dialect,
               body_sha256=sigv4.EMPTY_SHA256)


@pytest.mark.parametrize("authorization", ["AWS4-HMAC-SHA1 Credential=x", "Bearer token"])
def test_other_auth_schemes_are_not_supported(authorization):
    request = SignedRequest("GET", "/", "", [("host", "h"), ("authorization", authorization)])
    with pytest.raises(errors.InvalidRequest, match="AWS4-HMAC-SHA256"):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")
    with pytest.raises(errors.IncompleteSignatureException):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="json",
               body_sha256=sigv4.EMPTY_SHA256)


def test_missing_request_date():
    request = SignedRequest("GET", "/", "", [
        ("host", "h"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sts/"
                          "aws4_request, SignedHeaders=host, Signature=abc")])
    with pytest.raises(errors.IncompleteSignatureException, match="X-Amz-Date"):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="query",
               body_sha256=sigv4.EMPTY_SHA256)
    with pytest.raises(errors.AccessDenied, match="Date"):
        verify(request, secret_for=secrets, now=NOW, max_skew_seconds=900, dialect="s3")


def test_unknown_dialect_is_a_programming_error():
    with pytest.raises(ValueError, match="dialect"):
        check(json_request(), "rest-json")


# --- credential_scope -----------------------------------------------------------------------


def test_credential_scope_from_header_and_query():
    assert credential_scope(to_signed(json_request(region="eu-central-1"))) == CredentialScope(
        ACCESS_KEY, "20260101", "eu-central-1", "sagemaker", presigned=False)
    scope = credential_scope(to_signed(presigned()))
    assert scope is not None and scope.service == "s3" and scope.presigned


@pytest.mark.parametrize(("headers", "query"), [
    ([], ""),
    ([("authorization", "")], ""),
    ([("authorization", "AWS4-HMAC-SHA256")], ""),
    ([("authorization", "AWS4-HMAC-SHA256 Credential=onlyakid, Signature=x")], ""),
    ([("authorization", "AWS :sig")], ""),
    ([("authorization", "AWS ")], ""),
    ([], "AWSAccessKeyId=&Signature=x"),
    ([("authorization", "AWS4-HMAC-SHA256 Credential=A/2026/r/s/aws4_request")], ""),
    ([], "X-Amz-Credential=%ZZ%2F&X-Amz-Signature"),
    ([], "NotX-Amz-Credential=A%2F20260101%2Fr%2Fs%2Faws4_request"),
    ([("authorization", "\udcff\x00 Credential=\u2603")], "\udcff=&&&="),
])
def test_credential_scope_never_raises_on_junk(headers, query):
    assert credential_scope(SignedRequest("GET", "/", query, headers)) is None


def test_signing_keys_are_cached():
    sigv4.signing_key.cache_clear()
    for _ in range(3):
        check(json_request(), "json")
    info = sigv4.signing_key.cache_info()
    assert info.misses == 1 and info.hits == 2


# --- S3's legacy signature version 2 -------------------------------------------------------


def sign_v2(method: str, url: str, *, query: bool, headers=None, credentials=CREDS, expires=600):
    request = AWSRequest(method=method, url=url, headers=headers or {})
    if query:
        HmacV1QueryAuth(credentials, expires=expires).add_auth(request)
    else:
        HmacV1Auth(credentials).add_auth(request)
    return request.prepare()


def test_v2_presigned_url_verifies():
    creds = Credentials(ACCESS_KEY, SECRET, "tok/en==")
    prepared = sign_v2(
        "GET", f"{ENDPOINT}/bucket/dir/a%20b%2Bc?versionId=v%2F1&response-content-type=a%2Fb"
        "&prefix=ignored", query=True, credentials=creds)
    result = verify(to_signed(prepared), secret_for=secrets, now=datetime.now(UTC),
                    max_skew_seconds=900, dialect="s3")
    assert result.signature_version == 2 and result.presigned
    assert result.security_token == "tok/en==" and result.payload_hash == "UNSIGNED-PAYLOAD"
    assert credential_scope(to_signed(prepared)) == CredentialScope(
        ACCESS_KEY, "", "", "s3", presigned=True)


def test_v2_presigned_url_expired_or_tampered():
    prepared = sign_v2("GET", f"{ENDPOINT}/bucket/key?versionId=1", query=True, expires=60)
    request = to_signed(prepared)
    with pytest.raises(errors.AccessDenied, match="Request has expired"):
        verify(request, secret_for=secrets, now=datetime.now(UTC) + timedelta(seconds=120),
               max_skew_seconds=900, dialect="s3")
    for tampered in (
        SignedRequest("GET", "/bucket/other", request.query_string, request.headers),
        SignedRequest("GET", request.raw_path,
                      request.query_string.replace("versionId=1", "versionId=2"),
                      request.headers),
        SignedRequest("PUT", request.raw_path, request.query_string, request.headers),
    ):
        with pytest.raises(errors.SignatureDoesNotMatch):
            verify(tampered, secret_for=secrets, now=datetime.now(UTC), max_skew_seconds=900,
                   dialect="s3")


def test_v2_header_auth_verifies_and_checks_skew():
    prepared = sign_v2("PUT", f"{ENDPOINT}/bucket/key?uploadId=abc&partNumber=2", query=False,
                       headers={"Content-Type": "text/plain", "X-Amz-Meta-A": " one ",
                                "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    request = to_signed(prepared)
    result = verify(request, secret_for=secrets, now=datetime.now(UTC), max_skew_seconds=900,
                    dialect="s3")
    assert result.signature_version == 2 and not result.presigned
    assert credential_scope(request).service == "s3"
    with pytest.raises(errors.RequestTimeTooSkewed):
        verify(request, secret_for=secrets, now=datetime.now(UTC) + timedelta(hours=1),
               max_skew_seconds=900, dialect="s3")
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(with_header(request, "content-type", "text/html"), secret_for=secrets,
               now=datetime.now(UTC), max_skew_seconds=900, dialect="s3")
    with pytest.raises(errors.InvalidAccessKeyId):
        verify(request, secret_for=lambda key: None, now=datetime.now(UTC),
               max_skew_seconds=900, dialect="s3")


def test_default_boto3_presigned_url_verifies(hermetic):
    hermetic["region_name"] = "us-east-1"
    s3 = boto3.client("s3", **hermetic)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k k"})
    parts = urlsplit(url)
    request = SignedRequest("GET", parts.path, parts.query, [("host", "localhost:9000")])
    assert verify(request, secret_for=secrets, now=datetime.now(UTC), max_skew_seconds=900,
                  dialect="s3").access_key_id == ACCESS_KEY


# --- whole botocore clients -----------------------------------------------------------------


class _Captured(Exception):
    def __init__(self, request):
        self.request = request


def capture(client, operation: str, **params):
    """Run a real client call up to the wire, and return the request it would send."""
    def stop(request, **kwargs):
        raise _Captured(request)

    client.meta.events.register("before-send", stop)
    with pytest.raises(_Captured) as info:
        getattr(client, operation)(**params)
    return info.value.request


@pytest.fixture
def hermetic(monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return dict(endpoint_url=ENDPOINT, region_name="us-west-2",
                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)


@pytest.mark.parametrize(("service", "operation", "params", "dialect"), [
    ("sagemaker", "list_training_jobs", {"MaxResults": 5}, "json"),
    ("sagemaker", "describe_training_job", {"TrainingJobName": "job-1"}, "json"),
    ("sts", "get_caller_identity", {}, "query"),
    ("logs", "describe_log_groups", {"logGroupNamePrefix": "/aws/sagemaker"}, "json"),
    ("s3", "list_objects_v2", {"Bucket": "bucket", "Prefix": "a b+c/ü"}, "s3"),
    ("s3", "put_object", {"Bucket": "bucket", "Key": "dir/a b+c=d.txt", "Body": b"data"}, "s3"),
])
def test_real_client_requests_verify(hermetic, service, operation, params, dialect):
    client = boto3.client(service, **hermetic)
    request = capture(client, operation, **params)
    signed = to_signed(request)
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    result = verify(signed, secret_for=secrets, now=datetime.now(UTC), max_skew_seconds=900,
                    dialect=dialect, body_sha256=hashlib.sha256(body).hexdigest())
    assert result.service == service and result.region == "us-west-2"
    assert credential_scope(signed).service == service
