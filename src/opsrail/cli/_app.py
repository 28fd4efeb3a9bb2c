"""The ``opsrail`` command line (Typer). Commands work on the configured store directly.

Command modules import the services and the storage stack inside the commands that use them, so ``--help``, a
wrong argument and ``version`` answer without loading them; ``tests/unit/test_process_start.py`` checks it.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import TypeAdapter, ValidationError

import opsrail
from opsrail.cli._audit import audit_app, retention_app
from opsrail.cli._automation import playbooks_app, runs_app, tasks_app, worker
from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._connectors import connectors_app, dev_app
from opsrail.cli._database import db_grant_app_role
from opsrail.cli._decisions import decisions_app, models_app
from opsrail.cli._governance import delegations_app, policies_app, users_app
from opsrail.cli._insights import insights_app
from opsrail.cli._kpis import kpis
from opsrail.cli._output import emit_json, short_time, table
from opsrail.cli._simulate import simulate_command
from opsrail.model import ROLES, SCHEMA_NAMES, SCHEMA_VERSION, InvalidInput, NotFound, json_schema
from opsrail.settings import Settings

app = typer.Typer(
    help="Opsrail: governed AI operations for SaaS service delivery and escalations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts say "[default: …]"; Rich markup would take that for a tag and drop it
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
events_app = typer.Typer(help="Events and dead letters.", no_args_is_help=True)
schema_app = typer.Typer(help="Canonical JSON Schemas.", no_args_is_help=True)
app.add_typer(db_app, name="db")
db_app.command("grant-app-role")(handled(db_grant_app_role))
app.add_typer(tokens_app, name="tokens")
app.add_typer(events_app, name="events")
app.add_typer(schema_app, name="schema")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(runs_app, name="runs")
app.add_typer(tasks_app, name="tasks")
app.add_typer(decisions_app, name="decisions")
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")
app.add_typer(policies_app, name="policies")
app.add_typer(users_app, name="users")
app.add_typer(delegations_app, name="delegations")
app.add_typer(connectors_app, name="connectors")
app.add_typer(dev_app, name="dev")
app.add_typer(insights_app, name="insights")
app.command(name="worker")(handled(worker))
app.command(name="simulate")(handled(simulate_command))
app.command(name="kpis")(kpis)


class LetterStatus(StrEnum):
    pending = "pending"
    replayed = "replayed"


@app.command()
@handled
def up(
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port [default: 8080]")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="server processes sharing the port [default: 1]")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="fakes, reference playbooks, demo people and a simulator: the whole loop")
    ] = False,
    drift: Annotated[
        str | None,
        typer.Option(
            help="with --demo: how one segment of the simulated world behaves differently, for `opsrail insights "
            "drift` to find, or 'none' [default: region=EU:credit_reject=0.7:reject=0.5]"
        ),
    ] = None,
) -> None:
    """Start the API server (migrating the database first)."""
    from opsrail.cli._listen import check_listen_address

    if drift is not None and not demo:
        raise InvalidInput(
            "--drift shapes the demo's simulated world", hint="add --demo, or use `opsrail simulate --drift`"
        )
    spec: str | None = None
    if demo:
        from opsrail.cli._demo import DEMO_DRIFT
        from opsrail.simulate import parse_drift

        spec = DEMO_DRIFT if drift is None else drift
        spec = None if spec.strip().lower() == "none" else spec
        if spec:
            parse_drift(spec)  # a wrong spec is refused before anything starts
    settings = Settings()
    check_listen_address(host or settings.host, port or settings.port)
    if demo:
        from opsrail.cli._demo import run

        run(settings, host or settings.host, port or settings.port, drift=spec)
        return
    from opsrail.cli._serve import serve  # the web stack loads only for the command that serves it

    serve(settings, host or settings.host, port or settings.port, workers or settings.workers)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(opsrail.__version__)


@db_app.command("upgrade")
@handled
def db_upgrade(json: JsonFlag = False) -> None:
    """Apply the database migrations (safe to run again)."""
    from opsrail.wiring import build, upgrade_database

    container = build(Settings())
    try:
        before, after = upgrade_database(container)
    finally:
        container.close()
    if json:
        emit_json({"from": before, "to": after})
    else:
        typer.echo(f"database at revision {after} (was {before or 'empty'})")


@tokens_app.command("create")
@handled
def tokens_create(
    role: Annotated[str, typer.Option(help=f"one of: {', '.join(ROLES)}")],
    name: Annotated[str | None, typer.Option(help="a name to recognise it by")] = None,
    expires_in: Annotated[
        str | None, typer.Option(help="ISO 8601 duration after which it stops working, e.g. P90D")
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option(help="requests per second it may make (bursts up to twice that)")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Create an API token; its secret is printed once and never stored."""
    with opened(action="token.manage") as container:
        expires_at = container.tokens.clock.now() + _duration(expires_in, "--expires-in") if expires_in else None
        record, secret = container.tokens.create(role, name, expires_at, rate_limit, getpass.getuser())
    if json:
        emit_json({"token": secret, **record.as_dict()})
    else:
        typer.echo(secret)
        typer.echo(
            f"# token {record.id} ({record.name}, role {record.role}); store it now, it is not shown again", err=True
        )


