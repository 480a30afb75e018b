"""Hand-written inline SVG charts for the data-quality report: histogram, box plot, bar
chart and correlation heat map. Each returns an ``<svg>`` element for an HTML5 page; it
needs no namespace, script, font or other outside resource."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

WIDTH = 360
HEIGHT = 200
BAR_COLOUR = "#4c78a8"
OUTLIER_COLOUR = "#e45756"
# at most this many outlier dots in a box plot; the count is in the report either way
MAX_OUTLIER_DOTS = 200


def number(value: float) -> str:
    """A short label for a number (4 significant digits)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}"


def _open(width: int, height: int, label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>")


def _text(x: float, y: float, content: str, anchor: str = "middle", size: int = 11,
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"'
            f'{extra}>{escape(content)}</text>')


def histogram(values: np.ndarray, bins: int, label: str) -> str:
    """Counts of the finite ``values`` in ``bins`` equal-width bins (numpy's edges)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    left, right, top, bottom = 40, 10, 20, 30
    svg = [_open(WIDTH, HEIGHT, label)]
    if finite.size == 0:
        svg.append(_text(WIDTH / 2, HEIGHT / 2, "no values"))
        return "".join(svg) + "</svg>"
    counts, edges = np.histogram(finite, bins=bins)
    plot_width, plot_height = WIDTH - left - right, HEIGHT - top - bottom
    peak = max(int(counts.max()), 1)
    bar_width = plot_width / len(counts)
    for i, count in enumerate(counts):
        bar_height = plot_height * count / peak
        x = left + i * bar_width
        svg.append(f'<rect x="{x:.1f}" y="{top + plot_height - bar_height:.1f}" '
                   f'width="{max(bar_width - 1, 0.5):.1f}" height="{bar_height:.1f}" '
                   f'fill="{BAR_COLOUR}"><title>{escape(number(edges[i]))} to '
                   f'{escape(number(edges[i + 1]))}: {int(count)}</title></rect>')
    axis_y = top + plot_height
    svg.append(f'<line x1="{left}" y1="{axis_y}" x2="{WIDTH - right}" y2="{axis_y}" '
               'stroke="#333"/>')
    svg.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" stroke="#333"/>')
    svg.append(_text(left, axis_y + 14, number(edges[0]), "start"))
    svg.append(_text(WIDTH - right, axis_y + 14, number(edges[-1]), "end"))
    svg.append(_text(left - 4, top + 8, str(peak), "end"))
    svg.append(_text(left - 4, axis_y, "0", "end"))
    svg.append(_text(WIDTH / 2, HEIGHT - 4, label))
    return "".join(svg) + "</svg>"


def box_plot(quartiles: Sequence[float], whiskers: Sequence[float],
             outliers: Sequence[float], label: str) -> str:
    """A horizontal box plot: the box from Q1 to Q3 with the median, whiskers to the most
    extreme values inside the fences, and the values outside them as dots."""
    q1, median, q3 = quartiles
    low, high = whiskers
    svg = [_open(WIDTH, 110, label)]
    points = [float(v) for v in (q1, median, q3, low, high, *outliers)
              if v is not None and math.isfinite(v)]
    if not points:
        svg.append(_text(WIDTH / 2, 55, "no values"))
        return "".join(svg) + "</svg>"
    smallest, largest = min(points), max(points)
    span = largest - smallest or 1.0
    left, right, middle = 20, WIDTH - 20, 45

    def position(value: float) -> float:
        return left + (right - left) * (value - smallest) / span

    svg.append(f'<line x1="{position(low):.1f}" y1="{middle}" x2="{position(q1):.1f}" '
               f'y2="{middle}" stroke="#333"/>')
    svg.append(f'<line x1="{position(q3):.1f}" y1="{middle}" x2="{position(high):.1f}" '
               f'y2="{middle}" stroke="#333"/>')
    for end in (low, high):
        svg.append(f'<line x1="{position(end):.1f}" y1="{middle - 10}" '
                   f'x2="{position(end):.1f}" y2="{middle + 10}" stroke="#333"/>')
    svg.append(f'<rect x="{position(q1):.1f}" y="{middle - 18}" '
               f'width="{max(position(q3) - position(q1), 1):.1f}" height="36" '
               f'fill="#9ecae9" stroke="#333"><title>Q1 {escape(number(q1))}, median '
               f'{escape(number(median))}, Q3 {escape(number(q3))}</title></rect>')
    svg.append(f'<line x1="{position(median):.1f}" y1="{middle - 18}" '
               f'x2="{position(median):.1f}" y2="{middle + 18}" stroke="#000" '
               'stroke-width="2"/>')
    for value in list(outliers)[:MAX_OUTLIER_DOTS]:
        svg.append(f'<circle cx="{position(float(value)):.1f}" cy="{middle}" r="3" '
                   f'fill="none" stroke="{OUTLIER_COLOUR}"><title>{escape(number(value))}'
                   "</title></circle>")
    svg.append(_text(left, 85, number(smallest), "start"))
    svg.append(_text(right, 85, number(largest), "end"))
    svg.append(_text(WIDTH / 2, 104, label))
    return "".join(svg) + "</svg>"


def bar_chart(labels: Sequence[str], counts: Sequence[int], label: str) -> str:
    """Horizontal bars, one per label, longest for the largest count."""
    row = 18
    left = 120
    height = 30 + row * max(len(labels), 1)
    svg = [_open(WIDTH, height, label)]
    peak = max([int(c) for c in counts] + [1])
    for i, (name, count) in enumerate(zip(labels, counts, strict=True)):
        y = 8 + i * row
        width = (WIDTH - left - 50) * int(count) / peak
        shown = name if len(name) <= 18 else name[:17] + "…"
        svg.append(_text(left - 4, y + 12, shown, "end"))
        svg.append(f'<rect x="{left}" y="{y}" width="{width:.1f}" height="{row - 4}" '
                   f'fill="{BAR_COLOUR}"><title>{escape(name)}: {int(count)}</title></rect>')
        svg.append(_text(left + width + 4, y + 12, str(int(count)), "start"))
    svg.append(_text(WIDTH / 2, height - 6, label))
    return "".join(svg) + "</svg>"


def correlation_colour(value: float | None) -> str:
    """Blue for -1, white for 0, red for 1; grey when undefined."""
    if value is None or not math.isfinite(value):
        return "#cccccc"
    value = max(-1.0, min(1.0, value))
    end = (178, 24, 43) if value > 0 else (33, 102, 172)
    weight = abs(value)
    red, green, blue = (round(255 + (channel - 255) * weight) for channel in end)
    return f"#{red:02x}{green:02x}{blue:02x}"


def heat_map(names: Sequence[str], matrix: Sequence[Sequence[float | None]], label: str) -> str:
    """A cell per pair of columns coloured by its correlation, the value written in it."""
    count = len(names)
    cell = 44 if count <= 10 else max(14, 440 // count)
    left = top = 110
    size = left + cell * count + 10
    svg = [_open(size, size + 20, label)]
    for i, name in enumerate(names):
        shown = name if len(name) <= 15 else name[:14] + "…"
        svg.append(_text(left - 4, top + i * cell + cell / 2 + 4, shown, "end"))
        x = left + i * cell + cell / 2
        svg.append(_text(x, top - 6, shown, "start",
                         extra=f' transform="rotate(-45 {x:.1f} {top - 6})"'))
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            x, y = left + j * cell, top + i * cell
            svg.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" '
                       f'fill="{correlation_colour(value)}" stroke="#fff">'
                       f"<title>{escape(names[i])} / {escape(names[j])}: "
                       f"{escape(number(value))}</title></rect>")
            if cell >= 30:
                shade = "#fff" if value is not None and abs(value) > 0.6 else "#000"
                svg.append(_text(x + cell / 2, y + cell / 2 + 4,
                                 "n/a" if value is None else f"{value:.2f}", size=10,
                                 extra=f' fill="{shade}"'))
    svg.append(_text(size / 2, size + 14, label))
    return "".join(svg) + "</svg>"
