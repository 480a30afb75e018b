"""CSV in SageMaker's training convention: no header, all numeric, the label in the first
``label_size`` columns (``text/csv;label_size=N``, default 1).

Files are read in blocks of whole lines and each block is parsed by ``pyarrow.csv``; when a
block fails, its lines are re-scanned to name the file, line and column at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from openmaker.formats._sources import (
    Destination,
    Source,
    iter_line_blocks,
    open_destination,
    read_all,
    source_name,
)

DEFAULT_BLOCK_SIZE = 16 << 20
# cells pyarrow reads as missing (NaN), as SageMaker's algorithms treat empty CSV fields
_MISSING = {"", "nan", "NaN", "NA", "N/A", "null", "NULL", "-nan", "-NaN", "#N/A", "n/a"}


class CSVFormatError(ValueError):
    """A CSV row is malformed; the message names the file, line and column."""


def iter_csv_batches(
    source: Source, *, label_size: int = 1, delimiter: str = ",",
    dtype: type | np.dtype = np.float64, block_size: int = DEFAULT_BLOCK_SIZE,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(features, labels)`` per block of lines, streaming a large source.

    ``labels`` is a vector when ``label_size`` is 1, a ``(rows, label_size)`` array when it is
    larger, and None when it is 0. Empty fields read as NaN.
    """
    yield from _iter_blocks(source_name(source), iter_line_blocks(source, block_size),
                            label_size, delimiter, dtype)


def _iter_blocks(name: str, blocks: Iterable[tuple[int, bytes]], label_size: int,
                 delimiter: str, dtype: type | np.dtype,
                 ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    if label_size < 0:
        raise ValueError(f"label_size must be 0 or more, got {label_size}")
    n_columns: int | None = None
    for first_line, block in blocks:
        if n_columns is None:
            n_columns = _count_columns(block, delimiter)
            if n_columns is None:
                continue
            if n_columns < label_size:
                raise CSVFormatError(f"{name}, line {first_line}: {n_columns} columns, fewer than "
                                     f"label_size={label_size}")
        try:
            table = _parse(block, n_columns, delimiter, dtype)
        except _arrow_errors() as error:
            _locate_error(name, first_line, block, delimiter, n_columns)
            last_line = first_line + block.count(b"\n")
            raise CSVFormatError(f"{name}, lines {first_line}-{last_line}: {error}") from None
        if table.num_rows == 0:
            continue
        yield _arrays(table, dtype, label_size)


def _arrow_errors() -> tuple[type[Exception], ...]:
    import pyarrow as pa

    return pa.ArrowInvalid, pa.ArrowTypeError


def _parse(data: bytes, n_columns: int, delimiter: str, dtype: type | np.dtype):
    """``data`` as a pyarrow table of float columns (float32 ones for a float32 ``dtype``:
    parsed straight to the nearest float32), parsed on every core."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(n_columns)]
    kind = pa.float32() if np.dtype(dtype) == np.float32 else pa.float64()
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types={n: kind for n in names},
            null_values=sorted(_MISSING), strings_can_be_null=True),
    )


def _arrays(table, dtype: type | np.dtype, label_size: int,
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(features, labels)`` of a parsed table. The columns are copied into the rows of one
    ``(columns, rows)`` matrix (contiguous writes; a row-major matrix filled one strided
    column at a time is several times slower), so ``features`` comes out column-major
    (Fortran order), which numpy, scikit-learn and xgboost take as it is."""
    columns = np.empty((table.num_columns, table.num_rows), dtype=dtype)
    for index, column in enumerate(table.columns):
        columns[index] = column.to_numpy(zero_copy_only=False)
    features = columns[label_size:].T
    if label_size == 0:
        return features, None
    return features, columns[0] if label_size == 1 else columns[:label_size].T


def read_csv(
    source: Source, *, label_size: int = 1, delimiter: str = ",",
    dtype: type | np.dtype = np.float64, block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a whole CSV source into ``(features, labels)`` (as ``iter_csv_batches`` yields
    them), with one parse of the whole text on every core; when that fails, the text is
    read again block by block to name the line and column at fault."""
    name = source_name(source)
    data = read_all(source)
    n_columns = _count_columns(data[:_first_line_end(data)], delimiter)
    if n_columns is not None and n_columns >= label_size >= 0:
        try:
            table = _parse(data, n_columns, delimiter, dtype)
        except _arrow_errors():
            table = None
        if table is not None:
            if table.num_rows:
                return _arrays(table, dtype, label_size)
            data = b""
    features: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for batch_features, batch_labels in _iter_blocks(
            name, iter_line_blocks(data, block_size), label_size, delimiter, dtype):
        features.append(batch_features)
        if batch_labels is not None:
            labels.append(batch_labels)
    if not features:
        empty = np.zeros((0, 0), dtype=dtype)
        if label_size == 0:
            return empty, None
        return empty, np.zeros((0,) if label_size == 1 else (0, label_size), dtype=dtype)
    return (np.concatenate(features),
            np.concatenate(labels) if label_size else None)


def _first_line_end(data: bytes) -> int:
    """Where the first line with anything on it ends (the end of ``data`` if none does)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        if data[start:end].strip():
            return end
        start = end
    return len(data)


def _count_columns(block: bytes, delimiter: str) -> int | None:
    for line in block.splitlines():
        if line.strip():
            return line.count(delimiter.encode()) + 1
    return None


def _locate_error(name: str, first_line: int, block: bytes, delimiter: str,
                  n_columns: int) -> None:
    """Raise ``CSVFormatError`` for the first bad cell or row of ``block``, if one is found."""
    for offset, raw in enumerate(block.split(b"\n")):
        line_number = first_line + offset
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not text:
            continue
        cells = text.split(delimiter)
        if len(cells) != n_columns:
            raise CSVFormatError(f"{name}, line {line_number}: expected {n_columns} columns "
                                 f"(as on the first row), found {len(cells)}")
        for column, cell in enumerate(cells, start=1):
            value = cell.strip().strip('"')
            if value in _MISSING:
                continue
            try:
                float(value)
            except ValueError:
                hint = (" (SageMaker CSV has no header row; remove it)"
                        if line_number == 1 else "")
                raise CSVFormatError(f"{name}, line {line_number}, column {column}: "
                                     f"{value!r} is not a number{hint}") from None


def write_csv(destination: Destination, features: np.ndarray, labels: np.ndarray | None = None,
              *, delimiter: str = ",") -> int:
    """Write rows as headerless CSV with the label(s) first; returns the row count.

    Floats are written in their shortest round-trip form; NaN is written as an empty field.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    features = np.asarray(features)
    if features.ndim == 1:
        features = features.reshape(-1, 1)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D, got shape {features.shape}")
    columns = []
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape[0] != features.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {features.shape[0]} rows")
        label_matrix = labels.reshape(labels.shape[0], -1)
        columns += [label_matrix[:, i] for i in range(label_matrix.shape[1])]
    columns += [features[:, i] for i in range(features.shape[1])]
    arrays = [pa.array(column, from_pandas=True) if column.dtype.kind == "f" else pa.array(column)
              for column in columns]
    table = pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
    with open_destination(destination) as file:
        if table.num_columns:
            pacsv.write_csv(table, file, write_options=pacsv.WriteOptions(
                include_header=False, delimiter=delimiter, quoting_style="none"))
    return features.shape[0]
