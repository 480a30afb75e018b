"""SageMaker RecordIO-protobuf (``application/x-recordio-protobuf``): ``aialgs.data.Record``
messages in RecordIO framing.

The protobuf wire format is encoded and parsed here directly (proto2, packed repeated
scalars); the writers produce the same bytes as the SageMaker Python SDK v2's
``write_numpy_to_dense_tensor`` and ``write_spmatrix_to_sparse_tensor``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from openmaker.formats import recordio
from openmaker.formats._sources import Destination, Source, open_destination, source_name

if TYPE_CHECKING:
    import scipy.sparse

# Value.oneof field numbers, by tensor element type
_TENSOR_FIELDS = {np.dtype("<f4"): 2, np.dtype("<f8"): 3, np.dtype("<i4"): 7}
_FIELD_DTYPES = {number: dtype for dtype, number in _TENSOR_FIELDS.items()}
_BYTES_FIELD = 9
_WRITE_BATCH = 4096


class RecordProtobufError(ValueError):
    """A RecordIO-protobuf payload is not a valid ``Record`` message or has the wrong shape."""


@dataclass(eq=False)
class Tensor:
    """A ``Float32Tensor``/``Float64Tensor``/``Int32Tensor``: dense when ``keys`` is None."""

    values: np.ndarray
    keys: np.ndarray | None = None
    shape: tuple[int, ...] | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (self.values.dtype == other.values.dtype
                and np.array_equal(self.values, other.values)
                and (self.keys is None) == (other.keys is None)
                and (self.keys is None or np.array_equal(self.keys, other.keys))
                and tuple(self.shape or ()) == tuple(other.shape or ()))

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_sparse(self) -> bool:
        return self.keys is not None

    def to_dense(self) -> np.ndarray:
        """The tensor as a dense array (sparse tensors are scattered into ``shape``)."""
        if self.keys is None:
            if self.shape:
                return self.values.reshape(self.shape)
            return self.values
        if not self.shape:
            raise RecordProtobufError("a sparse tensor (with keys) needs a shape")
        dense = np.zeros(int(np.prod(self.shape)), dtype=self.values.dtype)
        dense[self.keys.astype(np.intp)] = self.values
        return dense.reshape(self.shape)


@dataclass
class BytesValue:
    """A ``Bytes`` value: opaque byte strings with an optional content type."""

    values: list[bytes]
    content_type: str | None = None


Value = Tensor | BytesValue


@dataclass
class Record:
    """An ``aialgs.data.Record``: named feature and label values plus optional strings."""

    features: dict[str, Value] = field(default_factory=dict)
    label: dict[str, Value] = field(default_factory=dict)
    uid: str | None = None
    metadata: str | None = None
    configuration: str | None = None


# -- protobuf wire encoding -----------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_varints(values: np.ndarray) -> bytes:
    """Packed varints; signed values are sign-extended to 64 bits as protobuf does."""
    if values.size == 0:
        return b""
    if values.dtype.kind == "i":
        unsigned = values.astype(np.int64, copy=False).view(np.uint64)
    else:
        unsigned = values.astype(np.uint64, copy=False)
    if int(unsigned.max()) < 0x80:
        return unsigned.astype(np.uint8).tobytes()
    lengths = np.ones(unsigned.shape, dtype=np.int64)
    for k in range(1, 10):
        lengths += unsigned >= np.uint64(1 << (7 * k))
    width = int(lengths.max())
    positions = np.arange(width)
    shifts = (positions * 7).astype(np.uint64)
    groups = ((unsigned[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    groups[positions[None, :] < (lengths[:, None] - 1)] |= 0x80
    return groups[positions[None, :] < lengths[:, None]].tobytes()


def _decode_varints(data: bytes | memoryview) -> np.ndarray:
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if int(raw.max()) < 0x80:
        return raw.astype(np.uint64)
    ends = np.flatnonzero(raw < 0x80)
    if ends.size == 0 or ends[-1] != raw.size - 1:
        raise RecordProtobufError("truncated packed varint")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > 10:
        raise RecordProtobufError("varint longer than 10 bytes")
    within = np.arange(raw.size) - np.repeat(starts, lengths)
    contributions = (raw & 0x7F).astype(np.uint64) << (within * 7).astype(np.uint64)
    return np.bitwise_or.reduceat(contributions, starts)


def _length_delimited(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(body)) + body


def _encode_tensor(tensor: Tensor) -> bytes:
    dtype = np.dtype(tensor.values.dtype).newbyteorder("<")
    if dtype.kind == "i":
        body = _encode_varints(tensor.values)
    else:
        body = np.ascontiguousarray(tensor.values, dtype=dtype).tobytes()
    out = _length_delimited(0x0A, body) if body else b""
    if tensor.keys is not None and len(tensor.keys):
        out += _length_delimited(0x12, _encode_varints(np.asarray(tensor.keys, dtype=np.uint64)))
    if tensor.shape:
        out += _length_delimited(0x1A, _encode_varints(np.asarray(tensor.shape, dtype=np.uint64)))
    return out


def _encode_value(value: Value) -> bytes:
    if isinstance(value, BytesValue):
        body = b"".join(_length_delimited(0x0A, item) for item in value.values)
        if value.content_type is not None:
            body += _length_delimited(0x12, value.content_type.encode())
        return _length_delimited(_BYTES_FIELD << 3 | 2, body)
    number = _tensor_field(value.values.dtype)
    return _length_delimited(number << 3 | 2, _encode_tensor(value))


def _tensor_field(dtype: np.dtype) -> int:
    number = _TENSOR_FIELDS.get(np.dtype(dtype).newbyteorder("<"))
    if number is None:
        raise TypeError(f"RecordIO-protobuf tensors hold float32, float64 or int32 values, "
                        f"not {np.dtype(dtype)}")
    return number


def _encode_map(tag: int, entries: Mapping[str, Value]) -> bytes:
    return b"".join(
        _length_delimited(tag, _length_delimited(0x0A, key.encode())
                          + _length_delimited(0x12, _encode_value(value)))
        for key, value in entries.items())


def encode_record(record: Record) -> bytes:
    """Serialize a ``Record`` to protobuf bytes (fields in field-number order)."""
    out = _encode_map(0x0A, record.features) + _encode_map(0x12, record.label)
    for tag, text in ((0x1A, record.uid), (0x22, record.metadata), (0x2A, record.configuration)):
        if text is not None:
            out += _length_delimited(tag, text.encode())
    return out


# -- protobuf wire parsing ------------------------------------------------------------------
def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(data):
            raise RecordProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise RecordProtobufError("varint longer than 10 bytes")


def _iter_fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field_number, wire_type, value)``; length-delimited values are memoryviews."""
    position = 0
    end = len(data)
    while position < end:
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _read_varint(data, position)
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            if position + length > end:
                raise RecordProtobufError(f"field {number} runs past the end of its message")
            value = data[position : position + length]
            position += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if position + size > end:
                raise RecordProtobufError(f"field {number} runs past the end of its message")
            value = data[position : position + size]
            position += size
        else:
            raise RecordProtobufError(f"unsupported protobuf wire type {wire_type} "
                                      f"(field {number})")
        yield number, wire_type, value


