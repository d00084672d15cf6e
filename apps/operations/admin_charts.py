"""Charts for the admin, drawn on the server as inline SVG (docs/operations.md, "Charts in
the admin"): no JavaScript and no chart library, so nothing to vendor and nothing fetched
from a CDN, and the page shows its charts with scripts off.

Each chart is a ``Chart``: an ``<svg role="img">`` with a ``<title>`` and a ``<desc>``
that says in words what it shows (the series' latest and largest values), axes with tick
labels, the y axis named with its unit, and a legend kept outside the SVG, as HTML text.
Series are told apart by colour (the Okabe-Ito palette, readable with the common colour
vision deficiencies) and, for lines, by dash pattern as well. Text and grid lines take
the admin's foreground colour (``currentColor`` under ``var(--body-fg)``), so the charts
follow the admin's light and dark themes.

``admin/sluice/chart.html`` renders a ``Chart`` (a ``<figure>`` with its caption and
legend). Used by the queue page (its rolling history, apps/operations/history.py) and the
query log's latency histogram (apps/query/admin.py).
"""
import dataclasses
import math
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Okabe & Ito (2008), without the yellow, which is too pale on white.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
DASHES = ("", "7 3", "2 3", "9 3 2 3", "4 4", "1 3", "12 4")

WIDTH, HEIGHT = 560, 230  # the viewBox: drawn at the figure's width, text scaled with it
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 12, 44
PLOT_H = HEIGHT - TOP - BOTTOM
# Steps the time axis may take, seconds (at most about six ticks across the span shown).
TIME_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)


@dataclasses.dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]  # one per x position; None: no value there (a gap)


@dataclasses.dataclass(frozen=True)
class LegendEntry:
    label: str
    colour: str
    dash: str
    kind: str  # line | box


@dataclasses.dataclass(frozen=True)
class Chart:
    id: str
    title: str
    caption: str  # what is drawn and from which data, one sentence
    svg: SafeString
    legend: list[LegendEntry]
    width: int = WIDTH


