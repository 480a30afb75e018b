"""Class imbalance: random over- and under-sampling, SMOTE, ADASYN and edited nearest
neighbours, over imbalanced-learn's samplers.

Each resampler takes a DataFrame (an array's columns are named ``x0..xn``) and the labels
(a Series or array, one per row) and returns a DataFrame with the same columns and dtypes
and a Series with the labels' name, both with a fresh RangeIndex (synthetic rows have no
original index); ``resample_frame(frame, target)`` does the same on a frame that holds the
target as a column. ``random_state`` seeds the random ones; edited nearest neighbours is
deterministic. ``class_counts_in_`` and ``class_counts_out_`` record the class counts
before and after. SMOTE, ADASYN and edited nearest neighbours measure distances, so they
need numeric columns without missing values (encode and impute first); SMOTE's synthetic
values in integer columns are cast back to integers, as imbalanced-learn does.

Resampling belongs to training only: the rows a model predicts on must never be resampled.
The resamplers implement ``fit_resample`` and no ``transform``, so in imbalanced-learn's
``imblearn.pipeline.Pipeline`` they run while the pipeline is fitted and are skipped by
``predict`` / ``transform``; scikit-learn's own Pipeline does not call ``fit_resample``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from openmaker.processing.transforms._base import NUMERIC, as_frame, frame_schema


class _Resampler(BaseEstimator):
    """Checks the inputs, runs the imbalanced-learn sampler, restores names."""

    needs_distances = False
    # imbalanced-learn's kind of sampling, for its check_sampling_strategy
    sampling_type = "over-sampling"

    def fit(self, X: Any, y: Any) -> _Resampler:
        """Resample X and y once (recording the class counts); pipelines call
        ``fit_resample``."""
        self.fit_resample(X, y)
        return self

    def fit_resample(self, X: Any, y: Any) -> tuple[pd.DataFrame, pd.Series]:
        """The resampled rows and their labels."""
        name = type(self).__name__
        frame = as_frame(X, transform=name)
        labels = self._labels(frame, y)
        self._check_columns(frame)
        counts = labels.value_counts(sort=False)
        if len(counts) < 2:
            raise ValueError(f"{name}: y has a single class {counts.index[0]!r}; resampling "
                             "needs at least two")
        self.class_counts_in_ = _count_dict(counts)
        self._check_classes(labels)
        sampler = self._sampler()
        try:
            resampled_X, resampled_y = sampler.fit_resample(frame.reset_index(drop=True),
                                                            labels.reset_index(drop=True))
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{name}: {exc}") from None
        self.sampler_ = sampler
        resampled_X = pd.DataFrame(resampled_X, columns=frame.columns).reset_index(drop=True)
        resampled_y = pd.Series(np.asarray(resampled_y), name=labels.name)
        self.class_counts_out_ = _count_dict(resampled_y.value_counts(sort=False))
        return resampled_X, resampled_y

    def resample_frame(self, frame: pd.DataFrame, target: str) -> pd.DataFrame:
        """``frame`` resampled, its ``target`` column as the labels; columns keep their
        order."""
        if not isinstance(frame, pd.DataFrame) or target not in frame.columns:
            columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else None
            raise ValueError(f"{type(self).__name__}: target {target!r} is not a column of "
                             f"the frame (its columns: {columns})")
        features, labels = self.fit_resample(frame.drop(columns=[target]), frame[target])
        features[target] = labels.to_numpy()
        return features[list(frame.columns)]

    def _labels(self, frame: pd.DataFrame, y: Any) -> pd.Series:
        name = type(self).__name__
        if len(frame) == 0:
            raise ValueError(f"{name}: the input has no rows (columns {list(frame.columns)})")
        if y is None:
            raise ValueError(f"{name}: y (the class labels) is required")
        labels = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y), name="y")
        if labels.ndim != 1 or len(labels) != len(frame):
            raise ValueError(f"{name}: y must have one label per row: {len(labels)} labels "
                             f"for {len(frame)} rows")
        if labels.isna().any():
            positions = np.flatnonzero(labels.isna().to_numpy())[:10].tolist()
            raise ValueError(f"{name}: y has missing labels at row positions {positions}")
        return labels

    def _check_columns(self, frame: pd.DataFrame) -> None:
        if not self.needs_distances:
            return
        name = type(self).__name__
        schema = frame_schema(frame)
        wrong = {column: kind for column, kind in schema.items() if kind != NUMERIC}
        if wrong:
            raise ValueError(f"{name} measures distances and needs numeric columns; these are "
                             f"not: {wrong}; encode them first")
        incomplete = [column for column in frame.columns if frame[column].isna().any()]
        if incomplete:
            raise ValueError(f"{name}: columns {incomplete} have missing values; impute them "
                             "first")

    def _classes_to_resample(self, labels: pd.Series) -> dict[Any, int]:
        """Class -> rows imbalanced-learn will generate or keep for it."""
        from imblearn.utils import check_sampling_strategy

        try:
            target = check_sampling_strategy(self.sampling_strategy, labels.to_numpy(),
                                             self.sampling_type)
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: sampling_strategy: {exc}") from None
        return {_plain(cls): int(rows) for cls, rows in target.items()}

    def _check_neighbours(self, labels: pd.Series, neighbours: int, parameter: str) -> None:
        """Every class to be over-sampled needs ``neighbours + 1`` rows of its own."""
        counts = _count_dict(labels.value_counts(sort=False))
        scarce = {cls: counts[cls] for cls, rows in self._classes_to_resample(labels).items()
                  if rows > 0 and counts[cls] < neighbours + 1}
        if scarce:
            listed = ", ".join(f"{cls!r} ({count} rows)" for cls, count in scarce.items())
            raise ValueError(f"{type(self).__name__}: {parameter}={neighbours} needs at least "
                             f"{neighbours + 1} rows in each class it over-samples; class "
                             f"{listed} has fewer: lower {parameter} or collect more rows")

    def _check_classes(self, labels: pd.Series) -> None:
        self._classes_to_resample(labels)

    def _sampler(self) -> Any:
        raise NotImplementedError


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _count_dict(counts: pd.Series) -> dict[Any, int]:
    return {_plain(cls): int(count) for cls, count in counts.sort_index().items()}


class RandomOverSampling(_Resampler):
    """Random over-sampling: repeats randomly drawn rows of the smaller classes
    (imbalanced-learn's ``RandomOverSampler``; ``shrinkage`` adds smoothed bootstrap noise)."""

    def __init__(self, *, sampling_strategy: Any = "auto", random_state: int | None = None,
                 shrinkage: float | dict | None = None) -> None:
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state
        self.shrinkage = shrinkage

    def _sampler(self) -> Any:
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=self.sampling_strategy,
                                 random_state=self.random_state, shrinkage=self.shrinkage)