def _decode_tensor(data: memoryview, dtype: np.dtype) -> Tensor:
    values: list[np.ndarray] = []
    keys: list[np.ndarray] = []
    shape: list[np.ndarray] = []
    scalar_wire = 0 if dtype.kind == "i" else (5 if dtype.itemsize == 4 else 1)
    for number, wire_type, value in _iter_fields(data):
        if number == 1:
            if wire_type == 2:
                if dtype.kind == "i":
                    values.append(_decode_varints(value).view(np.int64).astype(dtype))
                else:
                    if len(value) % dtype.itemsize:
                        raise RecordProtobufError("packed tensor values have a ragged length")
                    values.append(np.frombuffer(value, dtype=dtype))
            elif wire_type == scalar_wire:
                if wire_type == 0:
                    values.append(np.array([value], dtype=np.uint64).view(np.int64).astype(dtype))
                else:
                    values.append(np.frombuffer(value, dtype=dtype))
            else:
                raise RecordProtobufError(f"tensor values have wire type {wire_type}")
        elif number in (2, 3):
            target = keys if number == 2 else shape
            if wire_type == 2:
                target.append(_decode_varints(value))
            elif wire_type == 0:
                target.append(np.array([value], dtype=np.uint64))
            else:
                raise RecordProtobufError(f"tensor keys/shape have wire type {wire_type}")
    tensor = Tensor(
        values=np.concatenate(values) if values else np.zeros(0, dtype=dtype),
        keys=np.concatenate(keys) if keys else None,
        shape=tuple(int(v) for v in np.concatenate(shape)) if shape else None,
    )
    if tensor.keys is None and tensor.shape and not values and int(np.prod(tensor.shape)):
        # an all-zero sparse row: the writer's empty keys field is not on the wire
        tensor.keys = np.zeros(0, dtype=np.uint64)
    return tensor


