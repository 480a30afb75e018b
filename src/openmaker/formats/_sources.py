"""Where the format readers get bytes from and where the writers put them.

A *source* is a path, a ``bytes``-like object, a binary file object, or an iterable of byte
chunks (a Pipe-mode FIFO, an HTTP body); a *destination* is a path or a binary file object.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any, BinaryIO

Source = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes]
Destination = str | os.PathLike | IO[bytes]

DEFAULT_CHUNK_SIZE = 1 << 20


def source_name(source: Any) -> str:
    """A name for ``source`` to put in error messages."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(source).__name__}>"


def iter_chunks(source: Source, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the bytes of ``source`` in chunks (of at most ``chunk_size`` for files)."""
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source):
            yield bytes(source)
        return
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            yield from _read_file(file, chunk_size)
        return
    if hasattr(source, "read"):
        yield from _read_file(source, chunk_size)  # type: ignore[arg-type]
        return
    for chunk in source:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(f"byte chunks expected from {source_name(source)}, "
                            f"got {type(chunk).__name__}")
        if len(chunk):
            yield bytes(chunk)


def _read_file(file: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    while True:
        chunk = file.read(chunk_size)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise TypeError(f"{source_name(file)} is open in text mode; open it with 'rb'")
        yield chunk


def iter_line_blocks(source: Source, block_size: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, block)`` with each block ending on a line boundary.

    Line numbers are 1-based and count every physical line, blank ones included.
    """
    pending = b""
    line_number = 1
    for chunk in iter_chunks(source, block_size):
        data = pending + chunk if pending else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        block, pending = data[: cut + 1], data[cut + 1 :]
        yield line_number, block
        line_number += block.count(b"\n")
    if pending:
        yield line_number, pending


@contextlib.contextmanager
def open_destination(destination: Destination) -> Iterator[IO[bytes]]:
    """Open a path for binary writing (closed afterwards) or pass a file object through."""
    if isinstance(destination, str | os.PathLike):
        with open(destination, "wb") as file:
            yield file
    elif hasattr(destination, "write"):
        if isinstance(destination, io.TextIOBase):
            raise TypeError(f"{source_name(destination)} is open in text mode; open it with 'wb'")
        yield destination
    else:
        raise TypeError("a path or a binary file object is needed, "
                        f"got {type(destination).__name__}")


def read_all(source: Source) -> bytes:
    """The whole of ``source`` as one ``bytes`` object."""
    if isinstance(source, bytes):
        return source
    if hasattr(source, "read") and not isinstance(source, io.TextIOBase):
        data = source.read()  # one read: no chunks to copy together
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data)
        raise TypeError(f"{source_name(source)} is open in text mode; open it with 'rb'")
    return b"".join(iter_chunks(source))
