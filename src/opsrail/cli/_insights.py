"""``opsrail insights``: process maps and variants, conformance to the pinned version, outcome drift between
segments and automation health (see ``opsrail.services._insights`` and ``opsrail.insights``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._kpis import Segment
from opsrail.cli._output import emit_json, table

insights_app = typer.Typer(
    help="What the runs, tasks and decisions say: process maps, conformance, drift, automation health.",
    no_args_is_help=True,
)


class Order(StrEnum):
    ended = "ended"
    playbook = "playbook"


Since = Annotated[
    str | None,
    typer.Option(help="from this time (ISO 8601 date or time, UTC unless it says), or a duration back: P30D"),
]
Until = Annotated[
    str | None, typer.Option(help="up to this time (a date includes that day), or a duration back [default: now]")
]
Version = Annotated[int | None, typer.Option(help="only the runs of this version", min=1)]


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def readable_hours(hours: float | None) -> str:
    from opsrail.insights import readable_hours as readable  # loaded by the commands, not by --help

    return readable(hours)


def _capped(report: dict[str, Any]) -> None:
    capped = report["window"].get("capped_at")
    if capped:
        typer.echo(f"(the newest {capped:,} runs of the window; narrow it with --since or --until)", err=True)


@insights_app.command("process")
@handled
def process(
    playbook: Annotated[str, typer.Argument(help="the playbook whose runs to mine")],
    version: Version = None,
    since: Since = None,
    until: Until = None,
    top: Annotated[int, typer.Option(help="how many variants to show", min=1, max=1000)] = 10,
    order: Annotated[
        Order,
        typer.Option(
            help="a variant's steps in the order they ended, or in the playbook's order (parallel steps that end in "
            "another order make the same variant)"
        ),
    ] = Order.ended,
    json: JsonFlag = False,
) -> None:
    """The process map (which step ends follow which, how often, how long) and the most frequent variants of a
    playbook's runs started in the window."""
    with opened(action="run.read") as container:
        start, end = container.insights.window(since, until)
        report = container.insights.process(playbook, start, end, version=version, top=top, order=order.value)
    if json:
        emit_json(report)
        return
    _capped(report)
    found = report["variants"]
    runs = found["runs"]
    table(
        f"Variants of {playbook}: {runs} run(s), {found['variants']} variant(s)",
        ["runs", "share", "median time", "statuses", "activities", "example run"],
        [
            (
                item["runs"],
                f"{item['share']:.0%}",
                readable_hours(item["median_hours"]),
                ", ".join(f"{k} {v}" for k, v in item["statuses"].items()),
                " → ".join(item["activities"]) or "(no step ended)",
                item["example_run"],
            )
            for item in found["top"]
        ],
        empty="no run of it started in the window (`opsrail runs list` shows when its runs started)",
        optional=("example run", "statuses"),
    )
    if found["other_variants"]:
        typer.echo(f"... and {found['other_variants']} more variant(s) with {found['other_runs']} run(s) (--top)")
    if runs:
        table(
            "Process map: steps that end one after the other",
            ["from", "to", "runs", "median time between"],
            [
                (
                    e["from"],
                    e["to"],
                    e["count"],
                    readable_hours(None if e["median_minutes"] is None else e["median_minutes"] / 60),
                )
                for e in report["map"]["edges"]
            ],
        )


@insights_app.command("conformance")
@handled
def conformance(
    playbook: Annotated[str | None, typer.Argument(help="one playbook [default: all]")] = None,
    version: Version = None,
    since: Since = None,
    until: Until = None,
    json: JsonFlag = False,
) -> None:
    """Whether each run did what the playbook version it pinned says, in its order: fitness per version, the
    deviations found (with an example run), the interventions of people, and the share on the main path."""
    with opened(action="run.read") as container:
        start, end = container.insights.window(since, until)
        report = container.insights.conformance(playbook, start, end, version=version)
    if json:
        emit_json(report)
        return
    _capped(report)
    rows = []
    for item in report["versions"]:
        if item["unchecked"]:
            rows.append((item["playbook"], item["version"], item["runs"], "-", "version unreadable", "", ""))
            continue
        deviations = "; ".join(
            f"{kind} {found['runs']} (e.g. {found['example']['run']}: {found['example']['step']} "
            f"{found['example']['detail']})"
            for kind, found in item["deviations"].items()
        )
        rows.append(
            (
                item["playbook"],
                item["version"],
                item["runs"],
                f"{item['fitness']:.1%}",
                deviations or "none",
                ", ".join(f"{k} {v}" for k, v in item["interventions"].items()) or "none",
                "-" if item["main_variant_share"] is None else f"{item['main_variant_share']:.0%}",
            )
        )
    table(
        "Conformance to the pinned playbook version",
        ["playbook", "version", "runs", "fitness", "deviations", "interventions", "main path"],
        rows,
        empty="no run started in the window",
        optional=("interventions", "main path"),
    )


