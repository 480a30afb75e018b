"""Assemble a REST request's input members from its URI, query string and headers, as
botocore's model places them, and validate them like any other input.

Header and query values arrive as text; ``core/validation.py`` converts them to the
member's type (``max-keys=abc`` fails naming ``maxKeys``) and checks enums, lengths,
ranges and patterns. The payload member (the body) is decoded by the protocol.
"""

from __future__ import annotations

import functools

from openmaker.api.http import Request
from openmaker.core import validation


@functools.cache
def _locations(operation) -> tuple[tuple[str, str, str, str], ...]:
    """(member, location, location name, type) for every member bound to the request line
    or headers."""
    shape = operation.input_shape
    if shape is None:
        return ()
    found = []
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        if location in ("header", "headers", "querystring", "uri"):
            found.append((name, location, member.serialization.get("name", name),
                          member.type_name))
    return tuple(found)


def parse_rest_input(
    operation, request: Request, uri_params: dict[str, str], payload: dict | None = None
) -> dict:
    """The operation's input members from ``request``, validated; ``payload`` holds the
    members a protocol decoded from the body (e.g. S3's ``Delete`` document)."""
    params: dict[str, object] = dict(payload or {})
    query = request.query
    for member, location, wire_name, kind in _locations(operation):
        if location == "uri":
            value = uri_params.get(wire_name.rstrip("+"))
            if value is not None:
                params[member] = value
        elif location == "querystring":
            if kind == "map":
                continue
            text = query.get(wire_name)
            if text is not None:
                params[member] = text
        elif location == "header":
            text = request.header(wire_name.lower())
            if text is not None:
                params[member] = text
        else:  # "headers": every header with the prefix, e.g. x-amz-meta-
            prefix = wire_name.lower()
            values = {name[len(prefix):]: value for name, value in request.headers
                      if name.startswith(prefix) and len(name) > len(prefix)}
            if values:
                params[member] = values
    return validation.parse_params(
        operation.input_shape, params, protocol=operation.service_model.protocol
    )
