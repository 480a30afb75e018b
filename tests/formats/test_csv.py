"""CSV in SageMaker's training convention: label first, no header, numeric."""

from __future__ import annotations

import io

import numpy as np
import pytest

from openmaker.formats.csv import CSVFormatError, iter_csv_batches, read_csv, write_csv


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_round_trip_with_label_first(tmp_path, dtype):
    rng = np.random.default_rng(1)
    features = (rng.normal(size=(50, 4)) * 100).astype(dtype)
    labels = np.arange(50).astype(dtype)
    path = tmp_path / "train.csv"
    assert write_csv(path, features, labels) == 50
    first = path.read_text().splitlines()[0].split(",")
    assert float(first[0]) == labels[0] and len(first) == 5
    read_features, read_labels = read_csv(path, dtype=dtype)
    np.testing.assert_array_equal(read_features, features)
    np.testing.assert_array_equal(read_labels, labels)


def test_label_size_zero_and_two():
    data = b"1,2,3\n4,5,6\n"
    features, labels = read_csv(data, label_size=0)
    assert labels is None and features.shape == (2, 3)
    features, labels = read_csv(data, label_size=2)
    np.testing.assert_array_equal(labels, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(features, [[3], [6]])


def test_empty_fields_are_nan_and_blank_lines_skipped():
    features, labels = read_csv(b"1,,3\n\n0,2,\r\n")
    np.testing.assert_array_equal(labels, [1, 0])
    assert np.isnan(features[0, 0]) and np.isnan(features[1, 1])


def test_nan_written_as_empty_field_reads_back():
    buffer = io.BytesIO()
    write_csv(buffer, np.array([[np.nan, 1.5]]), np.array([0.0]))
    assert buffer.getvalue() == b"0,,1.5\n"
    features, _ = read_csv(buffer.getvalue())
    assert np.isnan(features[0, 0])


def test_streaming_batches_span_small_blocks_and_keep_line_numbers():
    rows = b"".join(b"%d,%d,%d\n" % (i, i + 1, i + 2) for i in range(1000))
    batches = list(iter_csv_batches(io.BytesIO(rows), block_size=256))
    assert len(batches) > 10
    features = np.concatenate([f for f, _ in batches])
    labels = np.concatenate([lab for _, lab in batches])
    np.testing.assert_array_equal(labels, np.arange(1000))
    np.testing.assert_array_equal(features[:, 1], np.arange(1000) + 2)
    broken = rows + b"5,x,7\n"
    with pytest.raises(CSVFormatError, match=r"line 1001, column 2: 'x' is not a number"):
        read_csv(iter([broken[i : i + 100] for i in range(0, len(broken), 100)]), block_size=256)


def test_non_numeric_cell_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("1,2,3\n4,5,6\n7,oops,9\n")
    with pytest.raises(CSVFormatError) as caught:
        read_csv(path)
    assert str(caught.value) == f"{path}, line 3, column 2: 'oops' is not a number"


def test_wrong_column_count_names_file_and_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("1,2,3\n4,5\n")
    with pytest.raises(CSVFormatError, match=rf"{path}, line 2: expected 3 columns .* found 2"):
        read_csv(path)
    path.write_text("1,2,3\n\n4,5,6,7\n")
    with pytest.raises(CSVFormatError, match="line 3: expected 3 columns"):
        read_csv(path)


def test_header_row_gets_a_hint():
    with pytest.raises(CSVFormatError, match="line 1, column 1: 'label' .*no header row"):
        read_csv(b"label,f1\n1,2\n")


def test_other_delimiter_and_label_size_checks():
    features, labels = read_csv(b"1;2\n3;4\n", delimiter=";")
    np.testing.assert_array_equal(features, [[2], [4]])
    with pytest.raises(CSVFormatError, match="fewer than label_size=3"):
        read_csv(b"1,2\n", label_size=3)
    with pytest.raises(ValueError, match="label_size"):
        read_csv(b"1,2\n", label_size=-1)


def test_empty_source():
    features, labels = read_csv(b"")
    assert features.shape == (0, 0) and labels.shape == (0,)
