"""Assemble a REST request's input members from its URI, query string and headers, as
botocore's model places them, and validate them like any other input.

Header and query values arrive as text; ``core/validation.py`` converts them to the
member's type (``max-keys=abc`` fails naming ``maxKeys``) and checks enums, lengths,
ranges and patterns. The payload member (the body) is decoded by the protocol.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from openmaker.api.http import Request
from openmaker.core import validation


@dataclass(frozen=True)
class _Bindings:
    """Where an operation's members sit in a request: looked up per request by what the
    request actually carries, not by every member the operation could take."""

    uri: tuple[tuple[str, str], ...]  # (member, placeholder name)
    query: dict[str, str]  # query parameter -> member
    headers: dict[str, str]  # lower-case header name -> member
    prefixes: tuple[tuple[str, str], ...]  # (lower-case header prefix, map member)


@functools.cache
def _bindings(operation) -> _Bindings:
    uri, query, headers, prefixes = [], {}, {}, []
    shape = operation.input_shape
    for name, member in (shape.members.items() if shape is not None else ()):
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri":
            uri.append((name, wire_name.rstrip("+")))
        elif location == "querystring" and member.type_name != "map":
            query[wire_name] = name
        elif location == "header":
            headers[wire_name.lower()] = name
        elif location == "headers":
            prefixes.append((wire_name.lower(), name))
    return _Bindings(tuple(uri), query, headers, tuple(prefixes))


def parse_rest_input(
    operation, request: Request, uri_params: dict[str, str], payload: dict | None = None
) -> dict:
    """The operation's input members from ``request``, validated; ``payload`` holds the
    members a protocol decoded from the body (e.g. S3's ``Delete`` document)."""
    bindings = _bindings(operation)
    params: dict[str, object] = dict(payload or {})
    for member, placeholder in bindings.uri:
        if placeholder in uri_params:
            params[member] = uri_params[placeholder]
    if bindings.query:
        for name, value in request.query.items():
            member = bindings.query.get(name)
            if member is not None:
                params[member] = value
    for name, value in request.headers:
        member = bindings.headers.get(name)
        if member is not None:
            params.setdefault(member, value)
            continue
        for prefix, map_member in bindings.prefixes:
            if name.startswith(prefix) and len(name) > len(prefix):
                params.setdefault(map_member, {})[name[len(prefix):]] = value
                break
    return validation.parse_params(
        operation.input_shape, params, protocol=operation.service_model.protocol
    )
