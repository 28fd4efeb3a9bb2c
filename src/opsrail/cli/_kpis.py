"""``opsrail kpis``: the seed KPIs of service delivery over a time window (see ``opsrail.services._kpis``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._output import emit_json, short_time, table

_SHOWN_EXTRAS = ("breached", "touches", "overridden", "accepted", "autonomous")


class Segment(StrEnum):
    region = "region"
    channel = "channel"
    tier = "tier"


@handled
def kpis(
    since: Annotated[
        str | None,
        typer.Option(help="from this time (ISO 8601 date or time, UTC unless it says), or a duration back: P7D"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="up to this time (a date includes that day), or a duration back [default: now]")
    ] = None,
    by: Annotated[Segment | None, typer.Option(help="split each KPI by the account's segment")] = None,
    json: JsonFlag = False,
) -> None:
    """Time to provision and to escalate, SLA breaches, manual touches, billing exceptions, credit approval
    cycle, override and acceptance rates, computed from the stored events, runs, tasks and decision records."""
    with opened(action="run.read") as container:
        start, end = container.kpis.window(since, until)
        report = container.kpis.compute(start, end, by.value if by else None)
    if json:
        emit_json(report)
        return
    window = report["window"]
    since_text = _when(window["since"]) if window["since"] else "the beginning"
    until_text = _when(window["until"]) if window["until"] else f"now ({_when(window['as_of'])})"
    title = f"KPIs from {since_text} until {until_text}"
    rows: list[tuple[Any, ...]] = []
    for name, kpi in report["kpis"].items():
        rows.append((name, "all", _value(kpi["value"]), kpi["unit"], kpi["n"], _quantiles(kpi), _extras(kpi)))
        for segment, figures in kpi.get("by", {}).items():
            rows.append(
                ("", segment, _value(figures["value"]), "", figures["n"], _quantiles(figures), _extras(figures))
            )
    table(title, ["kpi", "segment", "value", "unit", "n", "p50 / p90", "detail"], rows)


def _when(text: str) -> str:
    return short_time(datetime.fromisoformat(text))


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _quantiles(figures: dict[str, Any]) -> str:
    if "p50" not in figures:
        return ""
    return f"{_value(figures['p50'])} / {_value(figures['p90'])}"


def _extras(figures: dict[str, Any]) -> str:
    parts = [f"{name} {figures[name]}" for name in _SHOWN_EXTRAS if name in figures]
    for group in ("by_source", "by_kind"):
        parts += [f"{name} {count}" for name, count in figures.get(group, {}).items()]
    if "tasks" in figures:
        tasks = figures["tasks"]
        parts.append(f"approval tasks {_value(tasks['value'])} (n {tasks['n']})")
    return ", ".join(parts)
