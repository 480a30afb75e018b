"""Cyclical features: sin and cos of the hour (period 24), weekday (period 7) and month
(period 12), so 23:00 is near 00:00 and December near January."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import DATETIME, NUMERIC, FrameTransformer, show_value

PERIODS = {"hour": 24, "weekday": 7, "month": 12}
# the values an integer column of each component may hold
RANGES = {"hour": (0, 23), "weekday": (0, 6), "month": (1, 12)}


class CyclicalEncoder(FrameTransformer):
    """For a value v of a cycle of period P, sin(2*pi*v/P) and cos(2*pi*v/P).

    A datetime column gives ``<column>_<component>_sin`` and ``_cos`` for each of
    ``components`` (hour 0-23, weekday with Monday = 0, month 1-12). A numeric column
    already holds the position in its cycle; ``period`` says the cycle: ``"hour"``,
    ``"weekday"`` or ``"month"`` (values checked against 0-23, 0-6, 1-12) or a number
    (any finite value); it gives ``<column>_sin`` and ``<column>_cos``. By default the
    datetime columns are selected.
    """

    accepted_kinds = (DATETIME, NUMERIC)
    default_kinds = (DATETIME,)

    def __init__(self, components: Sequence[str] = ("hour", "weekday", "month"),
                 period: str | float | None = None,
                 columns: list[str] | None = None) -> None:
        self.components = components
        self.period = period
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        unknown = [c for c in self.components if c not in PERIODS]
        if unknown or not self.components:
            raise ValueError(f"CyclicalEncoder: components={list(self.components)!r} must be "
                             f"a non-empty list of {list(PERIODS)}")
        numeric = [name for name in data.columns if self.schema_[name] == NUMERIC]
        if numeric:
            if self.period is None:
                raise ValueError(f"CyclicalEncoder: numeric columns {numeric} need period= "
                                 f"(one of {list(PERIODS)} or a number)")
            if isinstance(self.period, str):
                if self.period not in PERIODS:
                    raise ValueError(f"CyclicalEncoder: period={self.period!r} is not one of "
                                     f"{list(PERIODS)} or a number")
            elif not (np.isfinite(self.period) and self.period > 0):
                raise ValueError(f"CyclicalEncoder: period={self.period!r} must be > 0")
        self.kinds_ = {name: self.schema_[name] for name in data.columns}

    def _output_names(self, columns: list[str]) -> list[str]:
        names = []
        for name in columns:
            if self.kinds_[name] == DATETIME:
                for component in self.components:
                    names += [f"{name}_{component}_sin", f"{name}_{component}_cos"]
            else:
                names += [f"{name}_sin", f"{name}_cos"]
        return names

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        blocks = []
        for name in data.columns:
            series = data[name]
            if self.kinds_[name] == DATETIME or pd.api.types.is_datetime64_any_dtype(series):
                moments = pd.to_datetime(series)
                for component in self.components:
                    values = {"hour": moments.dt.hour, "weekday": moments.dt.day_of_week,
                              "month": moments.dt.month}[component].to_numpy(dtype=float)
                    blocks.append(_sin_cos(values, PERIODS[component]))
            else:
                values = series.to_numpy(dtype=float)
                if isinstance(self.period, str):
                    low, high = RANGES[self.period]
                    outside = ~np.isnan(values) & ((values < low) | (values > high))
                    if outside.any():
                        position = int(np.argmax(outside))
                        raise ValueError(
                            f"CyclicalEncoder: column {name!r} holds {self.period} values "
                            f"{low}-{high}, got {show_value(values[position])} at row {position}")
                    period = PERIODS[self.period]
                else:
                    period = float(self.period)
                blocks.append(_sin_cos(values, period))
        return np.hstack(blocks)


def _sin_cos(values: np.ndarray, period: float) -> np.ndarray:
    angle = 2.0 * np.pi * values / period
    return np.column_stack([np.sin(angle), np.cos(angle)])
