"""Scaling and value transforms of numeric columns: standard, min-max, max-abs and robust
scaling, the row normaliser, Box-Cox and Yeo-Johnson (scikit-learn's), and log, square
root and cube root with errors naming the columns outside their domain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import FrameTransformer, show_value


class _SklearnColumns(FrameTransformer):
    """A scikit-learn transformer fitted on the selected numeric columns, one output column
    per input column, named as the input."""

    def _make(self) -> Any:
        raise NotImplementedError

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        self.scaler_ = self._make().fit(data.to_numpy(dtype=float))

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        return self.scaler_.transform(data.to_numpy(dtype=float))


class StandardScaler(_SklearnColumns):
    """(x - mean) / standard deviation per column (population deviation, as scikit-learn)."""

    def __init__(self, with_mean: bool = True, with_std: bool = True,
                 columns: list[str] | None = None) -> None:
        self.with_mean = with_mean
        self.with_std = with_std
        self.columns = columns

    def _make(self) -> Any:
        from sklearn.preprocessing import StandardScaler as SklearnStandardScaler

        return SklearnStandardScaler(with_mean=self.with_mean, with_std=self.with_std)


class MinMaxScaler(_SklearnColumns):
    """Each column mapped linearly from its fitted [min, max] onto ``feature_range``."""

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0), clip: bool = False,
                 columns: list[str] | None = None) -> None:
        self.feature_range = feature_range
        self.clip = clip
        self.columns = columns

    def _make(self) -> Any:
        from sklearn.preprocessing import MinMaxScaler as SklearnMinMaxScaler

        return SklearnMinMaxScaler(feature_range=tuple(self.feature_range), clip=self.clip)


class MaxAbsScaler(_SklearnColumns):
    """Each column divided by its fitted largest absolute value (keeps zeros and signs)."""

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def _make(self) -> Any:
        from sklearn.preprocessing import MaxAbsScaler as SklearnMaxAbsScaler

        return SklearnMaxAbsScaler()


class RobustScaler(_SklearnColumns):
    """(x - median) / IQR per column, the IQR between the ``quantile_range`` percentiles;
    robust to outliers."""

    def __init__(self, with_centering: bool = True, with_scaling: bool = True,
                 quantile_range: tuple[float, float] = (25.0, 75.0),
                 unit_variance: bool = False, columns: list[str] | None = None) -> None:
        self.with_centering = with_centering
        self.with_scaling = with_scaling
        self.quantile_range = quantile_range
        self.unit_variance = unit_variance
        self.columns = columns

    def _make(self) -> Any:
        from sklearn.preprocessing import RobustScaler as SklearnRobustScaler

        return SklearnRobustScaler(with_centering=self.with_centering,
                                   with_scaling=self.with_scaling,
                                   quantile_range=tuple(self.quantile_range),
                                   unit_variance=self.unit_variance)


class Normalizer(_SklearnColumns):
    """Each row of the selected columns scaled to unit ``norm`` (l1, l2 or max)."""

    allows_missing = False

    def __init__(self, norm: str = "l2", columns: list[str] | None = None) -> None:
        self.norm = norm
        self.columns = columns

    def _make(self) -> Any:
        from sklearn.preprocessing import Normalizer as SklearnNormalizer

        return SklearnNormalizer(norm=self.norm)


class PowerTransformer(FrameTransformer):
    """Box-Cox (strictly positive data) or Yeo-Johnson (any data) with the lambda per column
    fitted by maximum likelihood, then standardised when ``standardize``."""

    def __init__(self, method: str = "yeo-johnson", standardize: bool = True,
                 columns: list[str] | None = None) -> None:
        self.method = method
        self.standardize = standardize
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.preprocessing import PowerTransformer as SklearnPowerTransformer

        if self.method not in ("box-cox", "yeo-johnson"):
            raise ValueError(f"PowerTransformer: method={self.method!r} is not one of "
                             "'box-cox', 'yeo-johnson'")
        self._check_domain(data)
        self.transformer_ = SklearnPowerTransformer(
            method=self.method, standardize=self.standardize).fit(data.to_numpy(dtype=float))
        self.lambdas_ = dict(zip(data.columns, self.transformer_.lambdas_, strict=True))

    def _check_domain(self, data: pd.DataFrame) -> None:
        if self.method == "box-cox":
            _domain_error("PowerTransformer(method='box-cox')", data, data <= 0,
                          "strictly positive values")

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        self._check_domain(data)
        return self.transformer_.transform(data.to_numpy(dtype=float))


def _domain_error(transform: str, data: pd.DataFrame, outside: pd.DataFrame,
                  needs: str) -> None:
    """Raise ValueError naming each column with values outside the domain, with the first
    such value and its row."""
    bad = {}
    for name in data.columns:
        mask = outside[name].fillna(False).to_numpy(dtype=bool)
        if mask.any():
            position = int(np.argmax(mask))
            first = show_value(data[name].iloc[position])
            bad[name] = f"{int(mask.sum())} values, first {first} at row {position}"
    if bad:
        details = "; ".join(f"column {name!r}: {text}" for name, text in bad.items())
        raise ValueError(f"{transform} needs {needs}: {details}")


MATH_FUNCTIONS = ("log", "log1p", "log2", "log10", "sqrt", "cbrt")


class MathTransformer(FrameTransformer):
    """log (natural, base 2 or 10; ``log1p`` is log(1 + x)), square root or cube root of
    each value; values outside the function's domain (log of x <= 0, square root of x < 0)
    raise a ValueError naming the columns rather than producing NaN or -inf."""

    def __init__(self, function: str = "log", columns: list[str] | None = None) -> None:
        self.function = function
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if self.function not in MATH_FUNCTIONS:
            raise ValueError(f"MathTransformer: function={self.function!r} is not one of "
                             f"{MATH_FUNCTIONS}")
        self._check_domain(data)

    def _check_domain(self, data: pd.DataFrame) -> None:
        name = f"MathTransformer(function={self.function!r})"
        values = data.astype(float)
        if self.function in ("log", "log2", "log10"):
            _domain_error(name, data, values <= 0, "strictly positive values")
        elif self.function == "log1p":
            _domain_error(name, data, values <= -1, "values greater than -1")
        elif self.function == "sqrt":
            _domain_error(name, data, values < 0, "non-negative values")

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        self._check_domain(data)
        function = {"log": np.log, "log1p": np.log1p, "log2": np.log2, "log10": np.log10,
                    "sqrt": np.sqrt, "cbrt": np.cbrt}[self.function]
        return function(data.to_numpy(dtype=float))
