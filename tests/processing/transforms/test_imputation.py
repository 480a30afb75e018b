"""Imputation: mean, median, most frequent and constant against hand computations, forward
and backward fill and interpolation of ordered data, KNN and iterative imputation against
scikit-learn's own imputers, and the errors for columns with nothing to impute from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer as SklearnIterativeImputer
from sklearn.impute import KNNImputer as SklearnKNNImputer

from openmaker.processing.transforms import (
    FillImputer,
    Imputer,
    InterpolationImputer,
    IterativeImputer,
    KNNImputer,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, np.nan, 3.0, 10.0, np.nan],
                         "b": [2.0, 4.0, np.nan, 4.0, 8.0],
                         "colour": ["red", None, "blue", "red", np.nan]})


def test_mean_and_median_fill_numeric_columns_only(frame: pd.DataFrame) -> None:
    mean = Imputer("mean").fit(frame)
    assert mean.statistics_ == {"a": pytest.approx(14 / 3), "b": pytest.approx(4.5)}
    out = mean.transform(frame)
    assert out["a"].tolist() == pytest.approx([1.0, 14 / 3, 3.0, 10.0, 14 / 3])
    assert out["b"].tolist() == pytest.approx([2.0, 4.0, 4.5, 4.0, 8.0])
    assert out["colour"].isna().sum() == 2  # string column passed through
    median = Imputer("median").fit_transform(frame)
    assert median["a"].tolist() == [1.0, 3.0, 3.0, 10.0, 3.0]
    assert median["b"].tolist() == [2.0, 4.0, 4.0, 4.0, 8.0]


def test_most_frequent_and_constant_fill_strings_and_numbers(frame: pd.DataFrame) -> None:
    frequent = Imputer("most_frequent").fit_transform(frame)
    assert frequent["colour"].tolist() == ["red", "red", "blue", "red", "red"]
    assert frequent["b"].tolist() == [2.0, 4.0, 4.0, 4.0, 8.0]
    assert pd.api.types.is_float_dtype(frequent["a"].dtype)
    constant = Imputer("constant", fill_value="unknown", columns=["colour"]).fit_transform(frame)
    assert constant["colour"].tolist() == ["red", "unknown", "blue", "red", "unknown"]
    zero = Imputer("constant", fill_value=0, columns=["a"]).fit_transform(frame)
    assert zero["a"].tolist() == [1.0, 0.0, 3.0, 10.0, 0.0]


def test_imputer_rejects_bad_settings_and_empty_columns(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="strategy='mode' is not one of"):
        Imputer("mode").fit(frame)
    with pytest.raises(ValueError, match="needs fill_value"):
        Imputer("constant").fit(frame)
    with pytest.raises(ValueError, match=r"columns \['empty'\] have no values at fit"):
        Imputer("mean").fit(frame.assign(empty=np.nan))


def test_forward_backward_and_both_fill_ordered_data() -> None:
    series = pd.DataFrame({"v": [np.nan, 1.0, np.nan, np.nan, 4.0, np.nan],
                           "s": [None, "a", None, "b", None, None]})
    forward = FillImputer("forward").fit_transform(series)
    assert forward["v"].tolist()[1:] == [1.0, 1.0, 1.0, 4.0, 4.0]
    assert np.isnan(forward["v"].iloc[0])  # nothing before the first row
    assert forward["s"].tolist()[1:] == ["a", "a", "b", "b", "b"]
    backward = FillImputer("backward").fit_transform(series)
    assert backward["v"].tolist()[:5] == [1.0, 1.0, 4.0, 4.0, 4.0]
    assert np.isnan(backward["v"].iloc[5])
    both = FillImputer("both").fit_transform(series)
    assert both["v"].tolist() == [1.0, 1.0, 1.0, 1.0, 4.0, 4.0]
    limited = FillImputer("forward", limit=1).fit_transform(series)
    assert limited["v"].tolist()[1:3] == [1.0, 1.0] and np.isnan(limited["v"].iloc[3])
    with pytest.raises(ValueError, match="direction='sideways'"):
        FillImputer("sideways").fit(series)


def test_interpolation_linear_index_and_time() -> None:
    data = pd.DataFrame({"v": [0.0, np.nan, np.nan, 6.0, np.nan]}, index=[0, 1, 2, 3, 10])
    linear = InterpolationImputer().fit_transform(data)
    assert linear["v"].tolist() == [0.0, 2.0, 4.0, 6.0, 6.0]
    by_index = InterpolationImputer("index").fit_transform(
        pd.DataFrame({"v": [0.0, np.nan, 10.0]}, index=[0, 8, 10]))
    assert by_index["v"].tolist() == [0.0, 8.0, 10.0]
    times = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-05"])
    by_time = InterpolationImputer("time").fit_transform(
        pd.DataFrame({"v": [0.0, np.nan, 4.0]}, index=times))
    assert by_time["v"].tolist() == [0.0, 1.0, 4.0]
    with pytest.raises(ValueError, match="needs a frame with a DatetimeIndex"):
        InterpolationImputer("time").fit(data)
    with pytest.raises(ValueError, match="needs order"):
        InterpolationImputer("polynomial").fit(data)


def test_knn_imputation_equals_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 3))
    values[rng.random(values.shape) < 0.2] = np.nan
    frame = pd.DataFrame(values, columns=["p", "q", "r"])
    ours = KNNImputer(n_neighbors=3, weights="distance").fit(frame.iloc[:20])
    reference = SklearnKNNImputer(n_neighbors=3, weights="distance").fit(values[:20])
    assert ours.transform(frame.iloc[20:]).to_numpy() == pytest.approx(
        reference.transform(values[20:]))
    # by hand: the mean of the column over the 2 nearest rows (nan-euclidean)
    small = pd.DataFrame({"x": [1.0, 2.0, 10.0, 1.1], "y": [1.0, 3.0, 50.0, np.nan]})
    assert KNNImputer(n_neighbors=2).fit_transform(small)["y"].iloc[3] == pytest.approx(2.0)


def test_iterative_imputation_equals_scikit_learn_and_recovers_a_linear_relation() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    values = np.column_stack([x, 3 * x + 1 + rng.normal(scale=0.01, size=60)])
    holes = values.copy()
    holes[::5, 1] = np.nan
    frame = pd.DataFrame(holes, columns=["x", "y"])
    ours = IterativeImputer(max_iter=20, random_state=0).fit_transform(frame)
    reference = SklearnIterativeImputer(max_iter=20, random_state=0).fit_transform(holes)
    assert ours.to_numpy() == pytest.approx(reference)
    assert ours["y"].to_numpy()[::5] == pytest.approx(values[::5, 1], abs=0.05)
