"""Streaming body checks: digests, S3 checksums and aws-chunked decoding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import random
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha1Checksum, Sha256Checksum

from openmaker.api import body
from openmaker.api.body import (
    compute_checksum,
    decode_aws_chunked,
    verify_checksum,
    verify_content_md5,
    verify_sha256,
)
from openmaker.api.sigv4 import (
    EMPTY_SHA256,
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
    SignedRequest,
    VerifiedSignature,
    verify,
)
from openmaker.core import errors

try:
    import awscrt  # noqa: F401

    HAS_CRT = True
except ImportError:
    HAS_CRT = False

PAYLOAD = bytes(random.Random(7).getrandbits(8) for _ in range(70_000))


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def random_pieces(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    start = 0
    while start < len(data):
        step = rng.choice([1, 2, 3, 5, 17, 64, 1000, 8191])
        yield data[start:start + step]
        start += step


def drain(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


# --- checksums ------------------------------------------------------------------------------

CHECK_INPUT = b"123456789"  # the standard CRC check input


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("crc32", (0xCBF43926).to_bytes(4, "big")),
    ("CRC32C", (0xE3069283).to_bytes(4, "big")),
    ("crc64nvme", (0xAE8B14860A799888).to_bytes(8, "big")),
    ("sha1", hashlib.sha1(CHECK_INPUT).digest()),
    ("x-amz-checksum-sha256", hashlib.sha256(CHECK_INPUT).digest()),
])
def test_compute_checksum_matches_the_standard_check_values(algorithm, expected):
    assert compute_checksum(algorithm, CHECK_INPUT) == base64.b64encode(expected).decode()


@pytest.mark.parametrize("algorithm", body.CHECKSUM_ALGORITHMS)
def test_running_checksum_equals_one_shot(algorithm):
    running = body.new_checksum(algorithm)
    for piece in random_pieces(PAYLOAD[:5000], 3):
        running.update(piece)
    assert base64.b64encode(running.digest()).decode() == compute_checksum(
        algorithm, PAYLOAD[:5000])


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 8, 9, 3001])
def test_pure_python_crc_engine_matches_zlib(length):
    # The same engine with the CRC-32 polynomial must agree with zlib at every alignment.
    crc32 = body._ReflectedCrc(0xEDB88320, 32)
    for piece in random_pieces(PAYLOAD[:length], length):
        crc32.update(piece)
    assert crc32.digest() == zlib.crc32(PAYLOAD[:length]).to_bytes(4, "big")


@pytest.mark.skipif(not HAS_CRT, reason="awscrt is not installed")
def test_pure_python_crcs_match_awscrt():
    from awscrt import checksums

    c32c = body._ReflectedCrc(body._CRC32C_POLY, 32)
    c64 = body._ReflectedCrc(body._CRC64NVME_POLY, 64)
    c32c.update(PAYLOAD)
    c64.update(PAYLOAD)
    assert int.from_bytes(c32c.digest(), "big") == checksums.crc32c(PAYLOAD)
    assert int.from_bytes(c64.digest(), "big") == checksums.crc64nvme(PAYLOAD)


@pytest.mark.parametrize("algorithm", body.CHECKSUM_ALGORITHMS)
def test_verify_checksum_passes_and_fails(algorithm):
    good = compute_checksum(algorithm, PAYLOAD)
    assert drain(verify_checksum(pieces(PAYLOAD, 4096), algorithm, good)) == PAYLOAD
    bad = compute_checksum(algorithm, PAYLOAD + b"x")
    stream = verify_checksum(pieces(PAYLOAD, 4096), algorithm, bad)
    received = []
    with pytest.raises(errors.BadDigest) as info:
        for chunk in stream:
            received.append(chunk)
    assert b"".join(received) == PAYLOAD  # raised only once the whole body was seen
    assert info.value.message == (
        f"The x-amz-checksum-{algorithm} you specified did not match the calculated checksum."
    )


@pytest.mark.parametrize("value", ["not base64!", "AAAA", base64.b64encode(b"x" * 9).decode()])
def test_verify_checksum_refuses_malformed_values_before_reading(value):
    def never():
        raise AssertionError("the body must not be read")
        yield b""

    with pytest.raises(errors.InvalidRequest, match="x-amz-checksum-crc32c"):
        verify_checksum(never(), "crc32c", value)


def test_unknown_checksum_algorithm():
    with pytest.raises(errors.InvalidRequest, match="not supported"):
        verify_checksum([b""], "md5", "AAAA")


# --- SHA-256 and Content-MD5 ----------------------------------------------------------------


def test_verify_sha256():
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert drain(verify_sha256(pieces(PAYLOAD, 1000), digest.upper())) == PAYLOAD
    with pytest.raises(errors.ContentSHA256Mismatch) as info:
        drain(verify_sha256(pieces(PAYLOAD, 1000), EMPTY_SHA256))
    assert info.value.code == "XAmzContentSHA256Mismatch"
    assert info.value.extra == {
        "ClientComputedContentSHA256": EMPTY_SHA256, "S3ComputedContentSHA256": digest}


def test_verify_content_md5():
    good = base64.b64encode(hashlib.md5(PAYLOAD).digest()).decode()
    assert drain(verify_content_md5(pieces(PAYLOAD, 999), good)) == PAYLOAD
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(errors.BadDigest, match="Content-MD5"):
        drain(verify_content_md5(pieces(PAYLOAD, 999), bad))


@pytest.mark.parametrize("value", ["", "zzz", "!!!!", base64.b64encode(b"short").decode(),
                                   hashlib.md5(b"").hexdigest()])
def test_malformed_content_md5_is_refused_before_any_chunk(value):
    consumed = []

    def chunks():
        consumed.append(True)
        yield b"data"

    with pytest.raises(errors.InvalidDigest):
        verify_content_md5(chunks(), value)
    assert not consumed


# --- aws-chunked: a test-side encoder -------------------------------------------------------
#
# Wire format and signatures per the AWS S3 API reference:
#   https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
#   https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
# chunk      = hex(size) [";chunk-signature=" sig] CRLF data CRLF
# final      = "0" [";chunk-signature=" sig] CRLF, then trailer lines, then CRLF
# chunk sig  = HMAC(kSigning, "AWS4-HMAC-SHA256-PAYLOAD\n" date "\n" scope "\n" previous
#              "\n" sha256("") "\n" sha256(data)); the first previous is the seed signature
# trailer sig= HMAC(kSigning, "AWS4-HMAC-SHA256-TRAILER\n" date "\n" scope "\n" previous
#              "\n" sha256("name:value\n" ...)); previous is the final chunk's signature

ACCESS_KEY = "AKIDCHUNKED"
SECRET = "chunked-secret"
SIGNED_AT = datetime(2026, 3, 4, 5, 6, 7)


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def encode_aws_chunked(
    payload: bytes,
    *,
    chunk_size: int,
    mode: str,
    verified: VerifiedSignature | None = None,
    trailer: str | None = None,
    trailer_value: str | None = None,
) -> bytes:
    signed = mode in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
    out = bytearray()
    previous = verified.seed_signature if verified else ""

    def chunk_line(data: bytes) -> bytes:
        nonlocal previous
        if not signed:
            return f"{len(data):x}\r\n".encode()
        assert verified is not None
        previous = _hmac_hex(verified.signing_key, "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", verified.amz_date, verified.scope, previous,
            EMPTY_SHA256, hashlib.sha256(data).hexdigest()]))
        return f"{len(data):x};chunk-signature={previous}\r\n".encode()

    for data in pieces(payload, chunk_size):
        out += chunk_line(data) + data + b"\r\n"
    out += chunk_line(b"")
    if trailer is not None:
        value = trailer_value or compute_checksum(trailer, payload)
        line = f"{trailer}:{value}\n"
        out += line.replace("\n", "\r\n").encode()
        if mode == STREAMING_SIGNED_TRAILER:
            assert verified is not None
            signature = _hmac_hex(verified.signing_key, "\n".join([
                "AWS4-HMAC-SHA256-TRAILER", verified.amz_date, verified.scope, previous,
                hashlib.sha256(line.encode()).hexdigest()]))
            out += f"x-amz-trailer-signature:{signature}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def signed_upload(mode: str, decoded_length: int, trailer: str | None = None):
    """A PUT whose headers botocore signs; returns the server's VerifiedSignature."""
    from unittest import mock

    import botocore.auth

    headers = {
        "X-Amz-Content-SHA256": mode,
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(decoded_length),
    }
    if trailer:
        headers["X-Amz-Trailer"] = trailer
    request = AWSRequest(method="PUT", url="http://localhost:9000/bucket/key", headers=headers)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=SIGNED_AT):
        # SigV4Auth keeps the declared streaming mode; its path rule equals S3's here.
        SigV4Auth(Credentials(ACCESS_KEY, SECRET), "s3", "us-east-1").add_auth(request)
    wire = [(k.lower(), v) for k, v in request.headers.items()] + [("host", "localhost:9000")]
    return verify(
        SignedRequest("PUT", "/bucket/key", "", wire),
        secret_for={ACCESS_KEY: SECRET}.get,
        now=SIGNED_AT.replace(tzinfo=UTC),
        max_skew_seconds=900,
        dialect="s3",
    )


