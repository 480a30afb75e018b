"""Serializers and deserializers for ``Predictor``: the SageMaker Python SDK's, by name,
content type and behaviour (``sagemaker.serializers`` / ``sagemaker.deserializers``).

A serializer turns the caller's data into a request body and names its ``CONTENT_TYPE``;
a deserializer reads the response stream (anything with ``read()``; it is closed after)
into Python objects and names the content types it ``ACCEPT``\\ s.
"""

from __future__ import annotations

import abc
import codecs
import csv
import io
import json
from collections.abc import Iterable
from typing import Any

import numpy as np


class BaseSerializer(abc.ABC):
    """Encodes data for an inference request; ``CONTENT_TYPE`` is its MIME type."""

    @abc.abstractmethod
    def serialize(self, data: Any) -> Any:
        """The request body for ``data``."""

    @property
    @abc.abstractmethod
    def CONTENT_TYPE(self) -> str:  # noqa: N802 - the SageMaker SDK's name
        """The MIME type sent as the request's ``ContentType``."""


class SimpleBaseSerializer(BaseSerializer):
    """A serializer whose content type is set at construction."""

    def __init__(self, content_type: str = "application/json") -> None:
        if not isinstance(content_type, str):
            raise ValueError("content_type must be a string specifying the MIME type of the "
                             "data sent in requests: e.g. 'application/json', 'text/csv', "
                             f"etc. Got {content_type!r}")
        self.content_type = content_type

    @property
    def CONTENT_TYPE(self) -> str:  # noqa: N802
        return self.content_type


def _is_sequence_like(data: Any) -> bool:
    return hasattr(data, "__iter__") and hasattr(data, "__getitem__")


class CSVSerializer(SimpleBaseSerializer):
    """Rows as ``text/csv``: a list/array of rows becomes one line per row, a flat
    sequence one line; DataFrames without header or index; strings and files as they are."""

    def __init__(self, content_type: str = "text/csv") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        if hasattr(data, "read"):
            return data.read()
        if type(data).__name__ == "DataFrame" and hasattr(data, "to_csv"):
            return data.to_csv(header=False, index=False)
        mutable = _is_sequence_like(data) and hasattr(data, "__setitem__")
        if mutable and len(data) > 0 and _is_sequence_like(data[0]):
            return "\n".join(self._serialize_row(row) for row in data)
        return self._serialize_row(data)

    @staticmethod
    def _serialize_row(data: Any) -> str:
        if isinstance(data, str):
            return data
        if isinstance(data, np.ndarray):
            data = data.flatten()
        if hasattr(data, "__len__"):
            if len(data) == 0:
                raise ValueError("Cannot serialize empty array")
            buffer = io.StringIO()
            csv.writer(buffer, delimiter=",").writerow(data)
            return buffer.getvalue().rstrip("\r\n")
        raise ValueError(f"Unable to handle input format: {type(data)}")


class JSONSerializer(SimpleBaseSerializer):
    """``application/json``; NumPy arrays (also as dict values) become lists."""

    def serialize(self, data: Any) -> Any:
        if isinstance(data, dict):
            return json.dumps({key: value.tolist() if isinstance(value, np.ndarray) else value
                               for key, value in data.items()})
        if hasattr(data, "read"):
            return data.read()
        if isinstance(data, np.ndarray):
            return json.dumps(data.tolist())
        return json.dumps(data)


class JSONLinesSerializer(SimpleBaseSerializer):
    """``application/jsonlines``: one JSON value per line from an iterable."""

    def __init__(self, content_type: str = "application/jsonlines") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        if isinstance(data, str):
            return data
        if hasattr(data, "read"):
            return data.read()
        if isinstance(data, Iterable):
            return "\n".join(json.dumps(element) for element in data)
        raise ValueError(f"Object of type {type(data)} is not JSON Lines serializable.")


