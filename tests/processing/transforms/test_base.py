"""The base contract every transform follows: scikit-learn estimator conventions, the
fitted schema and SchemaMismatchError naming the columns, column selection with
pass-through, numpy input, empty inputs, and composition with Pipeline and
ColumnTransformer."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

import openmaker.processing.transforms as transforms
from openmaker.processing.transforms import (
    FrameTransformer,
    Imputer,
    OneHotEncoder,
    SchemaMismatchError,
    StandardScaler,
    fitted_schema,
)
from openmaker.processing.transforms._base import column_kind, frame_schema

# every column transform with the keywords it needs to fit the frame below
ALL_TRANSFORMS = [
    transforms.Imputer(), transforms.FillImputer(), transforms.InterpolationImputer(),
    transforms.KNNImputer(n_neighbors=2), transforms.IterativeImputer(random_state=0),
    transforms.StandardScaler(), transforms.MinMaxScaler(), transforms.MaxAbsScaler(),
    transforms.RobustScaler(), transforms.Normalizer(), transforms.PowerTransformer(),
    transforms.MathTransformer("cbrt"), transforms.KBinsDiscretizer(n_bins=2),
    transforms.CustomBinner([-100, 0, 100]), transforms.OneHotEncoder(),
    transforms.OrdinalEncoder(), transforms.TargetEncoder(), transforms.HashingEncoder(),
    transforms.CyclicalEncoder(), transforms.Tokenizer(columns=["text"]),
    transforms.StopWordRemover(columns=["text"]), transforms.CountVectorizer(columns=["text"]),
    transforms.OrthogonalSparseBigrams(columns=["text"]),
    transforms.TfidfVectorizer(columns=["text"]),
    transforms.CartesianProduct(columns=["colour", "text"]),
]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "x": [1.0, 2.0, 3.0, 4.0, 6.0, 5.0],
        "n": [10, 20, 30, 40, 50, 70],
        "colour": ["red", "blue", "red", "green", "red", "blue"],
        "when": pd.to_datetime(["2024-01-01 00:00", "2024-02-03 06:00", "2024-03-05 12:00",
                                "2024-04-07 18:00", "2024-05-09 23:00", "2024-06-11 03:00"]),
        "text": ["the quick fox", "a lazy dog", "the dog", "quick quick", "fox", "dog fox"],
    })


class Doubler(FrameTransformer):
    """A minimal transform for the base's own behaviour."""

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: object) -> None:
        self.factor_ = 2

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        return data * self.factor_

    def _output_names(self, columns: list[str]) -> list[str]:
        return [f"{name}_doubled" for name in columns]


