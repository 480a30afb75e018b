"""The content types SageMaker uses for data channels and inference, parsed and mapped to the
reader of each format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CSV = "text/csv"
LIBSVM = "text/libsvm"
X_LIBSVM = "text/x-libsvm"
PARQUET = "application/x-parquet"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
JSONLINES = "application/jsonlines"
JSON = "application/json"

# media type (lower case) -> format name; the bare names are what SageMaker XGBoost also accepts
FORMATS: dict[str, str] = {
    CSV: "csv",
    "csv": "csv",
    LIBSVM: "libsvm",
    X_LIBSVM: "libsvm",
    "libsvm": "libsvm",
    PARQUET: "parquet",
    "parquet": "parquet",
    RECORDIO_PROTOBUF: "recordio-protobuf",
    "recordio-protobuf": "recordio-protobuf",
    JSONLINES: "jsonlines",
    JSON: "json",
}


@dataclass(frozen=True)
class ContentType:
    """A parsed content type: the lower-cased media type and its parameters."""

    media_type: str
    parameters: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def format(self) -> str:
        """The format name: csv, libsvm, parquet, recordio-protobuf, jsonlines or json."""
        return FORMATS[self.media_type]

    @property
    def label_size(self) -> int:
        """``label_size`` for CSV (default 1): how many leading columns are the label."""
        text = self.parameters.get("label_size", "1")
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"label_size must be a non-negative integer, got {text!r} in "
                             f"{self.media_type}")
        return value


def accepted_content_types() -> list[str]:
    """The content types ``parse_content_type`` accepts."""
    return list(FORMATS)


def parse_content_type(value: str) -> ContentType:
    """Parse ``"text/csv; label_size=1"`` into a ``ContentType``; unknown types raise
    ValueError listing the accepted ones."""
    media, *raw_parameters = (value or "").split(";")
    media_type = media.strip().lower()
    if media_type not in FORMATS:
        raise ValueError(f"unsupported content type {value!r}; accepted: "
                         f"{', '.join(accepted_content_types())} (parameters such as "
                         "'text/csv;label_size=0' are allowed)")
    parameters: dict[str, str] = {}
    for item in raw_parameters:
        if not item.strip():
            continue
        key, equals, text = item.partition("=")
        if not equals:
            raise ValueError(f"content type parameter {item.strip()!r} in {value!r} is not "
                             "key=value")
        parameters[key.strip().lower()] = text.strip().strip('"')
    content_type = ContentType(media_type, parameters)
    if "label_size" in parameters:
        content_type.label_size  # noqa: B018  (validates the parameter early)
    return content_type


def reader_for(content_type: str | ContentType) -> Callable[..., tuple[Any, Any]]:
    """A function reading a source of this content type into ``(features, labels)``.

    JSON and JSON Lines hold inference instances, so their labels are None.
    """
    parsed = (content_type if isinstance(content_type, ContentType)
              else parse_content_type(content_type))
    kind = parsed.format
    if kind == "csv":
        from openmaker.formats.csv import read_csv

        label_size = parsed.label_size
        return lambda source, **options: read_csv(source, label_size=label_size, **options)
    if kind == "libsvm":
        from openmaker.formats.libsvm import read_libsvm

        return read_libsvm
    if kind == "parquet":
        from openmaker.formats.parquet import read_parquet

        return read_parquet
    if kind == "recordio-protobuf":
        from openmaker.formats.recordio_protobuf import read_recordio_protobuf

        return read_recordio_protobuf
    from openmaker.formats import jsonlines

    read = jsonlines.read_json_instances if kind == "json" else jsonlines.read_jsonlines_instances
    return lambda source, **options: (read(source, **options), None)


def read_dataset(source: Any, content_type: str | ContentType, **options: Any) -> tuple[Any, Any]:
    """Read ``source`` as ``content_type`` into ``(features, labels)``."""
    return reader_for(content_type)(source, **options)
