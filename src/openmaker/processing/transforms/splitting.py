"""Splitting a data set: hold-out (train/test, optionally validation; stratified or in time
order), k-fold, stratified k-fold, time-series forward chaining and leave-one-out.

The splitters follow scikit-learn's cross-validator protocol (``split(X, y, groups)`` yields
``(train_index, test_index)`` arrays of row positions, ``get_n_splits``), so they can be
passed as ``cv=`` to ``cross_val_score`` or ``GridSearchCV``; ``split_frames`` yields the
rows themselves. Each wraps scikit-learn's own splitter.

Shuffling is never applied to time series: asking :class:`ForwardChainingSplit` or
:func:`holdout_split` with ``order_column=`` to shuffle raises a ValueError, since a model
evaluated on rows older than the ones it was trained on reports an accuracy it cannot have
in production. Time-series splits check that the order column is sorted (non-decreasing)
and raise a ValueError naming it when it is not, unless ``sort=True``, in which case the
rows are taken in the column's order and the yielded positions still index the frame as
given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Indices = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class HoldoutSplit:
    """The parts of a hold-out split; ``validation`` is None when none was asked for."""

    train: pd.DataFrame
    test: pd.DataFrame
    validation: pd.DataFrame | None = None


def _row_count(X: Any) -> int:
    if X is None:
        raise ValueError("split: X is required (the rows to split)")
    count = X.shape[0] if hasattr(X, "shape") else len(X)
    if count == 0:
        raise ValueError("split: the input has no rows")
    return int(count)


def _labels(frame: Any, labels: Any, parameter: str) -> np.ndarray:
    """``labels`` as an array: a column name of ``frame`` or array-like of one per row."""
    if isinstance(labels, str):
        if not isinstance(frame, pd.DataFrame) or labels not in frame.columns:
            columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else None
            raise ValueError(f"{parameter}={labels!r} is not a column of the input "
                             f"(its columns: {columns})")
        values = frame[labels]
    else:
        values = labels
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != _row_count(frame):
        raise ValueError(f"{parameter} must name a column or give one label per row: got "
                         f"{array.shape} for {_row_count(frame)} rows")
    if pd.isna(array).any():
        raise ValueError(f"{parameter} has missing labels at row positions "
                         f"{np.flatnonzero(pd.isna(array))[:10].tolist()}")
    return array


def _check_stratifiable(labels: np.ndarray, needed: int, parameter: str) -> None:
    classes, counts = np.unique(labels, return_counts=True)
    scarce = {cls.item() if hasattr(cls, "item") else cls: int(count)
              for cls, count in zip(classes, counts, strict=True) if count < needed}
    if scarce:
        raise ValueError(f"{parameter}: every class needs at least {needed} rows to be "
                         f"stratified; these have fewer: {scarce}")


def _order_positions(frame: Any, order_column: str | None, sort: bool, who: str
                     ) -> np.ndarray:
    """Row positions in time order; raises when the order column is not sorted."""
    count = _row_count(frame)
    if order_column is None:
        index = getattr(frame, "index", None)
        if isinstance(index, pd.DatetimeIndex) and not index.is_monotonic_increasing:
            if not sort:
                raise ValueError(f"{who}: the frame's DatetimeIndex is not sorted; sort the "
                                 "frame by time or pass sort=True")
            return np.argsort(index.values, kind="stable")
        return np.arange(count)
    if not isinstance(frame, pd.DataFrame) or order_column not in frame.columns:
        columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else None
        raise ValueError(f"{who}: order_column={order_column!r} is not a column of the input "
                         f"(its columns: {columns})")
    values = frame[order_column]
    if values.isna().any():
        raise ValueError(f"{who}: order_column {order_column!r} has missing values at row "
                         f"positions {np.flatnonzero(values.isna().to_numpy())[:10].tolist()}")
    if values.is_monotonic_increasing:
        return np.arange(count)
    if not sort:
        array = values.to_numpy()
        first = int(np.flatnonzero(array[1:] < array[:-1])[0]) + 1
        raise ValueError(f"{who}: order_column {order_column!r} is not sorted (row position "
                         f"{first} comes before the one above it); sort the frame by it or "
                         "pass sort=True")
    return np.argsort(values.to_numpy(), kind="stable")


def _refuse_shuffle(shuffle: bool, who: str) -> None:
    if shuffle:
        raise ValueError(f"{who}: shuffle=True is not allowed for time series: a model must "
                         "be trained on the past and evaluated on the future, and shuffling "
                         "would leak future rows into training")


def holdout_split(frame: pd.DataFrame, *, test_size: float | int = 0.2,
                  validation_size: float | int | None = None, stratify: Any = None,
                  order_column: str | None = None, sort: bool = False,
                  shuffle: bool | None = None, random_state: int | None = None
                  ) -> HoldoutSplit:
    """Split ``frame`` into train, test and (when ``validation_size`` is given) validation.

    Sizes are fractions of the whole frame (floats in (0, 1)) or row counts (ints).
    ``stratify`` (a column name or one label per row) keeps each class's share in every part.
    ``order_column`` makes a chronological hold-out: the latest rows are the test part, the
    ones before them validation, the earliest train. ``shuffle`` defaults to True, and to
    False for a chronological hold-out, where asking for it raises a ValueError.
    """
    who = "holdout_split"
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{who}: expected a DataFrame, got {type(frame).__name__}")
    count = _row_count(frame)
    test_rows = _part_rows(test_size, count, "test_size")
    validation_rows = (0 if validation_size is None
                       else _part_rows(validation_size, count, "validation_size"))
    if test_rows + validation_rows >= count:
        raise ValueError(f"{who}: test ({test_rows} rows) and validation ({validation_rows} "
                         f"rows) leave no training rows out of {count}")
    if order_column is not None:
        _refuse_shuffle(bool(shuffle), who)
        if stratify is not None:
            raise ValueError(f"{who}: stratify cannot be combined with order_column (a "
                             "chronological split keeps the time order, not class shares)")
        order = _order_positions(frame, order_column, sort, who)
        train_end = count - test_rows - validation_rows
        parts = (order[:train_end], order[train_end:count - test_rows],
                 order[count - test_rows:])
        return _holdout_frames(frame, *parts, validation_size is not None)
    from sklearn.model_selection import train_test_split

    shuffle = True if shuffle is None else shuffle
    labels = None if stratify is None else _labels(frame, stratify, "stratify")
    if labels is not None:
        if not shuffle:
            raise ValueError(f"{who}: stratify needs shuffle=True (scikit-learn draws each "
                             "class's rows at random)")
        _check_stratifiable(labels, 3 if validation_rows else 2, "stratify")
    positions = np.arange(count)
    rest, test = train_test_split(positions, test_size=test_rows, shuffle=shuffle,
                                  stratify=labels, random_state=random_state)
    validation = np.array([], dtype=int)
    if validation_rows:
        train, validation = train_test_split(
            rest, test_size=validation_rows, shuffle=shuffle,
            stratify=None if labels is None else labels[rest], random_state=random_state)
    else:
        train = rest
    return _holdout_frames(frame, train, validation, test, validation_size is not None)


def _part_rows(size: float | int, count: int, parameter: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int | float | np.integer | np.floating):
        raise ValueError(f"{parameter} must be a fraction in (0, 1) or a row count, got "
                         f"{size!r}")
    if isinstance(size, float | np.floating):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{parameter} as a fraction must be in (0, 1), got {size}")
        rows = int(np.ceil(size * count))
    else:
        rows = int(size)
        if not 0 < rows < count:
            raise ValueError(f"{parameter} as a row count must be in 1..{count - 1}, got "
                             f"{rows}")
    return rows


def _holdout_frames(frame: pd.DataFrame, train: np.ndarray, validation: np.ndarray,
                    test: np.ndarray, with_validation: bool) -> HoldoutSplit:
    return HoldoutSplit(train=frame.iloc[np.asarray(train, dtype=int)],
                        test=frame.iloc[np.asarray(test, dtype=int)],
                        validation=(frame.iloc[np.asarray(validation, dtype=int)]
                                    if with_validation else None))


class _Splitter:
    """scikit-learn's cross-validator protocol plus ``split_frames``."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Indices]:
        """Yield ``(train_index, test_index)`` arrays of row positions in ``X``."""
        raise NotImplementedError

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of folds ``split`` yields."""
        raise NotImplementedError

    def split_frames(self, frame: pd.DataFrame, y: Any = None
                     ) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """Yield ``(train_rows, test_rows)`` of ``frame`` for each fold."""
        for train, test in self.split(frame, y):
            yield frame.iloc[train], frame.iloc[test]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({fields})"


class KFoldSplit(_Splitter):
    """k-fold: the rows in ``n_splits`` consecutive folds (shuffled first when asked),
    each fold the test part once (scikit-learn's ``KFold``)."""

    def __init__(self, n_splits: int = 5, *, shuffle: bool = False,
                 random_state: int | None = None) -> None:
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Indices]:
        """Yield ``(train_index, test_index)`` for each of the ``n_splits`` folds."""
        from sklearn.model_selection import KFold

        count = _row_count(X)
        _check_fold_count(self.n_splits, count, type(self).__name__)
        splitter = KFold(self.n_splits, shuffle=self.shuffle,
                         random_state=self.random_state if self.shuffle else None)
        yield from splitter.split(np.zeros((count, 1)))

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """``n_splits``."""
        return self.n_splits


