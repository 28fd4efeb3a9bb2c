"""CLI commands for the audit log: verify the chain, export it for a SIEM, list recent entries."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._output import emit_json, fail, short_time, table
from opsrail.model import InvalidInput

Actor = Annotated[str | None, typer.Option("--as", help="who is acting [default: the login name]")]

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
@handled
def audit_verify(actor: Actor = None, json: JsonFlag = False) -> None:
    """Check the whole hash chain; exits 1 and names the first entry altered, removed or reordered."""
    with opened(action="audit.read", actor=actor) as container:
        report = container.audit.verify()
    if json:
        emit_json(report.as_dict())
    elif report.ok:
        typer.echo(f"audit chain verified: {report.checked} entries, up to entry {report.last_seq or 0}")
    else:
        fail(
            f"audit chain broken at entry {report.first_bad_seq}: {report.problem}",
            f"entries up to {report.last_seq or 0} verify; restore the log from a backup and investigate",
        )
    if not report.ok:
        raise typer.Exit(1)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--since {value!r} is not an ISO 8601 time", hint="e.g. 2026-11-30 or 2026-11-30T08:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit_app.command("export")
@handled
def audit_export(
    since: Annotated[str | None, typer.Option(help="only entries at or after this time (ISO 8601)")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file [default: stdout]")] = None,
    actor: Actor = None,
) -> None:
    """Write entries as JSON lines (one object per entry, with its hashes) for a SIEM."""
    moment = _since(since)
    count = 0
    with opened(action="audit.read", actor=actor) as container:
        handle = output.open("wb") if output else sys.stdout.buffer
        try:
            for entry in container.audit.export(moment):
                handle.write(orjson.dumps(entry) + b"\n")
                count += 1
        finally:
            if output:
                handle.close()
    if output:
        typer.echo(f"wrote {count} entries to {output}", err=True)


@audit_app.command("list")
@handled
def audit_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    since: Annotated[str | None, typer.Option(help="only entries at or after this time (ISO 8601)")] = None,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """The latest entries (oldest first)."""
    with opened(action="audit.read", actor=actor) as container:
        entries = container.audit.latest(limit, _since(since))
    if json:
        emit_json(entries)
        return
    table(
        "Audit log",
        ["seq", "at", "actor", "action", "subject"],
        [
            (e["seq"], short_time(datetime.fromisoformat(e["at"])), e["actor"] or "", e["action"], e["subject"] or "")
            for e in entries
        ],
    )


retention_app = typer.Typer(
    help="Retention: purge or anonymise old payloads (OPSRAIL_RETENTION).", no_args_is_help=True
)


@retention_app.command("run")
@handled
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would change, change nothing")] = False,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            metavar="DIR",
            help="folder for the archive of deleted runs [default: OPSRAIL_RETENTION_ARCHIVE]",
        ),
    ] = None,
    no_archive: Annotated[
        bool, typer.Option("--no-archive", help="delete old runs without writing an archive first")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Apply the retention policies once (events lose their payload, dead letters go, decision inputs are dropped,
    old model versions are pruned, old finished runs are archived and deleted)."""
    if archive is not None and no_archive:
        raise InvalidInput("--archive and --no-archive contradict each other", hint="pass one of them")
    with opened(action="retention.run") as container:
        if not container.retention.policies:
            raise InvalidInput(
                "no retention policies are set",
                hint="set OPSRAIL_RETENTION, e.g. "
                '\'{"events": "P365D", "dead_letters": "P30D", "decision_records": "P730D", "runs": "P730D"}\'',
            )
        done = container.retention.run(
            dry_run=dry_run, actor=getpass.getuser(), archive_dir=archive, no_archive=no_archive
        )
    if json:
        emit_json(done)
        return
    verb = "would change" if dry_run else "changed"
    for kind, item in done["kinds"].items():
        if kind == "runs":
            typer.echo(
                f"runs: {'would delete' if dry_run else 'deleted'} {item['rows']} that ended before {item['before']}"
            )
            if item.get("archive"):
                typer.echo(
                    f"  archived {item['archived_runs']} run(s), {item['archived_events']} event(s) to "
                    f"{item['archive']} (sha256 {item['sha256'][:16]}…)"
                )
            continue
        what = "versions" if kind == "model_versions" else "rows"
        typer.echo(f"{kind}: {verb} {item['rows']} {what} older than {item['before']}")
