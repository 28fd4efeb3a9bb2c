"""Small SVG line charts for KPIs over time, one line per segment, drawn on the server (no script, no CDN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

W, H, LEFT, RIGHT, TOP, BOTTOM = 560, 200, 52, 28, 12, 30
PALETTE = 6  # series-0 … series-5 in the style sheet


def line_chart(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], unit: str) -> str:
    """``series`` maps a name to one value per label (None: nothing measured then)."""
    values = [v for points in series.values() for v in points if v is not None]
    if not values or not labels:
        return '<p class="empty">nothing measured in this period</p>'
    top = max(values) or 1.0
    top = top * 1.1
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: float) -> float:
        return TOP + plot_h - (v / top) * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(unit)} over time">']
    for fraction in (0.0, 0.5, 1.0):
        gy = TOP + plot_h - fraction * plot_h
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{gy:.1f}" x2="{W - RIGHT}" y2="{gy:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">{_short(top * fraction)}</text>'
        )
    every = max(1, len(labels) // 6)
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{H - 10}" text-anchor="middle">{escape(label)}</text>')
    for index, (name, points) in enumerate(series.items()):
        css = f"series-{index % PALETTE}"
        segments: list[list[str]] = [[]]
        for i, v in enumerate(points):
            if v is None:
                segments.append([])
                continue
            segments[-1].append(f"{x(i):.1f},{y(v):.1f}")
            parts.append(
                f'<circle class="{css}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3">'
                f"<title>{escape(name)} {escape(labels[i])}: {_short(v)} {escape(unit)}</title></circle>"
            )
        for segment in segments:
            if len(segment) > 1:
                parts.append(f'<polyline class="line {css}" points="{" ".join(segment)}"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch series-{i % PALETTE}"></span>{escape(name)}</li>' for i, name in enumerate(series)
    )
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2g}"