ALL_MODES = [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER,
             UNSIGNED_PAYLOAD]


def upload(mode: str, payload: bytes = PAYLOAD, *, chunk_size: int = 8192, **encode_kwargs):
    trailer = "x-amz-checksum-crc32" if mode.endswith("TRAILER") else None
    trailer = encode_kwargs.pop("trailer", trailer)
    verified = signed_upload(mode, len(payload), trailer)
    wire = encode_aws_chunked(payload, chunk_size=chunk_size, mode=mode, verified=verified,
                              trailer=trailer, **encode_kwargs)
    return verified, wire, trailer


def decode(wire_pieces, verified, mode, length, trailer, trailers=None):
    return drain(decode_aws_chunked(
        wire_pieces, verified=verified, payload_mode=mode, decoded_length=length,
        declared_trailer=trailer, trailers=trailers))


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("split", ["whole", 1, 2, 3, 13, 8192, 8193, "random"])
def test_aws_chunked_round_trip_at_any_split(mode, split):
    verified, wire, trailer = upload(mode)
    if split == "whole":
        wire_pieces = [wire]
    elif split == "random":
        wire_pieces = list(random_pieces(wire, 11))
    else:
        wire_pieces = pieces(wire, split)
    trailers: dict[str, str] = {}
    assert decode(wire_pieces, verified, mode, len(PAYLOAD), trailer, trailers) == PAYLOAD
    if trailer:
        assert trailers == {trailer: compute_checksum("crc32", PAYLOAD)}