@insights_app.command("drift")
@handled
def drift(
    by: Annotated[
        Segment, typer.Option(help="the segment to compare (an item's own, else its account's)")
    ] = Segment.region,
    since: Since = None,
    until: Until = None,
    min_n: Annotated[int, typer.Option(help="observations a segment needs to be compared", min=2)] = 20,
    alpha: Annotated[float, typer.Option(help="significance after the Bonferroni correction", min=0.0, max=1.0)] = 0.01,
    min_difference: Annotated[
        float, typer.Option(help="smallest gap between shares that counts as a finding", min=0.0, max=1.0)
    ] = 0.10,
    min_ratio: Annotated[float, typer.Option(help="smallest ratio of median times that counts", min=1.0)] = 1.5,
    min_gap_minutes: Annotated[
        float, typer.Option(help="and the smallest gap between median times that counts", min=0.0)
    ] = 1.0,
    show_all: Annotated[bool, typer.Option("--all", help="every comparison, not only the findings")] = False,
    json: JsonFlag = False,
) -> None:
    """Where one segment (region, channel or tier) is decided or served differently from the others: approval and
    review outcomes and times per playbook step, how decisions are routed and settled, run outcomes and durations;
    tested, corrected for the number of comparisons, and only large effects are findings."""
    from opsrail.insights import DriftSettings

    settings = DriftSettings(
        min_n=min_n,
        alpha=alpha,
        min_difference=min_difference,
        min_ratio=min_ratio,
        min_gap_minutes=min_gap_minutes,
    )
    with opened(action="run.read") as container:
        start, end = container.insights.window(since, until)
        report = container.insights.drift(by.value, start, end, settings)
    if json:
        emit_json(report)
        return
    shown = report["comparisons"] if show_all else report["findings"]
    rows = []
    for c in shown:
        if c["measure"] == "share":
            what = f"{c['outcome']} {c['value']:.0%} vs {c['rest_value']:.0%}"
            if c.get("test") == "cmh":
                what += f" (within {c['strata']} rules: {c['effect'] * 100:+.0f} points)"
        else:
            what = f"median {readable_hours(c['value'])} vs {readable_hours(c['rest_value'])}"
        rows.append(
            (
                c["kind"],
                c["point"],
                c["segment"],
                c["against"],
                what,
                f"{c['n']} / {c['rest_n']}",
                _number(c["p_corrected"]),
                "yes" if c["finding"] else "",
            )
        )
    tests = report["settings"]["tests"]
    why = f" (each needs {min_n} observations a segment: --min-n, or a wider window)"
    widest = max((len(point["segments"]) for point in report["points"]), default=0)
    if widest == 1:
        only = sorted({segment for point in report["points"] for segment in point["segments"]})
        why = f" (every observation is in one {by.value} ({', '.join(only)}): nothing to compare it with)"
    elif widest == 0:
        why = " (no task closed, decision recorded or run finished in the window)"
    table(
        f"Drift by {by.value}" + ("" if show_all else f": findings among {tests} comparison(s)"),
        ["kind", "point", "segment", "against", "what", "n / others", "p (corrected)", "finding"],
        rows,
        empty=f"no segment differs enough among {tests} comparison(s)" + ("; --all lists them" if tests else why),
        optional=("against", "n / others", "finding"),
    )


@insights_app.command("health")
@handled
def health(since: Since = None, until: Until = None, json: JsonFlag = False) -> None:
    """The technical debt of rules, models and playbooks: rules that never match, decisions people override,
    model confidence that moved, steps that fail or retry, fallbacks in use, runs on old versions, references
    the server cannot resolve, decisions nobody uses."""
    with opened(action="run.read") as container:
        start, end = container.insights.window(since, until)
        report = container.insights.health(start, end)
    if json:
        emit_json(report)
        return
    table(
        "Automation health",
        ["severity", "finding", "subject", "detail", "what to do"],
        [(f["severity"], f["kind"], f["subject"], f["detail"], f["hint"]) for f in report["findings"]],
        empty="nothing to report in the window",
        optional=("what to do",),
    )
