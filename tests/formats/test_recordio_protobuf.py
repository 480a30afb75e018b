"""RecordIO-protobuf: byte-for-byte equality with the SageMaker Python SDK v2's writers and
reading in both directions, plus round trips of our own Record model."""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
import scipy.sparse

from openmaker.formats import recordio_protobuf as rp
from openmaker.formats.recordio import RecordIOError, frame_record


@pytest.fixture(scope="module")
def sdk():
    """``sagemaker.amazon.common`` from the installed SageMaker Python SDK v2."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import sagemaker.amazon.common as common
        except ImportError as error:  # pragma: no cover - the dev extra installs it
            pytest.skip(f"the SageMaker Python SDK is not installed ({error}); "
                        "install openmaker[dev] to run the byte-compatibility tests")
    return common


FEATURE_DTYPES = [np.float32, np.float64, np.int64]
LABEL_DTYPES = [None, np.float32, np.float64, np.int64]


def dense_matrix(dtype, rows=6, cols=5):
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "i":
        return rng.integers(-(2**31), 2**31 - 1, size=(rows, cols)).astype(dtype)
    values = rng.normal(scale=1e3, size=(rows, cols)).astype(dtype)
    values[0, 0] = 0
    values[1, 1] = -0.0
    values[2, 2] = np.inf
    return values


def labels_for(dtype, rows=6):
    if dtype is None:
        return None
    return (np.arange(rows) - 2).astype(dtype)


def sdk_bytes(writer, *args):
    buffer = io.BytesIO()
    writer(buffer, *args)
    return buffer.getvalue()


def ours(writer, *args):
    buffer = io.BytesIO()
    writer(buffer, *args)
    return buffer.getvalue()


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_dense_writer_is_byte_identical_to_sdk(sdk, dtype, label_dtype):
    array, labels = dense_matrix(dtype), labels_for(label_dtype)
    expected = sdk_bytes(sdk.write_numpy_to_dense_tensor, array, labels)
    assert ours(rp.write_dense_records, array, labels) == expected


def sparse_matrix(dtype):
    rng = np.random.default_rng(3)
    dense = rng.normal(scale=100, size=(7, 40))
    dense[rng.random(dense.shape) < 0.8] = 0
    dense[0] = 0  # an empty first row
    dense[4] = 0  # an empty middle row
    dense[6, 39] = 5  # the largest index, several varint bytes after uint64 cast
    return scipy.sparse.csr_matrix(dense.astype(dtype))


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_writer_is_byte_identical_to_sdk(sdk, dtype, label_dtype):
    matrix, labels = sparse_matrix(dtype), labels_for(label_dtype, rows=7)
    expected = sdk_bytes(sdk.write_spmatrix_to_sparse_tensor, matrix, labels)
    assert ours(rp.write_sparse_records, matrix, labels) == expected


def test_sparse_writer_matches_sdk_for_wide_matrices_and_other_formats(sdk):
    wide = scipy.sparse.random(5, 300_000, density=1e-4, random_state=0, format="coo",
                               dtype=np.float32)
    expected = sdk_bytes(sdk.write_spmatrix_to_sparse_tensor, wide, None)
    assert ours(rp.write_sparse_records, wide, None) == expected
    assert ours(rp.write_sparse_records, wide.tocsc(), None) == expected


@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_sdk_reads_what_we_write(sdk, dtype):
    array, labels = dense_matrix(dtype), labels_for(np.float32)
    records = sdk.read_records(io.BytesIO(ours(rp.write_dense_records, array, labels)))
    assert len(records) == len(array)
    field = {np.float32: "float32_tensor", np.float64: "float64_tensor",
             np.int64: "int32_tensor"}[dtype]
    for row, label, record in zip(array, labels, records, strict=True):
        assert list(getattr(record.features["values"], field).values) == pytest.approx(
            row.tolist())
        assert list(record.label["values"].float32_tensor.values) == [label]
    matrix = sparse_matrix(dtype)
    records = sdk.read_records(io.BytesIO(ours(rp.write_sparse_records, matrix, None)))
    for index, record in enumerate(records):
        tensor = getattr(record.features["values"], field)
        assert list(tensor.keys) == matrix[index].indices.tolist()
        assert list(tensor.shape) == [matrix.shape[1]]


@pytest.mark.parametrize("label_dtype", LABEL_DTYPES, ids=str)
@pytest.mark.parametrize("dtype", FEATURE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_we_read_what_the_sdk_writes(sdk, dtype, label_dtype):
    tensor_dtype = np.int32 if np.dtype(dtype).kind == "i" else dtype
    array, labels = dense_matrix(dtype), labels_for(label_dtype)
    features, read_labels = rp.read_recordio_protobuf(
        sdk_bytes(sdk.write_numpy_to_dense_tensor, array, labels))
    assert features.dtype == tensor_dtype
    np.testing.assert_array_equal(features, array)
    if labels is None:
        assert read_labels is None
    else:
        np.testing.assert_array_equal(read_labels, labels)

    matrix, labels = sparse_matrix(dtype), labels_for(label_dtype, rows=7)
    features, read_labels = rp.read_recordio_protobuf(
        sdk_bytes(sdk.write_spmatrix_to_sparse_tensor, matrix, labels))
    assert scipy.sparse.issparse(features) and features.shape == matrix.shape
    assert features.dtype == tensor_dtype
    np.testing.assert_array_equal(features.toarray(), matrix.toarray())
    if labels is not None:
        np.testing.assert_array_equal(read_labels, labels)


def test_sdk_records_with_uid_metadata_bytes_and_unpacked_fields_parse(sdk):
    from sagemaker.amazon.record_pb2 import Record as SDKRecord

    record = SDKRecord()
    record.features["values"].float64_tensor.values.extend([1.5, -2.0])
    record.features["source"].int32_tensor.values.extend([3, -4, 70000])
    record.features["image"].bytes.value.extend([b"\x89PNG", b""])
    record.features["image"].bytes.content_type = "image/png"
    record.label["score"].float32_tensor.values.append(0.25)
    record.uid = "id-1"
    record.metadata = "{}"
    record.configuration = '{"k": 3}'
    payload = record.SerializeToString()
    ours_record = rp.decode_record(payload)
    np.testing.assert_array_equal(ours_record.features["values"].values, [1.5, -2.0])
    np.testing.assert_array_equal(ours_record.features["source"].values, [3, -4, 70000])
    assert ours_record.features["source"].values.dtype == np.int32
    assert ours_record.features["image"] == rp.BytesValue([b"\x89PNG", b""], "image/png")
    assert ours_record.label["score"].values.tolist() == [0.25]
    assert (ours_record.uid, ours_record.metadata, ours_record.configuration) == (
        "id-1", "{}", '{"k": 3}')
    # our encoder writes what the SDK parses back to the same message
    again = SDKRecord()
    again.ParseFromString(rp.encode_record(ours_record))
    assert again == record


def test_unpacked_repeated_scalars_are_accepted():
    # Float32Tensor values 1.0 and 2.0 unpacked (tag 0x0D fixed32), keys 3 unpacked (0x10)
    tensor = b"\x0d" + np.float32(1).tobytes() + b"\x0d" + np.float32(2).tobytes() + b"\x10\x03"
    tensor += b"\x10\x05\x18\x08"
    value = b"\x12" + bytes([len(tensor)]) + tensor
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    record = rp.decode_record(b"\x0a" + bytes([len(entry)]) + entry)
    tensor = record.features["values"]
    assert tensor.values.tolist() == [1.0, 2.0]
    assert tensor.keys.tolist() == [3, 5] and tensor.shape == (8,)
    np.testing.assert_array_equal(tensor.to_dense(), [0, 0, 0, 1, 0, 2, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8])
def test_dense_round_trip_every_dtype(tmp_path, dtype):
    array = (np.arange(12).reshape(4, 3) - 5).astype(dtype) if np.dtype(dtype).kind != "u" \
        else np.arange(12, dtype=dtype).reshape(4, 3)
    path = tmp_path / "dense.pbr"
    assert rp.write_dense_records(path, array, np.arange(4.0)) == 4
    features, labels = rp.read_recordio_protobuf(path)
    np.testing.assert_array_equal(features, array)
    np.testing.assert_array_equal(labels, np.arange(4.0))
    sparse_features, _ = rp.read_recordio_protobuf(path, sparse=True)
    np.testing.assert_array_equal(sparse_features.toarray(), array)


def test_sparse_round_trip_and_densify(tmp_path):
    matrix = sparse_matrix(np.float32)
    path = tmp_path / "sparse.pbr"
    rp.write_sparse_records(path, matrix, np.ones(7, dtype=np.float32))
    dense, labels = rp.read_recordio_protobuf(path, sparse=False)
    np.testing.assert_array_equal(dense, matrix.toarray())
    assert labels.dtype == np.float32
    examples = list(rp.iter_examples(path))
    assert len(examples) == 7
    np.testing.assert_array_equal(examples[3][0], matrix[3].toarray()[0])
    assert examples[3][1].tolist() == [1.0]


def test_streaming_records_from_chunks():
    array = dense_matrix(np.float32)
    data = rp.dense_record_bytes(array)
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    rows = [record.features["values"].values for record in rp.iter_records(iter(chunks))]
    np.testing.assert_array_equal(np.stack(rows), array)


def test_record_model_round_trip_with_vector_labels_and_strings():
    records = [
        rp.Record(features={"values": rp.Tensor(np.array([1, 2], dtype=np.float32))},
                  label={"values": rp.Tensor(np.array([0.5, 0.25], dtype=np.float64))},
                  uid="a", configuration="{}"),
        rp.Record(features={"values": rp.Tensor(np.array([3, 4], dtype=np.float32))},
                  label={"values": rp.Tensor(np.array([1.5, 1.25], dtype=np.float64))}),
    ]
    buffer = io.BytesIO()
    rp.write_records(buffer, records)
    assert rp.read_records(buffer.getvalue()) == records
    features, labels = rp.read_recordio_protobuf(buffer.getvalue())
    assert labels.shape == (2, 2)


def test_writer_rejects_bad_shapes_and_types():
    with pytest.raises(ValueError, match="2-D"):
        rp.write_dense_records(io.BytesIO(), np.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        rp.write_dense_records(io.BytesIO(), np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(TypeError, match="float32, float64 or an integer"):
        rp.write_dense_records(io.BytesIO(), np.zeros((3, 2), dtype=np.float16))
    with pytest.raises(ValueError, match="int32 range"):
        rp.write_dense_records(io.BytesIO(), np.full((1, 1), 2**40))
    with pytest.raises(TypeError, match="scipy.sparse"):
        rp.write_sparse_records(io.BytesIO(), np.zeros((2, 2)))


def test_reader_errors_name_the_record():
    good = rp.dense_record_bytes(np.zeros((1, 3), dtype=np.float32))
    wider = rp.dense_record_bytes(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(rp.RecordProtobufError, match="record 1 has 4 features, record 0 has 3"):
        rp.read_recordio_protobuf(good + wider)
    with pytest.raises(rp.RecordProtobufError, match="record 0: .*runs past"):
        rp.read_recordio_protobuf(frame_record(b"\x0a\x20abc"))
    with pytest.raises(RecordIOError):
        rp.read_recordio_protobuf(b"garbage!")
    labelled = io.BytesIO()
    rp.write_dense_records(labelled, np.zeros((1, 3), dtype=np.float32), np.zeros(1))
    with pytest.raises(rp.RecordProtobufError, match="record 1 has no label"):
        rp.read_recordio_protobuf(labelled.getvalue() + good)


def test_empty_source_reads_as_empty_matrix():
    features, labels = rp.read_recordio_protobuf(b"")
    assert features.shape == (0, 0) and labels is None
