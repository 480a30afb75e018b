"""Scaling: standard, min-max, max-abs and robust scaling and the row normaliser against
hand computations, Box-Cox and Yeo-Johnson against scipy's lambdas, log/sqrt/cbrt, and
the domain errors naming the columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from openmaker.processing.transforms import (
    MathTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    PowerTransformer,
    RobustScaler,
    StandardScaler,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 100.0], "b": [-4.0, 2.0, 0.0, 1.0, 1.0],
                         "label": list("vwxyz")})


def test_standard_scaling_uses_mean_and_population_deviation(frame) -> None:
    scaled = StandardScaler().fit_transform(frame)
    a = frame["a"].to_numpy()
    assert scaled["a"].tolist() == pytest.approx(((a - a.mean()) / a.std()).tolist())
    assert scaled["label"].tolist() == list("vwxyz")
    centred_only = StandardScaler(with_std=False).fit_transform(frame)
    assert centred_only["b"].tolist() == pytest.approx([-4.0, 2.0, 0.0, 1.0, 1.0])


def test_min_max_and_max_abs_scaling(frame) -> None:
    fitted = MinMaxScaler().fit(frame)
    assert fitted.transform(frame)["b"].tolist() == pytest.approx([0.0, 1.0, 4 / 6, 5 / 6,
                                                                  5 / 6])
    new = frame.assign(b=[8.0, -10.0, 0.0, 0.0, 0.0])
    assert fitted.transform(new)["b"].iloc[0] == pytest.approx(2.0)  # outside the range
    ranged = MinMaxScaler(feature_range=(-1, 1), clip=True).fit(frame).transform(new)
    assert ranged["b"].tolist()[:2] == [1.0, -1.0]
    assert MaxAbsScaler().fit_transform(frame)["b"].tolist() == [-1.0, 0.5, 0.0, 0.25, 0.25]


def test_robust_scaling_uses_median_and_interquartile_range(frame) -> None:
    scaled = RobustScaler().fit_transform(frame)
    q1, median, q3 = np.percentile(frame["a"], [25, 50, 75])
    assert scaled["a"].tolist() == pytest.approx(((frame["a"] - median) / (q3 - q1)).tolist())
    assert scaled["a"].iloc[1] == pytest.approx((2.0 - 3.0) / 2.0)


def test_row_normaliser_scales_each_row(frame) -> None:
    l2 = Normalizer().fit_transform(frame)
    assert l2[["a", "b"]].iloc[0].tolist() == pytest.approx([1 / np.sqrt(17), -4 / np.sqrt(17)])
    l1 = Normalizer(norm="l1").fit_transform(frame)
    assert l1[["a", "b"]].iloc[1].tolist() == pytest.approx([0.5, 0.5])


def test_box_cox_and_yeo_johnson_fit_scipys_lambdas() -> None:
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"skewed": rng.lognormal(size=200), "any": rng.normal(size=200) ** 3})
    box_cox = PowerTransformer("box-cox", standardize=False).fit(data[["skewed"]])
    _, expected = stats.boxcox(data["skewed"])
    assert box_cox.lambdas_["skewed"] == pytest.approx(expected, rel=1e-4)
    out = box_cox.transform(data[["skewed"]])["skewed"]
    assert out.to_numpy() == pytest.approx(stats.boxcox(data["skewed"], expected), rel=1e-4)
    yeo = PowerTransformer("yeo-johnson", standardize=False).fit(data[["any"]])
    _, expected = stats.yeojohnson(data["any"])
    assert yeo.lambdas_["any"] == pytest.approx(expected, rel=1e-3)
    standardised = PowerTransformer().fit_transform(data)
    assert standardised.mean().to_numpy() == pytest.approx([0, 0], abs=1e-9)


def test_box_cox_of_non_positive_values_names_the_column(frame) -> None:
    with pytest.raises(ValueError, match=r"box-cox.*strictly positive values: column 'b': "
                                         r"2 values, first -4.0 at row 0"):
        PowerTransformer("box-cox").fit(frame)
    fitted = PowerTransformer("box-cox").fit(frame[["a"]])
    with pytest.raises(ValueError, match="column 'a'"):
        fitted.transform(pd.DataFrame({"a": [1.0, 0.0]}))


@pytest.mark.parametrize(("function", "expected"), [
    ("log", np.log), ("log2", np.log2), ("log10", np.log10), ("log1p", np.log1p),
    ("sqrt", np.sqrt), ("cbrt", np.cbrt)])
def test_math_functions(function, expected, frame) -> None:
    out = MathTransformer(function, columns=["a"]).fit_transform(frame)
    assert out["a"].tolist() == pytest.approx(expected(frame["a"].to_numpy()).tolist())


def test_math_functions_outside_their_domain_name_the_column(frame) -> None:
    with pytest.raises(ValueError, match=r"function='log'.*column 'b': 2 values, first -4.0"):
        MathTransformer("log").fit(frame)
    with pytest.raises(ValueError, match=r"function='sqrt'.*non-negative.*column 'b'"):
        MathTransformer("sqrt").fit(frame)
    assert MathTransformer("cbrt").fit_transform(frame)["b"].iloc[0] == pytest.approx(
        -(4 ** (1 / 3)))
    fitted = MathTransformer("log", columns=["a"]).fit(frame)
    with pytest.raises(ValueError, match=r"column 'a': 1 values, first 0.0 at row 1"):
        fitted.transform(frame.assign(a=[1.0, 0.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="function='exp' is not one of"):
        MathTransformer("exp").fit(frame)
