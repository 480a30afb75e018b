"""The data-quality report: per-column types, missing values, distributions and IQR
outliers, the target's class balance, and Pearson and Spearman correlations, as a dict,
``report.json`` and a standalone ``report.html`` with inline SVG plots (a histogram and a
box plot per numeric column, bars for categorical columns and the classes, a heat map per
correlation matrix).

Column types are inferred as follows: boolean (a bool dtype, or only bool values),
numeric (any other number dtype, 0/1 columns included), datetime (a datetime dtype, or
strings that all parse as ISO 8601 dates), categorical (a category dtype, or strings that
are not text) and text (strings averaging at least three words with more than half of them
distinct). Statistics are pandas' (``describe``: sample standard deviation, quartiles by
linear interpolation; ``skew``: the adjusted Fisher-Pearson coefficient); correlations are
pairwise over the rows where both columns have a value.

From a processing script or a shell::

    python -m openmaker.processing.transforms.quality_report <input> <output dir> \\
        [--target COLUMN]

where ``<input>`` is a CSV or Parquet file, or a directory of them (read and concatenated
in name order).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import warnings
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms import _svg
from openmaker.processing.transforms.outliers import iqr_fences
from openmaker.processing.transforms.persistence import _write_atomic

NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"
TEXT = "text"
BOOLEAN = "boolean"
COLUMN_TYPES = (NUMERIC, CATEGORICAL, DATETIME, TEXT, BOOLEAN)
JSON_FILE = "report.json"
HTML_FILE = "report.html"
REPORT_VERSION = 1


def infer_column_type(series: pd.Series) -> str:
    """numeric, categorical, datetime, text or boolean (rules in the module docstring)."""
    dtype = series.dtype
    values = series.dropna()
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DATETIME
    if isinstance(dtype, pd.CategoricalDtype) or values.empty:
        return CATEGORICAL
    if values.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return BOOLEAN
    if values.map(lambda v: isinstance(v, dt.date | np.datetime64)).all():
        return DATETIME
    if not values.map(lambda v: isinstance(v, str)).all():
        return CATEGORICAL
    if _all_iso_dates(values):
        return DATETIME
    words = values.str.split().str.len()
    if words.mean() >= 3 and values.nunique() > len(values) / 2:
        return TEXT
    return CATEGORICAL


def _all_iso_dates(values: pd.Series) -> bool:
    # a date has a separator; without this check a column of years would become dates
    if not values.str.contains(r"\d[-:/]\d|\d{8}T", regex=True).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mixed time zones warn; they still parse or fail
        try:
            parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            return False
    return not parsed.isna().any()


def data_quality_report(frame: pd.DataFrame, target: str | None = None,
                        output_dir: str | Path | None = None, *, iqr_factor: float = 1.5,
                        top_values: int = 10, histogram_bins: int = 20,
                        max_classes: int = 50, title: str = "Data-quality report"
                        ) -> dict[str, Any]:
    """The report on ``frame`` as a JSON-ready dict; with ``output_dir`` it is also written
    there as ``report.json`` and ``report.html``, each atomically.

    ``target`` names the label column whose class balance is reported; a numeric target
    with more than ``max_classes`` distinct values is taken as a regression target and gets
    no class balance.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"data_quality_report: expected a DataFrame, got "
                         f"{type(frame).__name__}")
    if frame.shape[1] == 0:
        raise ValueError("data_quality_report: the frame has no columns")
    if len(frame) == 0:
        raise ValueError(f"data_quality_report: the frame has no rows (columns "
                         f"{[str(c) for c in frame.columns]})")
    if frame.columns.duplicated().any():
        raise ValueError(f"data_quality_report: duplicated column names "
                         f"{sorted(set(map(str, frame.columns[frame.columns.duplicated()])))}")
    if not (isinstance(iqr_factor, int | float) and iqr_factor >= 0):
        raise ValueError(f"data_quality_report: iqr_factor must be a number >= 0, got "
                         f"{iqr_factor!r}")
    for parameter, value in (("top_values", top_values), ("histogram_bins", histogram_bins),
                             ("max_classes", max_classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"data_quality_report: {parameter} must be an integer >= 1, got "
                             f"{value!r}")
    frame = frame.rename(columns=str)
    if target is not None and target not in frame.columns:
        raise ValueError(f"data_quality_report: target {target!r} is not a column of the "
                         f"frame (its columns: {list(frame.columns)})")
    columns = {name: _column_entry(frame[name], iqr_factor, top_values)
               for name in frame.columns}
    numeric = [name for name, entry in columns.items() if entry["type"] == NUMERIC]
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "title": title,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": len(frame),
        "column_count": frame.shape[1],
        "duplicate_rows": _duplicate_rows(frame),
        "missing_cells": int(frame.isna().sum().sum()),
        "columns": columns,
        "target": (None if target is None
                   else _class_balance(frame[target], columns[target]["type"], max_classes)),
        "correlations": _correlations(frame, numeric),
    }
    report = _json_ready(report)
    if output_dir is not None:
        directory = Path(output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        document = json.dumps(report, indent=2, allow_nan=False).encode("utf-8")
        page = render_html(report, frame, histogram_bins).encode("utf-8")
        _write_atomic(directory / JSON_FILE, lambda handle: handle.write(document))
        _write_atomic(directory / HTML_FILE, lambda handle: handle.write(page))
    return report


def _duplicate_rows(frame: pd.DataFrame) -> int | None:
    try:
        return int(frame.duplicated().sum())
    except TypeError:  # unhashable cells (lists, dicts) cannot be compared as rows
        return None


def _column_entry(series: pd.Series, iqr_factor: float, top_values: int) -> dict[str, Any]:
    kind = infer_column_type(series)
    rows = len(series)
    present = series.dropna()
    entry: dict[str, Any] = {
        "type": kind,
        "dtype": str(series.dtype),
        "count": int(present.size),
        "missing_count": int(rows - present.size),
        "missing_fraction": (rows - present.size) / rows,
        "distinct_count": _distinct(present),
    }
    if kind == NUMERIC:
        values = present.astype(float)
        entry["infinite_count"] = int(np.isinf(values.to_numpy()).sum())
        # infinities make numpy's interpolation warn; the statistics then are +-inf or NaN
        with np.errstate(all="ignore"):
            entry["summary"] = _numeric_summary(values)
            entry["outliers"] = _iqr_outliers(values, iqr_factor, rows)
    elif kind == DATETIME:
        entry["summary"] = _datetime_summary(present)
    else:
        entry["summary"] = _value_summary(present, top_values)
        if kind == TEXT:
            text = present.astype(str)
            entry["summary"]["mean_length"] = float(text.str.len().mean())
            entry["summary"]["mean_words"] = float(text.str.split().str.len().mean())
    return entry


def _distinct(values: pd.Series) -> int | None:
    try:
        return int(values.nunique())
    except TypeError:
        return None


def _numeric_summary(values: pd.Series) -> dict[str, Any]:
    if values.empty:
        return {"count": 0}
    described = values.describe()
    summary = {key: float(described[key])
               for key in ("mean", "std", "min", "25%", "50%", "75%", "max")}
    return {"count": int(described["count"]), **summary, "skew": float(values.skew())}


def _iqr_outliers(values: pd.Series, factor: float, rows: int) -> dict[str, Any]:
    lower, upper = iqr_fences(values, factor)
    low = int((values < lower).sum())
    high = int((values > upper).sum())
    return {"method": "iqr", "factor": factor, "lower_fence": lower, "upper_fence": upper,
            "count": low + high, "fraction": (low + high) / rows, "below": low,
            "above": high}


def _datetime_summary(values: pd.Series) -> dict[str, Any]:
    if values.empty:
        return {"count": 0}
    parsed = values
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        strings = values.map(lambda v: isinstance(v, str)).all()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mixed time zones warn before they fail
            try:
                parsed = pd.to_datetime(values, format="ISO8601" if strings else None)
            except (ValueError, TypeError):  # mixed time zones: compare them in UTC
                parsed = pd.to_datetime(values, format="ISO8601" if strings else None,
                                        utc=True)
    return {"count": int(parsed.size), "min": parsed.min().isoformat(),
            "max": parsed.max().isoformat()}


def _value_summary(values: pd.Series, top_values: int) -> dict[str, Any]:
    counts = values.astype(str).value_counts() if values.map(_unhashable).any() \
        else values.value_counts()
    total = max(int(values.size), 1)
    top = [{"value": _plain(value), "count": int(count), "fraction": int(count) / total}
           for value, count in counts.head(top_values).items()]
    return {"count": int(values.size), "top_values": top}


def _unhashable(value: Any) -> bool:
    return isinstance(value, list | dict | set | np.ndarray)


def _class_balance(series: pd.Series, kind: str, max_classes: int) -> dict[str, Any]:
    present = series.dropna()
    if present.empty:
        raise ValueError(f"data_quality_report: target {series.name!r} has no values")
    entry: dict[str, Any] = {"name": str(series.name), "type": kind,
                             "missing_count": int(series.size - present.size)}
    counts = present.astype(str).value_counts() if present.map(_unhashable).any() \
        else present.value_counts()
    if kind == NUMERIC and len(counts) > max_classes:
        entry.update(classes=None, note=(f"a numeric target with {len(counts)} distinct values "
                                         f"(more than max_classes={max_classes}) is a "
                                         "regression target: no class balance"))
        return entry
    # largest first; equal counts in the classes' own order, so the report is stable
    ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
    total = int(present.size)
    entry["classes"] = [{"class": _plain(value), "count": int(count),
                         "fraction": int(count) / total} for value, count in ordered]
    entry["class_count"] = len(ordered)
    entry["majority_class"] = _plain(ordered[0][0])
    entry["minority_class"] = _plain(ordered[-1][0])
    entry["imbalance_ratio"] = int(ordered[0][1]) / int(ordered[-1][1])
    return entry


def _correlations(frame: pd.DataFrame, numeric: list[str]) -> dict[str, Any]:
    data = frame[numeric].astype(float)
    with np.errstate(all="ignore"):  # constant and infinite columns have no correlation
        return {"columns": numeric,
                "pearson": data.corr(method="pearson").to_numpy().tolist(),
                "spearman": data.corr(method="spearman").to_numpy().tolist()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _json_ready(value: Any) -> Any:
    """numpy scalars as Python ones, NaN and infinities as None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------- HTML

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222;max-width:1200px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right;font-size:0.9em}th{background:#f3f3f3}td.name,th.name{text-align:left}
.column{border:1px solid #e3e3e3;border-radius:6px;padding:8px 14px;margin:12px 0}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fafafa}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;background:#e8eef7;
font-size:0.85em}
"""


def render_html(report: dict[str, Any], frame: pd.DataFrame, histogram_bins: int = 20) -> str:
    """The report as one standalone HTML page (inline CSS and SVG, nothing fetched)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{escape(report['title'])}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{escape(report['title'])}</h1>",
             f"<p>{report['rows']} rows, {report['column_count']} columns, "
             f"{report['missing_cells']} missing cells, "
             f"{_cell(report['duplicate_rows'])} duplicate rows. Created "
             f"{escape(report['created'])}.</p>",
             _overview_table(report)]
    if report["target"] is not None:
        parts.append(_target_section(report["target"]))
    parts.append("<h2>Columns</h2>")
    for name, entry in report["columns"].items():
        parts.append(_column_section(name, entry, frame[name], histogram_bins))
    parts.append(_correlation_section(report["correlations"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return escape(_svg.number(value))
    return escape(str(value))


def _overview_table(report: dict[str, Any]) -> str:
    rows = ["<h2>Overview</h2><table><tr><th class=\"name\">column</th><th>type</th>"
            "<th>missing</th><th>missing %</th><th>distinct</th><th>IQR outliers</th></tr>"]
    for name, entry in report["columns"].items():
        outliers = entry.get("outliers")
        rows.append(f"<tr><td class=\"name\">{escape(name)}</td><td>{entry['type']}</td>"
                    f"<td>{entry['missing_count']}</td>"
                    f"<td>{100 * entry['missing_fraction']:.1f}</td>"
                    f"<td>{_cell(entry['distinct_count'])}</td>"
                    f"<td>{'' if outliers is None else outliers['count']}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _target_section(target: dict[str, Any]) -> str:
    parts = [f"<h2>Target: {escape(target['name'])}</h2>"]
    if target.get("classes") is None:
        parts.append(f"<p>{escape(target['note'])}</p>")
        return "".join(parts)
    parts.append(f"<p>{target['class_count']} classes; imbalance ratio (largest / smallest) "
                 f"{_cell(target['imbalance_ratio'])}.</p><table><tr><th class=\"name\">class"
                 "</th><th>count</th><th>fraction</th></tr>")
    for entry in target["classes"]:
        parts.append(f"<tr><td class=\"name\">{escape(str(entry['class']))}</td>"
                     f"<td>{entry['count']}</td><td>{entry['fraction']:.4f}</td></tr>")
    parts.append("</table>")
    parts.append(_svg.bar_chart([str(entry["class"]) for entry in target["classes"]],
                                [entry["count"] for entry in target["classes"]],
                                f"class balance of {target['name']}"))
    return "".join(parts)


def _column_section(name: str, entry: dict[str, Any], series: pd.Series,
                    histogram_bins: int) -> str:
    parts = [f"<div class=\"column\"><h3>{escape(name)} <span class=\"badge\">"
             f"{entry['type']}</span></h3>"]
    summary = entry["summary"]
    simple = {key: value for key, value in summary.items() if key != "top_values"}
    parts.append("<table><tr>" + "".join(f"<th>{escape(key)}</th>" for key in simple)
                 + "<th>missing</th></tr><tr>"
                 + "".join(f"<td>{_cell(value)}</td>" for value in simple.values())
                 + f"<td>{entry['missing_count']}</td></tr></table>")
    if entry["type"] == NUMERIC and summary.get("count"):
        outliers = entry["outliers"]
        parts.append(f"<p>IQR fences (factor {_cell(outliers['factor'])}): "
                     f"{_cell(outliers['lower_fence'])} to {_cell(outliers['upper_fence'])}; "
                     f"{outliers['count']} outliers ({outliers['below']} below, "
                     f"{outliers['above']} above).</p>")
        values = series.dropna().astype(float).to_numpy()
        values = values[np.isfinite(values)]
        charts = [_svg.histogram(values, histogram_bins, f"histogram of {name}")]
        quartiles = (summary["25%"], summary["50%"], summary["75%"])
        low, high = outliers["lower_fence"], outliers["upper_fence"]
        # infinite values leave the quartiles or fences undefined (None): no box to draw
        if None not in quartiles and None not in (low, high) and values.size:
            inside = values[(values >= low) & (values <= high)]
            whiskers = ((float(inside.min()), float(inside.max())) if inside.size
                        else (low, high))
            outside = np.sort(values[(values < low) | (values > high)])
            charts.append(_svg.box_plot(quartiles, whiskers, outside.tolist(),
                                        f"box plot of {name}"))
        parts.append("<div class=\"charts\">" + "".join(charts) + "</div>")
    elif "top_values" in summary and summary["top_values"]:
        top = summary["top_values"]
        parts.append(_svg.bar_chart([str(item["value"]) for item in top],
                                    [item["count"] for item in top],
                                    f"most frequent values of {name}"))
    parts.append("</div>")
    return "".join(parts)


def _correlation_section(correlations: dict[str, Any]) -> str:
    names = correlations["columns"]
    parts = ["<h2>Correlations</h2>"]
    if len(names) < 2:
        parts.append("<p>Fewer than two numeric columns: no correlations.</p>")
        return "".join(parts)
    parts.append("<div class=\"charts\">")
    for method in ("pearson", "spearman"):
        parts.append(_svg.heat_map(names, correlations[method],
                                   f"{method.capitalize()} correlation"))
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------- command line


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file (by extension; ``.gz`` and friends decompressed), or every such
    file in a directory, concatenated in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _table_format(p))
        if not files:
            raise ValueError(f"{path}: the directory has no .csv or .parquet files")
        return pd.concat([read_table(p) for p in files], ignore_index=True)
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    kind = _table_format(path)
    if kind == "parquet":
        return pd.read_parquet(path)
    if kind == "csv":
        return pd.read_csv(path)
    raise ValueError(f"{path}: not a .csv or .parquet file (add the extension)")


def _table_format(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and suffixes[-1] in (".csv", ".txt"):
        return "csv"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m openmaker.processing.transforms.quality_report``."""
    parser = argparse.ArgumentParser(
        prog="python -m openmaker.processing.transforms.quality_report",
        description="Write report.json and report.html on a CSV or Parquet data set.")
    parser.add_argument("input", help="a .csv or .parquet file, or a directory of them")
    parser.add_argument("output_dir", help="where report.json and report.html go")
    parser.add_argument("--target", help="the label column whose class balance to report")
    parser.add_argument("--iqr-factor", type=float, default=1.5,
                        help="the IQR fence factor (default 1.5)")
    parser.add_argument("--title", default="Data-quality report")
    args = parser.parse_args(argv)
    try:
        frame = read_table(args.input)
        report = data_quality_report(frame, args.target, args.output_dir,
                                     iqr_factor=args.iqr_factor, title=args.title)
    except (ValueError, OSError) as exc:
        print(f"quality_report: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output_dir)
    print(f"quality_report: {report['rows']} rows, {report['column_count']} columns -> "
          f"{output / JSON_FILE}, {output / HTML_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
