"""Reading a training channel into arrays, whatever the input mode and content type.

What arrives (``training/channels.py``): File mode copies each object byte for byte under
``input/data/<channel>/`` (so gzip is still gzip: it is undone here, by its magic bytes);
FastFile mode puts a FIFO at each of those paths, readable once, front to back (no seek,
``stat`` size 0); Pipe mode streams every object, one after the other, through the FIFO
``input/data/<channel>_<epoch>`` with gzip already undone and, with ``RecordWrapperType:
RecordIO``, each object framed as one RecordIO record (unwrapped here).

Files whose names start with ``.`` or ``_`` are skipped, as SageMaker's containers do.
Formats are parsed by ``openmaker.formats``; errors become :class:`ClientError` naming the
channel, file, line and column.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openmaker.algorithms.base import ClientError, TrainingEnvironment

CHUNK_SIZE = 4 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


@dataclass
class Dataset:
    """Rows of one channel: features (2-D float32 array or CSR matrix), labels, and the
    optional instance weights and query ids."""

    features: Any
    labels: np.ndarray | None
    weights: np.ndarray | None = None
    qid: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(self.features.shape[0])

    @property
    def columns(self) -> int:
        return int(self.features.shape[1])

    @property
    def is_sparse(self) -> bool:
        return not isinstance(self.features, np.ndarray)


class _Stream:
    """A named, read-once binary stream over a file, a FIFO or chunks; gzip undone."""

    def __init__(self, name: str, chunks: Iterator[bytes], path: Path | None = None) -> None:
        self.name = name
        self._chunks = chunks
        self._pending = b""
        self._path = path  # a plain (not gzip) file nothing has been read from yet

    @classmethod
    def of_file(cls, path: Path, name: str) -> _Stream:
        plain = False
        if path.is_file():  # FastFile mode's files are FIFOs, to be opened only once
            with open(path, "rb") as file:
                plain = file.read(len(_GZIP_MAGIC)) != _GZIP_MAGIC
        return cls(name, _gunzipped(_read_chunks(path)), path if plain else None)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            if self._path is not None:  # the whole file: one read, no chunks to join
                self._chunks = iter(())
                self._pending = b""
                return self._path.read_bytes()
            data = self._pending + b"".join(self._chunks)
            self._pending = b""
            return data
        self._path = None
        while len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def peek(self, size: int) -> bytes:
        while len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        return self._pending[:size]


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while True:
            chunk = file.read(CHUNK_SIZE)
            if not chunk:
                return
            yield chunk


def _gunzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    first = next(chunks, b"")
    if not first.startswith(_GZIP_MAGIC):
        if first:
            yield first
        yield from chunks
        return
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def all_chunks() -> Iterator[bytes]:
        yield first
        yield from chunks

    for chunk in all_chunks():
        data = chunk
        while data:
            out = decompressor.decompress(data)
            if out:
                yield out
            if decompressor.eof:  # another gzip member may follow
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                data = b""
    tail = decompressor.flush()
    if tail:
        yield tail


def data_files(directory: Path) -> list[Path]:
    """Data files under ``directory``, recursively, in path order (regular files and the
    FIFOs FastFile mode leaves); hidden and ``_``-prefixed names are skipped."""
    found: list[Path] = []
    for folder, subfolders, names in os.walk(directory, followlinks=True):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith((".", "_")))
        for name in sorted(names):
            if name.startswith((".", "_")):
                continue
            path = Path(folder) / name
            try:
                mode = os.stat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
                found.append(path)
    return found


def channel_streams(env: TrainingEnvironment, channel: str) -> list[_Stream]:
    """The byte streams of ``channel`` on this instance: one per file, or the Pipe-mode
    FIFO (one per RecordIO record when the channel is RecordIO-wrapped)."""
    mode = env.input_mode(channel)
    if mode == "Pipe":
        fifo = env.input_data_dir / f"{channel}_0"
        if not fifo.exists():
            raise ClientError(f"channel {channel!r} is in Pipe mode but its FIFO {fifo} does "
                              "not exist")
        name = f"channel {channel!r} (Pipe mode, {fifo.name})"
        stream = _Stream(name, _read_chunks(fifo))
        wrapper = env.input_data_config.get(channel, {}).get("RecordWrapperType", "None")
        if wrapper == "RecordIO":
            from openmaker.formats.recordio import RecordIOError, iter_records

            try:
                return [_Stream(f"{name}, record {index}", iter([bytes(payload)]))
                        for index, payload in enumerate(iter_records(stream))]
            except RecordIOError as error:
                raise ClientError(f"{name}: {error}") from None
        return [stream]
    directory = env.channel_dir(channel)
    if not directory.is_dir():
        raise ClientError(f"channel {channel!r} has no data: {directory} does not exist")
    files = data_files(directory)
    return [_Stream.of_file(path, f"channel {channel!r} file "
                                  f"{path.relative_to(directory).as_posix()}")
            for path in files]


# -- formats --------------------------------------------------------------------------------
def sniff_delimiter(first_bytes: bytes) -> str:
    """The CSV delimiter of the first line (SageMaker XGBoost sniffs it too): the first of
    comma, tab, semicolon, pipe found there, else a comma."""
    line = first_bytes.split(b"\n", 1)[0]
    for delimiter in (b",", b"\t", b";", b"|"):
        if delimiter in line:
            return delimiter.decode()
    return ","


def _read_csv(stream: _Stream, csv_weights: bool) -> Dataset | None:
    from openmaker.formats.csv import CSVFormatError, read_csv

    delimiter = sniff_delimiter(stream.peek(1 << 16))
    try:
        features, labels = read_csv(stream, label_size=1, delimiter=delimiter,
                                    dtype=np.float32)
    except CSVFormatError as error:
        raise ClientError(str(error)) from None
    if features.shape[0] == 0:
        return None
    weights = None
    if csv_weights:
        if features.shape[1] < 1:
            raise ClientError(f"{stream.name}: csv_weights=1 needs a weight in the second "
                              "column, but the rows have only a label")
        weights = np.ascontiguousarray(features[:, 0])
        features = np.ascontiguousarray(features[:, 1:])
    return Dataset(features, labels, weights)


def _read_libsvm(stream: _Stream) -> Dataset | None:
    from openmaker.formats.libsvm import LibSVMFormatError, read_libsvm_data

    try:
        data = read_libsvm_data(stream, zero_based=True, dtype=np.float32)
    except LibSVMFormatError as error:
        raise ClientError(str(error)) from None
    if data.features.shape[0] == 0:
        return None
    return Dataset(data.features, data.labels, data.weights, data.qid)


def _parquet_files(data: bytes, name: str) -> list[bytes]:
    """Split Pipe mode's back-to-back Parquet files: each starts and ends with ``PAR1``
    and ends with its footer length, so a boundary is ``PAR1PAR1`` with a footer length
    that fits."""
    if not data.startswith(_PARQUET_MAGIC):
        raise ClientError(f"{name}: not Parquet data (no PAR1 header)")
    files, start = [], 0
    search = 4
    while True:
        boundary = data.find(_PARQUET_MAGIC * 2, search)
        if boundary < 0:
            break
        end = boundary + 4
        footer = int.from_bytes(data[end - 8:end - 4], "little")
        if 0 < footer <= end - start - 12:
            files.append(data[start:end])
            start = end
            search = end + 4
        else:
            search = boundary + 1
    files.append(data[start:])
    return files


def _read_parquet(stream: _Stream) -> list[Dataset]:
    from openmaker.formats.parquet import ParquetFormatError, read_parquet

    data = stream.read()
    if not data:
        return []
    datasets = []
    for index, part in enumerate(_parquet_files(data, stream.name)):
        try:
            features, labels = read_parquet(part, label_column=0, dtype=np.float32)
        except ParquetFormatError as error:
            where = stream.name if index == 0 else f"{stream.name}, file {index + 1}"
            raise ClientError(f"{where}: {str(error).removeprefix('<bytes>: ')}") from None
        if features.shape[0]:
            datasets.append(Dataset(features, labels))
    return datasets


def _read_recordio_protobuf(stream: _Stream) -> Dataset | None:
    from openmaker.formats.recordio import RecordIOError
    from openmaker.formats.recordio_protobuf import RecordProtobufError, read_recordio_protobuf

    try:
        features, labels = read_recordio_protobuf(stream)
    except (RecordProtobufError, RecordIOError) as error:
        raise ClientError(str(error)) from None
    if features.shape[0] == 0:
        return None
    if labels is not None and labels.ndim != 1:
        raise ClientError(f"{stream.name}: labels must be scalars, found vectors of "
                          f"{labels.shape[1]}")
    features = features.astype(np.float32, copy=False)
    return Dataset(features, None if labels is None else labels.astype(np.float32))


READERS: dict[str, Callable[..., Any]] = {
    "csv": _read_csv,
    "libsvm": _read_libsvm,
    "parquet": _read_parquet,
    "recordio-protobuf": _read_recordio_protobuf,
}


def read_channel(env: TrainingEnvironment, channel: str, data_format: str, *,
                 csv_weights: bool = False, require_rows: bool = True) -> Dataset | None:
    """Every row of ``channel`` on this instance as one :class:`Dataset`; None when it has
    no rows and ``require_rows`` is false, ClientError when it has none and it is true."""
    parts: list[Dataset] = []
    for stream in channel_streams(env, channel):
        if data_format == "csv":
            result = _read_csv(stream, csv_weights)
        else:
            result = READERS[data_format](stream)
        if isinstance(result, list):
            parts.extend(result)
        elif result is not None:
            parts.append(result)
        for part in parts[-1:]:
            if part.labels is None:
                raise ClientError(f"{stream.name}: the records have no label; training needs "
                                  "one per record")
    if not parts:
        if require_rows:
            raise ClientError(f"channel {channel!r} has no data: no records were found in "
                              f"{_where(env, channel)}")
        return None
    return combine(parts, channel)


def _where(env: TrainingEnvironment, channel: str) -> str:
    if env.input_mode(channel) == "Pipe":
        return f"its Pipe-mode FIFO {channel}_0"
    return str(env.channel_dir(channel))


def combine(parts: list[Dataset], channel: str) -> Dataset:
    """Stack datasets row-wise; dense ones must have equal widths, sparse ones are widened
    to the widest."""
    if len(parts) == 1:
        return parts[0]
    if any(part.is_sparse for part in parts):
        import scipy.sparse

        width = max(part.columns for part in parts)
        matrices = []
        for part in parts:
            matrix = scipy.sparse.csr_matrix(part.features)
            matrix.resize((matrix.shape[0], width))
            matrices.append(matrix)
        features: Any = scipy.sparse.vstack(matrices, format="csr")
    else:
        widths = {part.columns for part in parts}
        if len(widths) > 1:
            raise ClientError(f"channel {channel!r}: its files have different numbers of "
                              f"feature columns ({', '.join(map(str, sorted(widths)))}); "
                              "every file must have the same columns")
        features = np.concatenate([part.features for part in parts])
    labels = np.concatenate([part.labels for part in parts])  # type: ignore[misc]
    weights = qid = None
    if any(part.weights is not None for part in parts):
        if not all(part.weights is not None for part in parts):
            raise ClientError(f"channel {channel!r}: only some files have instance weights")
        weights = np.concatenate([part.weights for part in parts])  # type: ignore[misc]
    if any(part.qid is not None for part in parts):
        if not all(part.qid is not None for part in parts):
            raise ClientError(f"channel {channel!r}: only some files have query ids (qid)")
        qid = np.concatenate([part.qid for part in parts])  # type: ignore[misc]
    return Dataset(features, labels, weights, qid)


def read_request_features(body: bytes, content_type: str, media: str,
                          parameters: dict[str, str], request_types: Sequence[str]) -> Any:
    """The feature rows of an inference request in CSV (``label_size`` columns dropped),
    RecordIO-protobuf, JSON or JSON Lines: an array or a sparse matrix.
    UnsupportedContentType for any other ``media`` or a body that does not parse."""
    from openmaker.algorithms.base import InferenceError, UnsupportedContentType

    try:
        if media == "text/csv":
            from openmaker.formats.csv import read_csv

            features, _ = read_csv(body, label_size=int(parameters.get("label_size", "0")),
                                   delimiter=sniff_delimiter(body[:4096]), dtype=np.float32)
        elif media == "application/x-recordio-protobuf":
            from openmaker.formats.recordio_protobuf import read_recordio_protobuf

            features, _ = read_recordio_protobuf(body)
        elif media in ("application/json", "application/jsonlines"):
            from openmaker.formats.jsonlines import read_json_instances, read_jsonlines_instances

            read = read_json_instances if media == "application/json" else \
                read_jsonlines_instances
            features = read(body)
        else:
            raise UnsupportedContentType(f"content type {content_type!r} is not supported; "
                                         f"use {', '.join(request_types)}")
    except InferenceError:
        raise
    except (ValueError, TypeError, LookupError) as error:
        raise UnsupportedContentType(f"the request is not valid {media}: {error}") from None
    return features