@pytest.mark.parametrize("mode", ALL_MODES)
def test_aws_chunked_empty_payload(mode):
    verified, wire, trailer = upload(mode, b"")
    assert decode([wire], verified, mode, 0, trailer) == b""


@pytest.mark.parametrize("algorithm", body.CHECKSUM_ALGORITHMS)
def test_trailer_checksum_of_each_algorithm(algorithm):
    name = f"x-amz-checksum-{algorithm}"
    for mode in (STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER):
        verified, wire, _ = upload(mode, PAYLOAD[:20_000], trailer=name)
        assert decode(pieces(wire, 777), verified, mode, 20_000, name) == PAYLOAD[:20_000]


def test_only_payload_bytes_are_yielded_as_they_arrive():
    verified, wire, _ = upload(STREAMING_SIGNED, PAYLOAD[:100], chunk_size=10)
    out = list(decode_aws_chunked(pieces(wire, 5), verified=verified,
                                  payload_mode=STREAMING_SIGNED, decoded_length=100))
    assert all(len(chunk) <= 10 for chunk in out) and b"".join(out) == PAYLOAD[:100]


@pytest.mark.parametrize("mode", [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER])
def test_bad_chunk_signature(mode):
    verified, wire, trailer = upload(mode)
    # flip one payload byte inside the second chunk
    position = wire.index(b"\r\n", 8200) + 100
    tampered = wire[:position] + bytes([wire[position] ^ 1]) + wire[position + 1:]
    received = []
    with pytest.raises(errors.SignatureDoesNotMatch, match="chunk signature"):
        for chunk in decode_aws_chunked(pieces(tampered, 1000), verified=verified,
                                        payload_mode=mode, decoded_length=len(PAYLOAD),
                                        declared_trailer=trailer):
            received.append(chunk)
    assert sum(map(len, received)) < len(PAYLOAD)


