"""Random over- and under-sampling, SMOTE, ADASYN and edited nearest neighbours: class
counts after resampling, synthetic rows where SMOTE puts them, names kept, seeds, clear
errors, and use at fit time only in imbalanced-learn's Pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import ADASYN, SMOTE
from imblearn.pipeline import make_pipeline
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors

from openmaker.processing.transforms.imbalance import (
    ADASYNSampling,
    EditedNearestNeighboursSampling,
    RandomOverSampling,
    RandomUnderSampling,
    SMOTESampling,
)


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"height": rng.normal(0, 1, 30), "weight": rng.normal(5, 2, 30)},
                     index=[f"r{i}" for i in range(30)])
    X.loc[X.index[24:], "height"] += 3.0
    y = pd.Series(["common"] * 24 + ["rare"] * 6, index=X.index, name="kind")
    return X, y


def test_random_over_sampling_repeats_minority_rows(data: tuple[pd.DataFrame, pd.Series]
                                                    ) -> None:
    X, y = data
    sampler = RandomOverSampling(random_state=0)
    Xr, yr = sampler.fit_resample(X, y)
    assert list(Xr.columns) == ["height", "weight"] and yr.name == "kind"
    assert yr.value_counts().to_dict() == {"common": 24, "rare": 24}
    assert sampler.class_counts_in_ == {"common": 24, "rare": 6}
    assert sampler.class_counts_out_ == {"common": 24, "rare": 24}
    originals = {tuple(row) for row in X[y == "rare"].to_numpy()}
    assert {tuple(row) for row in Xr[yr == "rare"].to_numpy()} <= originals
    pd.testing.assert_frame_equal(Xr.iloc[:30], X.reset_index(drop=True))
    again, _ = RandomOverSampling(random_state=0).fit_resample(X, y)
    pd.testing.assert_frame_equal(again, Xr)
    other, _ = RandomOverSampling(random_state=1).fit_resample(X, y)
    assert not other.equals(Xr)


def test_random_under_sampling_keeps_a_subset_of_majority_rows(
        data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    Xr, yr = RandomUnderSampling(random_state=0, sampling_strategy=0.5).fit_resample(X, y)
    assert yr.value_counts().to_dict() == {"common": 12, "rare": 6}
    common = {tuple(row) for row in X[y == "common"].to_numpy()}
    kept = [tuple(row) for row in Xr[yr == "common"].to_numpy()]
    assert set(kept) <= common and len(set(kept)) == 12


def test_smote_puts_synthetic_rows_between_a_row_and_a_near_neighbour(
        data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    Xr, yr = SMOTESampling(k_neighbors=3, random_state=4).fit_resample(X, y)
    assert yr.value_counts().to_dict() == {"common": 24, "rare": 24}
    reference_X, _ = SMOTE(k_neighbors=3, random_state=4).fit_resample(
        X.reset_index(drop=True), y.reset_index(drop=True))
    np.testing.assert_allclose(Xr.to_numpy(), reference_X.to_numpy())
    rare = X[y == "rare"].to_numpy()
    _, neighbours = NearestNeighbors(n_neighbors=4).fit(rare).kneighbors(rare)
    for point in Xr.iloc[30:].to_numpy():
        on_a_segment = False
        for i, row in enumerate(rare):
            for j in neighbours[i][1:]:
                step = rare[j] - row
                gap = (point - row) @ step / (step @ step)
                if 0 <= gap <= 1 and np.allclose(row + gap * step, point):
                    on_a_segment = True
        assert on_a_segment, point


def test_smote_names_the_class_with_too_few_rows(data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    with pytest.raises(ValueError, match=r"k_neighbors=6 needs at least 7 rows.*'rare' \(6"):
        SMOTESampling(k_neighbors=6).fit_resample(X, y)


def test_adasyn_balances_and_matches_imbalanced_learn(data: tuple[pd.DataFrame, pd.Series]
                                                      ) -> None:
    X, y = data
    sampler = ADASYNSampling(n_neighbors=5, random_state=2)
    Xr, yr = sampler.fit_resample(X, y)
    reference_X, reference_y = ADASYN(n_neighbors=5, random_state=2).fit_resample(
        X.reset_index(drop=True), y.reset_index(drop=True))
    np.testing.assert_allclose(Xr.to_numpy(), reference_X.to_numpy())
    assert yr.tolist() == list(reference_y)
    # ADASYN balances approximately: the count follows the neighbourhoods' class mix
    assert abs(sampler.class_counts_out_["rare"] - 24) <= 3
    assert sampler.class_counts_out_["common"] == 24
    with pytest.raises(ValueError, match=r"n_neighbors=6 needs at least 7 rows.*'rare'"):
        ADASYNSampling(n_neighbors=6).fit_resample(X, y)
    # imbalanced-learn's own refusal comes back as a ValueError naming the resampler
    apart = pd.DataFrame({"x": list(range(20)) + [1000.0 + i for i in range(6)]})
    with pytest.raises(ValueError, match="ADASYNSampling: Not any neigbours belong"):
        ADASYNSampling(n_neighbors=3).fit_resample(apart, pd.Series(["a"] * 20 + ["b"] * 6))


def test_edited_nearest_neighbours_drops_majority_rows_among_the_minority() -> None:
    X = pd.DataFrame({"x": [0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22.1, 23, 24, 22]})
    y = pd.Series(["big"] * 10 + ["small"] * 5 + ["big"])
    sampler = EditedNearestNeighboursSampling(n_neighbors=3)
    Xr, yr = sampler.fit_resample(X, y)
    assert 22.0 not in Xr["x"].tolist()
    assert sampler.class_counts_out_ == {"big": 10, "small": 5}
    assert Xr["x"].tolist() == X["x"].iloc[:15].tolist()


def test_resample_frame_keeps_the_target_column_in_place(
        data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    frame = X.assign(kind=y)[["height", "kind", "weight"]]
    out = SMOTESampling(random_state=0).resample_frame(frame, "kind")
    assert list(out.columns) == ["height", "kind", "weight"]
    assert out["kind"].value_counts().to_dict() == {"common": 24, "rare": 24}
    with pytest.raises(ValueError, match="target 'label' is not a column"):
        SMOTESampling().resample_frame(frame, "label")


def test_distance_methods_refuse_text_and_missing_values(
        data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    with pytest.raises(ValueError, match=r"needs numeric columns.*'colour'"):
        SMOTESampling().fit_resample(X.assign(colour="red"), y)
    with pytest.raises(ValueError, match=r"\['weight'\] have missing values"):
        EditedNearestNeighboursSampling().fit_resample(
            X.assign(weight=[np.nan] + [1.0] * 29), y)
    # random sampling copies rows and takes any column
    Xr, _ = RandomOverSampling(random_state=0).fit_resample(X.assign(colour="red"), y)
    assert Xr["colour"].eq("red").all()


def test_bad_labels_are_refused(data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    with pytest.raises(ValueError, match="single class"):
        RandomOverSampling().fit_resample(X, pd.Series(["a"] * 30))
    with pytest.raises(ValueError, match="one label per row"):
        RandomOverSampling().fit_resample(X, y.iloc[:5])
    with pytest.raises(ValueError, match=r"missing labels at row positions \[0\]"):
        RandomOverSampling().fit_resample(X, pd.Series([None] + ["a"] * 29))
    with pytest.raises(ValueError, match="no rows"):
        SMOTESampling().fit_resample(X.iloc[:0], y.iloc[:0])
    with pytest.raises(ValueError, match="sampling_strategy"):
        RandomUnderSampling(sampling_strategy=2.0).fit_resample(X, y)


def test_resamplers_run_at_fit_time_only_in_imbalanced_learn_pipeline(
        data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, y = data
    pipeline = make_pipeline(SMOTESampling(random_state=0), LogisticRegression())
    pipeline.fit(X, y)
    assert pipeline[0].class_counts_out_ == {"common": 24, "rare": 24}
    assert pipeline.predict(X).shape == (30,)  # predicting resamples nothing
