"""Server-side verification of AWS Signature Version 4, computed the way botocore signs.

The canonical request follows botocore's ``SigV4Auth`` / ``S3SigV4Auth`` /
``S3SigV4QueryAuth`` exactly: S3 signs the path as sent, other services normalise it
(dot segments, repeated slashes) and percent-encode the already-encoded path again with
``/~`` safe; query parameters are decoded and re-encoded with AWS's unreserved set and
sorted by key, then value. Errors are raised in the flavour of the calling protocol
(``dialect``): ``"s3"`` (S3 REST), ``"json"`` (AWS JSON, e.g. SageMaker) or ``"query"``
(STS and other query services). For S3 alone, the legacy HMAC-SHA1 signature (version 2) is
verified too, because botocore's ``generate_presigned_url`` still uses it by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote, unquote_to_bytes

from openmaker.core.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AwsError,
    IncompleteSignatureException,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidClientTokenId,
    InvalidRequest,
    InvalidSignatureException,
    MissingAuthenticationToken,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    SignatureExpired,
    UnrecognizedClientException,
)

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "STREAMING_SIGNED",
    "STREAMING_SIGNED_TRAILER",
    "STREAMING_UNSIGNED_TRAILER",
    "UNSIGNED_PAYLOAD",
    "CredentialScope",
    "SignedRequest",
    "VerifiedSignature",
    "credential_scope",
    "signing_key",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_STREAMING_ECDSA = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
_S3_PAYLOAD_MODES = frozenset({
    UNSIGNED_PAYLOAD, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER,
    _STREAMING_ECDSA, _STREAMING_ECDSA + "-TRAILER",
})
_DIALECTS = frozenset({"s3", "json", "query"})
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_UNRESERVED = "-_.~"  # with A-Za-z0-9, which quote() never encodes
_MAX_PRESIGN_EXPIRES = 604800  # one week, as S3 allows
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")


@dataclass(slots=True)
class SignedRequest:
    """The parts of an HTTP request that SigV4 covers, as they arrived on the wire.

    ``raw_path`` is still percent-encoded and holds no query; ``query_string`` is the raw
    text after ``?``; header names are lower-cased and values are the received bytes
    decoded as latin-1 (as http.client encodes them), repeated headers repeated.
    """

    method: str
    raw_path: str
    query_string: str
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CredentialScope:
    """What a request's credential names; ``presigned`` when it came from the query."""

    access_key_id: str
    date: str
    region: str
    service: str
    presigned: bool = False


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """The outcome of a good signature, with what ``body.decode_aws_chunked`` needs."""

    access_key_id: str
    region: str
    service: str
    payload_hash: str
    signing_key: bytes = field(repr=False)
    seed_signature: str
    amz_date: str
    scope: str
    presigned: bool = False
    security_token: str | None = None
    signed_headers: tuple[str, ...] = ()
    signature_version: int = 4  # 2 for S3's legacy HMAC-SHA1 scheme (no scope, no region)
    trailer: str | None = None  # the x-amz-trailer header, for decode_aws_chunked


