"""``opsrail insights``: process maps and variants, conformance to the pinned version, outcome drift between
segments, automation health, models in production, open runs at risk, and the event log export (see
``opsrail.services._insights`` and ``opsrail.insights``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._kpis import Segment
from opsrail.cli._output import emit_json, table

insights_app = typer.Typer(
    help="What the runs, tasks and decisions say: process maps, conformance, drift, automation health, models in "
    "production, open runs at risk; and the runs as an event log.",
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


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@insights_app.command("models")
@handled
def models(
    decision: Annotated[str | None, typer.Argument(help="one model-backed decision [default: all]")] = None,
    by: Annotated[Segment, typer.Option(help="the segment to split each model's records by")] = Segment.region,
    since: Since = None,
    until: Until = None,
    min_bin: Annotated[int, typer.Option(help="settled records a confidence group needs to be judged", min=2)] = 20,
    min_gap: Annotated[
        float, typer.Option(help="how far agreement must fall under confidence to be a finding", min=0.0, max=1.0)
    ] = 0.10,
    alpha: Annotated[float, typer.Option(help="significance after the Bonferroni correction", min=0.0, max=1.0)] = 0.01,
    json: JsonFlag = False,
) -> None:
    """Model monitoring: how each model version decides in production (acted, sent to review), its confidence, how
    people settled the answers they saw (per week and per segment), and calibration in production: whether people
    accept as many of its answers as its confidence claims."""
    from opsrail.insights import MonitoringSettings

    settings = MonitoringSettings(min_bin=min_bin, min_gap=min_gap, alpha=alpha)
    with opened(action="run.read") as container:
        start, end = container.insights.window(since, until)
        report = container.insights.models(start, end, by=by.value, decision=decision, settings=settings)
    if json:
        emit_json(report)
        return

    def accepted(m: dict[str, Any]) -> str:
        if m["agreement"] is None:
            return "none settled"
        low, high = m["agreement_interval"]
        return f"{m['agreement']:.0%} of {sum(m['settled'].values())} ({low:.0%}-{high:.0%})"

    table(
        "Models in production",
        ["model", "records", "acted", "median confidence", "people accepted", "ECE", "routes"],
        [
            (
                f"{m['decision']} v{m['version']}",
                m["records"],
                _share(m["acted_share"]),
                _number(m["median_confidence"], 2),
                accepted(m),
                _number(m["calibration_error"], 2),
                ", ".join(f"{k} {v}" for k, v in m["routes"].items()),
            )
            for m in report["models"]
        ],
        empty="no model-backed decision was made in the window (`opsrail models list` names the models)",
        optional=("routes", "ECE"),
    )
    for m in report["models"]:
        if m["calibration"]:
            table(
                f"Calibration of {m['decision']} v{m['version']} (settled records)",
                ["confidence", "n", "mean confidence", "people accepted", "gap"],
                [
                    (
                        f"{g['from']:g}-{g['to']:g}",
                        g["n"],
                        f"{g['mean_confidence']:.0%}",
                        f"{g['agreement']:.0%}",
                        f"{g['gap'] * 100:+.0f} points",
                    )
                    for g in m["calibration"]
                ],
            )
        if len(m["segments"]) > 1:
            table(
                f"{m['decision']} v{m['version']} by {by.value}",
                [by.value, "records", "acted", "median confidence", "agreement"],
                [
                    (
                        name,
                        seg["records"],
                        _share(seg["acted_share"]),
                        _number(seg["median_confidence"], 2),
                        _share(seg["agreement"]),
                    )
                    for name, seg in m["segments"].items()
                ],
            )
    for finding in report["findings"]:
        typer.echo(
            f"{finding['decision']} v{finding['version']}: {finding['detail']} (corrected p "
            f"{finding['p_corrected']:.2g}); {finding['hint']}"
        )


@insights_app.command("at-risk")
@handled
def at_risk(
    model: Annotated[str, typer.Argument(help="an sla-breach, remaining-time or next-activity model")],
    playbook: Annotated[str | None, typer.Option(help="only this playbook's open runs [default: all]")] = None,
    limit: Annotated[int, typer.Option(help="how many runs to show", min=1, max=1000)] = 20,
    json: JsonFlag = False,
) -> None:
    """The open runs most at risk, scored by an event-log model trained on the finished ones (`opsrail insights
    export runs.csv`, then `opsrail models train sla-breach --log runs.csv --target PT8H --name run-sla`): the
    likeliest to breach, the furthest past their predicted end, or what each will do next."""
    with opened(action="run.read") as container:
        report = container.insights.at_risk(model, playbook_id=playbook, limit=limit)
    if json:
        emit_json(report)
        return
    task = report["model"]["task"]
    if report["capped_at"]:
        typer.echo(f"(the oldest {report['capped_at']:,} open runs were scored)", err=True)
    heading = {"sla-breach": "breach probability", "remaining-time": "predicted end", "next-activity": "next step"}

    def prediction(item: dict[str, Any]) -> str:
        if task == "sla-breach":
            return f"{item['breach_probability']:.0%}"
        if task == "remaining-time":
            end = item["predicted_end"][5:16].replace("T", " ")
            return f"{end} ({'overdue' if item['overdue'] else 'in ' + readable_hours(item['remaining_hours'])})"
        return f"{item['next_activity']} ({item['confidence']:.0%})"

    def why(item: dict[str, Any]) -> str:
        strongest = item.get("why") or []
        if not strongest:
            return ""
        part = strongest[0]
        return part["feature"] if part.get("value") is None else f"{part['feature']} = {part['value']}"

    columns = ["run", heading[task], "open for", "playbook", "last step", "steps ended", "mostly because of"]
    rows = [
        (
            item["run_id"],
            prediction(item),
            readable_hours(item["open_hours"]),
            f"{item['playbook']} v{item['version']}",
            item["last_activity"],
            item["steps_ended"],
            why(item),
        )
        for item in report["runs"]
    ]
    version = report["model"]["version"]
    table(
        f"Open runs most at risk by {model}{f' v{version}' if version else ''} ({task}): "
        f"{report['scored']} of {report['open_runs']} scored",
        columns,
        rows,
        empty="no open run has a step that ended yet" if report["open_runs"] else "no run is open",
        optional=("mostly because of", "steps ended", "last step", "playbook"),
    )


def _size(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


class LogFormat(StrEnum):
    csv = "csv"
    xes = "xes"
    parquet = "parquet"


@insights_app.command("export")
@handled
def export(
    file: Annotated[Path, typer.Argument(help="where to write: .csv, .csv.gz, .xes, .xes.gz or .parquet")],
    playbook: Annotated[str | None, typer.Option(help="only this playbook's runs [default: all]")] = None,
    since: Since = None,
    until: Until = None,
    fmt: Annotated[LogFormat | None, typer.Option("--format", help="the format [default: from the file name]")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace the file if it exists")] = False,
    include_open: Annotated[
        bool,
        typer.Option(
            "--include-open",
            help="also the runs still open (left out by default: a model trained on them would take their last "
            "step for their end)",
        ),
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Write the finished runs started in the window as an event log (a case a run, an event a step end, oldest run
    first) for process-mining tools, or to train a model on: `opsrail models train next-activity --log FILE`."""
    from opsrail.cli._output import progress_bar

    with opened(action="run.read") as container, progress_bar(not json) as progress:
        start, end = container.insights.window(since, until)
        written = container.insights.export_log(
            file,
            start,
            end,
            playbook_id=playbook,
            fmt=fmt.value if fmt else None,
            overwrite=force,
            include_open=include_open,
            progress=progress,
        )
    if json:
        emit_json(written)
        return
    typer.echo(
        f"wrote {written['runs']:,} run(s) and {written['events']:,} event(s) to {written['path']} "
        f"({written['format']}{', gzip' if written['gzip'] else ''}; {_size(written['bytes'])}) "
        f"in {written['seconds']:.1f} s"
    )
    if written["open_runs_left_out"]:
        typer.echo(f"({written['open_runs_left_out']:,} run(s) still open were left out; --include-open adds them)")
    if written["runs_without_step_ends"]:
        typer.echo(f"({written['runs_without_step_ends']:,} run(s) had no step end yet and are not in the log)")
    if written["runs"]:
        typer.echo(f"train on it: opsrail models train next-activity --log {written['path']}")