def test_chunk_signatures_chain_from_the_seed():
    verified, wire, _ = upload(STREAMING_SIGNED)
    other = VerifiedSignature(**{**{f: getattr(verified, f) for f in (
        "access_key_id", "region", "service", "payload_hash", "signing_key", "amz_date",
        "scope")}, "seed_signature": "0" * 64})
    with pytest.raises(errors.SignatureDoesNotMatch):
        decode([wire], other, STREAMING_SIGNED, len(PAYLOAD), None)


def test_bad_trailer_signature():
    verified, wire, trailer = upload(STREAMING_SIGNED_TRAILER)
    marker = b"x-amz-trailer-signature:"
    start = wire.index(marker) + len(marker)
    tampered = wire[:start] + b"0" * 64 + wire[start + 64:]
    with pytest.raises(errors.SignatureDoesNotMatch, match="trailer signature"):
        decode([tampered], verified, STREAMING_SIGNED_TRAILER, len(PAYLOAD), trailer)


def test_missing_trailer_signature():
    verified, wire, trailer = upload(STREAMING_SIGNED_TRAILER)
    start = wire.index(b"x-amz-trailer-signature:")
    tampered = wire[:start] + b"\r\n"
    with pytest.raises(errors.InvalidRequest, match="x-amz-trailer-signature"):
        decode([tampered], verified, STREAMING_SIGNED_TRAILER, len(PAYLOAD), trailer)


def test_missing_chunk_signature_in_a_signed_mode():
    verified, _, _ = upload(STREAMING_SIGNED)
    wire = encode_aws_chunked(PAYLOAD, chunk_size=8192, mode=UNSIGNED_PAYLOAD)
    with pytest.raises(errors.InvalidRequest, match="chunk-signature"):
        decode([wire], verified, STREAMING_SIGNED, len(PAYLOAD), None)


@pytest.mark.parametrize("mode", [STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER])
def test_trailer_checksum_mismatch(mode):
    verified, wire, trailer = upload(mode, trailer_value=compute_checksum("crc32", b"other"))
    with pytest.raises(errors.BadDigest, match="x-amz-checksum-crc32 you specified"):
        decode(pieces(wire, 4096), verified, mode, len(PAYLOAD), trailer)


def test_declared_trailer_must_arrive():
    verified, wire, _ = upload(STREAMING_UNSIGNED_TRAILER, trailer=None)
    with pytest.raises(errors.InvalidRequest, match="no such trailer"):
        decode([wire], verified, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD), "x-amz-checksum-crc32")
    with pytest.raises(errors.InvalidRequest, match="x-amz-trailer"):
        decode_aws_chunked([wire], verified=None, payload_mode=STREAMING_UNSIGNED_TRAILER,
                           decoded_length=None, declared_trailer="x-amz-checksum-md5")


def test_declared_trailer_defaults_to_the_signed_x_amz_trailer_header():
    verified, wire, _ = upload(STREAMING_SIGNED_TRAILER, trailer="x-amz-checksum-sha256")
    assert verified.trailer == "x-amz-checksum-sha256"
    assert decode([wire], verified, STREAMING_SIGNED_TRAILER, len(PAYLOAD), None) == PAYLOAD


def test_undeclared_trailers():
    # Without x-amz-trailer, botocore's default CRC32 trailer is still checked ...
    good = encode_aws_chunked(PAYLOAD, chunk_size=4096, mode=STREAMING_UNSIGNED_TRAILER,
                              trailer="x-amz-checksum-crc32")
    assert decode([good], None, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD), None) == PAYLOAD
    bad = encode_aws_chunked(PAYLOAD, chunk_size=4096, mode=STREAMING_UNSIGNED_TRAILER,
                             trailer="x-amz-checksum-crc32", trailer_value="AAAAAA==")
    with pytest.raises(errors.BadDigest):
        decode([bad], None, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD), None)
    # ... and any other checksum trailer is refused, as it could not have been computed.
    other = encode_aws_chunked(PAYLOAD, chunk_size=4096, mode=STREAMING_UNSIGNED_TRAILER,
                               trailer="x-amz-checksum-sha1")
    with pytest.raises(errors.InvalidRequest, match="not declared"):
        decode([other], None, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD), None)


