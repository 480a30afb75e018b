"""Binning: quantile and uniform bins against numpy's quantiles and widths, one-hot bins,
custom edges (edges inclusive as documented, labels, out-of-range handling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from openmaker.processing.transforms import CustomBinner, KBinsDiscretizer


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"v": [0.0, 1, 2, 3, 4, 5, 6, 7, 8, 100], "w": np.arange(10.0)})


def test_uniform_bins_have_equal_width(frame) -> None:
    binner = KBinsDiscretizer(n_bins=4, strategy="uniform", columns=["v"]).fit(frame)
    assert binner.bin_edges_["v"].tolist() == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert binner.transform(frame)["v"].tolist() == [0] * 9 + [3]
    assert binner.transform(frame)["w"].tolist() == frame["w"].tolist()


def test_quantile_bins_hold_equal_counts(frame) -> None:
    binner = KBinsDiscretizer(n_bins=2, strategy="quantile").fit(frame)
    assert binner.bin_edges_["v"].tolist() == pytest.approx(
        [0.0, float(np.quantile(frame["v"], 0.5)), 100.0])
    out = binner.transform(frame)
    assert out["v"].tolist() == [0] * 5 + [1] * 5
    assert out["w"].tolist() == [0] * 5 + [1] * 5


def test_one_hot_bins_are_named_by_column_and_bin(frame) -> None:
    out = KBinsDiscretizer(n_bins=2, encode="onehot", columns=["w"]).fit_transform(frame)
    assert list(out.columns) == ["v", "w_0", "w_1"]
    assert out["w_0"].tolist() == [1.0] * 5 + [0.0] * 5
    assert (out["w_0"] + out["w_1"]).eq(1).all()


def test_custom_edges_put_edge_values_in_the_upper_bin_unless_right() -> None:
    frame = pd.DataFrame({"age": [0, 17, 18, 64, 65, 90]})
    binner = CustomBinner([0, 18, 65, 90]).fit(frame)
    assert binner.transform(frame)["age"].tolist() == [0, 0, 1, 1, 2, 2]
    right = CustomBinner([0, 18, 65, 90], right=True).fit(frame)
    assert right.transform(frame)["age"].tolist() == [0, 0, 0, 1, 1, 2]
    labelled = CustomBinner({"age": [0, 18, 65, np.inf]},
                            labels=["child", "adult", "senior"]).fit(frame)
    assert labelled.columns_ == ["age"]
    assert labelled.transform(frame)["age"].tolist() == [
        "child", "child", "adult", "adult", "senior", "senior"]


def test_custom_edges_out_of_range_error_clip_or_nan() -> None:
    frame = pd.DataFrame({"x": [-5.0, 0.5, 1.5, 9.0, np.nan]})
    with pytest.raises(ValueError, match=r"column 'x': 2 values outside \[0, 2\], first -5.0 "
                                         r"at row 0"):
        CustomBinner([0, 1, 2]).fit_transform(frame)
    clipped = CustomBinner([0, 1, 2], out_of_range="clip").fit_transform(frame)["x"]
    assert clipped.tolist()[:4] == [0, 0, 1, 1] and np.isnan(clipped.iloc[4])
    missing = CustomBinner([0, 1, 2], out_of_range="nan").fit_transform(frame)["x"]
    assert missing.isna().tolist() == [True, False, False, True, True]


def test_custom_edges_are_validated() -> None:
    frame = pd.DataFrame({"x": [1.0]})
    with pytest.raises(ValueError, match="edges is required"):
        CustomBinner().fit(frame)
    with pytest.raises(ValueError, match="strictly increasing"):
        CustomBinner([0, 2, 1]).fit(frame)
    with pytest.raises(ValueError, match="at least two numbers"):
        CustomBinner([0]).fit(frame)
    with pytest.raises(ValueError, match="3 labels for the 2 bins"):
        CustomBinner([0, 1, 2], labels=["a", "b", "c"]).fit(frame)
