"""The contract every data-preparation transform follows.

Every transform is a scikit-learn estimator: hyperparameters are explicit keywords of
``__init__`` stored untouched, learned state lives in attributes ending in ``_``, and
``fit(X, y=None)`` / ``transform(X)`` / ``fit_transform`` work on pandas DataFrames (numpy
arrays too: their columns are then named ``x0..xn``). A ``columns=`` parameter selects the
columns a transform applies to (default: every column of a suitable kind); the others pass
through unchanged. The output is a DataFrame whose names ``get_feature_names_out`` returns.

At fit the schema (column names in order and each column's kind: ``numeric``, ``boolean``,
``datetime``, ``string``, ``timedelta`` or ``other``) is recorded in ``schema_``;
``transform`` on a frame whose schema differs raises :class:`SchemaMismatchError` naming
the missing, extra and retyped columns. Integer and float columns are both ``numeric``,
and a column whose values are all missing matches any kind, since neither says anything
about the data (CSV parsing turns an empty categorical column into floats). Empty inputs
(no rows, no columns selected) raise a :class:`ValueError` naming the transform.

Resamplers and splitters (outliers, class imbalance, splitting) use
:class:`FittedSchemaMixin` and the helpers here without :class:`FrameTransformer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

NUMERIC = "numeric"
BOOLEAN = "boolean"
DATETIME = "datetime"
STRING = "string"
TIMEDELTA = "timedelta"
OTHER = "other"
KINDS = (NUMERIC, BOOLEAN, DATETIME, STRING, TIMEDELTA, OTHER)


class SchemaMismatchError(ValueError):
    """A fitted transform was given a frame whose columns or column kinds differ from
    those it was fitted on."""

    def __init__(self, transform: str, missing: Sequence[str] = (),
                 extra: Sequence[str] = (),
                 retyped: dict[str, tuple[str, str]] | None = None, *,
                 widths: tuple[int, int] | None = None) -> None:
        self.transform = transform
        self.missing = list(missing)
        self.extra = list(extra)
        self.retyped = dict(retyped or {})
        parts = []
        if widths is not None and widths[0] != widths[1]:
            # scikit-learn's wording, which its conformance checks (check_estimator) expect
            parts.append(f"X has {widths[0]} features, but {transform} is expecting "
                         f"{widths[1]} features as input")
        if self.missing:
            parts.append("missing columns " + ", ".join(map(repr, self.missing)))
        if self.extra:
            parts.append("extra columns " + ", ".join(map(repr, self.extra)))
        if self.retyped:
            parts.append("retyped columns " + ", ".join(
                f"{name!r} (fitted {was}, got {now})"
                for name, (was, now) in self.retyped.items()))
        super().__init__(f"{transform}: the input's schema differs from the one it was "
                         f"fitted on: {'; '.join(parts)}")


def column_kind(series: pd.Series) -> str:
    """The kind of a column: numeric, boolean, datetime, string, timedelta or other."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if pd.api.types.is_complex_dtype(dtype):
        return OTHER  # no transform here handles complex numbers
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DATETIME
    if pd.api.types.is_timedelta64_dtype(dtype):
        return TIMEDELTA
    if (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)):
        return STRING
    return OTHER


def frame_schema(frame: pd.DataFrame) -> dict[str, str]:
    """Column name -> kind, in the frame's column order."""
    return {str(name): column_kind(frame[name]) for name in frame.columns}


def as_frame(X: Any, names: Sequence[str] | None = None, *, transform: str = "transform"
             ) -> pd.DataFrame:
    """X as a DataFrame with string column names.

    A 2-D array's columns get ``names`` when given and of the right length, else
    ``x0..xn``; a Series becomes a one-column frame.
    """
    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, pd.Series):
        frame = X.to_frame(name=X.name if X.name is not None else "x0")
    else:
        if hasattr(X, "toarray"):  # scipy sparse
            X = X.toarray()
        array = np.asarray(X)
        if array.ndim == 1:
            raise ValueError(f"{transform}: expected a 2-D table (rows x columns), got a "
                             f"1-D array of {array.shape[0]} values. Reshape your data with "
                             "reshape(-1, 1) for a single column")
        if array.ndim != 2:
            raise ValueError(f"{transform}: expected a 2-D table, got an array of shape "
                             f"{array.shape}")
        if names is not None and len(names) == array.shape[1]:
            columns = list(names)
        else:
            columns = [f"x{i}" for i in range(array.shape[1])]
        frame = pd.DataFrame(array, columns=columns)
        if array.dtype == object:
            frame = frame.infer_objects()
    if any(not isinstance(name, str) for name in frame.columns):
        frame = frame.rename(columns=str)
    complex_columns = [str(name) for name, dtype in frame.dtypes.items()
                       if pd.api.types.is_complex_dtype(dtype)]
    if complex_columns:
        raise ValueError(f"{transform}: Complex data not supported (columns "
                         f"{complex_columns})")
    if frame.columns.duplicated().any():
        duplicated = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise ValueError(f"{transform}: duplicated column names {duplicated}")
    return frame


