"""Parquet (``application/x-parquet``) via pyarrow: SageMaker XGBoost reads the first column as
the label and the remaining columns as features."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from openmaker.formats._sources import Destination, Source, read_all, source_name

LabelColumn = int | str | None


class ParquetFormatError(ValueError):
    """A Parquet file cannot be read as a numeric table."""


def _open_file(source: Source) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, str | os.PathLike) or hasattr(source, "read"):
        target = source
    else:
        target = pa.BufferReader(read_all(source))
    try:
        return pq.ParquetFile(target)
    except (pa.ArrowInvalid, OSError) as error:
        raise ParquetFormatError(f"{source_name(source)}: not a Parquet file ({error})") from None


def _label_index(name: str, column_names: list[str], label_column: LabelColumn) -> int | None:
    if label_column is None:
        return None
    if isinstance(label_column, str):
        if label_column not in column_names:
            raise ParquetFormatError(f"{name}: no label column {label_column!r}; the columns "
                                     f"are {column_names}")
        return column_names.index(label_column)
    if not -len(column_names) <= label_column < len(column_names):
        raise ParquetFormatError(f"{name}: label column {label_column} is out of range for "
                                 f"{len(column_names)} columns")
    return label_column % len(column_names)


def _table_to_arrays(name: str, table: Any, label_index: int | None,
                     dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    import pyarrow as pa

    columns = []
    for column_name, column in zip(table.column_names, table.columns, strict=True):
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                or pa.types.is_boolean(column.type) or pa.types.is_null(column.type)):
            raise ParquetFormatError(f"{name}: column {column_name!r} has type {column.type}; "
                                     "only numeric columns can be read as features or labels")
        columns.append(column.to_numpy(zero_copy_only=False).astype(dtype, copy=False))
    labels = columns.pop(label_index) if label_index is not None else None
    features = (np.column_stack(columns) if columns
                else np.zeros((table.num_rows, 0), dtype=dtype))
    return features.astype(dtype, copy=False), labels


def iter_parquet_batches(
    source: Source, *, label_column: LabelColumn = 0, dtype: type | np.dtype = np.float64,
    batch_size: int = 65536,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(features, labels)`` per record batch of a Parquet source."""
    import pyarrow as pa

    name = source_name(source)
    parquet_file = _open_file(source)
    label_index = _label_index(name, parquet_file.schema_arrow.names, label_column)
    for batch in parquet_file.iter_batches(batch_size=batch_size):
        yield _table_to_arrays(name, pa.Table.from_batches([batch]), label_index, np.dtype(dtype))


def read_parquet(
    source: Source, *, label_column: LabelColumn = 0, dtype: type | np.dtype = np.float64,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a Parquet source into ``(features, labels)``; ``label_column`` is an index, a name,
    or None for no label (default: the first column)."""
    name = source_name(source)
    parquet_file = _open_file(source)
    table = parquet_file.read()
    label_index = _label_index(name, table.column_names, label_column)
    return _table_to_arrays(name, table, label_index, np.dtype(dtype))


def write_parquet(
    destination: Destination, features: np.ndarray, labels: np.ndarray | None = None, *,
    feature_names: list[str] | None = None, label_name: str = "label",
) -> int:
    """Write features (and the label as the first column) to Parquet; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D, got shape {features.shape}")
    names = feature_names or [f"f{i}" for i in range(features.shape[1])]
    if len(names) != features.shape[1]:
        raise ValueError(f"{len(names)} feature names for {features.shape[1]} columns")
    arrays = [pa.array(features[:, i]) for i in range(features.shape[1])]
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels must be a vector of {features.shape[0]} values")
        arrays.insert(0, pa.array(labels))
        names = [label_name, *names]
    table = pa.Table.from_arrays(arrays, names=names)
    if isinstance(destination, str | os.PathLike):
        pq.write_table(table, destination)
    else:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        destination.write(buffer.getvalue())
    return features.shape[0]
