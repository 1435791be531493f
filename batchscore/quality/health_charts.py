"""Inline SVG charts for the model-health page, drawn in Python: no script, no external asset.

Each function returns one `<svg>` element (escaped text, fixed viewBox, CSS classes styled by
the page) that a browser renders offline; every point carries a `<title>` as its tooltip.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 30, 34


@dataclass(frozen=True)
class Series:
    """One line: (day, value) points, optionally a (day, lower, upper) band drawn under it."""

    name: str
    css: str
    points: list[tuple[date, float]]
    band: list[tuple[date, float, float]] = field(default_factory=list)
    dashed: bool = False


def number(value: float | None, digits: int = 4) -> str:
    """A value as the page prints it: `n/a` for a missing one."""
    return "n/a" if value is None else f"{value:.{digits}g}"


def y_bounds(values: Sequence[float], fixed: tuple[float, float] | None) -> tuple[float, float]:
    """The y axis' range: `fixed`, or the values' range padded by 5 % (never zero-wide)."""
    if fixed:
        return fixed
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or (abs(high) * 0.05 or 0.05)
    return low - pad, high + pad


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    first: date,
    last: date,
    fixed: tuple[float, float] | None = None,
) -> str:
    """Lines over the days `first`..`last` (gaps are days without a value), with a legend."""
    e = html.escape
    values = [v for s in series for _, v in s.points] + [
        b for s in series for _, lo, hi in s.band for b in (lo, hi)
    ]
    low, high = y_bounds(values or [0.0, 1.0], fixed)
    span_days = max((last - first).days, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: date) -> float:
        return LEFT + (day - first).days / span_days * plot_w

    def y(value: float) -> float:
        return TOP + (high - min(max(value, low), high)) / (high - low) * plot_h

    parts = [y_axis(low, high, y), x_days(first, last, x)]
    for s in series:
        if s.band:
            upper = [f"{x(d):.1f},{y(hi):.1f}" for d, _, hi in s.band]
            lower = [f"{x(d):.1f},{y(lo):.1f}" for d, lo, _ in reversed(s.band)]
            parts.append(f"<polygon class='band {s.css}' points='{' '.join(upper + lower)}'/>")
        if s.points:
            path = " ".join(
                f"{'M' if i == 0 else 'L'}{x(d):.1f},{y(v):.1f}" for i, (d, v) in enumerate(s.points)
            )
            dash = " dashed" if s.dashed else ""
            parts.append(f"<path class='line {s.css}{dash}' d='{path}'/>")
            parts += [
                f"<circle class='dot {s.css}' cx='{x(d):.1f}' cy='{y(v):.1f}' r='3'>"
                f"<title>{e(s.name)} {d.isoformat()}: {number(v)}</title></circle>"
                for d, v in s.points
            ]
    if len(series) > 1:
        parts.append(legend(series))
    return svg(chart_id, title, parts)


def y_axis(low: float, high: float, y: Callable[[float], float]) -> str:
    """The baseline and four grid lines with their values."""
    parts = [
        f"<line class='axis' x1='{LEFT}' y1='{HEIGHT - BOTTOM}' x2='{WIDTH - RIGHT}' y2='{HEIGHT - BOTTOM}'/>"
    ]
    for step in range(5):
        value = low + (high - low) * step / 4
        at = y(value)
        parts.append(f"<line class='grid' x1='{LEFT}' y1='{at:.1f}' x2='{WIDTH - RIGHT}' y2='{at:.1f}'/>")
        parts.append(
            f"<text class='tick' x='{LEFT - 6}' y='{at + 4:.1f}' text-anchor='end'>{number(value, 3)}</text>"
        )
    return "".join(parts)


def x_days(first: date, last: date, x: Callable[[date], float]) -> str:
    """The first, middle and last day under the plot."""
    middle = first + (last - first) / 2
    return "".join(
        f"<text class='tick' x='{x(day):.1f}' y='{HEIGHT - BOTTOM + 16}' text-anchor='{anchor}'>{day.isoformat()}</text>"
        for day, anchor in ((first, "start"), (middle, "middle"), (last, "end"))
    )


def legend(series: Sequence[Series]) -> str:
    items, at = [], LEFT
    for s in series:
        items.append(
            f"<rect class='key {s.css}' x='{at}' y='10' width='12' height='4'/>"
            f"<text class='tick' x='{at + 16}' y='16'>{html.escape(s.name)}</text>"
        )
        at += 24 + 7 * len(s.name)
    return "".join(items)


def bar_chart(chart_id: str, title: str, bars: Sequence[tuple[str, float, str]], limit: float | None) -> str:
    """Horizontal bars (label, value, css class), longest first as given; `limit` draws a
    dashed reference line (a threshold) at that value."""
    e = html.escape
    row_h, label_w = 22, 190
    height = TOP + row_h * max(len(bars), 1) + 10
    top = max([v for _, v, _ in bars] + [limit or 0.0]) or 1.0
    plot_w = WIDTH - label_w - RIGHT - 50

    def x(value: float) -> float:
        return label_w + max(value, 0.0) / top * plot_w

    parts = []
    for i, (label, value, css) in enumerate(bars):
        at = TOP + i * row_h
        parts.append(
            f"<text class='tick' x='{label_w - 6}' y='{at + 14}' text-anchor='end'>{e(label)}</text>"
            f"<rect class='bar {css}' x='{label_w}' y='{at + 3}' width='{x(value) - label_w:.1f}' height='14'>"
            f"<title>{e(label)}: {number(value)}</title></rect>"
            f"<text class='tick' x='{x(value) + 4:.1f}' y='{at + 14}'>{number(value, 3)}</text>"
        )
    if limit is not None:
        parts.append(
            f"<line class='limit' x1='{x(limit):.1f}' y1='{TOP - 4}' x2='{x(limit):.1f}' y2='{height - 8}'/>"
            f"<text class='tick' x='{x(limit):.1f}' y='{TOP - 8}' text-anchor='middle'>threshold</text>"
        )
    return svg(chart_id, title, parts, height)


def column_chart(chart_id: str, title: str, columns: Sequence[tuple[str, float | None]]) -> str:
    """Vertical bars on a 0..1 axis (shares, rates), one per label; a missing value is left empty."""
    plot_h = HEIGHT - TOP - BOTTOM
    width = (WIDTH - LEFT - RIGHT) / max(len(columns), 1)
    parts = [y_axis(0.0, 1.0, lambda v: TOP + (1.0 - v) * plot_h)]
    for i, (label, value) in enumerate(columns):
        left = LEFT + i * width
        parts.append(
            f"<text class='tick' x='{left + width / 2:.1f}' y='{HEIGHT - BOTTOM + 16}' "
            f"text-anchor='middle'>{html.escape(label)}</text>"
        )
        if value is not None:
            bar_h = min(max(value, 0.0), 1.0) * plot_h
            parts.append(
                f"<rect class='bar s-realized' x='{left + width * 0.15:.1f}' y='{TOP + plot_h - bar_h:.1f}' "
                f"width='{width * 0.7:.1f}' height='{bar_h:.1f}'>"
                f"<title>{html.escape(label)}: {number(value)}</title></rect>"
            )
    return svg(chart_id, title, parts)


def svg(chart_id: str, title: str, parts: Sequence[str], height: int = HEIGHT) -> str:
    """The chart under its caption."""
    e = html.escape
    return (
        f"<figure class='plot'><figcaption>{e(title)}</figcaption>"
        f"<svg id='{e(chart_id)}' class='chart' role='img' aria-label='{e(title)}' "
        f"viewBox='0 0 {WIDTH} {height}' width='{WIDTH}' height='{height}'>"
        f"<title>{e(title)}</title>{''.join(parts)}</svg></figure>"
    )
