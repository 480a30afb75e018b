"""Content-type parsing and the mapping from content type to reader."""

from __future__ import annotations

import io

import numpy as np
import pytest

import openmaker.formats as formats
from openmaker.formats import content_types


def test_parse_with_parameters_and_case():
    parsed = formats.parse_content_type("Text/CSV; label_size=0 ; charset=\"utf-8\"")
    assert parsed.media_type == "text/csv"
    assert parsed.parameters == {"label_size": "0", "charset": "utf-8"}
    assert parsed.format == "csv" and parsed.label_size == 0
    assert formats.parse_content_type("text/csv").label_size == 1


@pytest.mark.parametrize("value, kind", [
    ("text/csv", "csv"), ("csv", "csv"), ("text/libsvm", "libsvm"), ("text/x-libsvm", "libsvm"),
    ("libsvm", "libsvm"), ("application/x-parquet", "parquet"), ("parquet", "parquet"),
    ("application/x-recordio-protobuf", "recordio-protobuf"),
    ("recordio-protobuf", "recordio-protobuf"), ("application/jsonlines", "jsonlines"),
    ("application/json", "json"),
])
def test_every_sagemaker_content_type_maps_to_a_format(value, kind):
    assert formats.parse_content_type(value).format == kind


def test_unknown_type_lists_the_accepted_ones():
    with pytest.raises(ValueError) as caught:
        formats.parse_content_type("application/x-image")
    message = str(caught.value)
    assert "application/x-image" in message
    for accepted in ("text/csv", "text/libsvm", "application/x-recordio-protobuf",
                     "application/x-parquet", "application/jsonlines", "application/json"):
        assert accepted in message


@pytest.mark.parametrize("value", ["text/csv;label_size=-1", "text/csv;label_size=x",
                                   "text/csv;label_size"])
def test_bad_parameters(value):
    with pytest.raises(ValueError, match="label_size|key=value"):
        formats.parse_content_type(value)


def test_read_dataset_dispatches_by_content_type(tmp_path):
    features = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    labels = np.array([0.0, 1.0], dtype=np.float32)
    bodies = {}
    for name, write in (("text/csv", formats.write_csv), ("parquet", formats.write_parquet),
                        ("text/x-libsvm", formats.write_libsvm),
                        (content_types.RECORDIO_PROTOBUF, formats.write_dense_records)):
        buffer = io.BytesIO()
        write(buffer, features, labels)
        bodies[name] = buffer.getvalue()
    for name, body in bodies.items():
        read_features, read_labels = formats.read_dataset(body, name)
        dense = read_features.toarray() if hasattr(read_features, "toarray") else read_features
        np.testing.assert_array_equal(dense, features)
        np.testing.assert_array_equal(read_labels, labels)
    unlabelled, none = formats.read_dataset(b"1,2\n", "text/csv;label_size=0")
    assert none is None and unlabelled.shape == (1, 2)
    instances, none = formats.read_dataset(b'{"instances": [[1, 2]]}', "application/json")
    assert none is None and instances.tolist() == [[1, 2]]
    lines, none = formats.read_dataset(b'{"features": [1, 2]}\n', "application/jsonlines")
    assert lines.tolist() == [[1, 2]]


def test_public_names_are_pinned():
    assert "write_dense_records" in formats.__all__
    assert all(hasattr(formats, name) for name in formats.__all__)