def _fmt(value: float) -> str:
    """A short label for an axis tick or a summary: 3, 2.5, 1,200, 0.025, 12.3."""
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def nice_ticks(largest: float, *, count: int = 4) -> list[float]:
    """Round tick values from 0 up to at least ``largest`` (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not largest or largest <= 0 or not math.isfinite(largest):
        return [0.0, 1.0]
    raw = largest / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    top = math.ceil(largest / step - 1e-9) * step
    return [round(i * step, 10) for i in range(int(round(top / step)) + 1)]


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min" if seconds % 60 == 0 else f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.0f} h" if seconds % 3600 == 0 else f"{seconds / 3600:.1f} h"


def time_ticks(span_s: float) -> list[tuple[float, str]]:
    """``(seconds before now, label)`` for the time axis: "now", "−30 s", "−10 min"..."""
    step = next((s for s in TIME_STEPS if span_s / s <= 6), TIME_STEPS[-1])
    return [(k * step, "now" if k == 0 else f"\u2212{_duration(k * step)}") for k in range(int(span_s // step) + 1)]


def _svg_open(chart_id: str, title: str, description: str, width: int = WIDTH) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" class="sluice-chart" '
        f'style="width: 100%; max-width: {width}px; height: auto; color: var(--body-fg, #333); '
        f'font-family: inherit; font-size: 12px">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def _y_axis(ticks: list[float], *, label: str, percent: bool = False, width: int = WIDTH) -> list[str]:
    """Horizontal grid lines with their values, the y axis and its label (with the unit)."""
    top = ticks[-1] or 1.0
    out = []
    for value in ticks:
        y = TOP + PLOT_H - value / top * PLOT_H
        out.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
                   f'stroke-opacity="{0.5 if value == 0 else 0.15}"/>')
        text = f"{_fmt(value * 100)}%" if percent else _fmt(value)
        out.append(f'<text x="{LEFT - 6}" y="{y + 3.5:.1f}" text-anchor="end" fill="currentColor">{text}</text>')
    out.append(f'<text transform="translate(14 {TOP + PLOT_H / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'fill="currentColor">{escape(label)}</text>')
    return out


def _x_label(label: str, width: int = WIDTH) -> str:
    return (f'<text x="{(LEFT + width - RIGHT) / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
            f'fill="currentColor">{escape(label)}</text>')


def _summary(series: Sequence[Series], unit: str, percent: bool = False) -> str:
    parts = []
    for s in series:
        values = [v for v in s.values if v is not None]
        if not values:
            parts.append(f"{s.label}: no data")
            continue
        show = (lambda v: f"{_fmt(v * 100)}%") if percent else (lambda v: f"{_fmt(v)} {unit}".rstrip())
        parts.append(f"{s.label}: latest {show(values[-1])}, highest {show(max(values))}")
    return "; ".join(parts) + "."


def _finish(chart_id: str, title: str, caption: str, parts: list[str], legend: list[LegendEntry],
            width: int = WIDTH) -> Chart:
    parts.append("</svg>")
    return Chart(id=chart_id, title=title, caption=caption, svg=mark_safe("".join(parts)), legend=legend, width=width)


def time_line_chart(*, chart_id: str, title: str, caption: str, y_label: str, unit: str, times: Sequence[float],
                    series: Sequence[Series], start: float, now: float, percent: bool = False) -> Chart:
    """One line per series over time (``times``: Unix seconds, oldest first), from ``start``
    to ``now``. ``percent``: values are shares (0-1), drawn on a 0-100% axis."""
    span = max(now - start, 1.0)
    plot_w = WIDTH - LEFT - RIGHT
    largest = max((v for s in series for v in s.values if v is not None), default=0.0)
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if percent else nice_ticks(largest)
    top = ticks[-1] or 1.0

    def xy(t: float, v: float) -> tuple[float, float]:
        return LEFT + (t - start) / span * plot_w, TOP + PLOT_H - v / top * PLOT_H

    parts = _svg_open(chart_id, title, f"{caption} {_summary(series, unit, percent)}")
    parts += _y_axis(ticks, label=y_label, percent=percent)
    parts += _time_axis(span)
    legend = []
    for i, s in enumerate(series):
        colour, dash = COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]
        legend.append(LegendEntry(label=s.label, colour=colour, dash=dash, kind="line"))
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="series" data-series="{escape(s.label)}">')
        for run in _runs(times, s.values, start):
            points = [xy(t, v) for t, v in run]
            if len(points) == 1:  # a lone value between gaps: a dot, or it would not show
                parts.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="2.5" fill="{colour}"/>')
            else:
                parts.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}" fill="none" '
                             f'stroke="{colour}" stroke-width="2"{dash_attr} stroke-linejoin="round"/>')
        parts.append("</g>")
    return _finish(chart_id, title, caption, parts, legend)


def time_stacked_bars(*, chart_id: str, title: str, caption: str, y_label: str, unit: str, times: Sequence[float],
                      series: Sequence[Series], start: float, now: float) -> Chart:
    """A bar per time with the series stacked in it (each series one colour)."""
    span = max(now - start, 1.0)
    plot_w = WIDTH - LEFT - RIGHT
    totals = [sum(s.values[i] or 0.0 for s in series) for i in range(len(times))]
    ticks = nice_ticks(max(totals, default=0.0))
    top = ticks[-1] or 1.0
    gaps = [b - a for a, b in zip(times, times[1:]) if b > a]
    width = max(1.0, min(gaps, default=span / 30) / span * plot_w * 0.8)
    parts = _svg_open(chart_id, title, f"{caption} {_summary(series, unit)}")
    parts += _y_axis(ticks, label=y_label)
    parts += _time_axis(span)
    legend = [LegendEntry(label=s.label, colour=COLOURS[i % len(COLOURS)], dash="", kind="box")
              for i, s in enumerate(series)]
    for i, t in enumerate(times):
        if t < start:
            continue
        x = LEFT + (t - start) / span * plot_w - width
        base = 0.0
        for entry, s in zip(legend, series):
            value = s.values[i] or 0.0
            if value <= 0:
                continue
            y0, y1 = TOP + PLOT_H - base / top * PLOT_H, TOP + PLOT_H - (base + value) / top * PLOT_H
            parts.append(f'<rect x="{max(LEFT, x):.1f}" y="{y1:.1f}" width="{width:.1f}" height="{y0 - y1:.1f}" '
                         f'fill="{entry.colour}" data-series="{escape(s.label)}"><title>{escape(s.label)}: '
                         f'{_fmt(value)} {escape(unit)}</title></rect>')
            base += value
    return _finish(chart_id, title, caption, parts, legend)


def grouped_bar_chart(*, chart_id: str, title: str, caption: str, x_label: str, y_label: str, unit: str,
                      categories: Sequence[str], series: Sequence[Series], width: int = WIDTH) -> Chart:
    """For each category (x), a bar per series side by side (a histogram per class)."""
    largest = max((v or 0.0 for s in series for v in s.values), default=0.0)
    ticks = nice_ticks(largest)
    top = ticks[-1] or 1.0
    slot = (width - LEFT - RIGHT) / max(len(categories), 1)
    bar = slot * 0.8 / max(len(series), 1)
    description = f"{caption} " + "; ".join(
        f"{s.label}: " + ", ".join(f"{c} {_fmt(v or 0)}" for c, v in zip(categories, s.values)) for s in series) + "."
    parts = _svg_open(chart_id, title, description, width)
    parts += _y_axis(ticks, label=y_label, width=width)
    legend = [LegendEntry(label=s.label, colour=COLOURS[i % len(COLOURS)], dash="", kind="box")
              for i, s in enumerate(series)]
    for c, category in enumerate(categories):
        x0 = LEFT + c * slot + slot * 0.1
        parts.append(f'<text x="{LEFT + (c + 0.5) * slot:.1f}" y="{TOP + PLOT_H + 15}" text-anchor="middle" '
                     f'fill="currentColor">{escape(category)}</text>')
        for i, (entry, s) in enumerate(zip(legend, series)):
            value = s.values[c] or 0.0
            if value <= 0:
                continue
            height = value / top * PLOT_H
            parts.append(f'<rect x="{x0 + i * bar:.1f}" y="{TOP + PLOT_H - height:.1f}" width="{max(bar - 1, 1):.1f}" '
                         f'height="{height:.1f}" fill="{entry.colour}" data-series="{escape(s.label)}">'
                         f'<title>{escape(s.label)}, {escape(category)}: {_fmt(value)} {escape(unit)}</title></rect>')
    parts.append(_x_label(x_label, width))
    return _finish(chart_id, title, caption, parts, legend, width)


def _time_axis(span: float) -> list[str]:
    out = []
    plot_w = WIDTH - LEFT - RIGHT
    for before, label in time_ticks(span):
        x = LEFT + plot_w - before / span * plot_w
        anchor = "end" if before == 0 else "start" if x < LEFT + 20 else "middle"  # clear of the y axis labels
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H + 4}" stroke="currentColor"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + PLOT_H + 15}" text-anchor="{anchor}" fill="currentColor">{label}</text>')
    out.append(_x_label("time (before now)"))
    return out


def _runs(times: Sequence[float], values: Sequence[float | None], start: float) -> list[list[tuple[float, float]]]:
    """The series cut into runs of consecutive known values inside the span (gaps break the line)."""
    runs, current = [], []
    for t, v in zip(times, values):
        if v is None or t < start:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((t, v))
    if current:
        runs.append(current)
    return runs