def _decode_value(data: memoryview) -> Value | None:
    result: Value | None = None
    for number, wire_type, value in _iter_fields(data):
        if wire_type != 2:
            continue
        if number in _FIELD_DTYPES:
            result = _decode_tensor(value, _FIELD_DTYPES[number])
        elif number == _BYTES_FIELD:
            items: list[bytes] = []
            content_type = None
            for inner, inner_wire, inner_value in _iter_fields(value):
                if inner == 1 and inner_wire == 2:
                    items.append(bytes(inner_value))
                elif inner == 2 and inner_wire == 2:
                    content_type = bytes(inner_value).decode()
            result = BytesValue(items, content_type)
    return result


def _decode_map_entry(data: memoryview) -> tuple[str, Value | None]:
    key = ""
    value: Value | None = None
    for number, wire_type, item in _iter_fields(data):
        if number == 1 and wire_type == 2:
            key = bytes(item).decode()
        elif number == 2 and wire_type == 2:
            value = _decode_value(item)
    return key, value


def decode_record(payload: bytes | memoryview) -> Record:
    """Parse protobuf bytes into a ``Record`` (unknown fields are skipped)."""
    record = Record()
    for number, wire_type, value in _iter_fields(memoryview(payload).cast("B")):
        if wire_type != 2:
            continue
        if number in (1, 2):
            key, item = _decode_map_entry(value)
            if item is not None:
                (record.features if number == 1 else record.label)[key] = item
        elif number in (3, 4, 5):
            text = bytes(value).decode()
            if number == 3:
                record.uid = text
            elif number == 4:
                record.metadata = text
            else:
                record.configuration = text
    return record


# -- whole-dataset writers ------------------------------------------------------------------
def _tensor_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """The tensor element type for an array dtype: integers go to Int32Tensor, like the SDK."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        return np.dtype("<i4")
    if dtype == np.float32:
        return np.dtype("<f4")
    if dtype == np.float64:
        return np.dtype("<f8")
    raise TypeError(f"{what} must be float32, float64 or an integer type for RecordIO-protobuf, "
                    f"not {dtype}")


def _as_tensor_array(array: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    if dtype.kind == "i" and array.size:
        low, high = array.min(), array.max()
        if low < -(2**31) or high >= 2**31:
            raise ValueError(f"{what} hold values outside the int32 range of Int32Tensor")
    return np.asarray(array, dtype=dtype)


def _check_labels(labels: Any, n_rows: int, shape: tuple[int, ...]) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a vector, got shape {labels.shape}")
    if labels.shape[0] != n_rows:
        raise ValueError(f"{labels.shape[0]} labels for {n_rows} rows of shape {shape}")
    label_dtype = _tensor_dtype(labels.dtype, "labels")
    return _as_tensor_array(labels, label_dtype, "labels")


def _label_entry(label: np.ndarray) -> bytes:
    """The serialized ``label`` map entry for one scalar label."""
    value = _encode_value(Tensor(label.reshape(1)))
    return _length_delimited(0x12, b"\x0a\x06values" + _length_delimited(0x12, value))


def _write_payloads(destination: Destination, payloads: Iterable[bytes]) -> int:
    count = 0
    with open_destination(destination) as file:
        batch: list[bytes] = []
        for payload in payloads:
            batch.append(recordio.frame_record(payload))
            count += 1
            if len(batch) >= _WRITE_BATCH:
                file.write(b"".join(batch))
                batch.clear()
        if batch:
            file.write(b"".join(batch))
    return count


def write_dense_records(destination: Destination, array: np.ndarray,
                        labels: np.ndarray | None = None) -> int:
    """Write each row of a 2-D array (and its label) as one Record; returns the row count.

    Byte-identical to ``sagemaker.amazon.common.write_numpy_to_dense_tensor``: float32 rows go
    to ``Float32Tensor``, float64 to ``Float64Tensor``, integers to ``Int32Tensor``, under the
    key ``"values"`` of ``features`` and (a scalar) of ``label``.
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"a 2-D array (rows × features) is needed, got shape {array.shape}")
    dtype = _tensor_dtype(array.dtype, "features")
    array = _as_tensor_array(array, dtype, "features")
    labels = _check_labels(labels, array.shape[0], array.shape)
    number = _tensor_field(dtype)

    def payloads() -> Iterator[bytes]:
        for index, row in enumerate(array):
            value = _length_delimited(number << 3 | 2, _encode_tensor(Tensor(row)))
            entry = b"\x0a\x06values" + _length_delimited(0x12, value)
            payload = _length_delimited(0x0A, entry)
            if labels is not None:
                payload += _label_entry(labels[index])
            yield payload

    return _write_payloads(destination, payloads())