class StratifiedKFoldSplit(_Splitter):
    """Stratified k-fold: k-fold keeping each class's share in every fold (scikit-learn's
    ``StratifiedKFold``). The labels are ``y`` of ``split`` or the ``stratify`` column."""

    def __init__(self, n_splits: int = 5, *, stratify: str | None = None,
                 shuffle: bool = False, random_state: int | None = None) -> None:
        self.n_splits = n_splits
        self.stratify = stratify
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Indices]:
        """Yield ``(train_index, test_index)`` for each of the ``n_splits`` folds."""
        from sklearn.model_selection import StratifiedKFold

        who = type(self).__name__
        count = _row_count(X)
        _check_fold_count(self.n_splits, count, who)
        if y is None and self.stratify is None:
            raise ValueError(f"{who}: pass the class labels as y or name their column with "
                             "stratify=")
        labels = _labels(X, self.stratify if y is None else y,
                         "stratify" if y is None else "y")
        _check_stratifiable(labels, self.n_splits, f"{who}(n_splits={self.n_splits})")
        splitter = StratifiedKFold(self.n_splits, shuffle=self.shuffle,
                                   random_state=self.random_state if self.shuffle else None)
        yield from splitter.split(np.zeros((count, 1)), labels)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """``n_splits``."""
        return self.n_splits


