"""A playbook's steps as a left-to-right DAG in SVG, each step coloured by its state in a run.

Layout: a step's column is the length of the longest ``needs`` chain before it; rows fill each column in the
playbook's order. Simple, stable between renders, and readable for the tens of steps playbooks have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 44, 56, 18, 12


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    needs: tuple[str, ...]


@dataclass(frozen=True)
class Placed:
    node: Node
    x: int
    y: int


def layout(nodes: Sequence[Node]) -> tuple[list[Placed], int, int]:
    known = {n.id for n in nodes}
    depth: dict[str, int] = {}

    def column(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id in depth:
            return depth[node_id]
        node = next(n for n in nodes if n.id == node_id)
        parents = [p for p in node.needs if p in known and p not in seen]
        value = 1 + max((column(p, seen | {node_id}) for p in parents), default=-1)
        depth[node_id] = value
        return value

    rows: dict[int, int] = {}
    placed = []
    for node in nodes:
        col = column(node.id)
        row = rows.get(col, 0)
        rows[col] = row + 1
        placed.append(Placed(node, PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)))
    width = PAD * 2 + (max(depth.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return placed, width, height


def dag_svg(nodes: Sequence[Node], states: Mapping[str, str] | None, *, link_prefix: str | None = None) -> str:
    """The graph as an inline ``<svg>``; ``states`` maps step ids to a state (pending, running, succeeded…), None for
    a playbook's graph, whose steps have no state (each shows its kind only)."""
    placed, width, height = layout(nodes)
    where = {p.node.id: p for p in placed}
    parts = [
        f'<svg class="dag" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="step graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>',
    ]
    for p in placed:
        for parent in p.node.needs:
            if parent not in where:
                continue
            a = where[parent]
            x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
            x2, y2 = p.x, p.y + NODE_H // 2
            mid = (x1 + x2) // 2
            parts.append(
                f'<path class="edge" d="M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}" marker-end="url(#arrow)"/>'
            )
    for p in placed:
        state = "pending" if states is None else states.get(p.node.id, "pending")
        about = p.node.kind if states is None else f"{p.node.kind} · {state}"
        label = p.node.id if len(p.node.id) <= 20 else p.node.id[:19] + "…"
        node = (
            f'<g class="node state-{escape(state)}" data-step="{escape(p.node.id)}">'
            f"<title>{escape(p.node.id)}: {escape(about.replace(' · ', ', '))}</title>"
            f'<rect x="{p.x}" y="{p.y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            f'<text x="{p.x + 10}" y="{p.y + 19}" class="label">{escape(label)}</text>'
            f'<text x="{p.x + 10}" y="{p.y + 35}" class="kind">{escape(about)}</text></g>'
        )
        if link_prefix is not None:
            node = f'<a href="{escape(link_prefix)}{escape(p.node.id)}">{node}</a>'
        parts.append(node)
    parts.append("</svg>")
    return "".join(parts)
