"""A tuning job's search space: its parameter ranges checked, turned into Optuna
distributions, and the values Optuna proposes turned into training-job hyperparameters
(``reference/platform.md`` section 4.3).

Ranges come as SageMaker sends them (``MinValue``/``MaxValue`` are strings). Optuna
samples an *internal* value per parameter: the value itself, except for
``ReverseLogarithmic`` ranges, where it samples ``1 - value`` on a log scale (so values
crowd towards the top of ``[MinValue, MaxValue)``, close to 1, as SageMaker's scaling
does). ``Auto`` scaling picks ``Logarithmic`` for a positive range spanning at least two
orders of magnitude and ``Linear`` otherwise (**UNVERIFIED**: SageMaker does not document
how it chooses).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from openmaker.core import errors

MAX_TUNED = 30  # tunable hyperparameters per definition
MAX_HYPERPARAMETERS = 100  # static + tuned + the injected _tuning_objective_metric
AUTO_LOG_SPAN = 100.0  # Auto scaling: max/min at least this -> Logarithmic

RANGE_KINDS = (("IntegerParameterRanges", "Integer"),
               ("ContinuousParameterRanges", "Continuous"),
               ("CategoricalParameterRanges", "Categorical"))


@dataclass(frozen=True)
class TunedParameter:
    """One tuned hyperparameter: its range and how Optuna samples it."""

    name: str
    kind: str  # Integer | Continuous | Categorical
    field: str  # the request path of its range, for error messages
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"  # Linear | Logarithmic | ReverseLogarithmic
    values: tuple[str, ...] = ()

    def distribution(self) -> BaseDistribution:
        if self.kind == "Categorical":
            return CategoricalDistribution(self.values)
        if self.kind == "Integer":
            return IntDistribution(int(self.low), int(self.high),
                                   log=self.scaling == "Logarithmic")
        if self.scaling == "ReverseLogarithmic":
            return FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)
        return FloatDistribution(self.low, self.high, log=self.scaling == "Logarithmic")

    def hyperparameter(self, internal: Any) -> str:
        """The training job's hyperparameter value for Optuna's ``internal`` value."""
        if self.kind == "Categorical":
            return str(internal)
        if self.kind == "Integer":
            return str(int(internal))
        value = 1.0 - internal if self.scaling == "ReverseLogarithmic" else float(internal)
        return repr(min(max(value, self.low), self.high))

    def internal(self, hyperparameter: str) -> Any | None:
        """Optuna's internal value for a training job's ``hyperparameter`` value; None when
        it does not parse or lies outside this range (a warm-start parent's job)."""
        if self.kind == "Categorical":
            return hyperparameter if hyperparameter in self.values else None
        try:
            number = float(hyperparameter)
        except ValueError:
            return None
        if not self.low <= number <= self.high:
            return None
        if self.kind == "Integer":
            return int(number) if number.is_integer() else None
        if self.scaling == "ReverseLogarithmic":
            inverted = 1.0 - number
            distribution = self.distribution()
            return inverted if distribution.low <= inverted <= distribution.high else None
        return number


def _number(text: str, kind: str, field: str) -> float:
    try:
        value = int(text) if kind == "Integer" else float(text)
    except (TypeError, ValueError):
        expected = "an integer" if kind == "Integer" else "a number"
        raise errors.ValidationException(f"{field}: {text!r} is not {expected}.") from None
    if not math.isfinite(value):
        raise errors.ValidationException(f"{field}: {text!r} is not a finite number.")
    return float(value)


def _scaling(spec: Mapping[str, Any], kind: str, low: float, high: float, field: str) -> str:
    scaling = spec.get("ScalingType", "Auto")
    if scaling == "Auto":
        return "Logarithmic" if low > 0 and high / low >= AUTO_LOG_SPAN else "Linear"
    if scaling == "Logarithmic" and low <= 0:
        raise errors.ValidationException(
            f"{field}: Logarithmic scaling needs MinValue greater than 0, got "
            f"{spec['MinValue']!r}; use Linear scaling for ranges that include 0 or "
            "negative values.")
    if scaling == "ReverseLogarithmic":
        if kind == "Integer":
            raise errors.ValidationException(
                f"{field}: ReverseLogarithmic scaling is only valid for continuous "
                "parameter ranges.")
        if not (0 <= low and high < 1):
            raise errors.ValidationException(
                f"{field}: ReverseLogarithmic scaling needs 0 <= MinValue <= MaxValue < 1, "
                f"got [{spec['MinValue']}, {spec['MaxValue']}].")
    return scaling


def parse_ranges(ranges: Mapping[str, Any] | None, field: str) -> list[TunedParameter]:
    """The tuned parameters of ``ParameterRanges`` at request path ``field``, checked;
    ``ValidationException`` naming the range otherwise."""
    ranges = ranges or {}
    if ranges.get("AutoParameters"):
        raise errors.ValidationException(
            f"{field}.AutoParameters: automatic parameter ranges (Autotune) are not "
            "supported by openmaker; give IntegerParameterRanges, ContinuousParameterRanges "
            "or CategoricalParameterRanges.")
    parameters: list[TunedParameter] = []
    seen: dict[str, str] = {}
    for key, kind in RANGE_KINDS:
        for index, spec in enumerate(ranges.get(key) or [], start=1):
            where = f"{field}.{key}.{index}"
            name = spec["Name"]
            if name in seen:
                raise errors.ValidationException(
                    f"{where}.Name: hyperparameter {name!r} is already tuned by {seen[name]}; "
                    "each hyperparameter may have one range.")
            seen[name] = where
            if kind == "Categorical":
                values = tuple(spec.get("Values") or ())
                if not values:
                    raise errors.ValidationException(
                        f"{where}.Values: a categorical range needs at least one value.")
                if len(set(values)) != len(values):
                    raise errors.ValidationException(
                        f"{where}.Values: the values of {name!r} must be distinct.")
                parameters.append(TunedParameter(name, kind, where, values=values))
                continue
            low = _number(spec["MinValue"], kind, f"{where}.MinValue")
            high = _number(spec["MaxValue"], kind, f"{where}.MaxValue")
            if low > high:
                raise errors.ValidationException(
                    f"{where}: MinValue ({spec['MinValue']}) must be less than or equal to "
                    f"MaxValue ({spec['MaxValue']}) for hyperparameter {name!r}.")
            scaling = _scaling(spec, kind, low, high, where)
            parameters.append(TunedParameter(name, kind, where, low, high, scaling))
    if len(parameters) > MAX_TUNED:
        raise errors.ValidationException(
            f"{field}: {len(parameters)} hyperparameters are tuned; at most {MAX_TUNED} "
            "tunable hyperparameters are allowed.")
    return parameters


def check_grid(parameters: Sequence[TunedParameter], field: str) -> int:
    """The number of grid points; ValidationException when a range is not categorical."""
    for parameter in parameters:
        if parameter.kind != "Categorical":
            raise errors.ValidationException(
                f"{parameter.field}: the Grid strategy supports categorical parameter ranges "
                f"only; {parameter.name!r} is {_article(parameter.kind)} range (list its "
                "values as a CategoricalParameterRange).")
    if not parameters:
        raise errors.ValidationException(
            f"{field}: the Grid strategy needs at least one categorical parameter range.")
    return math.prod(len(parameter.values) for parameter in parameters)


def grid_combinations(parameters: Sequence[TunedParameter], seed: int) -> list[dict[str, str]]:
    """Every combination of the categorical ranges' values, in an order shuffled by
    ``seed`` (as Optuna's grid sampler visits them, but fixed up front so that a resumed
    tuning job can tell which combinations it has run)."""
    names = [parameter.name for parameter in parameters]
    combinations = [dict(zip(names, values, strict=True))
                    for values in itertools.product(*(p.values for p in parameters))]
    random.Random(seed).shuffle(combinations)
    return combinations


def _article(kind: str) -> str:
    return f"an {kind.lower()}" if kind[0] in "AEIOU" else f"a {kind.lower()}"
