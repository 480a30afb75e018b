"""Encoding: one-hot with rare values grouped and unknown values at serving, ordinal with a
given order, target encoding against the smoothing formula by hand, hashing against
scikit-learn's FeatureHasher; categories parsed as numbers (CSV) still match."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction import FeatureHasher

from openmaker.processing.transforms import (
    HashingEncoder,
    OneHotEncoder,
    OrdinalEncoder,
    TargetEncoder,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"city": ["paris", "paris", "rome", "paris", "oslo", "rome", "lima"],
                         "size": ["S", "L", "M", "M", "S", "L", "S"],
                         "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]})


def test_one_hot_groups_rare_values_and_sends_unknowns_to_that_group(frame) -> None:
    encoder = OneHotEncoder(min_frequency=2, columns=["city"]).fit(frame)
    assert list(encoder.get_feature_names_out()) == [
        "city_paris", "city_rome", "city_infrequent_sklearn", "size", "price"]
    out = encoder.transform(frame)
    assert out["city_paris"].tolist() == [1, 1, 0, 1, 0, 0, 0]
    assert out["city_infrequent_sklearn"].tolist() == [0, 0, 0, 0, 1, 0, 1]
    unseen = encoder.transform(frame.assign(city=["tokyo"] + ["rome"] * 6))
    assert unseen.iloc[0][["city_paris", "city_rome", "city_infrequent_sklearn"]].tolist() == [
        0, 0, 1]


def test_one_hot_without_grouping_and_max_categories(frame) -> None:
    plain = OneHotEncoder().fit(frame)  # string columns by default
    assert plain.columns_ == ["city", "size"]
    assert [n for n in plain.get_feature_names_out() if n.startswith("size")] == [
        "size_L", "size_M", "size_S"]
    unknown = plain.transform(frame.assign(city="tokyo"))
    assert unknown.filter(like="city_").to_numpy().sum() == 0  # no group: all zeros
    top = OneHotEncoder(max_categories=2, columns=["city"]).fit(frame)
    assert [n for n in top.get_feature_names_out() if n.startswith("city")] == [
        "city_paris", "city_infrequent_sklearn"]


def test_categories_parsed_as_numbers_match_the_fitted_strings() -> None:
    fitted = OneHotEncoder(columns=["code"]).fit(pd.DataFrame({"code": ["1", "2", "2"]}))
    # a CSV request parses the same codes as numbers
    out = fitted.transform(pd.DataFrame({"code": pd.Series(["2", "1"], dtype=object)}))
    assert out.to_numpy().tolist() == [[0.0, 1.0], [1.0, 0.0]]
    numeric = OneHotEncoder(columns=["n"]).fit(pd.DataFrame({"n": [1.0, 2.0, 1.0]}))
    assert list(numeric.get_feature_names_out()) == ["n_1", "n_2"]


def test_ordinal_encoding_follows_the_given_order_and_marks_unknowns(frame) -> None:
    encoder = OrdinalEncoder(categories={"size": ["S", "M", "L"]}).fit(frame)
    assert encoder.columns_ == ["size"]
    out = encoder.transform(frame.assign(size=["S", "L", "M", "M", "XL", "L", None]))
    assert out["size"].tolist()[:6] == [0, 2, 1, 1, -1, 2]
    assert math.isnan(out["size"].iloc[6])
    sorted_codes = OrdinalEncoder(columns=["city"]).fit_transform(frame)
    assert sorted_codes["city"].tolist() == [2, 2, 3, 2, 1, 3, 0]  # lima, oslo, paris, rome
    with pytest.raises(ValueError, match=r"column 'size' has categories \['M'\] not in"):
        OrdinalEncoder(categories={"size": ["S", "L"]}).fit(frame)


def test_target_encoding_matches_the_smoothing_formula(frame) -> None:
    target = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    smoothing, leaf = 2.0, 1
    encoder = TargetEncoder(smoothing=smoothing, min_samples_leaf=leaf,
                            columns=["city"]).fit(frame, target)
    prior = target.mean()

    def expected(city: str) -> float:
        rows = target[frame["city"].to_numpy() == city]
        weight = 1 / (1 + math.exp(-(len(rows) - leaf) / smoothing))
        return prior * (1 - weight) + rows.mean() * weight

    out = encoder.transform(frame)
    assert out["city"].tolist() == pytest.approx([expected(c) for c in frame["city"]])
    assert encoder.prior_ == pytest.approx(prior)
    unknown = encoder.transform(frame.assign(city="tokyo"))
    assert unknown["city"].tolist() == pytest.approx([prior] * 7)
    with pytest.raises(ValueError, match="fit needs the target y"):
        TargetEncoder().fit(frame)
    with pytest.raises(ValueError, match="y has 2 values for 7 rows"):
        TargetEncoder().fit(frame, [1, 0])


def test_hashing_equals_feature_hasher_on_column_value_features(frame) -> None:
    encoder = HashingEncoder(n_components=16).fit(frame)
    assert encoder.columns_ == ["city", "size"]
    assert list(encoder.get_feature_names_out()) == [f"hash_{i}" for i in range(16)] + ["price"]
    reference = FeatureHasher(n_features=16, input_type="string", alternate_sign=False)
    expected = reference.transform(
        [[f"city={c}", f"size={s}"] for c, s in zip(frame["city"], frame["size"], strict=True)])
    out = encoder.transform(frame)
    assert out.filter(like="hash_").to_numpy() == pytest.approx(expected.toarray())
    assert out.filter(like="hash_").sum(axis=1).tolist() == [2.0] * 7
    # an unseen category hashes without a refit
    assert encoder.transform(frame.assign(city="tokyo")).filter(like="hash_").shape == (7, 16)
