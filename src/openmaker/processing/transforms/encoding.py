"""Encoding of categorical columns: one-hot with rare values grouped, ordinal (scikit-learn's
encoders), target encoding with smoothing (category-encoders' TargetEncoder) and hashing
(scikit-learn's FeatureHasher)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import (
    BOOLEAN,
    NUMERIC,
    STRING,
    FrameTransformer,
)

CATEGORICAL = (STRING, BOOLEAN)


def categories_frame(data: pd.DataFrame) -> pd.DataFrame:
    """The columns as object arrays of str (missing values NaN), so one column never mixes
    numbers and strings (a CSV row may parse '1' as a number)."""
    return pd.DataFrame({name: data[name].map(_category, na_action="ignore").astype(object)
                         for name in data.columns}, index=data.index).where(data.notna(),
                                                                            np.nan)


def _category(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # "3" and 3.0 name the same category
    return str(value)


class OneHotEncoder(FrameTransformer):
    """One indicator column per category (``<column>_<category>``). Categories seen fewer
    than ``min_frequency`` times (a count, or a fraction of the rows) or beyond the
    ``max_categories`` most frequent are grouped into ``<column>_infrequent_sklearn``, which
    also takes unknown categories at transform (``handle_unknown='infrequent_if_exist'``;
    with no infrequent group an unknown value gets all zeros). Applies to string and
    boolean columns unless ``columns`` names others."""

    accepted_kinds = (STRING, BOOLEAN, NUMERIC)
    default_kinds = CATEGORICAL

    def __init__(self, min_frequency: int | float | None = None,
                 max_categories: int | None = None,
                 handle_unknown: str = "infrequent_if_exist", drop: str | None = None,
                 columns: list[str] | None = None) -> None:
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.handle_unknown = handle_unknown
        self.drop = drop
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.preprocessing import OneHotEncoder as SklearnOneHotEncoder

        self.encoder_ = SklearnOneHotEncoder(
            min_frequency=self.min_frequency, max_categories=self.max_categories,
            handle_unknown=self.handle_unknown, drop=self.drop, sparse_output=False,
            dtype=np.float64).fit(categories_frame(data))
        self.categories_ = dict(zip(data.columns, self.encoder_.categories_, strict=True))

    def _output_names(self, columns: list[str]) -> list[str]:
        return [str(name) for name in self.encoder_.get_feature_names_out(columns)]

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        return self.encoder_.transform(categories_frame(data))


class OrdinalEncoder(FrameTransformer):
    """Each category replaced by an integer: by ``categories`` (a mapping column -> its
    categories in order, e.g. ``{"size": ["S", "M", "L"]}``) or, for the other columns, in
    sorted order. Unknown categories at transform get ``unknown_value`` (default -1);
    missing values stay missing."""

    accepted_kinds = (STRING, BOOLEAN, NUMERIC)
    default_kinds = CATEGORICAL

    def __init__(self, categories: Mapping[str, Sequence[Any]] | None = None,
                 unknown_value: int | float = -1, columns: list[str] | None = None) -> None:
        self.categories = categories
        self.unknown_value = unknown_value
        self.columns = columns

    def _columns_param(self) -> Any:
        if self.columns is None and self.categories:
            return list(self.categories)
        return self.columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.preprocessing import OrdinalEncoder as SklearnOrdinalEncoder

        frame = categories_frame(data)
        orders: list[Any] = []
        for name in data.columns:
            if self.categories and name in self.categories:
                order = [_category(value) for value in self.categories[name]]
                seen = set(frame[name].dropna())
                unlisted = sorted(seen - set(order))
                if unlisted:
                    raise ValueError(f"OrdinalEncoder: column {name!r} has categories "
                                     f"{unlisted} not in its categories= list {order}")
                orders.append(np.asarray(order, dtype=object))
            else:
                orders.append(np.asarray(sorted(set(frame[name].dropna())), dtype=object))
        self.encoder_ = SklearnOrdinalEncoder(
            categories=orders, handle_unknown="use_encoded_value",
            unknown_value=self.unknown_value).fit(frame)
        self.categories_ = dict(zip(data.columns, self.encoder_.categories_, strict=True))

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        codes = self.encoder_.transform(categories_frame(data)).astype(float)
        # the categories exclude missing, so scikit-learn would code it as unknown
        codes[data.isna().to_numpy()] = np.nan
        return codes


@contextmanager
def _quiet_category_encoders() -> Iterator[None]:
    """category-encoders 2.11 sets pandas' deprecated 'future.no_silent_downcasting' option,
    which warns under pandas 3; that warning is theirs to fix and says nothing about the
    data, so it is silenced here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no_silent_downcasting.*")
        yield


