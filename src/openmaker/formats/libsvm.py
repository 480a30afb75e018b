"""LibSVM / SVMlight text (``text/libsvm``, ``text/x-libsvm``):
``label[:weight] [qid:N] index:value ... [# comment]`` per line.

Indices are zero-based by default (as SageMaker XGBoost reads them); ``zero_based=False``
shifts one-based files down and ``"auto"`` does so when no index 0 occurs (like scikit-learn).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from openmaker.formats._sources import (
    Destination,
    Source,
    iter_line_blocks,
    open_destination,
    source_name,
)

if TYPE_CHECKING:
    import scipy.sparse

DEFAULT_BLOCK_SIZE = 8 << 20


class LibSVMFormatError(ValueError):
    """A LibSVM line is malformed; the message names the file and line."""


class LibSVMData(NamedTuple):
    """A LibSVM dataset: CSR features, labels, and the optional query ids and weights."""

    features: scipy.sparse.csr_matrix
    labels: np.ndarray
    qid: np.ndarray | None
    weights: np.ndarray | None


class _Columns:
    """Growing COO-style buffers for one parse."""

    def __init__(self) -> None:
        self.labels: list[float] = []
        self.weights: list[float] = []
        self.qids: list[int] = []
        self.indptr: list[int] = [0]
        self.indices: list[int] = []
        self.values: list[float] = []


def _parse_block(name: str, first_line: int, block: bytes, columns: _Columns) -> None:
    for offset, raw in enumerate(block.split(b"\n")):
        line = raw.split(b"#", 1)[0].strip()
        if not line:
            continue
        line_number = first_line + offset
        tokens = line.split()
        label_text, _, weight_text = tokens[0].partition(b":")
        try:
            columns.labels.append(float(label_text))
            if weight_text:
                columns.weights.append(float(weight_text))
        except ValueError:
            raise LibSVMFormatError(f"{name}, line {line_number}: the label "
                                    f"{tokens[0].decode(errors='replace')!r} is not a number "
                                    "(expected 'label index:value ...')") from None
        if weight_text and len(columns.weights) != len(columns.labels):
            raise LibSVMFormatError(f"{name}, line {line_number}: only some lines have a "
                                    "label:weight")
        start = 1
        if len(tokens) > 1 and tokens[1].startswith(b"qid:"):
            try:
                columns.qids.append(int(tokens[1][4:]))
            except ValueError:
                raise LibSVMFormatError(f"{name}, line {line_number}: bad query id "
                                        f"{tokens[1].decode(errors='replace')!r}") from None
            start = 2
        for position, token in enumerate(tokens[start:], start=start + 1):
            index_text, colon, value_text = token.partition(b":")
            try:
                if not colon:
                    raise ValueError
                index = int(index_text)
                value = float(value_text)
            except ValueError:
                raise LibSVMFormatError(
                    f"{name}, line {line_number}, token {position}: "
                    f"{token.decode(errors='replace')!r} is not an index:value pair") from None
            if index < 0:
                raise LibSVMFormatError(f"{name}, line {line_number}, token {position}: negative "
                                        f"feature index {index}")
            columns.indices.append(index)
            columns.values.append(value)
        if columns.qids and len(columns.qids) != len(columns.labels):
            raise LibSVMFormatError(f"{name}, line {line_number}: only some lines have a qid")
        columns.indptr.append(len(columns.indices))


def read_libsvm_data(
    source: Source, *, zero_based: bool | Literal["auto"] = True, n_features: int | None = None,
    dtype: type | np.dtype = np.float64, block_size: int = DEFAULT_BLOCK_SIZE,
) -> LibSVMData:
    """Read a LibSVM source into CSR features, labels, query ids and weights."""
    import scipy.sparse

    name = source_name(source)
    columns = _Columns()
    for first_line, block in iter_line_blocks(source, block_size):
        _parse_block(name, first_line, block, columns)
    indices = np.asarray(columns.indices, dtype=np.int64)
    if zero_based == "auto":
        zero_based = bool(indices.size and indices.min() == 0)
    if not zero_based and indices.size:
        if indices.min() < 1:
            raise LibSVMFormatError(f"{name}: feature index 0 in a file read as one-based "
                                    "(pass zero_based=True)")
        indices -= 1
    width = int(indices.max()) + 1 if indices.size else 0
    if n_features is not None:
        if width > n_features:
            raise LibSVMFormatError(f"{name}: feature index {width - 1} is out of range for "
                                    f"n_features={n_features}")
        width = n_features
    features = scipy.sparse.csr_matrix(
        (np.asarray(columns.values, dtype=dtype), indices,
         np.asarray(columns.indptr, dtype=np.int64)),
        shape=(len(columns.labels), width))
    features.sum_duplicates()
    return LibSVMData(
        features=features,
        labels=np.asarray(columns.labels, dtype=dtype),
        qid=np.asarray(columns.qids, dtype=np.int64) if columns.qids else None,
        weights=np.asarray(columns.weights, dtype=dtype) if columns.weights else None,
    )


def read_libsvm(
    source: Source, *, zero_based: bool | Literal["auto"] = True, n_features: int | None = None,
    dtype: type | np.dtype = np.float64, block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """Read a LibSVM source into ``(CSR features, labels)``; query ids and weights are dropped."""
    data = read_libsvm_data(source, zero_based=zero_based, n_features=n_features, dtype=dtype,
                            block_size=block_size)
    return data.features, data.labels


def iter_libsvm_batches(
    source: Source, *, n_features: int, zero_based: bool = True,
    dtype: type | np.dtype = np.float64, block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[tuple[scipy.sparse.csr_matrix, np.ndarray]]:
    """Yield ``(CSR features, labels)`` per block of lines; every batch has ``n_features``."""
    import scipy.sparse

    name = source_name(source)
    for first_line, block in iter_line_blocks(source, block_size):
        columns = _Columns()
        _parse_block(name, first_line, block, columns)
        if not columns.labels:
            continue
        indices = np.asarray(columns.indices, dtype=np.int64) - (0 if zero_based else 1)
        if indices.size and (indices.min() < 0 or indices.max() >= n_features):
            raise LibSVMFormatError(f"{name}, lines from {first_line}: a feature index is out of "
                                    f"range for n_features={n_features}")
        features = scipy.sparse.csr_matrix(
            (np.asarray(columns.values, dtype=dtype), indices,
             np.asarray(columns.indptr, dtype=np.int64)),
            shape=(len(columns.labels), n_features))
        features.sum_duplicates()
        yield features, np.asarray(columns.labels, dtype=dtype)


def write_libsvm(
    destination: Destination, features: Any, labels: np.ndarray, *, zero_based: bool = True,
    qid: np.ndarray | None = None,
) -> int:
    """Write rows (dense array or sparse matrix) as LibSVM lines; returns the row count.

    Only non-zero entries are written; values use their shortest round-trip form.
    """
    import scipy.sparse

    csr = scipy.sparse.csr_matrix(features)
    csr.eliminate_zeros()
    labels = np.asarray(labels)
    if labels.shape != (csr.shape[0],):
        raise ValueError(f"labels must be a vector of {csr.shape[0]} values, "
                         f"got shape {labels.shape}")
    if qid is not None and np.asarray(qid).shape != (csr.shape[0],):
        raise ValueError(f"qid must be a vector of {csr.shape[0]} values")
    shift = 0 if zero_based else 1
    label_text = _format_numbers(labels)
    value_text = _format_numbers(csr.data)
    index_text = (csr.indices.astype(np.int64) + shift).astype(str)
    with open_destination(destination) as file:
        lines: list[str] = []
        for row in range(csr.shape[0]):
            start, end = csr.indptr[row], csr.indptr[row + 1]
            parts = [label_text[row]]
            if qid is not None:
                parts.append(f"qid:{int(qid[row])}")
            parts += [f"{i}:{v}" for i, v in zip(index_text[start:end], value_text[start:end],
                                                  strict=True)]
            lines.append(" ".join(parts))
            if len(lines) >= 8192:
                file.write(("\n".join(lines) + "\n").encode())
                lines.clear()
        if lines:
            file.write(("\n".join(lines) + "\n").encode())
    return csr.shape[0]


def _format_numbers(values: np.ndarray) -> list[str]:
    """Shortest round-trip text: integers as integers, floats without a trailing ``.0``."""
    if values.dtype.kind in "iub":
        return [str(int(v)) for v in values.tolist()]
    if values.dtype == np.float32:
        return [np.format_float_positional(v, trim="-") for v in values]
    return [_float_text(v) for v in values.tolist()]


def _float_text(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
