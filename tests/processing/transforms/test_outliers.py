"""IQR fences, z-score fences and the local outlier factor: fences equal numpy's numbers,
fitted fences apply unchanged to new data, flag / clip / remove, and the sampler form in
imbalanced-learn's Pipeline."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from imblearn.pipeline import make_pipeline
from scipy import stats
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline as make_sklearn_pipeline

from openmaker.processing.transforms import SchemaMismatchError, StandardScaler, load, save
from openmaker.processing.transforms.outliers import (
    IQROutliers,
    LocalOutlierFactorOutliers,
    ZScoreOutliers,
    iqr_fences,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 100],
                         "b": [-50, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                         "name": list("abcdefghij")})


def test_iqr_fences_equal_numpy_quartiles(frame: pd.DataFrame) -> None:
    method = IQROutliers(factor=2.0).fit(frame)
    assert method.columns_ == ["a", "b"]
    for column in ("a", "b"):
        q1, q3 = np.percentile(frame[column], [25, 75])
        assert method.lower_[column] == pytest.approx(q1 - 2.0 * (q3 - q1))
        assert method.upper_[column] == pytest.approx(q3 + 2.0 * (q3 - q1))
    assert iqr_fences(frame["a"]) == pytest.approx((3.25 - 1.5 * 4.5, 7.75 + 1.5 * 4.5))


def test_iqr_mask_flags_the_values_outside_the_fences(frame: pd.DataFrame) -> None:
    method = IQROutliers().fit(frame)
    mask = method.outlier_mask(frame)
    assert list(mask.columns) == ["a", "b"]
    assert mask["a"].tolist() == [False] * 9 + [True]
    assert mask["b"].tolist() == [True] + [False] * 9
    assert method.outlier_rows(frame).tolist() == [True] + [False] * 8 + [True]
    flagged = method.transform(frame)
    assert list(flagged.columns) == ["a", "b", "name", "a_outlier", "b_outlier"]
    assert list(method.get_feature_names_out()) == list(flagged.columns)
    assert flagged["a_outlier"].sum() == 1 and flagged["b_outlier"].sum() == 1


def test_iqr_clip_and_remove(frame: pd.DataFrame) -> None:
    clipper = IQROutliers(action="clip").fit(frame)
    clipped = clipper.transform(frame)
    assert clipped["a"].iloc[-1] == pytest.approx(clipper.upper_["a"])
    assert clipped["b"].iloc[0] == pytest.approx(clipper.lower_["b"])
    pd.testing.assert_series_equal(clipped["a"].iloc[:-1], frame["a"].iloc[:-1])
    assert clipped["name"].tolist() == frame["name"].tolist()
    removed = IQROutliers(action="remove").fit_transform(frame)
    assert removed.index.tolist() == list(range(1, 9))


def test_fitted_fences_apply_unchanged_to_new_data(frame: pd.DataFrame) -> None:
    method = IQROutliers(columns=["a"], action="clip").fit(frame)
    upper = method.upper_["a"]
    fresh = pd.DataFrame({"a": [0.0, 1000.0, -1000.0], "b": [1, 2, 3], "name": list("xyz")})
    out = method.transform(fresh)
    assert method.upper_["a"] == upper
    assert out["a"].tolist() == pytest.approx([0.0, upper, method.lower_["a"]])
    assert out["b"].tolist() == [1, 2, 3]  # not a checked column
    with pytest.raises(SchemaMismatchError, match="'b'"):
        method.transform(fresh.drop(columns=["b"]))


def test_missing_values_are_never_outliers() -> None:
    data = pd.DataFrame({"a": [1.0, 2.0, np.nan, 3.0, 50.0]})
    method = IQROutliers(action="clip").fit(data)
    q1, q3 = np.nanpercentile(data["a"], [25, 75])
    assert method.upper_["a"] == pytest.approx(q3 + 1.5 * (q3 - q1))
    assert method.outlier_mask(data)["a"].tolist() == [False, False, False, False, True]
    assert np.isnan(method.transform(data)["a"].iloc[2])


def test_z_score_fences_equal_scipy(frame: pd.DataFrame) -> None:
    method = ZScoreOutliers(columns=["a"], threshold=2.5).fit(frame)
    expected = stats.zscore(frame["a"].to_numpy())
    np.testing.assert_allclose(method.z_scores(frame)["a"], expected)
    assert method.mean_["a"] == pytest.approx(frame["a"].mean())
    assert method.lower_["a"] == pytest.approx(frame["a"].mean() - 2.5 * frame["a"].std(ddof=0))
    assert method.outlier_mask(frame)["a"].tolist() == (np.abs(expected) > 2.5).tolist()
    assert ZScoreOutliers().threshold == 3.0
    # with the default threshold of 3, 100 (z = 2.99) is not an outlier among ten rows
    assert not ZScoreOutliers(columns=["a"]).fit(frame).outlier_rows(frame).any()


def test_z_score_remove_on_new_data_uses_training_statistics() -> None:
    train = pd.DataFrame({"x": np.arange(100, dtype=float)})
    method = ZScoreOutliers(action="remove").fit(train)
    bound = 49.5 + 3 * train["x"].std(ddof=0)
    new = pd.DataFrame({"x": [10.0, bound - 0.01, bound + 0.01, 500.0]})
    assert method.transform(new)["x"].tolist() == [10.0, bound - 0.01]


def test_local_outlier_factor_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(60, 2)), columns=["u", "v"])
    data.loc[59] = [9.0, 9.0]
    method = LocalOutlierFactorOutliers(n_neighbors=10)
    flagged = method.fit_transform(data)
    expected = LocalOutlierFactor(n_neighbors=10).fit_predict(data.to_numpy()) == -1
    assert flagged["outlier"].tolist() == expected.tolist()
    assert bool(flagged["outlier"].iloc[-1])
    np.testing.assert_allclose(method.negative_outlier_factor_,
                               LocalOutlierFactor(n_neighbors=10).fit(data.to_numpy())
                               .negative_outlier_factor_)
    fresh = pd.DataFrame({"u": [0.0, 12.0], "v": [0.0, -12.0]})
    assert method.outlier_rows(fresh).tolist() == [False, True]
    kept = LocalOutlierFactorOutliers(n_neighbors=10, action="remove").fit_transform(data)
    assert len(kept) == len(data) - expected.sum()
    assert 59 not in kept.index


def test_local_outlier_factor_rejects_clip_missing_values_and_too_many_neighbours() -> None:
    data = pd.DataFrame({"u": [0.0, 1.0, 2.0, np.nan], "v": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="action='clip' is not one of"):
        LocalOutlierFactorOutliers(action="clip").fit(data)
    with pytest.raises(ValueError, match=r"\['u'\] have missing values"):
        LocalOutlierFactorOutliers(n_neighbors=2).fit(data)
    with pytest.raises(ValueError, match="n_neighbors must be an integer in 1..3"):
        LocalOutlierFactorOutliers().fit(data.fillna(0))


def test_bad_parameters_and_empty_input_are_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="action='drop' is not one of"):
        IQROutliers(action="drop").fit(frame)
    with pytest.raises(ValueError, match="factor must be a number >= 0"):
        IQROutliers(factor=-1).fit(frame)
    with pytest.raises(ValueError, match="threshold must be a number > 0"):
        ZScoreOutliers(threshold=0).fit(frame)
    with pytest.raises(ValueError, match="no rows"):
        IQROutliers().fit(frame.iloc[:0])
    with pytest.raises(ValueError, match="kind it cannot handle"):
        IQROutliers(columns=["name"]).fit(frame)
    with pytest.raises(ValueError, match=r"columns \['a'\] hold infinite values"):
        ZScoreOutliers().fit(frame.assign(a=[np.inf] + [1.0] * 9))
    # an infinity in new data is simply beyond the fitted fence
    clipper = IQROutliers(action="clip").fit(frame)
    clipped = clipper.transform(frame.assign(a=[np.inf] + [1.0] * 9))
    assert clipped["a"].iloc[0] == clipper.upper_["a"]


def test_sampler_removes_outlier_rows_at_fit_time_only() -> None:
    X = pd.DataFrame({"x": np.arange(20, dtype=float)})
    y = pd.Series(2 * X["x"] + 1)
    X.loc[19, "x"], y.iloc[19] = 1000.0, -5000.0  # a wild row that would bend the fit
    pipeline = make_pipeline(IQROutliers(action="remove").as_sampler(), LinearRegression())
    pipeline.fit(X, y)
    model = pipeline[-1]
    assert model.coef_[0] == pytest.approx(2.0) and model.intercept_ == pytest.approx(1.0)
    # predicting keeps every row, the outlier included
    assert pipeline.predict(X).shape == (20,)


def test_fitted_clipping_is_saved_with_the_model_and_reloaded(frame: pd.DataFrame,
                                                              tmp_path) -> None:
    pipeline = make_sklearn_pipeline(IQROutliers(columns=["a"], action="clip"),
                                     StandardScaler(columns=["a", "b"]))
    expected = pipeline.fit_transform(frame)
    save(pipeline, tmp_path / "model")
    loaded = load(tmp_path / "model")
    assert loaded[0].upper_["a"] == pipeline[0].upper_["a"]
    pd.testing.assert_frame_equal(loaded.transform(frame), expected)
    with pytest.raises(SchemaMismatchError, match="'name'"):
        loaded.transform(frame.drop(columns=["name"]))


@pytest.mark.parametrize("method", [IQROutliers(action="clip"), ZScoreOutliers(action="clip")],
                         ids=lambda method: type(method).__name__)
def test_clipping_passes_scikit_learns_check_estimator(method) -> None:
    from sklearn.exceptions import SkipTestWarning
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=SkipTestWarning)  # array-API checks
        results = check_estimator(method, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert failed == []
    assert len(results) >= 40
