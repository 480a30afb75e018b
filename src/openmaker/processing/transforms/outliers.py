"""Outliers: IQR fences, z-score fences and the local outlier factor, as detectors and as
transforms that remove, clip or flag outliers.

Each method learns on ``fit`` what an outlier is, from the training rows only, and applies
that unchanged to later data:

- :class:`IQROutliers`: a value is an outlier outside ``[Q1 - factor * IQR, Q3 + factor *
  IQR]`` of its column (quartiles by linear interpolation, as pandas and numpy compute
  them; ``factor`` 1.5 by default).
- :class:`ZScoreOutliers`: a value is an outlier when ``|x - mean| / std > threshold``
  (population standard deviation, as ``scipy.stats.zscore``; ``threshold`` 3 by default),
  that is outside ``[mean - threshold * std, mean + threshold * std]``.
- :class:`LocalOutlierFactorOutliers`: a row is an outlier when scikit-learn's
  ``LocalOutlierFactor`` finds it in a sparser neighbourhood than its neighbours; the
  method is multivariate, so it flags rows, not single values. ``fit_transform`` uses the
  training rows' own factors; ``transform`` on new rows scores them against the training
  rows (``novelty=True``). Distances depend on the columns' scales: scale them first.

The fence methods record the fences per column in ``lower_`` and ``upper_`` (Series
indexed by column). Missing values are never outliers and are left as they are.

``action`` says what ``transform`` does:

- ``"flag"`` (default): adds a boolean column per checked column, ``<column>_outlier``
  (for the local outlier factor a single ``outlier`` column), True for outliers;
- ``"clip"``: replaces values outside the fences by the nearest fence (fence methods only);
- ``"remove"``: drops the rows with an outlier in any checked column. Dropping rows
  changes their number, which a scikit-learn Pipeline cannot pass on to ``y``; inside a
  pipeline with a target use :meth:`as_sampler` in imbalanced-learn's Pipeline instead, which
  removes outlier rows from X and y at fit time only.

``outlier_mask(X)`` gives the detector's answer per row and column without changing X;
``outlier_rows(X)`` per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from openmaker.processing.transforms._base import (
    NUMERIC,
    FittedSchemaMixin,
    as_frame,
    require_rows,
    select_columns,
)

ACTIONS = ("flag", "clip", "remove")


def iqr_fences(values: Any, factor: float = 1.5) -> tuple[float, float]:
    """``(Q1 - factor * IQR, Q3 + factor * IQR)`` of the non-missing values; NaN for both
    when there are none."""
    series = pd.Series(values, dtype=float).dropna()
    if series.empty:
        return float("nan"), float("nan")
    q1, q3 = series.quantile([0.25, 0.75]).to_numpy()
    spread = q3 - q1
    return float(q1 - factor * spread), float(q3 + factor * spread)


class _OutlierMethod(FittedSchemaMixin, TransformerMixin, BaseEstimator):
    """Shared fit / mask / transform of the outlier methods; a subclass implements
    ``_fit(data)`` and ``_mask(data)`` on the checked columns."""

    allowed_actions: tuple[str, ...] = ACTIONS
    allows_missing = True

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # as for the column transforms: unchecked columns (strings) pass through, sparse
        # input is densified, and the output is a DataFrame
        tags.input_tags.string = True
        tags.input_tags.allow_nan = self.allows_missing
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    def fit(self, X: Any, y: Any = None) -> _OutlierMethod:
        """Learn what an outlier is from X's checked columns (y is ignored)."""
        name = type(self).__name__
        if self.action not in self.allowed_actions:
            raise ValueError(f"{name}: action={self.action!r} is not one of "
                             f"{', '.join(map(repr, self.allowed_actions))}")
        frame = as_frame(X, transform=name)
        require_rows(frame, name, "fit")
        if frame.shape[1] == 0:
            # scikit-learn's wording, which its conformance checks expect
            raise ValueError(f"{name}.fit: the input has no columns: 0 feature(s) (shape="
                             f"({len(frame)}, 0)) while a minimum of 1 is required.")
        self._record_schema(frame)
        self.columns_ = select_columns(name, frame, self.columns, (NUMERIC,))
        data = frame[self.columns_].astype(float)
        infinite = [column for column in self.columns_ if np.isinf(data[column]).any()]
        if infinite:
            # an infinity makes the quartiles, mean and std infinite or undefined
            raise ValueError(f"{name}.fit: columns {infinite} hold infinite values; replace "
                             "them (with NaN, or a finite cap) before fitting")
        self._fit(data)
        self.feature_names_out_ = np.asarray(self._output_names(), dtype=object)
        return self

    def outlier_mask(self, X: Any) -> pd.DataFrame:
        """True where a checked column's value is an outlier; one column per checked
        column, X's index."""
        frame = self._checked_input(X, "outlier_mask")
        return self._mask_frame(frame)

    def outlier_rows(self, X: Any) -> pd.Series:
        """True for the rows with an outlier in any checked column."""
        return self.outlier_mask(X).any(axis=1)

    def transform(self, X: Any) -> pd.DataFrame:
        """Flag, clip or remove the outliers of X, as ``action`` says."""
        frame = self._checked_input(X, "transform")
        return self._apply(frame, self._mask_frame(frame))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output column names, in order."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def as_sampler(self) -> Any:
        """An imbalanced-learn sampler that, at fit time only, fits a copy of this method
        on the training X and drops the rows it finds outliers from X and y; at predict
        time imbalanced-learn's Pipeline skips it."""
        from imblearn import FunctionSampler

        return FunctionSampler(func=_drop_outlier_rows, validate=False,
                               kw_args={"method": clone(self)})

    def _checked_input(self, X: Any, step: str) -> pd.DataFrame:
        check_is_fitted(self, "schema_")
        frame = self._input_frame(X)
        self._check_schema(frame)
        require_rows(frame, type(self).__name__, step)
        return frame[list(self.schema_)]

    def _mask_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        mask = self._mask(frame[self.columns_].astype(float))
        return pd.DataFrame(np.asarray(mask, dtype=bool), columns=self.columns_,
                            index=frame.index)

    def _apply(self, frame: pd.DataFrame, mask: pd.DataFrame) -> pd.DataFrame:
        if self.action == "remove":
            return frame[~mask.any(axis=1).to_numpy()]
        if self.action == "clip":
            clipped = frame.copy()
            for column in self.columns_:
                clipped[column] = frame[column].clip(self.lower_[column], self.upper_[column])
            return clipped
        flags = self._flags(mask)
        clashes = [name for name in flags.columns if name in frame.columns]
        if clashes:
            raise ValueError(f"{type(self).__name__}: flag columns {clashes} clash with input "
                             "columns; rename them")
        return pd.concat([frame, flags], axis=1)

    def _flags(self, mask: pd.DataFrame) -> pd.DataFrame:
        return mask.set_axis([f"{column}_outlier" for column in self.columns_], axis=1)

    def _output_names(self) -> list[str]:
        names = list(self.schema_)
        if self.action == "flag":
            names += [f"{column}_outlier" for column in self.columns_]
        return names

    def _fit(self, data: pd.DataFrame) -> None:
        raise NotImplementedError

    def _mask(self, data: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


def _drop_outlier_rows(X: Any, y: Any, method: _OutlierMethod) -> tuple[Any, Any]:
    """FunctionSampler's function: fit ``method`` on X and keep the rows it finds inliers."""
    frame = as_frame(X, transform=type(method).__name__)
    keep = ~method.fit(frame).outlier_rows(frame).to_numpy()
    labels = y if isinstance(y, pd.Series | np.ndarray) else np.asarray(y)
    return X[keep] if hasattr(X, "shape") else frame[keep], labels[keep]


class _FenceMethod(_OutlierMethod):
    """Outliers are the values outside per-column fences ``lower_`` and ``upper_``."""

    def _mask(self, data: pd.DataFrame) -> np.ndarray:
        # NaN compares False both ways, so missing values are never outliers.
        return ((data < self.lower_) | (data > self.upper_)).to_numpy()


class IQROutliers(_FenceMethod):
    """IQR fences: outliers are outside ``[Q1 - factor * IQR, Q3 + factor * IQR]``."""

    def __init__(self, columns: Any = None, *, factor: float = 1.5,
                 action: str = "flag") -> None:
        self.columns = columns
        self.factor = factor
        self.action = action

    def _fit(self, data: pd.DataFrame) -> None:
        if not np.isfinite(self.factor) or self.factor < 0:
            raise ValueError(f"IQROutliers: factor must be a number >= 0, got {self.factor!r}")
        quartiles = data.quantile([0.25, 0.75])
        self.q1_ = quartiles.loc[0.25]
        self.q3_ = quartiles.loc[0.75]
        spread = self.q3_ - self.q1_
        self.lower_ = self.q1_ - self.factor * spread
        self.upper_ = self.q3_ + self.factor * spread


class ZScoreOutliers(_FenceMethod):
    """z-score: outliers have ``|x - mean| / std > threshold`` (population std)."""

    def __init__(self, columns: Any = None, *, threshold: float = 3.0,
                 action: str = "flag") -> None:
        self.columns = columns
        self.threshold = threshold
        self.action = action

    def _fit(self, data: pd.DataFrame) -> None:
        if not np.isfinite(self.threshold) or self.threshold <= 0:
            raise ValueError("ZScoreOutliers: threshold must be a number > 0, got "
                             f"{self.threshold!r}")
        self.mean_ = data.mean()
        self.std_ = data.std(ddof=0)
        self.lower_ = self.mean_ - self.threshold * self.std_
        self.upper_ = self.mean_ + self.threshold * self.std_

    def z_scores(self, X: Any) -> pd.DataFrame:
        """``(x - mean_) / std_`` of each checked column (inf where std_ is 0 and x differs
        from the mean)."""
        data = self._checked_input(X, "z_scores")[self.columns_].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (data - self.mean_) / self.std_


class LocalOutlierFactorOutliers(_OutlierMethod):
    """Local outlier factor (scikit-learn's ``LocalOutlierFactor``) over the checked
    columns together; flags or removes whole rows."""

    allowed_actions = ("flag", "remove")
    allows_missing = False

    def __init__(self, columns: Any = None, *, n_neighbors: int = 20,
                 contamination: float | str = "auto", metric: str = "minkowski",
                 action: str = "flag") -> None:
        self.columns = columns
        self.n_neighbors = n_neighbors
        self.contamination = contamination
        self.metric = metric
        self.action = action

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """Fit, then flag or remove the training rows by their own outlier factors."""
        self.fit(X, y)
        frame = self._checked_input(X, "fit_transform")
        flagged = self.negative_outlier_factor_ < self.offset_
        mask = pd.DataFrame(np.repeat(flagged[:, None], len(self.columns_), axis=1),
                            columns=self.columns_, index=frame.index)
        return self._apply(frame, mask)

    def _fit(self, data: pd.DataFrame) -> None:
        from sklearn.neighbors import LocalOutlierFactor

        self._require_complete(data)
        if (isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, int)
                or not 1 <= self.n_neighbors < len(data)):
            raise ValueError(f"LocalOutlierFactorOutliers: n_neighbors must be an integer in "
                             f"1..{len(data) - 1} (fewer than the {len(data)} training rows), "
                             f"got {self.n_neighbors!r}")
        self.estimator_ = LocalOutlierFactor(n_neighbors=self.n_neighbors,
                                             contamination=self.contamination,
                                             metric=self.metric, novelty=True)
        self.estimator_.fit(data.to_numpy())
        self.negative_outlier_factor_ = self.estimator_.negative_outlier_factor_
        self.offset_ = float(self.estimator_.offset_)

    def _mask(self, data: pd.DataFrame) -> np.ndarray:
        self._require_complete(data)
        flagged = self.estimator_.predict(data.to_numpy()) == -1
        return np.repeat(flagged[:, None], len(self.columns_), axis=1)

    def _require_complete(self, data: pd.DataFrame) -> None:
        incomplete = [column for column in data.columns if data[column].isna().any()]
        if incomplete:
            raise ValueError(f"LocalOutlierFactorOutliers: columns {incomplete} have missing "
                             "values; impute them first (the factor needs distances)")

    def _flags(self, mask: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"outlier": mask.any(axis=1)}, index=mask.index)

    def _output_names(self) -> list[str]:
        return list(self.schema_) + (["outlier"] if self.action == "flag" else [])


__all__ = ["IQROutliers", "LocalOutlierFactorOutliers", "ZScoreOutliers", "iqr_fences"]
