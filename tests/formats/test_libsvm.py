"""LibSVM text: reading to CSR, writing, index bases, qid and errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse

from openmaker.formats.libsvm import (
    LibSVMFormatError,
    iter_libsvm_batches,
    read_libsvm,
    read_libsvm_data,
    write_libsvm,
)


@pytest.mark.parametrize("zero_based", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip(tmp_path, dtype, zero_based):
    rng = np.random.default_rng(2)
    dense = rng.normal(size=(30, 8)).astype(dtype)
    dense[rng.random(dense.shape) < 0.6] = 0
    dense[5] = 0
    labels = rng.integers(0, 3, 30).astype(dtype)
    path = tmp_path / "train.libsvm"
    assert write_libsvm(path, scipy.sparse.csr_matrix(dense), labels, zero_based=zero_based) == 30
    features, read_labels = read_libsvm(path, zero_based=zero_based, n_features=8, dtype=dtype)
    np.testing.assert_array_equal(features.toarray(), dense)
    np.testing.assert_array_equal(read_labels, labels)


def test_format_of_written_lines():
    buffer = io.BytesIO()
    write_libsvm(buffer, np.array([[0, 1.5, 0], [2, 0, 0.1]]), np.array([1.0, 0.0]), qid=[3, 3])
    assert buffer.getvalue() == b"1 qid:3 1:1.5\n0 qid:3 0:2 2:0.1\n"


def test_qid_weights_comments_and_auto_base():
    text = b"# header comment\n1:0.5 qid:1 1:1 3:2.5 # trailing\n\n0:2 qid:2 2:4\n"
    data = read_libsvm_data(text, zero_based="auto")
    assert data.qid.tolist() == [1, 2]
    assert data.weights.tolist() == [0.5, 2.0]
    assert data.labels.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(data.features.toarray(), [[1, 0, 2.5], [0, 4, 0]])
    assert read_libsvm(b"1 0:1\n", zero_based="auto")[0].shape == (1, 1)


def test_streaming_batches():
    text = b"".join(b"%d 0:%d 4:1\n" % (i % 2, i) for i in range(500))
    batches = list(iter_libsvm_batches(io.BytesIO(text), n_features=5, block_size=200))
    assert len(batches) > 5 and all(f.shape[1] == 5 for f, _ in batches)
    assert sum(f.shape[0] for f, _ in batches) == 500


@pytest.mark.parametrize("line, message", [
    (b"x 1:2", r"line 2: the label 'x' is not a number"),
    (b"1 1:2 3", r"line 2, token 3: '3' is not an index:value pair"),
    (b"1 a:2", r"line 2, token 2: 'a:2' is not an index:value pair"),
    (b"1 -1:2", r"line 2, token 2: negative feature index -1"),
    (b"1 qid:z 1:2", r"line 2: bad query id 'qid:z'"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.libsvm"
    path.write_bytes(b"1 0:1\n" + line + b"\n")
    with pytest.raises(LibSVMFormatError, match=f"{path}, {message}"):
        read_libsvm(path)


def test_index_range_errors():
    with pytest.raises(LibSVMFormatError, match="n_features=2"):
        read_libsvm(b"1 5:1\n", n_features=2)
    with pytest.raises(LibSVMFormatError, match="index 0 in a file read as one-based"):
        read_libsvm(b"1 0:1\n", zero_based=False)
    with pytest.raises(LibSVMFormatError, match="only some lines have a qid"):
        read_libsvm(b"1 qid:1 0:1\n1 0:1\n")