@lru_cache(maxsize=512)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key ``kSigning`` for a secret and scope (cached)."""
    k_date = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    k_region = hmac.new(k_date, region.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_region, service.encode(), hashlib.sha256).digest()
    return hmac.new(k_service, b"aws4_request", hashlib.sha256).digest()


# --- parsing --------------------------------------------------------------------------------


def _first_header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _auth_fields(value: str) -> tuple[str, dict[str, str], list[str]]:
    """Split an Authorization value into algorithm, ``k=v`` fields and duplicate keys."""
    algorithm, _, rest = value.strip().partition(" ")
    fields: dict[str, str] = {}
    duplicates = []
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if not eq:
            continue
        if key in fields:
            duplicates.append(key)
        fields[key] = val.strip()
    return algorithm, fields, duplicates


def _split_credential(credential: str) -> list[str] | None:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        return None
    if len(parts[1]) != 8 or not set(parts[1]) <= _DIGITS:
        return None
    return parts


def _query_credential(query_string: str) -> str | None:
    start = query_string.find("X-Amz-Credential=")
    while start > 0 and query_string[start - 1] != "&":
        start = query_string.find("X-Amz-Credential=", start + 1)
    if start < 0:
        return None
    end = query_string.find("&", start)
    raw = query_string[start + 17:] if end < 0 else query_string[start + 17:end]
    return unquote(raw)


def credential_scope(request: SignedRequest) -> CredentialScope | None:
    """The access key, date, region and service a request claims; None when unreadable.

    A cheap parse meant for routing: it checks no signature and never raises.
    """
    try:
        auth = _first_header(request.headers, "authorization")
        presigned = False
        if auth is not None:
            if auth.startswith("AWS "):
                access_key_id = auth[4:].partition(":")[0].strip()
                return CredentialScope(access_key_id, "", "", "s3") if access_key_id else None
            algorithm, fields, _ = _auth_fields(auth)
            credential = fields.get("Credential") if algorithm == ALGORITHM else None
        else:
            credential = _query_credential(request.query_string)
            presigned = True
            if credential is None and "AWSAccessKeyId=" in request.query_string:
                for param in _parse_query(request.query_string):
                    if param.name == "AWSAccessKeyId" and param.value:
                        return CredentialScope(param.value, "", "", "s3", presigned=True)
        if not credential:
            return None
        parts = _split_credential(credential)
        if parts is None:
            return None
        return CredentialScope(parts[0], parts[1], parts[2], parts[3], presigned)
    except Exception:  # routing must survive any junk
        return None


@dataclass(slots=True)
class _QueryParam:
    name: str  # decoded, for lookups
    value: str
    enc_name: str  # AWS-encoded, for the canonical query
    enc_value: str
    raw_name: str
    raw_value: str


def _parse_query(query_string: str) -> list[_QueryParam]:
    params = []
    if not query_string:
        return params
    for pair in query_string.split("&"):
        raw_name, _, raw_value = pair.partition("=")
        if not raw_name and not raw_value:
            continue
        # '+' means a space in a query, as botocore's own urlencode of ``params`` sends it.
        name_bytes = unquote_to_bytes(raw_name.replace("+", " "))
        value_bytes = unquote_to_bytes(raw_value.replace("+", " "))
        params.append(_QueryParam(
            name_bytes.decode("utf-8", "replace"),
            value_bytes.decode("utf-8", "replace"),
            quote(name_bytes, safe=_UNRESERVED),
            quote(value_bytes, safe=_UNRESERVED),
            raw_name,
            raw_value,
        ))
    return params


def _parse_amz_date(value: str) -> datetime | None:
    """``YYYYMMDDTHHMMSSZ`` to an aware datetime, or None."""
    if len(value) != 16 or value[8] != "T" or value[15] != "Z":
        return None
    digits = value[:8] + value[9:15]
    if not set(digits) <= _DIGITS:
        return None
    try:
        return datetime(
            int(value[0:4]), int(value[4:6]), int(value[6:8]),
            int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=UTC,
        )
    except ValueError:
        return None


def _amz(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- canonical request ----------------------------------------------------------------------


def _remove_dot_segments(path: str) -> str:
    # botocore.utils.remove_dot_segments: RFC 3986 5.2.4 plus collapsing repeated slashes.
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if output:
                    output.pop()
            else:
                output.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def _canonical_path(raw_path: str, s3: bool) -> str:
    if s3:
        return raw_path
    return quote(_remove_dot_segments(raw_path), safe="/~")


def _canonical_query(params: list[_QueryParam], presigned: bool) -> str:
    pairs = sorted(
        (p.enc_name, p.enc_value) for p in params
        if not (presigned and p.name == "X-Amz-Signature")
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def _raw_canonical_query(params: list[_QueryParam], presigned: bool) -> str:
    # botocore's _canonical_query_string_url: the pairs exactly as they sit in the URL.
    pairs = sorted(
        (p.raw_name, p.raw_value) for p in params
        if not (presigned and p.name == "X-Amz-Signature")
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(headers: list[tuple[str, str]], signed: list[str]) -> str:
    wanted: dict[str, list[str]] = {name: [] for name in signed}
    for name, value in headers:
        values = wanted.get(name)
        if values is not None:
            values.append(" ".join(value.split()))
    return "".join(f"{name}:{','.join(wanted[name])}\n" for name in signed)


def _string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _same(expected: str, provided: str) -> bool:
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace"))


# --- errors per dialect ---------------------------------------------------------------------


def _missing(dialect: str) -> AwsError:
    if dialect == "s3":
        return AccessDenied("Anonymous access is forbidden for this operation.")
    if dialect == "query":
        return MissingAuthenticationToken("Request is missing Authentication Token")
    return MissingAuthenticationToken("Missing Authentication Token")


def _malformed(dialect: str, message: str) -> AwsError:
    if dialect == "s3":
        return AuthorizationHeaderMalformed(message)
    return IncompleteSignatureException(message)


def _unknown_key(dialect: str, access_key_id: str) -> AwsError:
    if dialect == "s3":
        return InvalidAccessKeyId(
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key_id,
        )
    if dialect == "query":
        return InvalidClientTokenId("The security token included in the request is invalid.")
    return UnrecognizedClientException("The security token included in the request is invalid.")


def _mismatch(
    dialect: str, access_key_id: str, provided: str, string_to_sign: str, canonical: str
) -> AwsError:
    if dialect == "s3":
        return SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            AWSAccessKeyId=access_key_id,
            StringToSign=string_to_sign,
            SignatureProvided=provided,
            CanonicalRequest=canonical,
        )
    message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details.\n\nThe Canonical String for this request should have "
        f"been\n'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
    )
    if dialect == "query":
        return SignatureDoesNotMatch(message)
    return InvalidSignatureException(message)


def _skew_text(max_skew: int) -> str:
    return f"{max_skew // 60} min." if max_skew % 60 == 0 else f"{max_skew} sec."


def _too_old(dialect: str, amz_date: str, now: datetime, max_skew: int) -> AwsError:
    if dialect == "s3":
        return _s3_skewed(amz_date, now, max_skew)
    message = (
        f"Signature expired: {amz_date} is now earlier than "
        f"{_amz(now - timedelta(seconds=max_skew))} ({_amz(now)} - {_skew_text(max_skew)})"
    )
    if dialect == "query":
        return SignatureDoesNotMatch(message)
    return SignatureExpired(message)


def _too_new(dialect: str, amz_date: str, now: datetime, max_skew: int) -> AwsError:
    if dialect == "s3":
        return _s3_skewed(amz_date, now, max_skew)
    message = (
        f"Signature not yet current: {amz_date} is still later than "
        f"{_amz(now + timedelta(seconds=max_skew))} ({_amz(now)} + {_skew_text(max_skew)})"
    )
    if dialect == "query":
        return SignatureDoesNotMatch(message)
    return SignatureExpired(message)


def _s3_skewed(amz_date: str, now: datetime, max_skew: int) -> AwsError:
    return RequestTimeTooSkewed(
        "The difference between the request time and the current time is too large.",
        RequestTime=amz_date,
        ServerTime=_iso(now),
        MaxAllowedSkewMilliseconds=str(max_skew * 1000),
    )


# --- verification ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Claim:
    """What the request says about its own signature, before any check."""

    credential: list[str]
    signed_headers: str
    signature: str
    amz_date: str
    moment: datetime
    presigned: bool
    expires: int | None
    security_token: str | None


def _header_claim(request: SignedRequest, auth_values: list[str], dialect: str) -> _Claim:
    if len(auth_values) > 1:
        raise _malformed(dialect, "The request carries more than one Authorization header.")
    value = auth_values[0]
    algorithm, fields, duplicates = _auth_fields(value)
    if algorithm != ALGORITHM:
        if dialect == "s3" and algorithm:
            raise InvalidRequest(
                "The authorization mechanism you have provided is not supported. "
                "Please use AWS4-HMAC-SHA256."
            )
        raise _malformed(
            dialect, f"Authorization header algorithm must be {ALGORITHM}; got {algorithm!r}."
        )
    if duplicates:
        raise _malformed(
            dialect, f"Authorization header repeats the parameter(s) {', '.join(duplicates)}."
        )
    missing = [k for k in ("Credential", "Signature", "SignedHeaders") if not fields.get(k)]
    if missing:
        needs = " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        raise _malformed(dialect, f"{needs} Authorization={value}")
    credential = _split_credential(fields["Credential"])
    if credential is None:
        raise _malformed(
            dialect,
            "Credential must have the form <access key id>/<yyyymmdd>/<region>/<service>/"
            f"aws4_request; got {fields['Credential']!r}.",
        )
    amz_date = _first_header(request.headers, "x-amz-date")
    if amz_date is not None:
        moment = _parse_amz_date(amz_date.strip())
        if moment is None:
            raise _malformed(
                dialect,
                "X-Amz-Date must be in ISO-8601 basic format (YYYYMMDDTHHMMSSZ); "
                f"got {amz_date!r}.",
            )
        amz_date = amz_date.strip()
    else:
        http_date = _first_header(request.headers, "date")
        if http_date is None:
            if dialect == "s3":
                raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
            raise _malformed(
                dialect,
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header.",
            )
        try:
            moment = parsedate_to_datetime(http_date)
        except (TypeError, ValueError):
            moment = None
        if moment is None:
            raise _malformed(dialect, f"The Date header is not a valid HTTP date: {http_date!r}.")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        amz_date = _amz(moment)
    return _Claim(
        credential=credential,
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
        amz_date=amz_date,
        moment=moment,
        presigned=False,
        expires=None,
        security_token=_first_header(request.headers, "x-amz-security-token"),
    )


def _query_claim(params: list[_QueryParam], dialect: str) -> _Claim:
    found: dict[str, str] = {}
    for p in params:
        if p.name.startswith("X-Amz-"):
            if p.name in found:
                raise _malformed(dialect, f"The query parameter {p.name} appears more than once.")
            found[p.name] = p.value
    required = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
                "X-Amz-Signature"]
    if dialect == "s3":
        required.append("X-Amz-Expires")
    missing = [k for k in required if not found.get(k)]
    if missing:
        raise _malformed(
            dialect,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            f"X-Amz-Expires parameters; missing {', '.join(missing)}.",
        )
    if found["X-Amz-Algorithm"] != ALGORITHM:
        raise _malformed(
            dialect,
            f"X-Amz-Algorithm only supports \"{ALGORITHM}\"; got {found['X-Amz-Algorithm']!r}.",
        )
    credential = _split_credential(found["X-Amz-Credential"])
    if credential is None:
        raise _malformed(
            dialect,
            "X-Amz-Credential must have the form <access key id>/<yyyymmdd>/<region>/"
            f"<service>/aws4_request; got {found['X-Amz-Credential']!r}.",
        )
    amz_date = found["X-Amz-Date"]
    moment = _parse_amz_date(amz_date)
    if moment is None:
        raise _malformed(
            dialect,
            f"X-Amz-Date must be in ISO-8601 basic format (YYYYMMDDTHHMMSSZ); got {amz_date!r}.",
        )
    expires = None
    if "X-Amz-Expires" in found:
        text = found["X-Amz-Expires"]
        if not text or not set(text) <= _DIGITS or len(text) > 10:
            raise _malformed(
                dialect, f"X-Amz-Expires must be a whole number of seconds; got {text!r}."
            )
        expires = int(text)
        if expires > _MAX_PRESIGN_EXPIRES:
            raise _malformed(
                dialect,
                "X-Amz-Expires must be less than a week (in seconds) that is, the given "
                f"X-Amz-Expires must be less than {_MAX_PRESIGN_EXPIRES} seconds.",
            )
    return _Claim(
        credential=credential,
        signed_headers=found["X-Amz-SignedHeaders"],
        signature=found["X-Amz-Signature"],
        amz_date=amz_date,
        moment=moment,
        presigned=True,
        expires=expires,
        security_token=found.get("X-Amz-Security-Token"),
    )


def _check_time(claim: _Claim, now: datetime, max_skew: int, dialect: str) -> None:
    delta = (claim.moment - now).total_seconds()
    if claim.presigned:
        if delta > max_skew:
            if dialect == "s3":
                raise AccessDenied("Request is not valid yet", ServerTime=_iso(now))
            raise _too_new(dialect, claim.amz_date, now, max_skew)
        lifetime = claim.expires if claim.expires is not None else max_skew
        if -delta > lifetime:
            if dialect == "s3":
                raise AccessDenied(
                    "Request has expired",
                    **{
                        "X-Amz-Expires": str(lifetime),
                        "Expires": _iso(claim.moment + timedelta(seconds=lifetime)),
                        "ServerTime": _iso(now),
                    },
                )
            raise _too_old(dialect, claim.amz_date, now, lifetime)
        return
    if delta < -max_skew:
        raise _too_old(dialect, claim.amz_date, now, max_skew)
    if delta > max_skew:
        raise _too_new(dialect, claim.amz_date, now, max_skew)


def _payload_hash(
    request: SignedRequest, claim: _Claim, dialect: str, s3: bool, body_sha256: str | None
) -> str:
    declared = _first_header(request.headers, "x-amz-content-sha256")
    if declared is not None:
        declared = declared.strip()
        is_hex = len(declared) == 64 and set(declared) <= _HEX
        if s3 and not is_hex and declared not in _S3_PAYLOAD_MODES:
            raise InvalidArgument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
                "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, "
                "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
                ArgumentName="x-amz-content-sha256",
                ArgumentValue=declared,
            )
        if (not s3 and is_hex and body_sha256 is not None
                and declared.lower() != body_sha256.lower()):
            message = "The request body does not match its x-amz-content-sha256 header."
            if dialect == "query":
                raise SignatureDoesNotMatch(message)
            raise InvalidSignatureException(message)
        return declared
    if s3:
        if claim.presigned:
            return UNSIGNED_PAYLOAD
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    if body_sha256 is None:
        raise ValueError(
            "verify() needs body_sha256 (hex SHA-256 of the body) for a non-S3 request "
            "without an x-amz-content-sha256 header"
        )
    return body_sha256.lower()


def verify(
    request: SignedRequest,
    *,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew_seconds: int,
    dialect: str,
    body_sha256: str | None = None,
) -> VerifiedSignature:
    """Check a request's SigV4 signature (header or presigned query) as botocore made it.

    ``secret_for`` maps an access key id to its secret (None when unknown); ``now`` is the
    server time (naive means UTC); ``body_sha256`` is the body's hex SHA-256, needed for
    non-S3 requests that send no ``x-amz-content-sha256``. Raises the ``dialect``'s
    ``AwsError`` on any problem.
    """
    if dialect not in _DIALECTS:
        raise ValueError(f"dialect must be one of {sorted(_DIALECTS)}; got {dialect!r}")
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    headers = request.headers
    auth_values = [value for name, value in headers if name == "authorization"]
    params = _parse_query(request.query_string)
    presigned = any(p.name in _PRESIGN_PARAMS for p in params)

    if auth_values and presigned:
        message = (
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified"
        )
        raise InvalidArgument(message) if dialect == "s3" else _malformed(dialect, message)
    if auth_values:
        if dialect == "s3" and len(auth_values) == 1 and auth_values[0].startswith("AWS "):
            return _verify_v2(request, params, auth_values[0], secret_for, now, max_skew_seconds)
        claim = _header_claim(request, auth_values, dialect)
    elif presigned:
        claim = _query_claim(params, dialect)
    elif dialect == "s3" and any(p.name == "AWSAccessKeyId" for p in params):
        return _verify_v2(request, params, None, secret_for, now, max_skew_seconds)
    else:
        raise _missing(dialect)

    access_key_id, date, region, service, _ = claim.credential
    if date != claim.amz_date[:8]:
        message = (
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{claim.amz_date[:8]}', from '{claim.amz_date}'."
        )
        if dialect == "json":
            raise InvalidSignatureException(message)
        if dialect == "query":
            raise SignatureDoesNotMatch(message)
        raise _malformed(dialect, "Invalid credential date. Date is not the same as X-Amz-Date.")

    signed = claim.signed_headers.split(";")
    if not all(signed) or any(name != name.strip().lower() for name in signed):
        raise _malformed(
            dialect,
            f"SignedHeaders must be lower-case names joined by ';'; got {claim.signed_headers!r}.",
        )
    if "host" not in signed and ":authority" not in signed:
        raise _malformed(dialect, "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                                  "Authorization.")
    if dialect == "s3":
        signed_set = set(signed)
        unsigned = sorted({name for name, _ in headers
                           if name.startswith("x-amz-") and name not in signed_set})
        if unsigned:
            raise AccessDenied(
                "There were headers present in the request which were not signed",
                HeadersNotSigned=", ".join(unsigned),
            )

    _check_time(claim, now, max_skew_seconds, dialect)

    secret = secret_for(access_key_id)
    if secret is None:
        raise _unknown_key(dialect, access_key_id)

    s3 = dialect == "s3" or service == "s3"
    payload_hash = _payload_hash(request, claim, dialect, s3, body_sha256)
    scope = f"{date}/{region}/{service}/aws4_request"
    key = signing_key(secret, date, region, service)
    head = f"{request.method.upper()}\n{_canonical_path(request.raw_path, s3)}\n"
    tail = (f"\n{_canonical_headers(headers, signed)}\n{claim.signed_headers}\n"
            f"{payload_hash}")
    canonical = head + _canonical_query(params, claim.presigned) + tail
    string_to_sign = _string_to_sign(claim.amz_date, scope, canonical)
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not _same(expected, claim.signature):
        # A client that signed its URL's query text verbatim (botocore does so when the
        # query is already in the URL) may encode differently from AWS's canonical form.
        raw_query = _raw_canonical_query(params, claim.presigned)
        alternative = head + raw_query + tail
        if alternative == canonical or not _same(
            hmac.new(key, _string_to_sign(claim.amz_date, scope, alternative).encode("utf-8"),
                     hashlib.sha256).hexdigest(),
            claim.signature,
        ):
            raise _mismatch(dialect, access_key_id, claim.signature, string_to_sign, canonical)
    return VerifiedSignature(
        access_key_id=access_key_id,
        region=region,
        service=service,
        payload_hash=payload_hash,
        signing_key=key,
        seed_signature=claim.signature,
        amz_date=claim.amz_date,
        scope=scope,
        presigned=claim.presigned,
        security_token=claim.security_token,
        signed_headers=tuple(signed),
        trailer=_first_header(headers, "x-amz-trailer"),
    )


# --- S3's legacy signature version 2 ---------------------------------------------------------
# botocore still presigns S3 URLs this way by default (HmacV1QueryAuth), and signs with it when
# a client asks for signature_version="s3" (HmacV1Auth); this mirrors both.

_V2_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber",
    "policy", "requestPayment", "torrent", "versioning", "versionId", "versions", "website",
    "uploads", "uploadId", "response-content-type", "response-content-language",
    "response-expires", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "delete", "lifecycle", "tagging", "restore", "storageClass",
    "notification", "replication", "analytics", "metrics", "inventory", "select",
    "select-type", "object-lock",
})  # botocore's HmacV1Auth.QSAOfInterest


def _v2_string_to_sign(
    request: SignedRequest, params: list[_QueryParam], date_line: str, presigned: bool
) -> str:
    # botocore's HmacV1Auth.canonical_string, read back from what arrived.
    headers = request.headers
    query = {p.name: p.value for p in params} if presigned else {}
    lines = [request.method.upper()]
    for name in ("content-md5", "content-type"):
        value = _first_header(headers, name)
        lines.append((value if value is not None else query.get(name, "")).strip())
    lines.append(date_line)
    amz: dict[str, list[str]] = {}
    for name, value in headers:
        if name.startswith("x-amz-"):
            amz.setdefault(name, []).append(value.strip())
    if presigned:  # HmacV1QueryAuth moves the signed x-amz-* headers into the query
        for name, value in query.items():
            if name.lower().startswith("x-amz-"):
                amz[name.lower()] = [value.strip()]
    lines.extend(f"{name}:{','.join(amz[name])}" for name in sorted(amz))
    subresources = []
    for pair in request.query_string.split("&") if request.query_string else ():
        name, eq, value = pair.partition("=")
        if name in _V2_SUBRESOURCES:
            subresources.append((name, f"{name}={unquote(value)}" if eq else name))
    subresources.sort(key=lambda item: item[0])  # stable, by name only, as botocore sorts
    resource = request.raw_path
    if resource.count("/") == 1 and len(resource) > 1:
        resource += "/"  # a bucket's canonical resource is "/bucket/" (botocore's auth_path)
    if subresources:
        resource += "?" + "&".join(text for _, text in subresources)
    lines.append(resource)
    return "\n".join(lines)


def _verify_v2(
    request: SignedRequest,
    params: list[_QueryParam],
    authorization: str | None,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_skew: int,
) -> VerifiedSignature:
    presigned = authorization is None
    if presigned:
        found = {p.name: p.value for p in params}
        access_key_id = found.get("AWSAccessKeyId", "")
        provided = found.get("Signature", "")
        expires_text = found.get("Expires", "")
        if not provided or not expires_text or not set(expires_text) <= _DIGITS:
            raise AccessDenied(
                "Query-string authentication requires the Signature, Expires and "
                "AWSAccessKeyId parameters"
            )
        expires = datetime.fromtimestamp(min(int(expires_text), 253402300799), UTC)
        if now > expires:
            raise AccessDenied("Request has expired", Expires=_iso(expires),
                               ServerTime=_iso(now))
        date_line = expires_text
        token = found.get("x-amz-security-token")
    else:
        access_key_id, colon, provided = authorization[4:].strip().rpartition(":")
        if not colon or not access_key_id or not provided:
            raise InvalidArgument(
                "AWS authorization header is invalid. Expected AwsAccessKeyId:signature"
            )
        date_line = (_first_header(request.headers, "date") or "").strip()
        stamp = _first_header(request.headers, "x-amz-date") or date_line
        try:
            moment = parsedate_to_datetime(stamp.strip()) if stamp else None
        except (TypeError, ValueError):
            moment = None
        if moment is None:
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if abs((moment - now).total_seconds()) > max_skew:
            raise _s3_skewed(stamp, now, max_skew)
        token = _first_header(request.headers, "x-amz-security-token")
    secret = secret_for(access_key_id)
    if secret is None:
        raise _unknown_key("s3", access_key_id)
    string_to_sign = _v2_string_to_sign(request, params, date_line, presigned)
    expected = base64.b64encode(
        hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    ).decode("ascii")
    if not _same(expected, provided):
        raise SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
            AWSAccessKeyId=access_key_id,
            StringToSign=string_to_sign,
            SignatureProvided=provided,
        )
    declared = _first_header(request.headers, "x-amz-content-sha256")
    return VerifiedSignature(
        access_key_id=access_key_id,
        region="",
        service="s3",
        payload_hash=declared.strip() if declared else UNSIGNED_PAYLOAD,
        signing_key=b"",
        seed_signature=provided,
        amz_date="",
        scope="",
        presigned=presigned,
        security_token=token,
        signature_version=2,
    )