class TargetEncoder(FrameTransformer):
    """Each category replaced by the target's mean over its rows, smoothed toward the
    overall mean (category-encoders' TargetEncoder): with n rows in the category,
    s = 1 / (1 + exp(-(n - min_samples_leaf) / smoothing)) and the encoding is
    prior * (1 - s) + category_mean * s. Unknown and missing categories get the prior.
    Needs y at fit (numeric, or binary 0/1)."""

    accepted_kinds = (STRING, BOOLEAN, NUMERIC)
    default_kinds = CATEGORICAL

    def __init__(self, smoothing: float = 10.0, min_samples_leaf: int = 20,
                 columns: list[str] | None = None) -> None:
        self.smoothing = smoothing
        self.min_samples_leaf = min_samples_leaf
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        import category_encoders

        if y is None:
            raise ValueError("TargetEncoder: fit needs the target y")
        values = np.asarray(y)
        if values.ndim != 1 or len(values) != len(data):
            raise ValueError(f"TargetEncoder: y has {values.size} values for {len(data)} rows "
                             "(one target per row)")
        target = pd.Series(values, index=data.index)
        if not pd.api.types.is_numeric_dtype(target.dtype):
            raise ValueError("TargetEncoder: y must be numeric (or 0/1 for a binary target), "
                             f"got dtype {target.dtype}")
        if not self.smoothing > 0:
            raise ValueError(f"TargetEncoder: smoothing={self.smoothing!r} must be > 0")
        encoder = category_encoders.TargetEncoder(
            cols=list(data.columns), smoothing=float(self.smoothing),
            min_samples_leaf=int(self.min_samples_leaf), handle_unknown="value",
            handle_missing="value", return_df=True)
        with _quiet_category_encoders():
            self.encoder_ = encoder.fit(categories_frame(data), target.astype(float))
        self.prior_ = float(target.mean())

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        with _quiet_category_encoders():
            encoded = self.encoder_.transform(categories_frame(data))
        return encoded[list(data.columns)].to_numpy(dtype=float)


class HashingEncoder(FrameTransformer):
    """The selected columns' values hashed into ``n_components`` count columns
    (``hash_0..``): each row's features ``<column>=<value>`` are hashed with signed
    32-bit MurmurHash3 (scikit-learn's FeatureHasher), so unseen categories need no
    refit; collisions add up. Missing values are not hashed."""

    accepted_kinds = (STRING, BOOLEAN, NUMERIC)
    default_kinds = CATEGORICAL

    def __init__(self, n_components: int = 8, columns: list[str] | None = None) -> None:
        self.n_components = n_components
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.feature_extraction import FeatureHasher

        if not isinstance(self.n_components, int) or self.n_components < 1:
            raise ValueError(f"HashingEncoder: n_components={self.n_components!r} must be an "
                             "integer >= 1")
        self.hasher_ = FeatureHasher(n_features=self.n_components, input_type="string",
                                     alternate_sign=False)

    def _output_names(self, columns: list[str]) -> list[str]:
        return [f"hash_{index}" for index in range(self.n_components)]

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        frame = categories_frame(data)
        names = list(frame.columns)
        rows = ([f"{name}={value}" for name, value in zip(names, row, strict=True)
                 if isinstance(value, str)] for row in frame.itertuples(index=False))
        return self.hasher_.transform(rows).toarray()