@pytest.mark.parametrize("transform", ALL_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_every_transform_honours_the_contract(transform, frame: pd.DataFrame) -> None:
    params = transform.get_params()
    fresh = clone(transform)
    assert fresh.get_params() == params  # hyperparameters stored untouched
    with pytest.raises(NotFittedError):
        fresh.transform(frame)
    target = np.array([0, 1, 0, 1, 1, 0])
    out = fresh.fit(frame, target).transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(fresh.get_feature_names_out())
    assert len(out) == len(frame)
    assert fresh.schema_ == frame_schema(frame)
    assert fresh.get_params() == params  # fit did not change them
    for name in frame.columns:  # unselected columns pass through unchanged
        if name not in fresh.columns_:
            pd.testing.assert_series_equal(out[name], frame[name])
    with pytest.raises(SchemaMismatchError):
        fresh.transform(frame.drop(columns=[fresh.columns_[0]]))


def test_schema_mismatch_names_missing_extra_and_retyped_columns(frame: pd.DataFrame) -> None:
    transform = StandardScaler().fit(frame)
    other = frame.drop(columns=["n"]).assign(extra=1.0, colour=[1, 2, 3, 4, 5, 6])
    with pytest.raises(SchemaMismatchError) as raised:
        transform.transform(other)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.missing == ["n"]
    assert error.extra == ["extra"]
    assert error.retyped == {"colour": ("string", "numeric")}
    assert "StandardScaler" in str(error)
    for name in ("'n'", "'extra'", "'colour' (fitted string, got numeric)"):
        assert name in str(error)


def test_integer_and_float_columns_and_all_missing_columns_match(frame: pd.DataFrame) -> None:
    transform = StandardScaler().fit(frame)
    # ints where floats were fitted, and a categorical column that is all missing (as CSV
    # parsing produces) are the same schema
    same = frame.assign(x=frame["x"].astype(int), colour=np.nan)
    assert list(transform.transform(same).columns) == list(frame.columns)
    # column order may differ: the output follows the fitted order
    shuffled = frame[list(reversed(frame.columns))]
    assert list(transform.transform(shuffled).columns) == list(frame.columns)


def test_column_kinds() -> None:
    kinds = frame_schema(pd.DataFrame({
        "i": [1], "f": [1.5], "b": [True], "s": ["a"], "c": pd.Categorical(["a"]),
        "t": pd.to_datetime(["2024-01-01"]), "d": pd.to_timedelta(["1s"])}))
    assert kinds == {"i": "numeric", "f": "numeric", "b": "boolean", "s": "string",
                     "c": "string", "t": "datetime", "d": "timedelta"}
    assert column_kind(pd.Series(["a", None])) == "string"


def test_selected_columns_are_replaced_in_place_and_the_rest_pass_through(frame) -> None:
    transform = Doubler(columns=["n", "x"]).fit(frame)
    out = transform.transform(frame)
    assert list(out.columns) == ["n_doubled", "x_doubled", "colour", "when", "text"]
    assert out["x_doubled"].tolist() == [2.0, 4.0, 6.0, 8.0, 12.0, 10.0]
    pd.testing.assert_series_equal(out["colour"], frame["colour"])
    assert list(Doubler().fit(frame).get_feature_names_out()) == [
        "x_doubled", "n_doubled", "colour", "when", "text"]
    assert Doubler(columns="n").fit(frame).columns_ == ["n"]


def test_numpy_input_gets_columns_x0_to_xn() -> None:
    array = np.arange(6, dtype=float).reshape(3, 2)
    transform = Doubler().fit(array)
    assert list(transform.feature_names_in_) == ["x0", "x1"]
    out = transform.transform(array)
    assert list(out.columns) == ["x0_doubled", "x1_doubled"]
    assert out.to_numpy().tolist() == (array * 2).tolist()
    # a frame fitted by name accepts an array of the same width, named as fitted
    named = Doubler().fit(pd.DataFrame(array, columns=["a", "b"]))
    assert named.transform(array).columns.tolist() == ["a_doubled", "b_doubled"]
    with pytest.raises(SchemaMismatchError, match="extra columns 'x2'"):
        transform.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1-D array of 3 values. Reshape your data"):
        Doubler().fit(np.arange(3))


def test_empty_inputs_raise_naming_the_transform_and_the_problem(frame) -> None:
    with pytest.raises(ValueError, match=r"StandardScaler.fit: the input has no rows"):
        StandardScaler().fit(frame.iloc[:0])
    with pytest.raises(ValueError, match=r"StandardScaler: no columns selected: the input has "
                                         r"no numeric columns"):
        StandardScaler().fit(frame[["colour"]])
    with pytest.raises(ValueError, match="columns= is empty"):
        StandardScaler(columns=[]).fit(frame)
    with pytest.raises(ValueError, match=r"not in the input: \['nope'\]"):
        StandardScaler(columns=["nope"]).fit(frame)
    with pytest.raises(ValueError, match=r"cannot handle: \{'colour': 'string'\}"):
        StandardScaler(columns=["colour"]).fit(frame)
    fitted = StandardScaler().fit(frame)
    with pytest.raises(ValueError, match=r"StandardScaler.transform: the input has no rows"):
        fitted.transform(frame.iloc[:0])


def test_transforms_compose_in_pipeline_and_column_transformer(frame) -> None:
    pipeline = Pipeline([("impute", Imputer(strategy="most_frequent")),
                         ("onehot", OneHotEncoder(columns=["colour"])),
                         ("scale", StandardScaler(columns=["x", "n"]))])
    features = pipeline.fit_transform(frame.drop(columns=["when", "text"]))
    assert list(features.columns) == ["x", "n", "colour_blue", "colour_green", "colour_red"]
    assert list(pipeline.get_feature_names_out()) == list(features.columns)
    assert fitted_schema(pipeline) == {"x": "numeric", "n": "numeric", "colour": "string"}
    model = Pipeline([("features", pipeline), ("fit", LinearRegression())])
    model.fit(frame.drop(columns=["when", "text"]), frame["x"] * 2)
    assert model.predict(frame.drop(columns=["when", "text"])) == pytest.approx(frame["x"] * 2)

    columns = ColumnTransformer([("scale", StandardScaler(), ["x", "n"]),
                                 ("onehot", OneHotEncoder(), ["colour"])])
    values = columns.fit_transform(frame)
    assert values.shape == (6, 5)
    assert list(columns.get_feature_names_out())[:3] == ["scale__x", "scale__n",
                                                        "onehot__colour_blue"]


# scikit-learn's own conformance suite, on the numeric transforms it can feed (its checks
# send numpy data without column kinds the others need). KBinsDiscretizer is left out:
# scikit-learn's discretizer rightly warns on the checks' degenerate sparse data.
CONFORMING = [transforms.StandardScaler(), transforms.MinMaxScaler(), transforms.MaxAbsScaler(),
              transforms.RobustScaler(), transforms.Normalizer(), transforms.PowerTransformer(),
              transforms.MathTransformer("cbrt"), transforms.Imputer(),
              transforms.FillImputer(), transforms.InterpolationImputer(),
              transforms.KNNImputer(), transforms.IterativeImputer()]


@pytest.mark.parametrize("transform", CONFORMING, ids=lambda t: type(t).__name__)
def test_numeric_transforms_pass_scikit_learns_check_estimator(transform) -> None:
    from sklearn.exceptions import SkipTestWarning
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SkipTestWarning)  # array-API checks
        results = check_estimator(transform, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    assert len(results) >= 40
