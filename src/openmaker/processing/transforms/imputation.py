"""Imputation of missing values: mean, median, most frequent, constant (scikit-learn's
SimpleImputer), forward/backward fill and interpolation for ordered data, KNN and
iterative (MICE) imputation (scikit-learn's KNNImputer and IterativeImputer)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import (
    BOOLEAN,
    DATETIME,
    NUMERIC,
    STRING,
    FrameTransformer,
)

STRATEGIES = ("mean", "median", "most_frequent", "constant")
FILL_DIRECTIONS = ("forward", "backward", "both")
INTERPOLATION_METHODS = ("linear", "index", "time", "nearest", "zero", "slinear",
                         "quadratic", "cubic", "polynomial", "spline", "pchip", "akima")


def _require_values(transform: str, data: pd.DataFrame, why: str) -> None:
    empty = [name for name in data.columns if data[name].isna().all()]
    if empty:
        raise ValueError(f"{transform}: columns {empty} have no values at fit, so {why}")


def _restore_dtypes(result: pd.DataFrame, original: pd.DataFrame) -> pd.DataFrame:
    """Columns imputed as objects (a mix of kinds) back to numbers, booleans or strings."""
    for name in result.columns:
        if pd.api.types.is_numeric_dtype(original[name].dtype):
            result[name] = pd.to_numeric(result[name])
        else:
            result[name] = result[name].infer_objects()
    return result


class Imputer(FrameTransformer):
    """Fill missing values with each column's mean, median or most frequent value, or a
    constant (scikit-learn's SimpleImputer). Mean and median apply to numeric columns;
    most frequent and constant to numeric, boolean and string columns."""

    def __init__(self, strategy: str = "mean", fill_value: Any = None,
                 columns: list[str] | None = None) -> None:
        self.strategy = strategy
        self.fill_value = fill_value
        self.columns = columns

    @property
    def accepted_kinds(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.strategy in ("mean", "median"):
            return (NUMERIC,)
        return (NUMERIC, BOOLEAN, STRING)

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.impute import SimpleImputer

        if self.strategy not in STRATEGIES:
            raise ValueError(f"Imputer: strategy={self.strategy!r} is not one of {STRATEGIES}")
        if self.strategy == "constant" and self.fill_value is None:
            raise ValueError("Imputer: strategy='constant' needs fill_value")
        if self.strategy != "constant":
            _require_values("Imputer", data, f"their {self.strategy} is undefined")
        self.imputer_ = SimpleImputer(strategy=self.strategy, fill_value=self.fill_value,
                                      keep_empty_features=True)
        self.imputer_.fit(data.astype(object) if self._mixed(data) else data)
        self.statistics_ = dict(zip(data.columns, self.imputer_.statistics_, strict=True))

    @staticmethod
    def _mixed(data: pd.DataFrame) -> bool:
        return not all(pd.api.types.is_numeric_dtype(dtype) for dtype in data.dtypes)

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        if self._mixed(data):
            # SimpleImputer on object data: None and NaN both count as missing
            values = self.imputer_.transform(data.astype(object).where(data.notna(), np.nan))
            result = pd.DataFrame(values, columns=data.columns, index=data.index)
            return _restore_dtypes(result, data)
        values = self.imputer_.transform(data)
        return pd.DataFrame(values, columns=data.columns, index=data.index)


class FillImputer(FrameTransformer):
    """Fill gaps in ordered data (a time series, rows in order) from the previous row
    (forward), the next row (backward) or forward then backward (both); at most ``limit``
    consecutive gaps. Gaps with nothing to copy from stay missing."""

    accepted_kinds = (NUMERIC, BOOLEAN, STRING, DATETIME)

    def __init__(self, direction: str = "forward", limit: int | None = None,
                 columns: list[str] | None = None) -> None:
        self.direction = direction
        self.limit = limit
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if self.direction not in FILL_DIRECTIONS:
            raise ValueError(f"FillImputer: direction={self.direction!r} is not one of "
                             f"{FILL_DIRECTIONS}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"FillImputer: limit={self.limit!r} must be an integer >= 1")

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        if self.direction in ("forward", "both"):
            data = data.ffill(limit=self.limit)
        if self.direction in ("backward", "both"):
            data = data.bfill(limit=self.limit)
        return data


class InterpolationImputer(FrameTransformer):
    """Fill gaps in ordered numeric data by interpolating between neighbouring rows
    (pandas' ``interpolate``): ``linear`` treats rows as equally spaced, ``index`` and
    ``time`` use the index values, the others are scipy's with ``order``."""

    def __init__(self, method: str = "linear", order: int | None = None,
                 limit: int | None = None, limit_direction: str = "both",
                 columns: list[str] | None = None) -> None:
        self.method = method
        self.order = order
        self.limit = limit
        self.limit_direction = limit_direction
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if self.method not in INTERPOLATION_METHODS:
            raise ValueError(f"InterpolationImputer: method={self.method!r} is not one of "
                             f"{INTERPOLATION_METHODS}")
        if self.method in ("polynomial", "spline") and self.order is None:
            raise ValueError(f"InterpolationImputer: method={self.method!r} needs order")
        if self.limit_direction not in ("forward", "backward", "both"):
            raise ValueError(f"InterpolationImputer: limit_direction={self.limit_direction!r}"
                             " is not one of forward, backward, both")
        if self.method == "time" and not isinstance(data.index, pd.DatetimeIndex):
            raise ValueError("InterpolationImputer: method='time' needs a frame with a "
                             "DatetimeIndex")

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        options: dict[str, Any] = {"method": self.method, "limit": self.limit,
                                   "limit_direction": self.limit_direction}
        if self.order is not None:
            options["order"] = self.order
        return data.astype(float).interpolate(**options)


class KNNImputer(FrameTransformer):
    """Fill each missing value with the mean of that column over the ``n_neighbors``
    nearest rows at fit (scikit-learn's KNNImputer, nan-euclidean distance)."""

    def __init__(self, n_neighbors: int = 5, weights: str = "uniform",
                 columns: list[str] | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.impute import KNNImputer as SklearnKNNImputer

        _require_values("KNNImputer", data, "there is nothing to average")
        self.imputer_ = SklearnKNNImputer(n_neighbors=self.n_neighbors,
                                          weights=self.weights).fit(data.to_numpy(dtype=float))

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        return self.imputer_.transform(data.to_numpy(dtype=float))


class IterativeImputer(FrameTransformer):
    """Multivariate imputation by chained equations (MICE): each column with gaps is
    modelled from the others in turn, round after round (scikit-learn's
    IterativeImputer, BayesianRidge by default)."""

    def __init__(self, estimator: Any = None, max_iter: int = 10, tol: float = 1e-3,
                 initial_strategy: str = "mean", sample_posterior: bool = False,
                 random_state: int | None = None,
                 columns: list[str] | None = None) -> None:
        self.estimator = estimator
        self.max_iter = max_iter
        self.tol = tol
        self.initial_strategy = initial_strategy
        self.sample_posterior = sample_posterior
        self.random_state = random_state
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer as SklearnIterativeImputer

        _require_values("IterativeImputer", data, "there is nothing to model them from")
        self.imputer_ = SklearnIterativeImputer(
            estimator=self.estimator, max_iter=self.max_iter, tol=self.tol,
            initial_strategy=self.initial_strategy, sample_posterior=self.sample_posterior,
            random_state=self.random_state).fit(data.to_numpy(dtype=float, copy=True))
        self.n_iter_ = self.imputer_.n_iter_

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        return self.imputer_.transform(data.to_numpy(dtype=float, copy=True))