@pytest.mark.parametrize("mode", ALL_MODES)
@pytest.mark.parametrize("cut", [1, 3, 10, 5000, 40_000])
def test_truncated_body(mode, cut):
    verified, wire, trailer = upload(mode)
    with pytest.raises((errors.IncompleteBody, errors.InvalidRequest)):
        decode(pieces(wire[:-cut], 3000), verified, mode, len(PAYLOAD), trailer)


@pytest.mark.parametrize("mode", ALL_MODES)
def test_only_the_closing_crlf_may_be_missing(mode):
    verified, wire, trailer = upload(mode)
    assert decode([wire[:-2]], verified, mode, len(PAYLOAD), trailer) == PAYLOAD


@pytest.mark.parametrize("mode", ALL_MODES)
def test_wrong_decoded_length(mode):
    verified, wire, trailer = upload(mode)
    with pytest.raises(errors.IncompleteBody, match="x-amz-decoded-content-length"):
        decode([wire], verified, mode, len(PAYLOAD) + 1, trailer)
    seen = []
    with pytest.raises(errors.InvalidRequest, match="more payload"):
        for chunk in decode_aws_chunked(pieces(wire, 1024), verified=verified, payload_mode=mode,
                                        decoded_length=1000, declared_trailer=trailer):
            seen.append(chunk)
    assert sum(map(len, seen)) <= 1000


@pytest.mark.parametrize("wire", [
    b"zz\r\nabc\r\n0\r\n\r\n",  # size not hex
    b"3\r\nabcX\r\n0\r\n\r\n",  # data not followed by CRLF
    b"3\nabc\r\n0\r\n\r\n",  # header ends in a bare LF
    b"3;foo=bar\r\nabc\r\n0\r\n\r\n",  # unknown extension
    b"\r\n",  # empty header line
    b"3\r\nabc\r\n0\r\n\r\nextra",  # data after the end
    b"3\r\nabc\r\n0\r\nnot-a-header\r\n\r\n",  # trailer without a colon
    b"f" * 5000,  # a header line that never ends
    b"",  # nothing at all
])
def test_malformed_framing_is_a_clean_error(wire):
    with pytest.raises((errors.InvalidRequest, errors.IncompleteBody)):
        decode(pieces(wire, 2), None, UNSIGNED_PAYLOAD, None, None)