def show_value(value: Any) -> str:
    """A value as an error message shows it: 2.5 rather than numpy's np.float64(2.5)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def require_rows(frame: pd.DataFrame, transform: str, step: str) -> None:
    """Raise a ValueError naming the transform when the frame has no rows."""
    if len(frame) == 0:
        raise ValueError(f"{transform}.{step}: the input has no rows "
                         f"(columns {list(frame.columns)})")


def compare_schema(transform: str, fitted: dict[str, str], frame: pd.DataFrame) -> None:
    """Raise SchemaMismatchError when the frame's columns or kinds differ from ``fitted``."""
    names = [str(name) for name in frame.columns]
    present = set(names)
    missing = [name for name in fitted if name not in present]
    extra = [name for name in names if name not in fitted]
    retyped = {}
    for name in names:
        if name in fitted:
            kind = column_kind(frame[name])
            if kind != fitted[name] and not frame[name].isna().all():
                retyped[name] = (fitted[name], kind)
    if missing or extra or retyped:
        raise SchemaMismatchError(transform, missing, extra, retyped,
                                  widths=(len(names), len(fitted)))


class FittedSchemaMixin:
    """Records the fitted schema (``schema_``, ``feature_names_in_``, ``n_features_in_``)
    and checks later inputs against it."""

    def _record_schema(self, frame: pd.DataFrame) -> None:
        self.schema_ = frame_schema(frame)
        self.feature_names_in_ = np.asarray(list(self.schema_), dtype=object)
        self.n_features_in_ = len(self.schema_)

    def _check_schema(self, frame: pd.DataFrame) -> None:
        compare_schema(type(self).__name__, self.schema_, frame)

    def _input_frame(self, X: Any) -> pd.DataFrame:
        """X as a frame, an array's columns named as at fit when it has as many."""
        fitted = getattr(self, "schema_", None)
        return as_frame(X, list(fitted) if fitted else None, transform=type(self).__name__)


def normalise_columns(columns: str | Iterable[str] | None) -> list[str] | None:
    """``columns=`` as a list of names (a single name is accepted too)."""
    if columns is None:
        return None
    if isinstance(columns, str):
        return [columns]
    return [str(name) for name in columns]


def select_columns(transform: str, frame: pd.DataFrame, columns: str | Iterable[str] | None,
                   kinds: Sequence[str], default_kinds: Sequence[str] | None = None
                   ) -> list[str]:
    """The columns a transform applies to: ``columns`` when given (each must exist and be
    of one of ``kinds``), else every column of one of ``default_kinds`` (``kinds`` when
    None)."""
    schema = frame_schema(frame)
    wanted = normalise_columns(columns)
    if wanted is None:
        default_kinds = default_kinds or kinds
        selected = [name for name, kind in schema.items() if kind in default_kinds]
        if not selected:
            raise ValueError(f"{transform}: no columns selected: the input has no "
                             f"{' or '.join(default_kinds)} columns (its columns: {schema}); "
                             "pass columns= to choose some")
        return selected
    if not wanted:
        raise ValueError(f"{transform}: no columns selected: columns= is empty")
    unknown = [name for name in wanted if name not in schema]
    if unknown:
        raise ValueError(f"{transform}: columns= names columns not in the input: {unknown} "
                         f"(its columns: {list(schema)})")
    wrong = {name: schema[name] for name in wanted
             if schema[name] not in kinds and not frame[name].isna().all()}
    if wrong:
        raise ValueError(f"{transform}: columns= selects columns of a kind it cannot "
                         f"handle: {wrong}; it accepts {' or '.join(kinds)} columns")
    return wanted