@tokens_app.command("rotate")
@handled
def tokens_rotate(
    token_id: str,
    grace: Annotated[
        str | None, typer.Option(help="ISO 8601 duration the old secret keeps working, e.g. PT1H [default: none]")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Replace a token's secret: a new token with the same name, role, limit and expiry; the old one stops."""
    with opened(action="token.manage") as container:
        record, secret = container.tokens.rotate(
            token_id, _duration(grace, "--grace") if grace else None, getpass.getuser()
        )
    if json:
        emit_json({"token": secret, "replaces": token_id, **record.as_dict()})
    else:
        typer.echo(secret)
        typer.echo(f"# token {record.id} replaces {token_id}; store it now, it is not shown again", err=True)


def _duration(text: str, option: str) -> timedelta:
    try:
        value = TypeAdapter(timedelta).validate_python(text)
    except ValidationError:
        raise InvalidInput(f"{option} {text!r} is not an ISO 8601 duration", hint="e.g. P90D or PT1H") from None
    if value.total_seconds() <= 0:
        raise InvalidInput(f"{option} must be a positive duration")
    return value


@tokens_app.command("list")
@handled
def tokens_list(json: JsonFlag = False) -> None:
    """List API tokens (never their secrets)."""
    with opened(action="token.manage") as container:
        items = container.tokens.all()
    if json:
        emit_json([t.as_dict() for t in items])
        return
    table(
        "API tokens",
        ["id", "name", "role", "created", "expires", "revoked", "limit/s"],
        [
            (
                t.id,
                t.name,
                t.role,
                short_time(t.created_at),
                short_time(t.expires_at) if t.expires_at else "",
                short_time(t.revoked_at) if t.revoked_at else "",
                f"{t.rate_limit:g}" if t.rate_limit else "",
            )
            for t in items
        ],
        empty="Create one with `opsrail tokens create --name NAME --role ROLE`",
    )


@tokens_app.command("revoke")
@handled
def tokens_revoke(token_id: str, json: JsonFlag = False) -> None:
    """Revoke a token by id (a running server notices within 30 seconds)."""
    with opened(action="token.manage") as container:
        container.tokens.revoke(token_id, getpass.getuser())
    if json:
        emit_json({"id": token_id, "revoked": True})
    else:
        typer.echo(f"revoked {token_id}")


def _read_input(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    path = Path(file)
    if not path.is_file():
        raise InvalidInput(f"no such file: {file}", hint="give a path, or - to read standard input")
    return path.read_bytes()


def _is_batch(body: bytes) -> bool:
    stripped = body.strip()
    if stripped.startswith(b"["):
        return True
    lines = [line for line in stripped.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.lstrip().startswith(b"{") for line in lines)


@events_app.command("send")
@handled
def events_send(
    file: Annotated[str, typer.Argument(help="a JSON or NDJSON file, or - for standard input")],
    source: Annotated[
        str | None, typer.Option(help="a vendor payload to map: jira, servicenow, zendesk, stripe, alertmanager")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Send events from a file: one CloudEvent, a batch (array or NDJSON), or a vendor payload."""
    body = _read_input(file)
    with opened(action="event.send") as container:
        service = container.ingestion
        if source:
            receipts = service.ingest_vendor(source, body, "application/json", {})
            result: dict[str, Any] = {"events": [{**r.as_dict(), "status": r.status} for r in receipts]}
        elif _is_batch(body):
            kind = "application/cloudevents-batch+json" if body.strip().startswith(b"[") else "application/x-ndjson"
            result = service.ingest_batch(body, kind).as_dict()
        else:
            receipt = service.ingest_single(body, "application/json")
            result = {"events": [{**receipt.as_dict(), "status": receipt.status}]}
    rows = result.get("results") or result["events"]
    rejected = any(row["status"] == "rejected" for row in rows)
    if json:
        emit_json(result)
        if rejected:
            raise typer.Exit(2)
        return
    for row in rows:
        if row["status"] == "rejected":
            typer.echo(
                f"rejected  #{row['index']}  dead letter {row['dead_letter_id']}: "
                f"{'; '.join(e['path'] + ' ' + e['message'] for e in row['errors'][:3])}"
            )
        else:
            typer.echo(f"{row['status']:<9} {row['source']} {row['id']}")
    if rejected:
        raise typer.Exit(2)


@events_app.command("list")
@handled
def events_list(
    type: Annotated[str | None, typer.Option(help="exact event type")] = None,
    kind: Annotated[str | None, typer.Option(help="canonical kind, e.g. incident")] = None,
    source: Annotated[str | None, typer.Option()] = None,
    object_id: Annotated[str | None, typer.Option("--object", help="canonical object id")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="received at or after (ISO 8601; UTC when no offset is given)")
    ] = None,
    before: Annotated[
        int | None, typer.Option(min=1, max=2**63 - 1, help="page cursor: events with seq below this")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    json: JsonFlag = False,
) -> None:
    """List stored events, newest first."""
    from opsrail.services import EventQuery

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with opened(action="event.read") as container:
        items = container.ingestion.events.find(
            EventQuery(
                type=type, kind=kind, source=source, object_id=object_id, since=since, before_seq=before, limit=limit
            )
        )
    if json:
        emit_json([e.as_dict() for e in items])
        return
    table(
        "Events (newest first)",
        ["seq", "received", "type", "source", "object", "summary"],
        [(e.seq, short_time(e.received_at), e.type, e.source, e.object_id, _summary(e.data)) for e in items],
        empty="No event matches these filters"
        if any((type, kind, source, object_id, since, before))
        else "Send events with `opsrail events send FILE` or POST /v1/events",
    )


def _summary(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    parts = [str(data[k]) for k in ("title", "name", "status") if data.get(k) is not None]
    if data.get("severity") is not None:
        parts.insert(0, f"sev{data['severity']}")
    return " · ".join(parts)[:80]


@events_app.command("dead-letters")
@handled
def events_dead_letters(
    dead_letter_id: Annotated[str | None, typer.Argument(help="show this one in full, body included")] = None,
    status: Annotated[LetterStatus | None, typer.Option(help="only pending or only replayed letters")] = None,
    before: Annotated[str | None, typer.Option(help="page cursor: ids below this")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    json: JsonFlag = False,
) -> None:
    """List rejected payloads with their reasons, or show one."""
    with opened(action="dead_letter.read") as container:
        store = container.ingestion.dead_letters
        if dead_letter_id:
            letter = store.get(dead_letter_id)
            if letter is None:
                raise NotFound(
                    f"no dead letter {dead_letter_id!r}", hint="list them with `opsrail events dead-letters`"
                )
            if json:
                emit_json(letter.as_dict())
            else:
                typer.echo(orjson.dumps(letter.as_dict(), option=orjson.OPT_INDENT_2).decode())
            return
        items = store.find(status.value if status else None, limit, before)
    if json:
        emit_json([d.as_dict() for d in items])
        return
    table(
        "Dead letters (newest first)",
        ["id", "received", "channel", "status", "reason", "first error"],
        [
            (
                d.id,
                short_time(d.received_at),
                d.channel + (f":{d.source}" if d.source else ""),
                d.status,
                d.reason,
                (f"{d.errors[0]['path']}: {d.errors[0]['message']}" if d.errors else ""),
            )
            for d in items
        ],
        empty="Every payload sent so far was accepted",
    )


@events_app.command("replay")
@handled
def events_replay(dead_letter_id: str, json: JsonFlag = False) -> None:
    """Run a dead letter through today's validation and mappings again."""
    with opened(action="dead_letter.replay") as container:
        receipts = container.ingestion.replay(dead_letter_id)
    if json:
        emit_json({"dead_letter_id": dead_letter_id, "events": [{**r.as_dict(), "status": r.status} for r in receipts]})
        return
    for r in receipts:
        typer.echo(f"{r.status:<9} {r.source} {r.id}")


@schema_app.command("export")
@handled
def schema_export(directory: Path, json: JsonFlag = False) -> None:
    """Write every canonical JSON Schema into DIRECTORY as <name>.schema.json."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMA_NAMES:
        path = directory / f"{name}.schema.json"
        path.write_bytes(orjson.dumps(json_schema(name), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        written.append(str(path))
    if json:
        emit_json({"version": SCHEMA_VERSION, "files": written})
    else:
        typer.echo(f"wrote {len(written)} schemas (version {SCHEMA_VERSION}) to {directory}")