def write_sparse_records(destination: Destination, matrix: scipy.sparse.spmatrix | Any,
                         labels: np.ndarray | None = None) -> int:
    """Write each row of a sparse matrix as one sparse Record; returns the row count.

    Byte-identical to ``sagemaker.amazon.common.write_spmatrix_to_sparse_tensor``: per row the
    non-zero ``values``, their column ``keys`` and ``shape = [n_columns]``.
    """
    import scipy.sparse

    if not scipy.sparse.issparse(matrix):
        raise TypeError(f"a scipy.sparse matrix is needed, got {type(matrix).__name__}")
    csr = matrix.tocsr()
    n_rows, n_cols = csr.shape
    dtype = _tensor_dtype(csr.dtype, "features")
    data = _as_tensor_array(csr.data, dtype, "features")
    labels = _check_labels(labels, n_rows, csr.shape)
    number = _tensor_field(dtype)
    indices = csr.indices.astype(np.uint64)
    indptr = csr.indptr
    shape = (n_cols,)

    def payloads() -> Iterator[bytes]:
        for row in range(n_rows):
            start, end = indptr[row], indptr[row + 1]
            tensor = Tensor(data[start:end], indices[start:end], shape)
            value = _length_delimited(number << 3 | 2, _encode_tensor(tensor))
            entry = b"\x0a\x06values" + _length_delimited(0x12, value)
            payload = _length_delimited(0x0A, entry)
            if labels is not None:
                payload += _label_entry(labels[row])
            yield payload

    return _write_payloads(destination, payloads())


def write_records(destination: Destination, records: Iterable[Record]) -> int:
    """Write arbitrary ``Record`` objects; returns the count."""
    return _write_payloads(destination, (encode_record(record) for record in records))


# -- readers --------------------------------------------------------------------------------
def iter_records(source: Source) -> Iterator[Record]:
    """Yield each ``Record`` of a RecordIO-protobuf source, streaming."""
    name = source_name(source)
    for index, payload in enumerate(recordio.iter_records(source)):
        try:
            yield decode_record(payload)
        except RecordProtobufError as error:
            raise RecordProtobufError(f"{name}, record {index}: {error}") from None


def read_records(source: Source) -> list[Record]:
    """Every ``Record`` of a RecordIO-protobuf source, as a list."""
    return list(iter_records(source))