class ForwardChainingSplit(_Splitter):
    """Time-series forward chaining with an expanding window: the rows, in time order, in
    ``n_splits + 1`` blocks; fold i trains on the first i blocks and tests on the next
    (scikit-learn's ``TimeSeriesSplit``; ``test_size``, ``gap`` and ``max_train_size`` as
    there). Time order is ``order_column``'s, else the rows' order. Never shuffles."""

    def __init__(self, n_splits: int = 5, *, order_column: str | None = None,
                 sort: bool = False, test_size: int | None = None, gap: int = 0,
                 max_train_size: int | None = None, shuffle: bool = False) -> None:
        _refuse_shuffle(shuffle, type(self).__name__)
        self.n_splits = n_splits
        self.order_column = order_column
        self.sort = sort
        self.test_size = test_size
        self.gap = gap
        self.max_train_size = max_train_size
        self.shuffle = shuffle

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Indices]:
        """Yield ``(train_index, test_index)`` for each fold, earliest first."""
        from sklearn.model_selection import TimeSeriesSplit

        who = type(self).__name__
        _refuse_shuffle(self.shuffle, who)
        count = _row_count(X)
        order = _order_positions(X, self.order_column, self.sort, who)
        _check_fold_count(self.n_splits, count, who)
        splitter = TimeSeriesSplit(self.n_splits, test_size=self.test_size, gap=self.gap,
                                   max_train_size=self.max_train_size)
        try:
            folds = list(splitter.split(np.zeros((count, 1))))
        except ValueError as exc:  # too few rows for the folds, test_size and gap asked
            raise ValueError(f"{who}: {exc}") from None
        for train, test in folds:
            yield order[train], order[test]

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """``n_splits``."""
        return self.n_splits


class LeaveOneOutSplit(_Splitter):
    """Leave-one-out: one fold per row, that row the test part (scikit-learn's
    ``LeaveOneOut``)."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Indices]:
        """Yield ``(train_index, test_index)`` for each row."""
        from sklearn.model_selection import LeaveOneOut

        count = _row_count(X)
        if count < 2:
            raise ValueError("LeaveOneOutSplit: needs at least 2 rows, got 1")
        yield from LeaveOneOut().split(np.zeros((count, 1)))

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of rows of ``X``."""
        if X is None:
            raise ValueError("LeaveOneOutSplit.get_n_splits: X is required (one fold per row)")
        return _row_count(X)


def _check_fold_count(n_splits: Any, count: int, who: str) -> None:
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise ValueError(f"{who}: n_splits must be an integer >= 2, got {n_splits!r}")
    if n_splits > count:
        raise ValueError(f"{who}: n_splits={n_splits} is more than the {count} rows")


__all__ = [
    "ForwardChainingSplit",
    "HoldoutSplit",
    "KFoldSplit",
    "LeaveOneOutSplit",
    "StratifiedKFoldSplit",
    "holdout_split",
]
