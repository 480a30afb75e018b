"""Binning of numeric columns: quantile and uniform-interval bins (scikit-learn's
KBinsDiscretizer) and bins with edges the user chooses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import FrameTransformer, show_value

OUT_OF_RANGE = ("error", "clip", "nan")


class KBinsDiscretizer(FrameTransformer):
    """Each column cut into ``n_bins`` bins of equal width (``uniform``), equal counts
    (``quantile``) or by 1-D k-means (``kmeans``); the output is the bin index (``ordinal``,
    one column per input named as it) or one indicator per bin (``onehot``, columns
    ``<column>_<bin>``)."""

    allows_missing = False

    def __init__(self, n_bins: int = 5, strategy: str = "quantile", encode: str = "ordinal",
                 quantile_method: str = "linear", columns: list[str] | None = None) -> None:
        self.n_bins = n_bins
        self.strategy = strategy
        self.encode = encode
        self.quantile_method = quantile_method
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.preprocessing import KBinsDiscretizer as SklearnKBinsDiscretizer

        if self.encode not in ("ordinal", "onehot"):
            raise ValueError(f"KBinsDiscretizer: encode={self.encode!r} is not one of "
                             "'ordinal', 'onehot'")
        # quantiles computed exactly, without scikit-learn's default subsampling
        self.discretizer_ = SklearnKBinsDiscretizer(
            n_bins=self.n_bins, strategy=self.strategy, encode="ordinal",
            quantile_method=self.quantile_method, subsample=None).fit(
                data.to_numpy(dtype=float))
        self.bin_edges_ = dict(zip(data.columns, self.discretizer_.bin_edges_, strict=True))

    def _output_names(self, columns: list[str]) -> list[str]:
        if self.encode == "ordinal":
            return list(columns)
        return [f"{name}_{index}" for name in columns
                for index in range(len(self.bin_edges_[name]) - 1)]

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        bins = self.discretizer_.transform(data.to_numpy(dtype=float)).astype(int)
        if self.encode == "ordinal":
            return bins
        return _one_hot(bins, [len(self.bin_edges_[name]) - 1 for name in data.columns])


def _one_hot(bins: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    blocks = [np.eye(count, dtype=float)[bins[:, index]] for index, count in enumerate(counts)]
    return np.hstack(blocks)


class CustomBinner(FrameTransformer):
    """Bins with the edges given: ``edges`` is a list of increasing edges for every
    selected column, or a mapping column -> edges. With edges e0 < e1 < ... < ek a value v
    falls in bin i when e_i <= v < e_(i+1) (``right=False``) or e_i < v <= e_(i+1)
    (``right=True``), the outermost edges inclusive; use -inf/inf for open ends. Output: the
    bin index, or ``labels[i]`` when labels are given. Values outside [e0, ek] raise a
    ValueError naming the column (``out_of_range='error'``), go to the nearest end bin
    (``'clip'``) or become missing (``'nan'``)."""

    def __init__(self, edges: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
                 labels: Sequence[Any] | None = None, right: bool = False,
                 out_of_range: str = "error", columns: list[str] | None = None) -> None:
        self.edges = edges
        self.labels = labels
        self.right = right
        self.out_of_range = out_of_range
        self.columns = columns

    def _columns_param(self) -> Any:
        if self.columns is None and isinstance(self.edges, Mapping):
            return list(self.edges)
        return self.columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if self.edges is None:
            raise ValueError("CustomBinner: edges is required (a list of increasing edges, or "
                             "a mapping column -> edges)")
        if self.out_of_range not in OUT_OF_RANGE:
            raise ValueError(f"CustomBinner: out_of_range={self.out_of_range!r} is not one of "
                             f"{OUT_OF_RANGE}")
        edges_by_column = {}
        for name in data.columns:
            if isinstance(self.edges, Mapping):
                if name not in self.edges:
                    raise ValueError(f"CustomBinner: edges has no entry for column {name!r}")
                raw = self.edges[name]
            else:
                raw = self.edges
            column_edges = np.asarray(raw, dtype=float)
            if column_edges.ndim != 1 or len(column_edges) < 2:
                raise ValueError(f"CustomBinner: the edges for column {name!r} must be a list "
                                 f"of at least two numbers, got {raw!r}")
            if np.isnan(column_edges).any() or not (np.diff(column_edges) > 0).all():
                raise ValueError(f"CustomBinner: the edges for column {name!r} must be "
                                 f"strictly increasing, got {list(raw)}")
            if self.labels is not None and len(self.labels) != len(column_edges) - 1:
                raise ValueError(f"CustomBinner: {len(self.labels)} labels for the "
                                 f"{len(column_edges) - 1} bins of column {name!r}")
            edges_by_column[name] = column_edges
        self.bin_edges_ = edges_by_column

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        result = {}
        problems = []
        for name in data.columns:
            edges = self.bin_edges_[name]
            values = data[name].to_numpy(dtype=float)
            missing = np.isnan(values)
            # searchsorted over the inner edges: side decides which bin a value on an edge
            # takes; the outermost edges are inclusive either way
            side = "left" if self.right else "right"
            bins = np.searchsorted(edges[1:-1], values, side=side)
            outside = ~missing & ((values < edges[0]) | (values > edges[-1]))
            if outside.any():
                if self.out_of_range == "error":
                    position = int(np.argmax(outside))
                    problems.append(f"column {name!r}: {int(outside.sum())} values outside "
                                    f"[{edges[0]:g}, {edges[-1]:g}], first "
                                    f"{show_value(values[position])} at row {position}")
                    continue
            invalid = missing | (outside if self.out_of_range == "nan" else False)
            if self.labels is not None:
                column = pd.Series(np.asarray(self.labels, dtype=object)[bins],
                                   index=data.index, dtype=object)
                column[invalid] = None
                result[name] = column.infer_objects()
            elif invalid.any():
                result[name] = pd.Series(np.where(invalid, np.nan, bins), index=data.index)
            else:
                result[name] = pd.Series(bins, index=data.index)
        if problems:
            raise ValueError("CustomBinner: " + "; ".join(problems)
                             + " (widen the edges or pass out_of_range='clip' or 'nan')")
        return pd.DataFrame(result, index=data.index)
