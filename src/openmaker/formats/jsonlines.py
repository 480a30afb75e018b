"""JSON Lines (``application/jsonlines``) and the JSON instance shapes SageMaker's built-in
algorithms accept at inference (``application/json`` ``{"instances": [...]}``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from openmaker.formats._sources import (
    Destination,
    Source,
    iter_line_blocks,
    open_destination,
    read_all,
    source_name,
)

if TYPE_CHECKING:
    import scipy.sparse


class JSONFormatError(ValueError):
    """A JSON or JSON Lines document is malformed; the message names the file and line."""


def iter_jsonlines(source: Source, *, block_size: int = 4 << 20) -> Iterator[Any]:
    """Yield the JSON value on each non-blank line of ``source``, streaming."""
    name = source_name(source)
    for first_line, block in iter_line_blocks(source, block_size):
        for offset, line in enumerate(block.split(b"\n")):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as error:
                raise JSONFormatError(f"{name}, line {first_line + offset}: not valid JSON "
                                      f"({error})") from None


def read_jsonlines(source: Source) -> list[Any]:
    """Every JSON value of a JSON Lines source, as a list."""
    return list(iter_jsonlines(source))


def write_jsonlines(destination: Destination, objects: Iterable[Any]) -> int:
    """Write each object as one compact JSON line; returns the count."""
    count = 0
    with open_destination(destination) as file:
        for item in objects:
            file.write(json.dumps(item, separators=(",", ":")).encode() + b"\n")
            count += 1
    return count


def instances_to_features(
    instances: Iterable[Any], *, dtype: type | np.dtype = np.float32,
) -> np.ndarray | scipy.sparse.csr_matrix:
    """Turn JSON inference instances into a feature matrix.

    An instance is ``{"features": [...]}``, ``{"data": {"features": {"values": [...]}}}`` or the
    sparse ``{"data": {"features": {"keys": [...], "shape": [n], "values": [...]}}}``; a bare
    list of numbers is taken as dense features. Sparse instances give a CSR matrix.
    """
    import scipy.sparse

    rows: list[tuple[np.ndarray, np.ndarray | None, int | None]] = []
    for index, instance in enumerate(instances):
        rows.append(_instance_row(index, instance, np.dtype(dtype)))
    if not any(keys is not None for _, keys, _ in rows):
        widths = {len(values) for values, _, _ in rows}
        if len(widths) > 1:
            raise JSONFormatError(f"instances have different feature counts {sorted(widths)}")
        if not rows:
            return np.zeros((0, 0), dtype=dtype)
        return np.stack([values for values, _, _ in rows])
    width = max((shape if shape is not None else len(values) for values, _, shape in rows),
                default=0)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indices, data = [], []
    for number, (values, keys, _) in enumerate(rows):
        row_keys = keys if keys is not None else np.arange(len(values))
        indices.append(row_keys)
        data.append(values)
        indptr[number + 1] = indptr[number] + len(values)
    return scipy.sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(indices).astype(np.int64), indptr),
        shape=(len(rows), width))


def _instance_row(index: int, instance: Any,
                  dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    where = f"instance {index}"
    if isinstance(instance, list):
        return np.asarray(instance, dtype=dtype), None, None
    if not isinstance(instance, dict):
        raise JSONFormatError(f"{where}: expected an object or a list, got "
                              f"{type(instance).__name__}")
    if "features" in instance:
        return np.asarray(instance["features"], dtype=dtype), None, None
    tensor = instance.get("data", {}).get("features") if isinstance(instance.get("data"),
                                                                    dict) else None
    if not isinstance(tensor, dict) or "values" not in tensor:
        raise JSONFormatError(f"{where}: expected 'features' or 'data.features.values'")
    values = np.asarray(tensor["values"], dtype=dtype)
    if "keys" not in tensor:
        return values, None, None
    keys = np.asarray(tensor["keys"], dtype=np.int64)
    shape = tensor.get("shape")
    if not shape:
        raise JSONFormatError(f"{where}: a sparse instance (with 'keys') needs 'shape'")
    if len(keys) != len(values):
        raise JSONFormatError(f"{where}: {len(keys)} keys for {len(values)} values")
    width = int(np.prod(shape))
    if keys.size and (keys.min() < 0 or keys.max() >= width):
        raise JSONFormatError(f"{where}: a key is out of range for shape {shape}")
    return values, keys, width


def read_json_instances(source: Source, *, dtype: type | np.dtype = np.float32
                        ) -> np.ndarray | scipy.sparse.csr_matrix:
    """Read an ``application/json`` body ``{"instances": [...]}`` (or a bare list) into
    features."""
    name = source_name(source)
    try:
        document = json.loads(read_all(source))
    except ValueError as error:
        raise JSONFormatError(f"{name}: not valid JSON ({error})") from None
    instances = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(instances, list):
        raise JSONFormatError(f'{name}: expected {{"instances": [...]}} or a JSON list')
    try:
        return instances_to_features(instances, dtype=dtype)
    except JSONFormatError as error:
        raise JSONFormatError(f"{name}: {error}") from None


def read_jsonlines_instances(source: Source, *, dtype: type | np.dtype = np.float32
                             ) -> np.ndarray | scipy.sparse.csr_matrix:
    """Read ``application/jsonlines`` inference instances, one per line, into features."""
    name = source_name(source)
    try:
        return instances_to_features(iter_jsonlines(source), dtype=dtype)
    except JSONFormatError as error:
        if str(error).startswith(name):
            raise
        raise JSONFormatError(f"{name}: {error}") from None
