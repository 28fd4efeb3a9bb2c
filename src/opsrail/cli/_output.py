"""Printing for the CLI: JSON for scripts, Rich tables for people, one-line errors on stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
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
    out = Table(title=title, show_lines=False)
    for column in columns:
        # Times read badly when folded; free text may wrap. Every other column keeps a floor, or a narrow terminal
        # squeezes it to nothing beside the fixed ones (identifiers fold when the terminal is too narrow for them).
        fixed = column in ("seq", "received", "created", "type", "status", "role")
        out.add_column(column, overflow="fold", no_wrap=fixed, min_width=None if fixed else min(len(column), 6))
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row])
    Console().print(out)


def fail(message: str, hint: str | None = None) -> None:
    text = f"error: {message}"
    if hint:
        text += f"\n  hint: {hint}"
    Console(stderr=True).print(text, highlight=False, markup=False, soft_wrap=True)


def short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
