"""Rules every object store applies the same way: bucket names, keys, ranges, parts, bodies."""

from __future__ import annotations

import re
from collections.abc import Iterator

from openmaker.core.errors import (
    InvalidArgument,
    InvalidBucketName,
    InvalidObjectName,
    InvalidRange,
    KeyTooLongError,
)
from openmaker.storage.base import MAX_KEY_BYTES, MAX_PART_NUMBER, Body

_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]\Z")
_IP_ADDRESS = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\Z")
# Prefixes and suffixes S3 reserves for access points, Object Lambda, directory buckets ...
_RESERVED_PREFIXES = ("xn--", "sthree-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name, or None when it is."""
    if not isinstance(name, str):
        return "a bucket name must be a string"
    if not 3 <= len(name) <= 63:
        return f"a bucket name must be 3 to 63 characters long (this one has {len(name)})"
    if not _BUCKET_CHARS.match(name):
        return (
            "a bucket name may hold only lower-case letters, digits, dots and hyphens, "
            "and must begin and end with a letter or digit"
        )
    if ".." in name:
        return "a bucket name must not hold two adjacent dots"
    if _IP_ADDRESS.match(name):
        return "a bucket name must not look like an IP address"
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"bucket names beginning with {prefix!r} are reserved"
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"bucket names ending with {suffix!r} are reserved"
    return None


def check_bucket_name(name: str) -> None:
    """Raise ``InvalidBucketName`` unless ``name`` follows S3's bucket naming rules."""
    problem = bucket_name_problem(name)
    if problem is not None:
        # S3's own text first, then what to change.
        raise InvalidBucketName(
            f"The specified bucket is not valid. {problem[0].upper()}{problem[1:]}.",
            BucketName=name if isinstance(name, str) else None,
        )


def check_key(key: str) -> bytes:
    """Validate an object key and return its UTF-8 bytes.

    Raises ``KeyTooLongError`` past 1024 bytes and ``InvalidObjectName`` for keys that are
    empty, hold NUL or unencodable characters, start with ``/`` or have a ``..`` segment:
    such keys could name a path outside the bucket's directory.
    """
    if not isinstance(key, str) or key == "":
        raise _invalid(key, "an object key must be a non-empty string")
    try:
        data = key.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(
            key, "an object key must be valid Unicode (it holds a lone surrogate)"
        ) from None
    if len(data) > MAX_KEY_BYTES:
        raise KeyTooLongError("Your key is too long", Size=len(data), MaxSizeAllowed=MAX_KEY_BYTES)
    if b"\0" in data:
        raise _invalid(key, "an object key must not hold a NUL character")
    if data[:1] == b"/":
        raise _invalid(key, "an object key must not begin with '/'")
    if b".." in data and b".." in data.split(b"/"):
        raise _invalid(key, "an object key must not have a '..' segment")
    return data


def _invalid(key: object, reason: str) -> InvalidObjectName:
    shown = repr(key)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidObjectName(f"Object key {shown} is not valid: {reason}.", ArgumentName="key")


def resolve_range(
    size: int, byte_range: tuple[int | None, int | None] | None
) -> tuple[int, int]:
    """The inclusive ``(start, end)`` an HTTP-style ``byte_range`` selects in ``size`` bytes.

    ``(first, None)`` runs to the end, ``(None, n)`` is the last ``n`` bytes; a last
    position past the end is clipped, and a range whose last position is before its first
    is ignored (the whole object, as HTTP says). Raises ``InvalidRange`` when nothing can
    be served: a start at or past the end, a zero-length suffix, or any range of an empty
    object.
    """
    if byte_range is None or byte_range == (None, None):
        return 0, size - 1
    first, last = byte_range
    if first is None:
        if last is None or last <= 0 or size == 0:
            raise _invalid_range(size, first, last)
        return max(0, size - last), size - 1
    if first < 0:
        raise _invalid_range(size, first, last)
    if first >= size:
        raise _invalid_range(size, first, last)
    if last is None or last >= size:
        return first, size - 1
    if last < first:
        return 0, size - 1
    return first, last


def _invalid_range(size: int, first: int | None, last: int | None) -> InvalidRange:
    requested = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    return InvalidRange(
        "The requested range is not satisfiable", RangeRequested=requested, ActualObjectSize=size
    )


def check_part_number(part_number: int) -> None:
    """Raise ``InvalidArgument`` unless ``part_number`` is 1..10000."""
    if (not isinstance(part_number, int) or isinstance(part_number, bool)
            or not 1 <= part_number <= MAX_PART_NUMBER):
        raise InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
            ArgumentName="partNumber", ArgumentValue=part_number,
        )


def body_chunks(body: Body, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """The chunks of an object body: ``bytes``, an iterable of ``bytes``, or a binary file."""
    if isinstance(body, bytes | bytearray | memoryview):
        yield body  # type: ignore[misc]
        return
    read = getattr(body, "read", None)
    if read is not None:  # a file object: iterating it would split it on newlines
        while chunk := read(chunk_size):
            yield chunk
        return
    for chunk in body:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"object body chunks must be bytes, got {type(chunk).__name__}")
        yield chunk
