"""Cyclical features: sin/cos of hour, weekday and month from a datetime column (periods 24,
7, 12) and from integer columns, neighbours across the wrap-around close together, and
out-of-range values named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from openmaker.processing.transforms import CyclicalEncoder


def test_datetime_columns_give_sin_and_cos_of_hour_weekday_and_month() -> None:
    # 2024-01-01 is a Monday (weekday 0)
    moments = pd.to_datetime(["2024-01-01 06:00", "2024-07-06 18:00"])
    frame = pd.DataFrame({"when": moments, "v": [1, 2]})
    encoder = CyclicalEncoder().fit(frame)
    assert encoder.columns_ == ["when"]
    assert list(encoder.get_feature_names_out()) == [
        "when_hour_sin", "when_hour_cos", "when_weekday_sin", "when_weekday_cos",
        "when_month_sin", "when_month_cos", "v"]
    out = encoder.transform(frame)
    assert out.iloc[0, :6].tolist() == pytest.approx([
        1.0, 0.0,  # 6 h of 24: a quarter turn
        0.0, 1.0,  # Monday
        np.sin(2 * np.pi / 12), np.cos(2 * np.pi / 12)], abs=1e-12)  # January = 1
    assert out.iloc[1, :6].tolist() == pytest.approx([
        -1.0, 0.0, np.sin(2 * np.pi * 5 / 7), np.cos(2 * np.pi * 5 / 7),  # Saturday = 5
        np.sin(2 * np.pi * 7 / 12), np.cos(2 * np.pi * 7 / 12)], abs=1e-12)
    assert out["v"].tolist() == [1, 2]
    only_hour = CyclicalEncoder(components=["hour"]).fit(frame)
    assert list(only_hour.get_feature_names_out()) == ["when_hour_sin", "when_hour_cos", "v"]


def test_integer_columns_with_a_named_or_numeric_period() -> None:
    frame = pd.DataFrame({"hour": [0, 6, 23], "month": [1, 12, 6]})
    hours = CyclicalEncoder(period="hour", columns=["hour"]).fit_transform(frame)
    assert list(hours.columns) == ["hour_sin", "hour_cos", "month"]
    angles = 2 * np.pi * np.array([0, 6, 23]) / 24
    assert hours["hour_sin"].tolist() == pytest.approx(np.sin(angles).tolist())
    assert hours["hour_cos"].tolist() == pytest.approx(np.cos(angles).tolist())
    # 23:00 lies as close to 00:00 as 01:00 does
    first, last = hours.iloc[0, :2].to_numpy(), hours.iloc[2, :2].to_numpy()
    assert np.linalg.norm(first - last) == pytest.approx(2 * np.sin(np.pi / 24))
    months = CyclicalEncoder(period=12, columns=["month"]).fit_transform(frame)
    assert months["month_cos"].iloc[1] == pytest.approx(1.0)  # December = a full turn


def test_values_outside_the_component_range_and_missing_period_are_errors() -> None:
    frame = pd.DataFrame({"hour": [0, 25]})
    with pytest.raises(ValueError, match=r"column 'hour' holds hour values 0-23, got 25.0 at "
                                         r"row 1"):
        CyclicalEncoder(period="hour", columns=["hour"]).fit_transform(frame)
    with pytest.raises(ValueError, match=r"numeric columns \['hour'\] need period="):
        CyclicalEncoder(columns=["hour"]).fit(frame)
    with pytest.raises(ValueError, match="period='day' is not one of"):
        CyclicalEncoder(period="day", columns=["hour"]).fit(frame)
    with pytest.raises(ValueError, match="components=.*must be a non-empty list"):
        CyclicalEncoder(components=["second"]).fit(
            pd.DataFrame({"t": pd.to_datetime(["2024-01-01"])}))
    with pytest.raises(ValueError, match="no datetime columns"):
        CyclicalEncoder().fit(frame)
