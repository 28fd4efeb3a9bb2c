"""A process map (the directly-follows graph of ``opsrail.insights.process_map``) as an SVG drawn on the server.

Layout: a node's column is its median place in the runs that reach it (start on the left, end on the right); rows
fill each column, the most frequent first. An edge's width grows with its runs; an edge that goes right is a curve
between the two nodes' sides, one that stays in its column or goes back loops above them, in a band kept free for
such loops. Each node and edge has a
``<title>`` with its figures, which browsers show on hover and screen readers read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from opsrail.insights import END, START, readable_hours

NODE_W, NODE_H, GAP_X, GAP_Y, PAD, LOOPS = 176, 44, 64, 22, 14, 36


def _minutes(value: float | None) -> str:
    return readable_hours(None if value is None else value / 60.0)


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def process_map_svg(graph: Mapping[str, Any]) -> str:
    """The graph as an inline ``<svg>``; an empty string when no run ended a step."""
    nodes: Sequence[Mapping[str, Any]] = graph.get("nodes") or []
    edges: Sequence[Mapping[str, Any]] = graph.get("edges") or []
    if not nodes:
        return ""
    column = {node["activity"]: 1 + round(node.get("position") or 0) for node in nodes}
    last = max(column.values()) + 1
    column[START] = 0
    column[END] = last
    counts = {node["activity"]: node["count"] for node in nodes}
    counts[START] = graph.get("runs", 0)
    counts[END] = sum(e["count"] for e in edges if e["to"] == END)
    rows: dict[int, list[str]] = {}
    for name in sorted(column, key=lambda n: (column[n], -counts.get(n, 0), n)):
        if name == END and not counts[END]:
            continue
        rows.setdefault(column[name], []).append(name)
    place = {
        name: (PAD + col * (NODE_W + GAP_X), PAD + LOOPS + row * (NODE_H + GAP_Y))
        for col, names in rows.items()
        for row, name in enumerate(names)
    }
    width = PAD * 2 + (last + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + LOOPS + max(len(names) for names in rows.values()) * (NODE_H + GAP_Y) - GAP_Y
    heaviest = max((e["count"] for e in edges), default=1)
    parts = [
        f'<svg class="dag pmap" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        'aria-label="process map: which step ends follow which, and how often">',
        '<defs><marker id="pm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" '
        'markerUnits="userSpaceOnUse" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for edge in edges:
        if edge["from"] not in place or edge["to"] not in place:
            continue
        (x1, y1), (x2, y2) = place[edge["from"]], place[edge["to"]]
        stroke = 1.0 + 5.0 * edge["count"] / heaviest
        if x2 > x1:
            a, b = (x1 + NODE_W, y1 + NODE_H // 2), (x2, y2 + NODE_H // 2)
            mid = (a[0] + b[0]) // 2
            path = f"M {a[0]} {a[1]} C {mid} {a[1]}, {mid} {b[1]}, {b[0]} {b[1]}"
            label_at = (mid, (a[1] + b[1]) // 2 - 4)
        else:  # the same column or back: a loop over the nodes, through the band above the first row
            a, b = (x1 + NODE_W // 2 + 12, y1), (x2 + NODE_W // 2 - 12, y2)
            high = PAD + 4
            path = f"M {a[0]} {a[1]} C {a[0]} {high}, {b[0]} {high}, {b[0]} {b[1]}"
            label_at = ((a[0] + b[0]) // 2, high + 14)
        about = f"{edge['from']} → {edge['to']}: {edge['count']} run(s), {_minutes(edge.get('median_minutes'))} between"
        parts.append(
            f'<g class="flow"><title>{escape(about)}</title>'
            f'<path class="edge" d="{path}" style="stroke-width:{stroke:.1f}" marker-end="url(#pm-arrow)"/>'
            f'<text x="{label_at[0]}" y="{label_at[1]}" class="count">{edge["count"]}</text></g>'
        )
    for name, (x, y) in place.items():
        failed = name.endswith(" (failed)")
        state = "failed" if failed else "ends" if name in (START, END) else "succeeded"
        node = next((n for n in nodes if n["activity"] == name), None)
        detail = (
            f"{counts.get(name, 0)} run(s)"
            if name in (START, END)
            else f"{counts[name]} times in {node['runs'] if node else 0} run(s)"
        )
        about = detail if node is None else f"{detail}, takes {_minutes(node.get('median_minutes'))}"
        parts.append(
            f'<g class="node state-{state}"><title>{escape(name)}: {escape(about)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            f'<text x="{x + 10}" y="{y + 19}" class="label">{escape(_short(name))}</text>'
            f'<text x="{x + 10}" y="{y + 35}" class="kind">{escape(detail)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