def iter_examples(source: Source, *, feature_key: str = "values",
                  label_key: str = "values") -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(features, label)`` per record as dense arrays; label is None when absent."""
    name = source_name(source)
    for index, record in enumerate(iter_records(source)):
        value = record.features.get(feature_key)
        if not isinstance(value, Tensor):
            raise RecordProtobufError(f"{name}, record {index}: no tensor under "
                                      f"features[{feature_key!r}]")
        label = record.label.get(label_key)
        yield value.to_dense(), (label.to_dense() if isinstance(label, Tensor) else None)


def read_recordio_protobuf(
    source: Source, *, sparse: bool | None = None, feature_key: str = "values",
    label_key: str = "values",
) -> tuple[np.ndarray | scipy.sparse.csr_matrix, np.ndarray | None]:
    """Read a RecordIO-protobuf source into ``(features, labels)``.

    Features are a 2-D array, or a CSR matrix when any record is sparse (``sparse=None``) or
    when ``sparse=True``. Labels are a vector for scalar labels, a 2-D array for vector labels,
    and None when no record has one.
    """
    name = source_name(source)
    values: list[np.ndarray] = []
    keys: list[np.ndarray | None] = []
    widths: list[int] = []
    labels: list[np.ndarray] = []
    any_sparse = False
    dtypes: set[np.dtype] = set()
    for index, record in enumerate(iter_records(source)):
        tensor = record.features.get(feature_key)
        if not isinstance(tensor, Tensor):
            raise RecordProtobufError(f"{name}, record {index}: no tensor under "
                                      f"features[{feature_key!r}]")
        dtypes.add(tensor.values.dtype)
        if tensor.keys is not None:
            any_sparse = True
            if not tensor.shape:
                raise RecordProtobufError(f"{name}, record {index}: a sparse tensor needs a shape")
            if len(tensor.keys) != len(tensor.values):
                raise RecordProtobufError(f"{name}, record {index}: {len(tensor.keys)} keys for "
                                          f"{len(tensor.values)} values")
            widths.append(int(np.prod(tensor.shape)))
        else:
            widths.append(len(tensor.values))
        values.append(tensor.values)
        keys.append(tensor.keys)
        label = record.label.get(label_key)
        if isinstance(label, Tensor):
            if len(labels) != index:
                raise RecordProtobufError(f"{name}, record {index} has a label but earlier "
                                          "records have none")
            labels.append(label.to_dense().reshape(-1))
        elif labels:
            raise RecordProtobufError(f"{name}, record {index} has no label but earlier "
                                      "records have one")
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float32)
    label_array = _stack_labels(name, labels) if labels else None
    if sparse is None:
        sparse = any_sparse
    width = max(widths, default=0)
    if not sparse:
        width = widths[0] if widths else 0
        if any_sparse:
            dense_rows = [Tensor(v, k, (w,)).to_dense() if k is not None else v
                          for v, k, w in zip(values, keys, widths, strict=True)]
        else:
            dense_rows = values
        for index, row in enumerate(dense_rows):
            if len(row) != width:
                raise RecordProtobufError(f"{name}, record {index} has {len(row)} features, "
                                          f"record 0 has {width}")
        features = (np.stack(dense_rows).astype(dtype, copy=False) if dense_rows
                    else np.zeros((0, 0), dtype=dtype))
        return features, label_array
    import scipy.sparse

    row_keys = [k if k is not None else np.flatnonzero(v).astype(np.uint64)
                for v, k in zip(values, keys, strict=True)]
    row_values = [v if k is not None else v[np.flatnonzero(v)]
                  for v, k in zip(values, keys, strict=True)]
    indptr = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum([len(k) for k in row_keys], out=indptr[1:])
    indices = (np.concatenate(row_keys).astype(np.int64) if row_keys
               else np.zeros(0, dtype=np.int64))
    data = np.concatenate(row_values).astype(dtype) if row_values else np.zeros(0, dtype=dtype)
    features = scipy.sparse.csr_matrix((data, indices, indptr), shape=(len(values), width))
    return features, label_array


def _stack_labels(name: str, labels: list[np.ndarray]) -> np.ndarray:
    sizes = {len(label) for label in labels}
    if sizes == {1}:
        return np.concatenate(labels)
    if len(sizes) != 1:
        raise RecordProtobufError(f"{name}: records have labels of different sizes "
                                  f"{sorted(sizes)}")
    return np.stack(labels)


def dense_record_bytes(array: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    """RecordIO-protobuf bytes for a 2-D array (a 1-D array is one row), e.g. a request body."""
    import io

    array = np.asarray(array)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    buffer = io.BytesIO()
    write_dense_records(buffer, array, labels)
    return buffer.getvalue()


__all__ = [
    "BytesValue",
    "Record",
    "RecordProtobufError",
    "Tensor",
    "decode_record",
    "dense_record_bytes",
    "encode_record",
    "iter_examples",
    "iter_records",
    "read_recordio_protobuf",
    "read_records",
    "write_dense_records",
    "write_records",
    "write_sparse_records",
]