class FrameTransformer(FittedSchemaMixin, TransformerMixin, BaseEstimator):
    """Base of the column transforms: schema recording and checking, column selection,
    pass-through of unselected columns, output naming.

    A subclass sets ``accepted_kinds`` (and ``default_kinds``, the kinds selected when
    ``columns`` is None, when narrower) and implements ``_fit(data, y)`` and
    ``_transform(data)`` on the selected columns only; ``_output_names(columns)`` names the
    output columns when they are not the input ones. The output block replaces the selected
    columns at the position of the first of them; other columns keep their order.
    """

    accepted_kinds: tuple[str, ...] = (NUMERIC,)
    default_kinds: tuple[str, ...] | None = None
    allows_missing = True  # False where missing values in the selected columns are refused

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # columns of kinds a transform does not handle (strings for a scaler) pass through
        tags.input_tags.string = True
        tags.input_tags.allow_nan = self.allows_missing
        tags.input_tags.sparse = True  # densified: a DataFrame comes out either way
        tags.transformer_tags.preserves_dtype = []  # the output is a DataFrame
        return tags

    def fit(self, X: Any, y: Any = None) -> FrameTransformer:
        """Learn the transform's state from X (and y where the transform uses a target)."""
        name = type(self).__name__
        frame = as_frame(X, transform=name)
        require_rows(frame, name, "fit")
        if frame.shape[1] == 0:
            # scikit-learn's wording, which its conformance checks expect
            raise ValueError(f"{name}.fit: the input has no columns: 0 feature(s) (shape="
                             f"({len(frame)}, 0)) while a minimum of 1 is required.")
        self._record_schema(frame)
        self.columns_ = select_columns(name, frame, self._columns_param(),
                                       self.accepted_kinds, self.default_kinds)
        self._fit(frame[self.columns_], y)
        self.feature_names_out_ = np.asarray(self._assemble_names(), dtype=object)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Apply the fitted transform; X must have the fitted schema."""
        check_is_fitted(self, "schema_")
        name = type(self).__name__
        frame = self._input_frame(X)
        self._check_schema(frame)
        require_rows(frame, name, "transform")
        frame = frame[list(self.schema_)]
        block = self._transform(frame[self.columns_])
        block_names = self._output_names(self.columns_)
        if isinstance(block, pd.DataFrame):
            block = block.set_axis(block_names, axis=1)
            block.index = frame.index
        else:
            block = pd.DataFrame(np.asarray(block), columns=block_names, index=frame.index)
        return self._assemble(frame, block)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The output column names, in order."""
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def _columns_param(self) -> Any:
        return getattr(self, "columns", None)

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        raise NotImplementedError

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame | np.ndarray:
        raise NotImplementedError

    def _output_names(self, columns: list[str]) -> list[str]:
        return list(columns)

    def _assemble_names(self) -> list[str]:
        selected = set(self.columns_)
        names: list[str] = []
        placed = False
        for column in self.schema_:
            if column not in selected:
                names.append(column)
            elif not placed:
                names.extend(self._output_names(self.columns_))
                placed = True
        return names

    def _assemble(self, frame: pd.DataFrame, block: pd.DataFrame) -> pd.DataFrame:
        selected = set(self.columns_)
        if len(selected) == len(self.schema_):
            return block
        pieces: list[pd.DataFrame] = []
        run: list[str] = []
        placed = False
        for column in self.schema_:
            if column not in selected:
                run.append(column)
                continue
            if not placed:
                if run:
                    pieces.append(frame[run])
                    run = []
                pieces.append(block)
                placed = True
        if run:
            pieces.append(frame[run])
        out = pd.concat(pieces, axis=1)
        if out.columns.duplicated().any():
            clashes = sorted(set(out.columns[out.columns.duplicated()]))
            raise ValueError(f"{type(self).__name__}: output column names {clashes} clash "
                             "with pass-through columns; rename the input columns")
        return out


def fitted_schema(obj: Any) -> dict[str, str] | None:
    """The schema a fitted transform or pipeline expects as input, or None when unknown.

    For a Pipeline it is the first step's; for a scikit-learn estimator fitted on a
    DataFrame without our schema, its ``feature_names_in_`` with kind ``other``.
    """
    schema = getattr(obj, "schema_", None)
    if isinstance(schema, dict):
        return dict(schema)
    schema = getattr(obj, "input_schema_", None)
    if isinstance(schema, dict):
        return dict(schema)
    steps = getattr(obj, "steps", None)
    if steps:
        first = steps[0][1]
        if first not in (None, "passthrough"):
            return fitted_schema(first)
    names = getattr(obj, "feature_names_in_", None)
    if names is not None:
        return {str(name): OTHER for name in names}
    return None
