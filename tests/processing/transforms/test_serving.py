"""Serving a saved transform: the handler functions parse CSV / JSON / JSON Lines into the
fitted schema, transform and write CSV / JSON; bad requests (wrong width, malformed
records, unparseable values, other columns) are 4xx naming the record or columns; and the
model server runs a one-line ``inference.py`` importing them, in a real process."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from tests.hosting.test_model_server import Server

from openmaker.algorithms.base import InferenceError, NotAcceptable, UnsupportedContentType
from openmaker.processing.transforms import (
    CyclicalEncoder,
    Imputer,
    OneHotEncoder,
    StandardScaler,
    save,
)
from openmaker.processing.transforms.serving import input_fn, model_fn, output_fn, predict_fn

INFERENCE = ("from openmaker.processing.transforms.serving import model_fn, input_fn, "
             "predict_fn, output_fn\n")


@pytest.fixture(scope="module")
def training() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [20.0, 35.0, np.nan, 50.0, 42.0],
        "city": ["paris", "rome", "paris", None, "oslo"],
        "when": pd.to_datetime(["2024-01-01 00:00", "2024-02-01 06:00", "2024-03-01 12:00",
                                "2024-04-01 18:00", "2024-05-01 23:00"]),
        "member": [True, False, True, True, False]})


@pytest.fixture(scope="module")
def model(training, tmp_path_factory):
    fitted = Pipeline([("impute", Imputer("most_frequent")),
                       ("scale", StandardScaler(columns=["age"])),
                       ("onehot", OneHotEncoder(columns=["city", "member"])),
                       ("cyclical", CyclicalEncoder(components=["hour"]))]).fit(training)
    model_dir = tmp_path_factory.mktemp("transform-model")
    save(fitted, model_dir)
    return model_fn(str(model_dir)), model_dir


def expected_rows(model, training: pd.DataFrame) -> np.ndarray:
    return model.transform(training).to_numpy(dtype=float)


CSV = ("20,paris,2024-01-01 00:00:00,True\n35,rome,2024-02-01 06:00:00,False\n"
       ",paris,2024-03-01 12:00:00,true\n50,,2024-04-01 18:00:00,1\n"
       "42,oslo,2024-05-01 23:00:00,0\n")


def test_csv_rows_take_the_fitted_columns_in_order(model, training) -> None:
    fitted, _ = model
    frame = input_fn(CSV.encode(), "text/csv")
    out = predict_fn(frame, fitted)
    assert out.to_numpy(dtype=float) == pytest.approx(expected_rows(fitted, training))
    body, content_type = output_fn(out, "text/csv")
    assert content_type == "text/csv"
    lines = body.decode().splitlines()
    assert len(lines) == 5 and all(len(line.split(",")) == out.shape[1] for line in lines)
    assert np.loadtxt(lines, delimiter=",") == pytest.approx(expected_rows(fitted, training))


def test_json_and_json_lines_records_by_name_and_by_position(model, training) -> None:
    fitted, _ = model
    expected = expected_rows(fitted, training)
    records = json.loads(training.to_json(orient="records", date_format="iso"))
    for body, content_type in [
            (json.dumps(records), "application/json"),
            (json.dumps({"instances": records}), "application/json"),
            (json.dumps({"columns": list(training.columns),
                         "data": [list(r.values()) for r in records]}), "application/json"),
            ("".join(json.dumps(r) + "\n" for r in records), "application/jsonlines"),
            (json.dumps([list(r.values()) for r in records]), "application/json; charset=utf-8")]:
        out = predict_fn(input_fn(body, content_type), fitted)
        assert out.to_numpy(dtype=float) == pytest.approx(expected), content_type
    one = predict_fn(input_fn(json.dumps(records[0]), "application/json"), fitted)
    assert one.to_numpy(dtype=float) == pytest.approx(expected[:1])


def test_json_and_json_lines_answers(model, training) -> None:
    fitted, _ = model
    out = fitted.transform(training)
    body, content_type = output_fn(out, "application/json")
    assert content_type == "application/json"
    decoded = json.loads(body)
    assert list(decoded[0]) == list(out.columns)
    assert [list(r.values()) for r in decoded] == pytest.approx(out.to_numpy(dtype=float))
    body, content_type = output_fn(out, "application/jsonlines")
    assert [json.loads(line) for line in body.decode().splitlines()] == decoded
    with pytest.raises(NotAcceptable, match="accept type 'image/png'"):
        output_fn(out, "image/png")


def test_bad_requests_are_400s_naming_the_record_or_columns(model) -> None:
    fitted, _ = model
    with pytest.raises(InferenceError, match="records have 3 values but the transform was "
                                             "fitted on 4 columns, in this order: age, city, "
                                             "when, member") as raised:
        predict_fn(input_fn(b"20,paris,2024-01-01\n", "text/csv"), fitted)
    assert raised.value.status == 400
    with pytest.raises(InferenceError, match=r"CSV record 2 \(line 2\) has 3 values; the first "
                                             r"record has 4"):
        input_fn(b"1,a,2024-01-01,true\n2,b,2024-01-01\n", "text/csv")
    with pytest.raises(InferenceError, match="column 'age' holds numeric values, but record 2 "
                                             "has 'old'"):
        predict_fn(input_fn(b"1,a,2024-01-01,true\nold,b,2024-01-01,true\n", "text/csv"),
                   fitted)
    with pytest.raises(InferenceError, match="column 'member' holds boolean"):
        predict_fn(input_fn(b"1,a,2024-01-01,maybe\n", "text/csv"), fitted)
    with pytest.raises(InferenceError, match="column 'when' holds date-time"):
        predict_fn(input_fn(b"1,a,yesterday,true\n", "text/csv"), fitted)
    with pytest.raises(InferenceError, match="missing columns 'member'; extra columns 'club'"):
        predict_fn(input_fn(json.dumps([{"age": 1, "city": "a", "when": "2024-01-01",
                                         "club": True}]), "application/json"), fitted)
    with pytest.raises(InferenceError, match="line 2 of the request is not valid JSON"):
        input_fn('{"age": 1}\n{"age": \n', "application/jsonlines")
    with pytest.raises(InferenceError, match="record 2 is neither an object nor a list"):
        input_fn('[{"age": 1}, 3]', "application/json")
    with pytest.raises(InferenceError, match="the request has no records"):
        input_fn(b"", "text/csv")
    with pytest.raises(UnsupportedContentType, match="'application/x-npy' is not supported"):
        input_fn(b"", "application/x-npy")


def test_the_model_server_serves_a_one_line_inference_script(model, training) -> None:
    fitted, model_dir = model
    (model_dir / "code").mkdir(exist_ok=True)
    (model_dir / "code" / "inference.py").write_text(INFERENCE)
    server = Server(model_dir, {"SAGEMAKER_PROGRAM": "inference.py",
                                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    try:
        status, body, content_type = server.invoke(CSV.encode(), "text/csv", "*/*")
        assert (status, content_type) == (200, "text/csv"), body
        assert np.loadtxt(body.decode().splitlines(), delimiter=",") == pytest.approx(
            expected_rows(fitted, training))
        status, body, content_type = server.invoke(b"20,paris\n", "text/csv")
        assert status == 400
        assert "fitted on 4 columns, in this order: age, city, when, member" in \
            json.loads(body)["error"]
        status, body, _ = server.invoke(b"20,paris\n", "application/x-npy")
        assert status == 415
    finally:
        server.stop()
