"""Serving a saved transform as a container of an inference pipeline: the SageMaker
inference toolkit's handler functions, so a model's ``code/inference.py`` is the one line

    from openmaker.processing.transforms.serving import model_fn, input_fn, predict_fn, output_fn

* ``model_fn`` loads what :func:`persistence.save` wrote into the model directory;
* ``input_fn`` parses ``text/csv`` (no header; a row's values are the fitted columns in
  the fitted order), ``application/json`` (a list of objects keyed by column, or of lists
  in the fitted order; a single object; ``{"instances": [...]}``; or pandas' split form
  ``{"columns": [...], "data": [[...]]}``) and ``application/jsonlines`` (one object or
  list per line) into a DataFrame;
* ``predict_fn`` gives each column its fitted kind (CSV values are text) and calls
  ``transform``;
* ``output_fn`` writes ``text/csv`` (no header, one row per record), ``application/json``
  (a list of objects keyed by output column) or ``application/jsonlines``.

Bad input answers 400 naming what is wrong: a row of the wrong width or a malformed
record (its position), a value that does not parse as its column's kind (column and
row), a frame with other columns than the fitted ones (the missing, extra or retyped
columns); an unknown content type 415, an unknown accept type 406. In an inference
pipeline an earlier container is asked with Accept ``*/*``, so set the container's
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` to ``text/csv`` when the next one reads CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import (
    BOOLEAN,
    DATETIME,
    NUMERIC,
    STRING,
    SchemaMismatchError,
    fitted_schema,
    show_value,
)

POSITIONAL = "openmaker_positional"  # DataFrame.attrs key: columns are by position
JSON_TYPES = ("application/json",)
JSONLINES_TYPES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
CSV_TYPES = ("text/csv",)
TRUE_WORDS = {"true", "t", "yes", "y", "1"}
FALSE_WORDS = {"false", "f", "no", "n", "0"}


def _bad_request(message: str) -> Exception:
    from openmaker.algorithms.base import InferenceError

    return InferenceError(message)


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def model_fn(model_dir: str) -> Any:
    """The transform or pipeline saved in ``model_dir``."""
    from openmaker.processing.transforms.persistence import load

    return load(model_dir)


def input_fn(input_data: bytes | str, content_type: str) -> pd.DataFrame:
    """The request as a DataFrame; rows given as lists are marked positional (their columns
    are named by the fitted schema in ``predict_fn``)."""
    from openmaker.algorithms.base import UnsupportedContentType

    media = _media(content_type)
    text = input_data.decode("utf-8") if isinstance(input_data, bytes | bytearray) \
        else str(input_data)
    if media in CSV_TYPES:
        frame = _csv_frame(text)
    elif media in JSON_TYPES:
        try:
            document = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as error:
            raise _bad_request(f"the request is not valid JSON: {error}") from None
        frame = _json_frame(document)
    elif media in JSONLINES_TYPES:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise _bad_request(f"line {number} of the request is not valid JSON: "
                                   f"{error}") from None
        frame = _json_frame(records, lines=True)
    else:
        raise UnsupportedContentType(
            f"content type {content_type!r} is not supported by the transform; use text/csv, "
            "application/json or application/jsonlines")
    if len(frame) == 0:
        raise _bad_request("the request has no records")
    return frame


def _csv_frame(text: str) -> pd.DataFrame:
    rows = []
    width = None
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise _bad_request(f"CSV record {len(rows) + 1} (line {number}) has {len(row)} "
                               f"values; the first record has {width}")
        rows.append([value if value != "" else None for value in row])
    frame = pd.DataFrame(rows, columns=[f"x{i}" for i in range(width or 0)], dtype=object)
    frame.attrs[POSITIONAL] = True
    return frame


def _json_frame(document: Any, lines: bool = False) -> pd.DataFrame:
    where = "line" if lines else "record"
    if isinstance(document, dict):
        if "columns" in document and "data" in document:
            columns, data = document["columns"], document["data"]
            if not isinstance(columns, list) or not isinstance(data, list):
                raise _bad_request('"columns" and "data" must be lists')
            for index, row in enumerate(data, start=1):
                if not isinstance(row, list) or len(row) != len(columns):
                    raise _bad_request(f"data row {index} does not have {len(columns)} values "
                                       f"(one per column {columns})")
            return pd.DataFrame(data, columns=[str(name) for name in columns], dtype=object)
        document = document.get("instances", [document])
    if not isinstance(document, list):
        raise _bad_request("the JSON request must be a list of records (objects keyed by "
                           "column, or lists of values in the fitted column order)")
    if all(isinstance(record, dict) for record in document):
        return pd.DataFrame.from_records(document).astype(object)
    if all(isinstance(record, list) for record in document):
        widths = {len(record) for record in document}
        if len(widths) > 1:
            first = len(document[0])
            index = next(i for i, record in enumerate(document, start=1)
                         if len(record) != first)
            raise _bad_request(f"{where} {index} has {len(document[index - 1])} values; the "
                               f"first has {first}")
        width = widths.pop() if widths else 0
        frame = pd.DataFrame(document, columns=[f"x{i}" for i in range(width)], dtype=object)
        frame.attrs[POSITIONAL] = True
        return frame
    index = next(i for i, record in enumerate(document, start=1)
                 if not isinstance(record, dict | list))
    if all(not isinstance(record, dict | list) for record in document):
        raise _bad_request("the JSON request is a list of values; send a list of records "
                           "(objects keyed by column, or lists of values)")
    raise _bad_request(f"{where} {index} is neither an object nor a list "
                       "(records mix objects and lists, or hold bare values)")


def conform(frame: pd.DataFrame, schema: dict[str, str] | None) -> pd.DataFrame:
    """The parsed request with the fitted column names (positional rows) and each column
    converted to its fitted kind; InferenceError naming the column and row otherwise."""
    if schema is None:
        return pd.DataFrame({name: _as_kind(frame[name], None, str(name))
                             for name in frame.columns}, index=frame.index)
    if frame.attrs.get(POSITIONAL):
        if frame.shape[1] != len(schema):
            raise _bad_request(
                f"the request's records have {frame.shape[1]} values but the transform was "
                f"fitted on {len(schema)} columns, in this order: {', '.join(schema)}")
        frame = frame.set_axis(list(schema), axis=1)
    converted = {}
    for name in frame.columns:
        kind = schema.get(str(name))
        converted[name] = _as_kind(frame[name], kind, str(name))
    return pd.DataFrame(converted, index=frame.index)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _fail(name: str, kind: str, series: pd.Series, bad: np.ndarray) -> Exception:
    position = int(np.argmax(bad))
    return _bad_request(f"column {name!r} holds {kind} values, but record {position + 1} has "
                        f"{show_value(series.iloc[position])}")


def _as_kind(series: pd.Series, kind: str | None, name: str) -> pd.Series:
    present = series.map(_present).to_numpy(dtype=bool)
    if kind == NUMERIC:
        values = pd.to_numeric(series.map(lambda v: v if _present(v) else None),
                               errors="coerce")
        bad = present & values.isna().to_numpy()
        # "nan" parses to NaN on purpose: it is a missing value, not a malformed one
        text_nan = series.map(lambda v: isinstance(v, str) and v.strip().lower() == "nan")
        bad &= ~text_nan.to_numpy(dtype=bool)
        if bad.any():
            raise _fail(name, "numeric", series, bad)
        return values.astype(float) if values.isna().any() else values
    if kind == BOOLEAN:
        def boolean(value: Any) -> Any:
            if not _present(value) or isinstance(value, bool):
                return value if _present(value) else None
            word = str(value).strip().lower()
            return True if word in TRUE_WORDS else False if word in FALSE_WORDS else "?"
        values = series.map(boolean)
        bad = (values == "?").to_numpy(dtype=bool)
        if bad.any():
            raise _fail(name, "boolean (true/false)", series, bad)
        return values.astype(bool) if present.all() else values.astype("boolean")
    if kind == DATETIME:
        values = pd.to_datetime(series.where(present, None), errors="coerce", format="mixed")
        bad = present & values.isna().to_numpy()
        if bad.any():
            raise _fail(name, "date-time", series, bad)
        return values
    if kind == STRING:
        return series.map(lambda v: (str(int(v)) if isinstance(v, float) and v.is_integer()
                                     else str(v)) if _present(v) else np.nan).astype(object)
    # unknown kind: numbers where every present value is one
    values = pd.to_numeric(series.where(present, None), errors="coerce")
    if (present & values.isna().to_numpy()).any():
        return series.infer_objects()
    return values


def predict_fn(input_data: pd.DataFrame, model: Any) -> Any:
    """The request transformed by the model (its prediction when it has no transform)."""
    frame = conform(input_data, fitted_schema(model))
    try:
        if hasattr(model, "transform"):
            return model.transform(frame)
        return model.predict(frame)
    except SchemaMismatchError as error:
        raise _bad_request(str(error)) from None
    except ValueError as error:
        # the model rejected the data (a value outside a transform's domain, say)
        raise _bad_request(f"{type(model).__name__} rejected the request: {error}") from None


def output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    """The transformed records as CSV (no header), JSON or JSON Lines."""
    from openmaker.algorithms.base import NotAcceptable

    media = _media(accept)
    if isinstance(prediction, pd.DataFrame):
        frame = prediction
    else:
        array = np.asarray(prediction.toarray() if hasattr(prediction, "toarray")
                           else prediction)
        frame = pd.DataFrame(array.reshape(len(array), -1))
    if media in CSV_TYPES:
        out = frame.copy()
        for name in out.columns:
            if pd.api.types.is_bool_dtype(out[name].dtype):
                out[name] = out[name].astype("Int64")
        return out.to_csv(header=False, index=False, lineterminator="\n").encode(), "text/csv"
    if media in JSON_TYPES or media in JSONLINES_TYPES:
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        if media in JSON_TYPES:
            return json.dumps(records).encode(), "application/json"
        body = "".join(json.dumps(record) + "\n" for record in records)
        return body.encode(), "application/jsonlines"
    raise NotAcceptable(f"accept type {accept!r} is not supported by the transform; use "
                        "text/csv, application/json or application/jsonlines")
