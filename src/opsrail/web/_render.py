"""Jinja2 templates for the console: autoescaped, with filters for times, durations and JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

_env = Environment(
    loader=PackageLoader("opsrail.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    # Records carry optional fields (a delegation's acting_for, a summary); a missing one renders as nothing.
    undefined=ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: Any) -> str:
    if value is None or value == "":
        return "—"
    moment = value if isinstance(value, datetime) else _parse(value)
    if moment is None:
        return str(value)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")  # year 1 as 0001


def _ago(value: Any) -> str:
    moment = value if isinstance(value, datetime) else _parse(value)
    if moment is None:
        return "—"
    seconds = (datetime.now(UTC) - moment).total_seconds()
    suffix = "ago" if seconds >= 0 else "from now"
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} {suffix}"
    return f"{int(seconds)} s {suffix}"


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str).decode()


def _percent(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.0f}%"


def _number(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    number = float(value)
    if 0 < abs(number) < 1:
        return f"{number:.2g}"
    return f"{number:,.{digits}f}"


_env.filters.update(when=_when, ago=_ago, pretty=_pretty, percent=_percent, number=_number)


def render(name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**context), status_code=status)


def render_text(name: str, context: dict[str, Any]) -> str:
    return _env.get_template(name).render(**context)