class NumpySerializer(SimpleBaseSerializer):
    """``application/x-npy``: the data as a ``.npy`` file (lists converted with ``dtype``)."""

    def __init__(self, dtype: Any = None, content_type: str = "application/x-npy") -> None:
        super().__init__(content_type)
        self.dtype = dtype

    def serialize(self, data: Any) -> Any:
        if isinstance(data, np.ndarray):
            if data.size == 0:
                raise ValueError("Cannot serialize empty array.")
            return self._serialize_array(data)
        if isinstance(data, list):
            if len(data) == 0:
                raise ValueError("Cannot serialize empty array.")
            return self._serialize_array(np.array(data, self.dtype))
        if hasattr(data, "read"):
            return data.read()
        return self._serialize_array(np.array(data))

    @staticmethod
    def _serialize_array(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()


class RecordSerializer(SimpleBaseSerializer):
    """``application/x-recordio-protobuf``: a 1-D or 2-D array as dense ``Record``\\ s, the
    bytes ``sagemaker.serializers.RecordSerializer`` writes."""

    def __init__(self, content_type: str = "application/x-recordio-protobuf") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> bytes:
        from openmaker.formats.recordio_protobuf import dense_record_bytes

        array = np.asarray(data)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        if array.ndim != 2:
            raise ValueError(f"Expected a 1D or 2D array, but got a {array.ndim}D array "
                             "instead.")
        return dense_record_bytes(array)


class IdentitySerializer(SimpleBaseSerializer):
    """The data unchanged (bytes, or a file's contents), sent as ``content_type``."""

    def __init__(self, content_type: str = "application/octet-stream") -> None:
        super().__init__(content_type)

    def serialize(self, data: Any) -> Any:
        return data


class BaseDeserializer(abc.ABC):
    """Decodes an inference response; ``ACCEPT`` are the MIME types it expects."""

    @abc.abstractmethod
    def deserialize(self, stream: Any, content_type: str) -> Any:
        """The response body ``stream`` (read and closed) as Python objects."""

    @property
    @abc.abstractmethod
    def ACCEPT(self) -> tuple[str, ...]:  # noqa: N802 - the SageMaker SDK's name
        """The MIME types sent as the request's ``Accept``."""


class SimpleBaseDeserializer(BaseDeserializer):
    """A deserializer whose accepted types are set at construction."""

    def __init__(self, accept: str | tuple[str, ...] = "*/*") -> None:
        self.accept = accept

    @property
    def ACCEPT(self) -> tuple[str, ...]:  # noqa: N802
        return (self.accept,) if isinstance(self.accept, str) else tuple(self.accept)


class BytesDeserializer(SimpleBaseDeserializer):
    """The body as bytes."""

    def deserialize(self, stream: Any, content_type: str) -> bytes:
        try:
            return stream.read()
        finally:
            stream.close()


class StringDeserializer(SimpleBaseDeserializer):
    """The body decoded as text."""

    def __init__(self, encoding: str = "UTF-8",
                 accept: str | tuple[str, ...] = "application/json") -> None:
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: Any, content_type: str) -> str:
        try:
            return stream.read().decode(self.encoding)
        finally:
            stream.close()


class CSVDeserializer(SimpleBaseDeserializer):
    """``text/csv`` as a list of rows, each a list of strings."""

    def __init__(self, encoding: str = "utf-8",
                 accept: str | tuple[str, ...] = "text/csv") -> None:
        super().__init__(accept)
        self.encoding = encoding

    def deserialize(self, stream: Any, content_type: str) -> list[list[str]]:
        try:
            return list(csv.reader(stream.read().decode(self.encoding).splitlines()))
        finally:
            stream.close()


class JSONDeserializer(SimpleBaseDeserializer):
    """``application/json`` as the Python value."""

    def __init__(self, accept: str | tuple[str, ...] = "application/json") -> None:
        super().__init__(accept)

    def deserialize(self, stream: Any, content_type: str) -> Any:
        try:
            return json.load(codecs.getreader("utf-8")(stream))
        finally:
            stream.close()


class JSONLinesDeserializer(SimpleBaseDeserializer):
    """``application/jsonlines`` as a list of values, one per line."""

    def __init__(self, accept: str | tuple[str, ...] = "application/jsonlines") -> None:
        super().__init__(accept)

    def deserialize(self, stream: Any, content_type: str) -> list[Any]:
        try:
            lines = stream.read().decode("utf-8").rstrip().split("\n")
            return [json.loads(line) for line in lines]
        finally:
            stream.close()


class NumpyDeserializer(SimpleBaseDeserializer):
    """A NumPy array from a ``text/csv``, ``application/json``, ``application/x-npy`` or
    ``application/x-npz`` body (``.npz`` gives numpy's dict-like archive)."""

    def __init__(self, dtype: Any = None, accept: str | tuple[str, ...] = "application/x-npy",
                 allow_pickle: bool = False) -> None:
        super().__init__(accept)
        self.dtype = dtype
        self.allow_pickle = allow_pickle

    def deserialize(self, stream: Any, content_type: str) -> Any:
        try:
            if content_type == "text/csv":
                return np.genfromtxt(codecs.getreader("utf-8")(stream), delimiter=",",
                                     dtype=self.dtype)
            if content_type == "application/json":
                return np.array(json.load(codecs.getreader("utf-8")(stream)), dtype=self.dtype)
            if content_type in ("application/x-npy", "application/x-npz"):
                try:
                    return np.load(io.BytesIO(stream.read()), allow_pickle=self.allow_pickle)
                except ValueError as exc:
                    raise ValueError("Please set the param allow_pickle=True to deserialize "
                                     "pickle objects in NumpyDeserializer") from exc
        finally:
            stream.close()
        raise ValueError(f"NumpyDeserializer cannot read content type {content_type}.")


class RecordDeserializer(SimpleBaseDeserializer):
    """``application/x-recordio-protobuf`` as a list of
    ``openmaker.formats.recordio_protobuf.Record`` (features/label by name, as tensors)."""

    def __init__(self, accept: str | tuple[str, ...] = "application/x-recordio-protobuf"
                 ) -> None:
        super().__init__(accept)

    def deserialize(self, stream: Any, content_type: str) -> list:
        from openmaker.formats.recordio_protobuf import read_records

        try:
            return read_records(stream.read())
        finally:
            stream.close()


__all__ = [
    "BaseDeserializer", "BaseSerializer", "BytesDeserializer", "CSVDeserializer",
    "CSVSerializer", "IdentitySerializer", "JSONDeserializer", "JSONLinesDeserializer",
    "JSONLinesSerializer", "JSONSerializer", "NumpyDeserializer", "NumpySerializer",
    "RecordDeserializer", "RecordSerializer", "SimpleBaseDeserializer",
    "SimpleBaseSerializer", "StringDeserializer",
]