class RandomUnderSampling(_Resampler):
    """Random under-sampling: keeps randomly drawn rows of the larger classes
    (imbalanced-learn's ``RandomUnderSampler``)."""

    sampling_type = "under-sampling"

    def __init__(self, *, sampling_strategy: Any = "auto", random_state: int | None = None,
                 replacement: bool = False) -> None:
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state
        self.replacement = replacement

    def _sampler(self) -> Any:
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=self.sampling_strategy,
                                  random_state=self.random_state, replacement=self.replacement)


class SMOTESampling(_Resampler):
    """SMOTE: synthetic rows of the smaller classes, each on the segment between a row and
    one of its ``k_neighbors`` nearest same-class rows (imbalanced-learn's ``SMOTE``)."""

    needs_distances = True

    def __init__(self, *, sampling_strategy: Any = "auto", k_neighbors: int = 5,
                 random_state: int | None = None) -> None:
        self.sampling_strategy = sampling_strategy
        self.k_neighbors = k_neighbors
        self.random_state = random_state

    def _check_classes(self, labels: pd.Series) -> None:
        _require_count(self.k_neighbors, "k_neighbors", type(self).__name__)
        self._check_neighbours(labels, self.k_neighbors, "k_neighbors")

    def _sampler(self) -> Any:
        from imblearn.over_sampling import SMOTE

        return SMOTE(sampling_strategy=self.sampling_strategy, k_neighbors=self.k_neighbors,
                     random_state=self.random_state)


class ADASYNSampling(_Resampler):
    """ADASYN: like SMOTE, with more synthetic rows around the rows whose ``n_neighbors``
    nearest rows are mostly of other classes (imbalanced-learn's ``ADASYN``)."""

    needs_distances = True

    def __init__(self, *, sampling_strategy: Any = "auto", n_neighbors: int = 5,
                 random_state: int | None = None) -> None:
        self.sampling_strategy = sampling_strategy
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def _check_classes(self, labels: pd.Series) -> None:
        _require_count(self.n_neighbors, "n_neighbors", type(self).__name__)
        self._check_neighbours(labels, self.n_neighbors, "n_neighbors")

    def _sampler(self) -> Any:
        from imblearn.over_sampling import ADASYN

        return ADASYN(sampling_strategy=self.sampling_strategy, n_neighbors=self.n_neighbors,
                      random_state=self.random_state)


class EditedNearestNeighboursSampling(_Resampler):
    """Edited nearest neighbours: drops rows of the cleaned classes whose ``n_neighbors``
    nearest rows disagree with their class (``kind_sel="all"``: any neighbour; ``"mode"``:
    most of them) (imbalanced-learn's ``EditedNearestNeighbours``). Deterministic."""

    needs_distances = True
    sampling_type = "clean-sampling"

    def __init__(self, *, sampling_strategy: Any = "auto", n_neighbors: int = 3,
                 kind_sel: str = "all") -> None:
        self.sampling_strategy = sampling_strategy
        self.n_neighbors = n_neighbors
        self.kind_sel = kind_sel

    def _check_classes(self, labels: pd.Series) -> None:
        name = type(self).__name__
        _require_count(self.n_neighbors, "n_neighbors", name)
        if self.kind_sel not in ("all", "mode"):
            raise ValueError(f"{name}: kind_sel must be 'all' or 'mode', got {self.kind_sel!r}")
        if len(labels) < self.n_neighbors + 1:
            raise ValueError(f"{name}: n_neighbors={self.n_neighbors} needs at least "
                             f"{self.n_neighbors + 1} rows, got {len(labels)}")
        self._classes_to_resample(labels)

    def _sampler(self) -> Any:
        from imblearn.under_sampling import EditedNearestNeighbours

        return EditedNearestNeighbours(sampling_strategy=self.sampling_strategy,
                                       n_neighbors=self.n_neighbors, kind_sel=self.kind_sel)


def _require_count(value: Any, parameter: str, who: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{who}: {parameter} must be an integer >= 1, got {value!r}")


__all__ = [
    "ADASYNSampling",
    "EditedNearestNeighboursSampling",
    "RandomOverSampling",
    "RandomUnderSampling",
    "SMOTESampling",
]