def test_no_trailers_in_the_plain_signed_mode():
    verified, wire, _ = upload(STREAMING_SIGNED)
    tampered = wire[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    with pytest.raises(errors.InvalidRequest, match="carry no trailers"):
        decode([tampered], verified, STREAMING_SIGNED, len(PAYLOAD), None)


def test_arguments_are_checked_at_call_time():
    with pytest.raises(ValueError, match="VerifiedSignature"):
        decode_aws_chunked([], verified=None, payload_mode=STREAMING_SIGNED, decoded_length=0)
    with pytest.raises(errors.S3NotImplemented):
        decode_aws_chunked([], verified=None, decoded_length=0,
                           payload_mode="STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")


def test_blank_line_before_trailers_and_missing_final_crlf_are_tolerated():
    payload = b"hello world"
    crc = compute_checksum("crc32", payload)
    for wire in [
        f"b\r\nhello world\r\n0\r\n\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode(),
        f"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n".encode(),
    ]:
        assert decode(pieces(wire, 4), None, STREAMING_UNSIGNED_TRAILER, 11,
                      "x-amz-checksum-crc32") == payload


# --- against AWS's published example and botocore's own encoder -----------------------------

DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def doc_request(mode: str, seed: str, signed_headers: str, extra: list[tuple[str, str]]):
    headers = [
        ("host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", mode),
        ("content-encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
        *extra,
        ("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
                          f"s3/aws4_request,SignedHeaders={signed_headers},Signature={seed}"),
    ]
    return verify(SignedRequest("PUT", "/examplebucket/chunkObject.txt", "", headers),
                  secret_for=lambda key: DOC_SECRET, now=datetime(2013, 5, 24, tzinfo=UTC),
                  max_skew_seconds=900, dialect="s3")


def test_aws_documented_streaming_example():
    # https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html (example)
    verified = doc_request(
        STREAMING_SIGNED, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class", [("content-length", "66824")])
    wire = (
        b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        b"\r\n" + b"a" * 65536 + b"\r\n"
        b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
        b"\r\n" + b"a" * 1024 + b"\r\n"
        b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
        b"\r\n\r\n"
    )
    assert len(wire) == 66824
    for split in (len(wire), 1, 4097):
        assert decode(pieces(wire, split), verified, STREAMING_SIGNED, 66560, None) == (
            b"a" * 66560)


def test_aws_documented_trailer_example():
    # https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html (example)
    verified = doc_request(
        STREAMING_SIGNED_TRAILER,
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class;x-amz-trailer", [("x-amz-trailer", "x-amz-checksum-crc32c")])
    wire = (
        b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2"
        b"\r\n" + b"a" * 65536 + b"\r\n"
        b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7"
        b"\r\n" + b"a" * 1024 + b"\r\n"
        b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
        b"\r\n\r\n"
    )
    trailers: dict[str, str] = {}
    assert decode(pieces(wire, 333), verified, STREAMING_SIGNED_TRAILER, 66560,
                  "x-amz-checksum-crc32c", trailers) == b"a" * 66560
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


@pytest.mark.parametrize(("checksum_cls", "name"), [
    (Crc32Checksum, "x-amz-checksum-crc32"),
    (Sha1Checksum, "x-amz-checksum-sha1"),
    (Sha256Checksum, "x-amz-checksum-sha256"),
])
@pytest.mark.parametrize("chunk_size", [1, 1000, 65536, None])
def test_botocore_aws_chunked_wrapper_decodes(checksum_cls, name, chunk_size):
    wrapper = AwsChunkedWrapper(io.BytesIO(PAYLOAD), checksum_cls=checksum_cls,
                                checksum_name=name, chunk_size=chunk_size)
    assert decode(iter(wrapper), None, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD), name) == PAYLOAD
    wrapper.seek(0)
    wire = wrapper.read()
    assert decode(random_pieces(wire, 5), None, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD),
                  name) == PAYLOAD


@pytest.mark.skipif(not HAS_CRT, reason="awscrt is not installed")
@pytest.mark.parametrize("algorithm", ["crc32c", "crc64nvme"])
def test_botocore_crt_checksums_decode(algorithm):
    from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum

    cls = {"crc32c": CrtCrc32cChecksum, "crc64nvme": CrtCrc64NvmeChecksum}[algorithm]
    name = f"x-amz-checksum-{algorithm}"
    wrapper = AwsChunkedWrapper(io.BytesIO(PAYLOAD), checksum_cls=cls, checksum_name=name)
    assert decode(iter(wrapper), None, STREAMING_UNSIGNED_TRAILER, len(PAYLOAD), name) == PAYLOAD


def test_real_put_object_over_https_uses_a_verifiable_unsigned_trailer(monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    client = boto3.client("s3", endpoint_url="https://localhost:9443", region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)
    captured = []

    class Stop(Exception):
        pass

    def stop(request, **kwargs):
        captured.append(request)
        raise Stop

    client.meta.events.register("before-send", stop)
    with pytest.raises(Stop):
        client.put_object(Bucket="bucket", Key="k", Body=PAYLOAD)
    request = captured[0]
    headers = [(k.lower(), v.decode("latin-1") if isinstance(v, bytes) else v)
               for k, v in request.headers.items()]
    if "host" not in dict(headers):  # botocore's CRT signer sets it, the Python one does not
        headers.append(("host", "localhost:9443"))
    verified = verify(SignedRequest("PUT", "/bucket/k", "", headers),
                      secret_for={ACCESS_KEY: SECRET}.get, now=datetime.now(UTC),
                      max_skew_seconds=900, dialect="s3")
    assert verified.payload_hash == STREAMING_UNSIGNED_TRAILER
    wanted = dict(headers)
    out = decode(pieces(request.body.read(), 4093), verified, verified.payload_hash,
                 int(wanted["x-amz-decoded-content-length"]), wanted["x-amz-trailer"])
    assert out == PAYLOAD
