"""Batch transform's ``DataProcessing``: ``InputFilter`` on each record before it is sent,
``JoinSource: Input`` to join each record with its prediction, ``OutputFilter`` on the
(joined) result, for CSV and JSON / JSON Lines as SageMaker describes.

A CSV record is a JSON array of its cells (strings, written back unchanged), so only
index paths apply to it (``$[0]``, ``$[1:]``, inclusive ends). Joining CSV puts the input
cells and then the output cells in one row; joining JSON adds the output under
``SageMakerOutput`` when the input record is an object, and otherwise makes
``{"SageMakerInput": <input>, "SageMakerOutput": <output>}``. The output is parsed by its
own type (``Accept``, else the model's answer's Content-Type); an output that is not JSON
stays a string. A filter that matches nothing raises :class:`FilterError` naming the filter.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from openmaker.transform import jsonpath

CSV_TYPES = frozenset({"text/csv"})
JSON_TYPES = frozenset({"application/json", "application/jsonlines", "application/x-jsonlines",
                        "application/json-lines"})
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"


class FilterError(ValueError):
    """A filter matched nothing, or a record or answer could not be read for processing."""


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def data_format(content_type: str | None) -> str | None:
    """``"csv"``, ``"json"`` or None (a type data processing cannot read)."""
    media = media_type(content_type)
    if media in CSV_TYPES:
        return "csv"
    if media in JSON_TYPES:
        return "json"
    return None


def parse_filter(field: str, text: str | None) -> jsonpath.JsonPath | None:
    """The filter, None for ``$`` or absent; ValueError naming ``field`` when it is bad."""
    if text is None:
        return None
    try:
        path = jsonpath.parse(text)
    except jsonpath.JsonPathError as error:
        raise ValueError(f"DataProcessing.{field} {text!r} {error}") from None
    return None if path.is_root else path


class DataProcessor:
    """The job's filters and join, applied record by record."""

    def __init__(self, data_processing: dict | None, content_type: str | None,
                 accept: str | None) -> None:
        settings = data_processing or {}
        self.input_filter = parse_filter("InputFilter", settings.get("InputFilter"))
        self.output_filter = parse_filter("OutputFilter", settings.get("OutputFilter"))
        self.join = settings.get("JoinSource", "None") == "Input"
        self.input_format = data_format(content_type)
        self.accept = accept

    @property
    def active(self) -> bool:
        return bool(self.input_filter or self.output_filter or self.join)

    def prepare(self, record: bytes, where: str) -> bytes:
        """The record as it is sent: with ``InputFilter`` applied."""
        if self.input_filter is None:
            return record
        value = _read(record, self.input_format, where, "input")
        try:
            selected = self.input_filter.select(value)
        except jsonpath.NoMatch:
            raise FilterError(f"InputFilter {self.input_filter.text!r} matches nothing in "
                              f"{where}") from None
        return _write(selected, self.input_format)

    def finish(self, record: bytes, output: bytes, output_type: str | None,
               where: str) -> bytes:
        """One record's result: joined with its input and/or ``OutputFilter`` applied."""
        if not (self.join or self.output_filter):
            return output
        output_format = data_format(self.accept or output_type) or self.input_format
        value = _read(output, output_format, where, "output", lenient=True)
        if self.join:
            value = _join(_read(record, self.input_format, where, "input"), value,
                          self.input_format)
            output_format = self.input_format
        if self.output_filter is not None:
            try:
                value = self.output_filter.select(value)
            except jsonpath.NoMatch:
                raise FilterError(f"OutputFilter {self.output_filter.text!r} matches nothing "
                                  f"in the result of {where}") from None
        return _write(value, output_format)


def split_answer(answer: bytes, count: int, where: str) -> list[bytes]:
    """A multi-record answer cut into one output per record: its non-empty lines, or the
    elements of a JSON array (or of an object's only array member, such as
    ``{"predictions": [...]}``) of ``count`` elements."""
    if count == 1:
        return [answer.rstrip(b"\r\n")]
    lines = [line for line in answer.split(b"\n") if line.strip()]
    if len(lines) == count:
        return [line.rstrip(b"\r") for line in lines]
    try:
        document = json.loads(answer)
    except ValueError:
        document = None
    if isinstance(document, dict) and len(document) == 1:
        document = next(iter(document.values()))
    if isinstance(document, list) and len(document) == count:
        return [json.dumps(item, separators=(",", ":")).encode() for item in document]
    raise FilterError(f"the model answered {len(lines)} lines for the {count} records of "
                      f"{where}; joining or filtering outputs needs one output per record "
                      "(use BatchStrategy SingleRecord or a line-per-record Accept type)")


def _read(data: bytes, data_format: str | None, where: str, what: str,
          lenient: bool = False) -> Any:
    text = data.decode("utf-8", "replace").rstrip("\r\n")
    if data_format == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) != 1:
            if lenient:
                return [cell for row in rows for cell in row]
            raise FilterError(f"the {what} of {where} is not one CSV row")
        return rows[0]
    try:
        return json.loads(text)
    except ValueError:
        if lenient:
            return text
        raise FilterError(f"the {what} of {where} is not valid JSON") from None


def _write(value: Any, data_format: str | None) -> bytes:
    if data_format == "csv":
        cells = value if isinstance(value, list) else [value]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(
            [json.dumps(cell, separators=(",", ":")) if isinstance(cell, dict | list) else cell
             for cell in cells])
        return out.getvalue().encode()
    if isinstance(value, str) and data_format is None:
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _join(record: Any, output: Any, data_format: str | None) -> Any:
    if data_format == "csv":
        cells = output if isinstance(output, list) else [output]
        return [*record, *cells]
    if isinstance(record, dict):
        if OUTPUT_KEY in record:
            raise FilterError(f"the input record already has the key {OUTPUT_KEY!r}, which "
                              "joining reserves for the output")
        return {**record, OUTPUT_KEY: output}
    return {INPUT_KEY: record, OUTPUT_KEY: output}
