"""Printing for the CLI: JSON for scripts, Rich tables for people, one-line errors on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
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


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    empty: str | None = None,
    optional: Sequence[str] = (),
) -> None:
    """Print rows under their title; with no rows, one line saying so (and ``empty``: what to do about it).

    ``optional`` columns are left out, in that order, while the terminal is too narrow to show the others without
    folding a value other than free text (a line under the table names them; ``--json`` has everything)."""
    if not rows:
        Console().print(f"{title}: none" + (f". {empty}" if empty else ""), highlight=False, markup=False)
        return
    console = Console()
    shown = list(range(len(columns)))
    left_out: list[str] = []
    for name in [*optional, None]:
        names = [columns[i] for i in shown]
        cells = [["" if row[i] is None else str(row[i]) for i in shown] for row in rows]
        widths = _widths(names, cells, console.width)
        if name is None or _unfolded(names, cells, widths):
            break
        shown.remove(columns.index(name))
        left_out.append(name)
    # A rule under the header and two spaces between columns: eight characters more for the cells than boxed
    # cells at six columns, enough for an id and five more columns on an 80-column terminal.
    out = Table(title=title, show_lines=False, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for column, width in zip(names, widths, strict=True):
        out.add_column(column, overflow="fold", width=width)
    for row in cells:
        out.add_row(*row)
    console.print(out)
    if left_out:
        console.print(f"({', '.join(left_out)}: on a wider terminal, or with --json)", highlight=False, markup=False)


def _unfolded(columns: Sequence[str], cells: Sequence[Sequence[str]], widths: Sequence[int]) -> bool:
    """Whether every value but free text fits its column on one line (a date may wrap its time under it), and free
    text has at least twelve characters a line."""
    for index, column in enumerate(columns):
        longest = max(len(line) for row in cells for line in row[index].split("\n"))
        enough = 12 if column in _FREE_TEXT else len("2026-12-07") if column in _TIMES else longest
        if widths[index] < min(enough, longest):
            return False
    return True


def _widths(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[int]:
    """Each column's width on a terminal ``width`` characters wide (values longer than it fold).

    Every column starts four characters wide; then, while the terminal has room, in this order: the first column's
    identifier whole (it reads and copies on one line), headers of up to eight letters whole, dates whole (the time
    wraps under them), short values (states, kinds, numbers) whole, free text (titles, errors, reasons) up to 12
    characters, other identifiers whole, times whole, then free text in equal shares up to its longest line. Set
    here rather than left to Rich, whose shrinking starts with the widest column: the identifier.
    """
    longest = [
        max([len(column)] + [max(map(len, row[index].split("\n"))) for row in cells])
        for index, column in enumerate(columns)
    ]
    widths = [min(len(column), 4) for column in columns]
    room = width - 2 * len(columns) - sum(widths)  # a space each side of every column, and their least widths
    kind = [
        "free" if c in _FREE_TEXT else "id" if c in _IDENTIFIERS else "time" if c in _TIMES else "short"
        for c in columns
    ]
    requests: list[tuple[int, int, bool]] = []  # column, width wanted, whether part of it will do
    if kind[0] != "free":  # the first column names the row: an id, a name, an operation
        kind[0] = "id"
        requests.append((0, longest[0], True))
    requests += [(i, min(len(c), 8), False) for i, c in enumerate(columns)]
    requests += [(i, min(longest[i], len("2026-12-07")), False) for i, k in enumerate(kind) if k == "time"]
    requests += [(i, longest[i], False) for i, k in enumerate(kind) if k == "short"]
    requests += [(i, min(longest[i], 12), True) for i, k in enumerate(kind) if k == "free"]
    requests += [(i, longest[i], False) for i, k in enumerate(kind) if k == "id"]
    requests += [(i, longest[i], False) for i, k in enumerate(kind) if k == "time"]
    for index, wanted, partly in requests:
        grow = wanted - widths[index]
        if grow > 0 and (grow <= room or (partly and room > 0)):
            grow = min(grow, room)
            widths[index] += grow
            room -= grow
    # What is left goes to the free text, in equal shares (a long condition beside a long result both fold, rather
    # than the first taking the whole line), then to any column still short of its longest value.
    for group in ([i for i, k in enumerate(kind) if k == "free"], list(range(len(columns)))):
        short = sorted((i for i in group if longest[i] > widths[i]), key=lambda i: longest[i] - widths[i])
        for place, index in enumerate(short):  # the least wanting first: what one leaves, the next may take
            grow = min(longest[index] - widths[index], room // (len(short) - place))
            widths[index] += grow
            room -= grow
    return widths


_IDENTIFIERS = frozenset({"id", "run", "name", "seq"})
_TIMES = frozenset({"created", "received", "trained", "due", "published", "at", "until", "started", "finished"})
_FREE_TEXT = frozenset(
    {"error", "first error", "reason", "data", "summary", "title", "outputs", "details", "message", "roles", "needs"}
    | {"subject", "source", "object", "text", "comment", "rules", "when", "then"}
)


def fail(message: str, hint: str | None = None) -> None:
    text = f"error: {message}"
    if hint:
        text += f"\n  hint: {hint}"
    Console(stderr=True).print(text, highlight=False, markup=False, soft_wrap=True)


def short_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="seconds").replace("+00:00", "Z")  # year 1 as 0001


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr fed by ``report(stage, fraction)``; nothing when not ``enabled`` (``--json``)."""
    if not enabled:
        yield lambda stage, fraction: None
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1.0)

        def report(stage: str, fraction: float) -> None:
            bar.update(task, description=stage, completed=max(0.0, min(1.0, fraction)))

        yield report
