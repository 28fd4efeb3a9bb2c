"""Printing for the CLI: JSON for scripts, Rich tables for people, one-line errors on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from opsrail.model import InvalidInput


def plain(value: Any) -> Any:
    """A value as JSON would carry it (times as text, tuples as lists), for ``--json`` output."""
    return orjson.loads(orjson.dumps(value, default=str))


def json_object(text: str, option: str) -> dict[str, Any]:
    """Parse an option's JSON object; anything else is an :class:`InvalidInput` naming the option."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"{option} is not valid JSON: {exc}", hint=f"""e.g. {option} '{{"label": "Access"}}'"""
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{option} must be a JSON object", hint=f"""e.g. {option} '{{"label": "Access"}}'""")
    return value


def emit_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str | None = None) -> None:
    """Print rows under their title; with no rows, one line saying so (and ``empty``: what to do about it)."""
    if not rows:
        Console().print(f"{title}: none" + (f". {empty}" if empty else ""), highlight=False, markup=False)
        return
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    console = Console()
    # A rule under the header and two spaces between columns: eight characters more for the cells than boxed
    # cells at six columns, enough for an id and five more columns on an 80-column terminal.
    out = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for column, (floor, whole) in zip(columns, _floors(columns, cells, console.width), strict=True):
        # A column given its whole width is left out of Rich's shrinking, which starts with the widest column.
        out.add_column(column, overflow="fold", min_width=floor, no_wrap=whole)
    for row in cells:
        out.add_row(*row)
    console.print(out)


def _floors(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[tuple[int, bool]]:
    """The narrowest each column may become, and whether that is its whole width.

    Free text (errors, reasons, paths, titles) folds to make room. The other columns keep the width of their longest
    value (up to 30 characters) while the terminal has room: identifiers first, so an id reads and copies whole on
    an 80-column terminal, then times (or at least their date, the time wrapping under it), then the rest from the
    left. No header of up to eight letters is broken.
    """
    small = [min(len(column), 8) for column in columns]
    room = width - (2 * len(columns) - 1) - sum(small)  # the space between columns, and every column's least width
    floors = [(least, False) for least in small]
    ranked = sorted(
        (index for index, column in enumerate(columns) if column not in _FREE_TEXT),
        key=lambda index: (columns[index] not in _IDENTIFIERS, columns[index] not in _TIMES, index),
    )
    for index in ranked:
        longest = max([len(columns[index])] + [len(row[index]) for row in cells])
        wanted = [min(longest, 30)] + ([len("2026-12-07")] if columns[index] in _TIMES else [])
        for natural in wanted:
            if small[index] < natural and natural - small[index] <= room:
                room -= natural - small[index]
                floors[index] = (natural, natural == longest)
                break
    return floors


_IDENTIFIERS = frozenset({"id", "run", "name", "seq"})
_TIMES = frozenset({"created", "received", "trained", "when", "due", "published", "at", "until", "started", "finished"})
_FREE_TEXT = frozenset(
    {"error", "first error", "reason", "data", "summary", "title", "outputs", "details", "message", "roles", "needs"}
    | {"subject", "operation", "source", "object", "text", "comment", "rules", "when", "then"}
)


def fail(message: str, hint: str | None = None) -> None:
    text = f"error: {message}"
    if hint:
        text += f"\n  hint: {hint}"
    Console(stderr=True).print(text, highlight=False, markup=False, soft_wrap=True)


def short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
