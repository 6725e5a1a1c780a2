"""Server-side charts for the status page: inline SVG, no JavaScript, no
files to serve (the page works offline and without a CDN).

Each chart carries its numbers as data attributes (``data-chart``,
``data-totals``, per-series ``data-values``), so a browser test, or a
curious operator, reads exactly what was drawn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from html import escape

__all__ = ["COLORS", "coverage_bars", "line_chart"]

COLORS = {
    "received": "#2b6cb0",
    "processed": "#2f855a",
    "ignored": "#718096",
    "failed": "#c05621",
    "dead": "#c53030",
    "lag_p50_seconds": "#2b6cb0",
    "lag_p99_seconds": "#c53030",
    "events": "#2f855a",
    "healed": "#dd6b20",
}
WIDTH, HEIGHT = 900, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
COVERAGE_SLOTS = 30  # bar width: as if 30 runs were shown (sync.status.COVERAGE_RUNS)


def _attr(value: object) -> str:
    return escape(json.dumps(value, separators=(",", ":")), quote=True)


def _nice(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def _fmt(value: float) -> str:
    return f"{value:g}" if value < 10_000 else f"{value / 1000:g}k"


def line_chart(
    name: str,
    times: Sequence[datetime],
    series: dict[str, Sequence[float | None]],
    *,
    unit: str = "",
    totals: dict[str, float] | None = None,
) -> str:
    """A line per series over ``times`` (gaps where a value is None)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for vs in series.values() for v in vs if v is not None]
    top = _nice(max(values, default=0))
    n = max(len(times), 1)

    def xy(i: int, v: float) -> str:
        x = LEFT + (plot_w * i / max(n - 1, 1))
        y = TOP + plot_h - plot_h * (v / top)
        return f"{x:.1f},{y:.1f}"

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(name)}" data-chart="{escape(name)}" '
        f'data-totals="{_attr(totals or {})}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    for frac in (0, 0.5, 1):
        y = TOP + plot_h - plot_h * frac
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f"{escape(_fmt(top * frac))}{escape(unit)}</text>")
    ticks = max(n // 8, 1)
    for i in range(0, n, ticks):
        x = LEFT + plot_w * i / max(n - 1, 1)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">'
                     f"{times[i]:%H:%M}</text>")
    for label, vs in series.items():
        color = COLORS.get(label, "#333")
        segments: list[list[str]] = [[]]
        for i, v in enumerate(vs):
            if v is None:
                segments.append([])
            else:
                segments[-1].append(xy(i, v))
        parts.append(f'<g class="series" data-series="{escape(label)}" '
                     f'data-values="{_attr(list(vs))}">')
        for points in segments:
            if len(points) == 1:
                x, y = points[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{color}"/>')
            elif points:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
                             f'points="{" ".join(points)}"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def coverage_bars(runs: Sequence[dict]) -> str:
    """One stacked bar per measured full sync: the share events had applied
    (green) and the share the run healed (orange)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        '<svg class="chart" role="img" aria-label="event coverage" data-chart="coverage" '
        f'data-runs="{_attr([r["run"] for r in runs])}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'width="100%" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#ccc"/>',
    ]
    for frac in (0, 0.5, 1):
        y = TOP + plot_h - plot_h * frac
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f"{int(frac * 100)} %</text>")
    slot = plot_w / max(len(runs), COVERAGE_SLOTS)
    for i, run in enumerate(runs):
        total = run["events_applied"] + run["drift_healed"]
        share = run["events_applied"] / total if total else None
        x = LEFT + i * slot + slot * 0.15
        w = slot * 0.7
        attrs = (f'class="bar" data-run="{run["run"]}" data-events-applied="{run["events_applied"]}" '
                 f'data-drift-healed="{run["drift_healed"]}" '
                 f'data-coverage="{"" if share is None else round(share * 100, 1)}"')
        parts.append(f"<g {attrs}><title>run #{run['run']}: "
                     f"{run['events_applied']} by events, {run['drift_healed']} healed</title>")
        if share is None:
            parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - 2}" width="{w:.1f}" height="2" '
                         'fill="#ccc"/>')
        else:
            events_h = plot_h * share
            parts.append(f'<rect x="{x:.1f}" y="{TOP + plot_h - events_h:.1f}" width="{w:.1f}" '
                         f'height="{events_h:.1f}" fill="{COLORS["events"]}"/>')
            parts.append(f'<rect x="{x:.1f}" y="{TOP}" width="{w:.1f}" '
                         f'height="{plot_h - events_h:.1f}" fill="{COLORS["healed"]}"/>')
        parts.append(f'<text x="{x + w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" '
                     f'font-size="11">#{run["run"]}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
