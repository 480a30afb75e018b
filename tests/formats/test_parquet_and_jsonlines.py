"""Parquet (first column label by default) and JSON Lines / JSON inference instances."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from openmaker.formats.jsonlines import (
    JSONFormatError,
    instances_to_features,
    iter_jsonlines,
    read_json_instances,
    read_jsonlines,
    read_jsonlines_instances,
    write_jsonlines,
)
from openmaker.formats.parquet import (
    ParquetFormatError,
    iter_parquet_batches,
    read_parquet,
    write_parquet,
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_parquet_round_trip_label_first(tmp_path, dtype):
    features = (np.arange(40).reshape(10, 4) - 7).astype(dtype)
    labels = np.arange(10).astype(dtype)
    path = tmp_path / "train.parquet"
    assert write_parquet(path, features, labels) == 10
    assert pq.read_schema(path).names == ["label", "f0", "f1", "f2", "f3"]
    read_features, read_labels = read_parquet(path, dtype=dtype)
    np.testing.assert_array_equal(read_features, features)
    np.testing.assert_array_equal(read_labels, labels)
    buffer = io.BytesIO()
    write_parquet(buffer, features)
    only_features, no_labels = read_parquet(buffer.getvalue(), label_column=None)
    assert no_labels is None
    np.testing.assert_array_equal(only_features, features)


def test_parquet_label_column_by_name_and_batches(tmp_path):
    table = pa.table({"a": [1.0, 2.0, 3.0], "target": [0, 1, 0], "b": [None, 5.0, 6.0]})
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=1)
    features, labels = read_parquet(path, label_column="target")
    assert labels.tolist() == [0, 1, 0]
    assert features.shape == (3, 2) and np.isnan(features[0, 1])
    batches = list(iter_parquet_batches(path, batch_size=1, label_column=-1))
    assert len(batches) == 3 and batches[1][1].tolist() == [5.0]
    with pytest.raises(ParquetFormatError, match="no label column 'y'"):
        read_parquet(path, label_column="y")
    with pytest.raises(ParquetFormatError, match="out of range"):
        read_parquet(path, label_column=3)


def test_parquet_errors(tmp_path):
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"label": [1], "name": ["x"]}), path)
    with pytest.raises(ParquetFormatError, match="column 'name' has type string"):
        read_parquet(path)
    with pytest.raises(ParquetFormatError, match="not a Parquet file"):
        read_parquet(b"1,2,3\n")


def test_jsonlines_round_trip_and_streaming(tmp_path):
    objects = [{"score": 0.5, "predicted_label": 1}, [1, 2], "text", None]
    path = tmp_path / "out.jsonl"
    assert write_jsonlines(path, objects) == 4
    assert path.read_text().splitlines()[0] == '{"score":0.5,"predicted_label":1}'
    assert read_jsonlines(path) == objects
    data = path.read_bytes()
    assert list(iter_jsonlines(iter([data[:5], data[5:]]))) == objects


def test_jsonlines_error_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(JSONFormatError, match=rf"{path}, line 3: not valid JSON"):
        read_jsonlines(path)


def test_json_instances_dense_and_sparse():
    dense = read_json_instances(b'{"instances": [{"features": [1, 2]}, '
                                b'{"data": {"features": {"values": [3, 4]}}}]}')
    np.testing.assert_array_equal(dense, [[1, 2], [3, 4]])
    assert dense.dtype == np.float32
    sparse = read_jsonlines_instances(
        b'{"data": {"features": {"keys": [1], "shape": [4], "values": [7]}}}\n'
        b'{"features": [1, 0, 0, 2]}\n')
    np.testing.assert_array_equal(sparse.toarray(), [[0, 7, 0, 0], [1, 0, 0, 2]])
    with pytest.raises(JSONFormatError, match="instance 0: a sparse instance"):
        instances_to_features([{"data": {"features": {"keys": [1], "values": [1]}}}])
    with pytest.raises(JSONFormatError, match="different feature counts"):
        instances_to_features([[1, 2], [1]])
    with pytest.raises(JSONFormatError, match="instances"):
        read_json_instances(b'{"rows": []}')
