"""HTTP request and response objects shared by the protocol handlers.

A request's body is either read whole (small JSON and XML bodies) or streamed: a
protocol handler running in a worker thread iterates :meth:`Request.iter_body`, which
pulls chunks from the ASGI server's event loop as the client sends them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from openmaker.core import errors

STREAM_BATCH_BYTES = 1024 * 1024  # a streamed body reaches its worker thread in pieces this big


class Request:
    """One HTTP request, as received. Header names are lower-case."""

    def __init__(self, scope: dict, receive, loop: asyncio.AbstractEventLoop) -> None:
        self.method: str = scope["method"]
        raw_path = scope.get("raw_path")
        self.raw_path: str = raw_path.decode("latin-1") if raw_path else scope["path"]
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")
        self.headers: list[tuple[str, str]] = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in scope["headers"]
        ]
        self._header_map: dict[str, str] = {}
        for name, value in self.headers:
            self._header_map.setdefault(name, value)
        self.client = scope.get("client")
        self.credentials = None  # the SigV4 credential scope, once routing has parsed it
        self.request_id = str(uuid.uuid4())
        self._receive = receive
        self._loop = loop
        self._body: bytes | None = None
        self._body_started = False
        self._query: dict[str, str] | None = None

    # -- headers and query ----------------------------------------------------------------
    def header(self, name: str, default: str | None = None) -> str | None:
        return self._header_map.get(name, default)

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def host(self) -> str:
        return self._header_map.get("host", "")

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (first value of each), blank values kept (``?uploads`` -> '')."""
        if self._query is None:
            self._query = {}
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                self._query.setdefault(name, value)
        return self._query

    @property
    def path(self) -> str:
        """The path with percent-escapes decoded as UTF-8 (``+`` stays a plus)."""
        return unquote(self.raw_path, encoding="utf-8", errors="strict")

    @property
    def content_length(self) -> int | None:
        value = self._header_map.get("content-length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            raise errors.InvalidRequest(f"Content-Length {value!r} is not a number") from None
        if length < 0:
            raise errors.InvalidRequest(f"Content-Length {value!r} is negative")
        return length

    # -- body -----------------------------------------------------------------------------
    async def read_body(self, limit: int, too_large: errors.AwsError) -> bytes:
        """Read the whole body (from the event loop); ``too_large`` past ``limit`` bytes."""
        if self._body is not None:
            return self._body
        length = self.content_length
        if length is not None and length > limit:
            raise too_large
        parts: list[bytes] = []
        size = 0
        self._body_started = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise errors.IncompleteBody("The client closed the connection mid-body.")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise too_large
                parts.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(parts)
        return self._body

    @property
    def body(self) -> bytes:
        """The body read by :meth:`read_body`."""
        if self._body is None:
            raise RuntimeError("the body was not read; use iter_body for streamed bodies")
        return self._body

    def iter_body(self) -> Iterator[bytes]:
        """Stream the body from a worker thread (never call it on the event loop)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._body_started:
            raise RuntimeError("the body is already being read")
        self._body_started = True
        more = True
        while more:
            # one hop to the event loop per batch of chunks, not per socket read
            future = asyncio.run_coroutine_threadsafe(self._receive_batch(), self._loop)
            chunk, more = future.result()
            if chunk:
                yield chunk

    async def _receive_batch(self, target: int = STREAM_BATCH_BYTES) -> tuple[bytes, bool]:
        """Body bytes received until ``target`` bytes or the end; (bytes, more to come)."""
        parts: list[bytes] = []
        size = 0
        while size < target:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise errors.IncompleteBody("The client closed the connection mid-body.")
            chunk = message.get("body", b"")
            if chunk:
                parts.append(chunk)
                size += len(chunk)
            if not message.get("more_body", False):
                return b"".join(parts), False
        return b"".join(parts), True


@dataclass
class Response:
    """A response; ``body`` may be an iterable of chunks read from a worker thread."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[bytes] = b""
    content_length: int | None = None  # for streamed bodies whose length is known

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None
