"""Which inputs a rule's condition covers: the reasoning behind the unreachable-rule and overlap findings.

A condition is turned into a union of *boxes* (its disjunctive normal form): each box constrains some inputs to a
*domain* and may carry *opaque* atoms, parts of the condition this module does not reason about, kept by their
syntax tree. Simple atoms are an input compared with a literal (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``), an
input ``in`` a list of literals, and a bool input alone or negated. Numeric domains are unions of intervals (over
the integers for ``int`` inputs), string and bool domains finite or co-finite sets, so each domain can be
intersected and complemented exactly.

A rule is unreachable when its boxes are covered by the boxes of the rules before it: covering is decided by
subtracting boxes, which is exact for simple atoms, and uses an earlier box with opaque atoms only when the later
box holds the same atoms. Two rules overlap when one of their boxes intersect; the caller confirms the example point
by evaluating both rules, so opaque atoms cannot cause a false report.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsrail.decisions._conditions import COMPARISONS, Binary, Ident, ListLit, Lit, Node, Unary

_MAX_BOXES = 256
"""Past this many boxes for a condition, or pieces left while subtracting, the reasoning gives up (no finding)."""

_INF = math.inf


class _TooComplex(Exception):
    pass


# -- domains --------------------------------------------------------------------------------------------------------

Interval = tuple[float, bool, float, bool]  # low, low included, high, high included


@dataclass(frozen=True, slots=True)
class Numbers:
    """A union of disjoint, sorted intervals; over the integers when ``integral``."""

    intervals: tuple[Interval, ...]
    integral: bool

    @staticmethod
    def everything(integral: bool) -> Numbers:
        return Numbers(((-_INF, False, _INF, False),), integral)

    def normal(self) -> Numbers:
        kept: list[Interval] = []
        for low, low_in, high, high_in in sorted(self.intervals):
            if low == _INF or high == -_INF:
                continue
            if self.integral:
                low, low_in = (low, False) if low == -_INF else (_int_low(low, low_in), True)
                high, high_in = (high, False) if high == _INF else (_int_high(high, high_in), True)
            if low > high or (low == high and not (low_in and high_in)):
                continue
            if kept:
                last_low, last_low_in, last_high, last_high_in = kept[-1]
                touching = low < last_high or (low == last_high and (low_in or last_high_in))
                if self.integral and last_high != _INF and low == last_high + 1:
                    touching = True
                if touching:
                    if (high, high_in) > (last_high, last_high_in) or high > last_high:
                        kept[-1] = (last_low, last_low_in, high, high_in)
                    continue
            kept.append((low, low_in, high, high_in))
        return Numbers(tuple(kept), self.integral)

    def intersect(self, other: Numbers) -> Numbers:
        found: list[Interval] = []
        for a in self.intervals:
            for b in other.intervals:
                low, low_in = max((a[0], not a[1]), (b[0], not b[1]))
                high, high_in = min((a[2], a[3]), (b[2], b[3]))
                found.append((low, not low_in, high, high_in))
        return Numbers(tuple(found), self.integral).normal()

    def complement(self) -> Numbers:
        gaps: list[Interval] = []
        low, low_in = -_INF, False
        for a_low, a_low_in, a_high, a_high_in in self.intervals:
            gaps.append((low, low_in, a_low, not a_low_in))
            low, low_in = a_high, not a_high_in
        gaps.append((low, low_in, _INF, False))
        return Numbers(tuple(gaps), self.integral).normal()

    def empty(self) -> bool:
        return not self.intervals

    def sample(self) -> float | None:
        if not self.intervals:
            return None
        low, low_in, high, _ = self.intervals[0]
        if low == -_INF:
            point = high - 1 if high != _INF else 0.0
        elif high == _INF or low_in:
            point = low if low_in else low + 1
        else:
            point = (low + high) / 2
        return int(point) if self.integral else float(point)


def _int_low(value: float, included: bool) -> float:
    return float(math.ceil(value)) if included or value != math.floor(value) else float(value + 1)


def _int_high(value: float, included: bool) -> float:
    return float(math.floor(value)) if included or value != math.ceil(value) else float(value - 1)


@dataclass(frozen=True, slots=True)
class Members:
    """A finite set of values, or everything except one (``negated``)."""

    values: frozenset[Any]
    negated: bool

    def intersect(self, other: Members) -> Members:
        if self.negated and other.negated:
            return Members(self.values | other.values, True)
        if self.negated:
            return Members(other.values - self.values, False)
        if other.negated:
            return Members(self.values - other.values, False)
        return Members(self.values & other.values, False)

    def complement(self) -> Members:
        return Members(self.values, not self.negated)

    def empty(self) -> bool:
        return not self.negated and not self.values


Domain = Numbers | Members


def _everything(kind: str) -> Domain:
    if kind in ("int", "double"):
        return Numbers.everything(kind == "int")
    if kind == "bool":
        return Members(frozenset({True, False}), False)
    return Members(frozenset(), True)


def _intersect(a: Domain, b: Domain) -> Domain:
    if isinstance(a, Numbers) and isinstance(b, Numbers):
        return a.intersect(b)
    if isinstance(a, Members) and isinstance(b, Members):
        return a.intersect(b)
    raise _TooComplex("mixed domains")


def _complement(domain: Domain, kind: str) -> Domain:
    if isinstance(domain, Numbers):
        return domain.complement()
    return _intersect(domain.complement(), _everything(kind))


def sample_of(domain: Domain, kind: str, avoid: str = "sample") -> Any:
    """A value in a non-empty domain."""
    if isinstance(domain, Numbers):
        point = domain.sample()
        return float(point) if kind == "double" and point is not None else point
    if not domain.negated:
        return sorted(domain.values, key=repr)[0]
    candidate, n = avoid, 0
    while candidate in domain.values:
        n += 1
        candidate = f"{avoid}-{n}"
    return candidate


# -- boxes ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Box:
    domains: Mapping[str, Domain]
    opaque: frozenset[tuple[Node, bool]]  # (atom, negated)

    def empty(self) -> bool:
        if any(domain.empty() for domain in self.domains.values()):
            return True
        return any((atom, not negated) in self.opaque for atom, negated in self.opaque)


def _meet(a: Box, b: Box) -> Box:
    domains = dict(a.domains)
    for name, domain in b.domains.items():
        domains[name] = _intersect(domains[name], domain) if name in domains else domain
    return Box(domains, a.opaque | b.opaque)


_UNIVERSE = Box({}, frozenset())


def boxes(node: Node | None, types: Mapping[str, str]) -> list[Box] | None:
    """The condition as a union of non-empty boxes; ``None`` when unparsed or too large to reason about."""
    if node is None:
        return None
    try:
        return [box for box in _dnf(node, types, negated=False) if not box.empty()]
    except (_TooComplex, RecursionError):
        return None


def _dnf(node: Node, types: Mapping[str, str], *, negated: bool) -> list[Box]:
    if isinstance(node, Lit) and node.kind == "bool":
        return [_UNIVERSE] if node.value != negated else []
    if isinstance(node, Unary) and node.op == "!":
        return _dnf(node.operand, types, negated=not negated)
    if isinstance(node, Binary) and node.op in ("&&", "||"):
        conjunction = (node.op == "&&") != negated
        left = _dnf(node.left, types, negated=negated)
        right = _dnf(node.right, types, negated=negated)
        if not conjunction:
            found = left + right
        else:
            found = [box for a in left for b in right if not (box := _meet(a, b)).empty()]
        if len(found) > _MAX_BOXES:
            raise _TooComplex("too many boxes")
        return found
    atom = _atom(node, types)
    if atom is None:
        return [Box({}, frozenset({(node, negated)}))]
    name, domain = atom
    if negated:
        domain = _complement(domain, types[name])
    return [Box({name: domain}, frozenset())]


def _atom(node: Node, types: Mapping[str, str]) -> tuple[str, Domain] | None:
    """The input and domain of a simple atom, or ``None``."""
    if isinstance(node, Ident) and types.get(node.name) == "bool":
        return node.name, Members(frozenset({True}), False)
    if not isinstance(node, Binary):
        return None
    if node.op == "in" and isinstance(node.left, Ident) and isinstance(node.right, ListLit):
        kind = types.get(node.left.name)
        values: list[Any] = []
        for item in node.right.items:
            if not isinstance(item, Lit) or _category(item.kind) is None:
                return None
            if _category(item.kind) == _category(kind):
                values.append(item.value)
        if kind in ("int", "double"):
            points = tuple((float(v), True, float(v), True) for v in values)
            return node.left.name, Numbers(points, kind == "int").normal()
        if kind in ("string", "bool"):
            return node.left.name, Members(frozenset(values), False)
        return None
    if node.op not in COMPARISONS:
        return None
    op, left, right = node.op, node.left, node.right
    if isinstance(left, Lit) and isinstance(right, Ident):
        left, right, op = right, left, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
    if not isinstance(left, Ident) or not isinstance(right, Lit):
        return None
    kind = types.get(left.name)
    category = _category(kind)
    if category is None or category != _category(right.kind):
        return None
    if category == "number":
        value = float(right.value)
        full = Numbers.everything(kind == "int")
        ranges: dict[str, Numbers] = {
            "==": Numbers(((value, True, value, True),), kind == "int"),
            "<": Numbers(((-_INF, False, value, False),), kind == "int"),
            "<=": Numbers(((-_INF, False, value, True),), kind == "int"),
            ">": Numbers(((value, False, _INF, False),), kind == "int"),
            ">=": Numbers(((value, True, _INF, False),), kind == "int"),
        }
        if op == "!=":
            return left.name, ranges["=="].normal().complement()
        return left.name, full.intersect(ranges[op])
    if op == "==":
        return left.name, Members(frozenset({right.value}), False)
    if op == "!=":
        return left.name, _intersect(Members(frozenset({right.value}), True), _everything(str(kind)))
    return None


def _category(kind: str | None) -> str | None:
    if kind in ("int", "double"):
        return "number"
    if kind in ("string", "bool"):
        return kind
    return None


# -- covering and overlapping ---------------------------------------------------------------------------------------


def _subtract(box: Box, other: Box, types: Mapping[str, str]) -> list[Box] | None:
    """``box`` minus ``other`` as boxes; ``None`` when ``other`` cannot be used (opaque atoms ``box`` lacks)."""
    if not other.opaque <= box.opaque:
        return None
    if _meet(box, other).empty():
        return [box]
    pieces: list[Box] = []
    current = dict(box.domains)
    for name, domain in other.domains.items():
        mine = current.get(name, _everything(types[name]))
        rest = _intersect(mine, _complement(domain, types[name]))
        if not rest.empty():
            pieces.append(Box({**current, name: rest}, box.opaque))
        current[name] = _intersect(mine, domain)
    return pieces


def covered_by(
    later: Sequence[Box], earlier: Sequence[tuple[int, Sequence[Box]]], types: Mapping[str, str]
) -> list[int] | None:
    """The earlier rules (by index) whose boxes together cover ``later``, or ``None`` if they do not (or unknown)."""
    pending = list(later)
    used: list[int] = []
    for index, rule_boxes in earlier:
        for other in rule_boxes:
            if not pending:
                break
            next_pending: list[Box] = []
            changed = False
            for box in pending:
                try:
                    pieces = _subtract(box, other, types)
                except _TooComplex:
                    return None
                if pieces is None or pieces == [box]:
                    next_pending.append(box)
                else:
                    changed = True
                    next_pending.extend(pieces)
            if len(next_pending) > _MAX_BOXES:
                return None
            if changed and index not in used:
                used.append(index)
            pending = next_pending
    return used if not pending else None


def meeting_points(a: Sequence[Box], b: Sequence[Box], types: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Partial inputs (the constrained names only) that lie in a box of ``a`` and a box of ``b``."""
    for one in a:
        for two in b:
            try:
                both = _meet(one, two)
            except _TooComplex:
                continue
            if both.empty():
                continue
            yield {name: sample_of(domain, types[name]) for name, domain in both.domains.items()}


def literals_against(node: Node | None) -> Iterator[tuple[str, Any]]:
    """(input, literal) for every input compared with, or tested for membership in, literals: boundary values."""
    if node is None:
        return
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Unary):
            stack.append(item.operand)
        elif isinstance(item, Binary):
            if isinstance(item.left, Ident) and isinstance(item.right, Lit):
                yield item.left.name, item.right.value
            elif isinstance(item.right, Ident) and isinstance(item.left, Lit):
                yield item.right.name, item.left.value
            elif isinstance(item.left, Ident) and isinstance(item.right, ListLit):
                for literal in item.right.items:
                    if isinstance(literal, Lit):
                        yield item.left.name, literal.value
            stack.extend((item.left, item.right))
