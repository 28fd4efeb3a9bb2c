"""CLI commands for playbooks, runs, tasks and the worker."""

from __future__ import annotations

import asyncio
import getpass
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated, get_args

import orjson
import typer

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._output import emit_json, json_object, plain, short_time, table
from opsrail.model import InvalidInput, require_one_of
from opsrail.settings import Settings

playbooks_app = typer.Typer(help="Versioned playbooks.", no_args_is_help=True)
runs_app = typer.Typer(help="Playbook runs.", no_args_is_help=True)
tasks_app = typer.Typer(help="Human tasks: approvals and reviews.", no_args_is_help=True)

Actor = Annotated[str | None, typer.Option("--as", help="who is acting [default: the login name]")]


def _when(moment: datetime | None) -> str:
    return short_time(moment) if moment else ""


@playbooks_app.command("validate")
@handled
def playbooks_validate(file: Path, json: JsonFlag = False) -> None:
    """Check a playbook file (no database needed); errors name the file, line and field."""
    from opsrail.playbooks import validate_file

    playbook = validate_file(file)
    if json:
        emit_json({"valid": True, "id": playbook.id, "version": playbook.version, "steps": len(playbook.steps)})
    else:
        typer.echo(f"{file}: valid ({playbook.id} version {playbook.version}, {len(playbook.steps)} steps)")


@playbooks_app.command("publish")
@handled
def playbooks_publish(
    file: Path,
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="make it the version new runs take (needs that right too)")
    ] = True,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Publish a playbook version and make it the active one (new runs take it; running ones keep theirs)."""
    with opened(action="playbook.publish", actor=actor) as container:
        if activate:
            container.authorization.check(container.directory.local(actor or getpass.getuser()), "playbook.activate")
        playbook = container.automation.publish(file, actor or getpass.getuser(), activate=activate)
        unresolved = container.automation.unresolved(playbook)
    if json:
        warnings = [e.as_dict() for e in unresolved]
        emit_json({"id": playbook.id, "version": playbook.version, "active": activate, "warnings": warnings})
        return
    if activate:
        typer.echo(f"published {playbook.id} version {playbook.version} (active)")
    else:
        typer.echo(
            f"published {playbook.id} version {playbook.version}, not active: "
            f"`opsrail playbooks activate {playbook.id} {playbook.version}` makes it so (--canary N for a share)"
        )
    for error in unresolved:
        typer.echo(f"warning: {error.path}: {error.message}; a run fails at that step until it exists", err=True)


@playbooks_app.command("list")
@handled
def playbooks_list(json: JsonFlag = False) -> None:
    """List published playbook versions."""
    with opened(action="playbook.read") as container:
        items = container.automation.playbooks()
    if json:
        emit_json(plain(items))
        return
    table(
        "Playbooks",
        ["id", "version", "active", "canary", "published"],
        [
            (
                p["id"],
                p["version"],
                "yes" if p["active"] else "",
                f"{p['canary_percent']}%" if p["canary_percent"] else "",
                _when(p["published_at"]),
            )
            for p in items
        ],
        empty="Publish one with `opsrail playbooks publish FILE`",
    )


@playbooks_app.command("show")
@handled
def playbooks_show(
    playbook_id: str,
    version: Annotated[int | None, typer.Option(help="default: the active one")] = None,
    json: JsonFlag = False,
) -> None:
    """Show a playbook version's steps, and what they name that cannot be found (as `publish` warns)."""
    with opened(action="playbook.read") as container:
        playbook = container.automation.playbook(playbook_id, version)
        unresolved = container.automation.unresolved(playbook)
    if json:
        shown = playbook.model_dump(mode="json", by_alias=True, exclude_none=True)
        emit_json({**shown, "warnings": [e.as_dict() for e in unresolved]})
        return
    table(
        f"{playbook.id} version {playbook.version}",
        ["id", "kind", "needs", "when"],
        [(s.id, s.kind, ", ".join(s.needs), s.when or "") for s in playbook.steps],
    )
    for error in unresolved:
        typer.echo(f"warning: {error.path}: {error.message}; a run fails at that step until it exists", err=True)


@playbooks_app.command("activate")
@handled
def playbooks_activate(
    playbook_id: str,
    version: int,
    canary: Annotated[
        int | None, typer.Option(min=0, max=100, help="send only this percentage of new runs to VERSION (0 ends it)")
    ] = None,
    actor: Actor = None,
) -> None:
    """Make a published version the one new runs take, or a canary for a share of them."""
    with opened(action="playbook.activate", actor=actor) as container:
        container.automation.activate(playbook_id, version, canary, actor or getpass.getuser())
    if canary is None:
        typer.echo(f"{playbook_id} version {version} is active")
    else:
        typer.echo(f"{playbook_id} version {version} takes {canary}% of new runs")


@runs_app.command("start")
@handled
def runs_start(
    playbook_id: str,
    input: Annotated[str, typer.Option("--input", help="the run's input as a JSON object")] = "{}",
    version: Annotated[int | None, typer.Option(help="default: the active version")] = None,
    skip_input_check: Annotated[
        bool,
        typer.Option(
            "--skip-input-check", help="start it even if the input is unlike the one the playbook's trigger gives"
        ),
    ] = False,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Start a run; a worker (`opsrail up` or `opsrail worker`) carries it out.

    The input must have the shape the playbook's trigger gives its runs: the triggering event's canonical object
    (an incident for `com.opsrail.incident.opened`), or the keys of the trigger's `input`."""
    try:
        run_input = orjson.loads(input)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"--input is not valid JSON: {exc}") from None
    if not isinstance(run_input, dict):
        raise InvalidInput("--input must be a JSON object")
    with opened(action="run.start", actor=actor) as container:
        run_id = container.automation.start(
            playbook_id, run_input, version, actor or getpass.getuser(), check_input=not skip_input_check
        )
    if json:
        emit_json({"run_id": run_id})
    else:
        typer.echo(run_id)


@runs_app.command("list")
@handled
def runs_list(
    status: Annotated[str | None, typer.Option(help="running, paused, succeeded, failed or cancelled")] = None,
    playbook: Annotated[str | None, typer.Option(help="only runs of this playbook")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    json: JsonFlag = False,
) -> None:
    """List runs, newest first."""
    from opsrail.engine import RunStatus  # here: the engine package loads the playbook parser

    require_one_of("--status", status, get_args(RunStatus))
    with opened(action="run.read") as container:
        items = container.automation.runs(status, playbook, limit)
    if json:
        emit_json(plain(items))
        return
    table(
        "Runs (newest first)",
        ["id", "playbook", "version", "status", "created", "error"],
        [(r["id"], r["playbook"], r["version"], r["status"], _when(r["created_at"]), r["error"] or "") for r in items],
        empty="No run matches these filters"
        if status or playbook
        else "Start one with `opsrail runs start PLAYBOOK`, or send an event that triggers a playbook",
    )


@runs_app.command("show")
@handled
def runs_show(run_id: str, json: JsonFlag = False) -> None:
    """A run's steps and its timeline (times, attempts, errors, outputs)."""
    with opened(action="run.read") as container:
        detail = container.automation.show(run_id)
    if json:
        emit_json(plain(detail))
        return
    typer.echo(f"{detail['id']}  {detail['playbook']}@{detail['version']}  {detail['status']}  {detail['error'] or ''}")
    table(
        "Steps",
        ["id", "status", "attempt", "started", "finished", "error"],
        [
            (s["id"], s["status"], s["attempt"], _when(s["started_at"]), _when(s["finished_at"]), s["error"] or "")
            for s in detail["steps"]
        ],
    )
    table(
        "Timeline",
        ["at", "step", "activity"],
        [(_when(e["at"]), e["step"] or "", e["activity"]) for e in detail["timeline"]],
    )


def _control(run_id: str, action: str, step_id: str | None = None, actor: str | None = None) -> None:
    with opened(action="run.control", actor=actor) as container:
        run = container.automation.control(run_id, action, step_id, actor or getpass.getuser())
    typer.echo(f"{run.id}: {run.status}")


@runs_app.command("migrate")
@handled
def runs_migrate(
    playbook_id: str,
    from_version: Annotated[int, typer.Option("--from", help="the version runs follow now")],
    to_version: Annotated[int, typer.Option("--to", help="the version to move them to")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="OLD=NEW for a renamed step (repeatable)")] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="move them; without it, only report what would happen")
    ] = False,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Move in-flight runs from one playbook version to another after checking the step mapping."""
    mapping: dict[str, str] = {}
    for item in map_ or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise InvalidInput(f"--map {item!r} is not OLD=NEW")
        mapping[old] = new
    with opened(action="run.migrate", actor=actor) as container:
        report = container.automation.migrate(
            playbook_id, from_version, to_version, mapping, apply=apply, actor=actor or getpass.getuser()
        )
    if json:
        emit_json(report)
        return
    verb = "moved" if apply else "would move"
    typer.echo(f"{verb} {len(report['moved'])} run(s) of {playbook_id} from version {from_version} to {to_version}")
    for refused in report["refused"]:
        typer.echo(f"  not {refused['run_id']}: {refused['reason']}")


@runs_app.command("cancel")
@handled
def runs_cancel(run_id: str, actor: Actor = None) -> None:
    """Cancel a run."""
    _control(run_id, "cancel", actor=actor)


@runs_app.command("pause")
@handled
def runs_pause(run_id: str, actor: Actor = None) -> None:
    """Pause a run: nothing new starts until it is resumed."""
    _control(run_id, "pause", actor=actor)


@runs_app.command("resume")
@handled
def runs_resume(run_id: str, actor: Actor = None) -> None:
    """Resume a paused run."""
    _control(run_id, "resume", actor=actor)


@runs_app.command("retry-step")
@handled
def runs_retry_step(run_id: str, step_id: str, actor: Actor = None) -> None:
    """Run a failed step again (its run resumes if the failure had ended it)."""
    _control(run_id, "retry_step", step_id, actor)


@tasks_app.command("list")
@handled
def tasks_list(
    role: Annotated[
        list[str] | None, typer.Option(help="only tasks this role may decide; with --mine, the roles you hold")
    ] = None,
    mine: Annotated[bool, typer.Option("--mine", help="tasks assigned to you, or unassigned for your --role")] = False,
    actor: Actor = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json: JsonFlag = False,
) -> None:
    """Open tasks, soonest due first."""
    roles = role or []
    with opened(action="task.read", actor=actor) as container:
        if mine:
            items = container.automation.tasks(None, limit, mine=actor or getpass.getuser(), my_roles=roles)
        else:
            items = container.automation.tasks(roles[0] if len(roles) == 1 else None, limit)
            if len(roles) > 1:
                items = [t for t in items if set(roles) & set(t["roles"])]
    if json:
        emit_json(plain(items))
        return
    table(
        "Open tasks",
        ["id", "kind", "title", "roles", "assignee", "needs", "due", "run"],
        [
            (
                t["id"],
                t["kind"],
                t["title"],
                ", ".join(t["roles"]),
                t["assignee"] or "",
                t["required"],
                _when(t["due_at"]),
                t["run_id"],
            )
            for t in items
        ],
        empty="Nothing is waiting for a person",
        optional=("run", "needs", "assignee"),
    )


@tasks_app.command("show")
@handled
def tasks_show(task_id: str, json: JsonFlag = False) -> None:
    """Show a task: what it asks, the run's context, the recommendation and similar cases of a review."""
    with opened(action="task.read") as container:
        task = container.automation.task(task_id)
    if json:
        emit_json(plain(task))
        return
    context = task["context"]
    typer.echo(f"{task['id']} ({task['kind']}, {task['status']}): {task['title']}")
    typer.echo(f"  run {task['run_id']} step {task['step_id']}; roles {', '.join(task['roles'])}")
    typer.echo(f"  due {_when(task['due_at']) or 'no due time'}; assignee {task['assignee'] or 'none'}")
    if "recommendation" in context:
        typer.echo(f"  recommendation: {orjson.dumps(context['recommendation']).decode()}")
        typer.echo(f"  confidence: {context.get('confidence')}; why: {context.get('why')}")
        for item in context.get("explanation") or []:
            typer.echo(f"    {orjson.dumps(item).decode()}")
    for hit in context.get("similar") or []:
        typer.echo(f"  similar [{hit['kind']}] {hit['score']:.2f} {hit['title']} ({hit['source']})")
    summary = context.get("summary") or {}
    if summary.get("text"):
        typer.echo(f"  summary: {summary['text']}")
    for decision in task["decisions"]:
        verdict = "approved" if decision["approved"] else "rejected"
        typer.echo(f"  {decision['by']} {verdict}: {decision.get('comment') or ''}")


def _decide(
    task_id: str, approve: bool, comment: str | None, actor: str | None, json: bool, value: str | None = None
) -> None:
    answer = json_object(value, "--value") if value is not None else None
    with opened() as container:  # task.decide depends on the task: the service checks it
        task = container.automation.decide(
            task_id, approve=approve, by=actor or getpass.getuser(), comment=comment, value=answer
        )
    if json:
        emit_json(plain(task))
    else:
        typer.echo(f"{task['id']}: {task['status']} ({len(task['decisions'])} of {task['required']} decided)")


@tasks_app.command("approve")
@handled
def tasks_approve(
    task_id: str, comment: Annotated[str | None, typer.Option()] = None, actor: Actor = None, json: JsonFlag = False
) -> None:
    """Approve a task (on a review: accept the recommendation)."""
    _decide(task_id, True, comment, actor, json)


@tasks_app.command("reject")
@handled
def tasks_reject(
    task_id: str,
    comment: Annotated[str | None, typer.Option(help="the reason (required)")] = None,
    value: Annotated[
        str | None, typer.Option(help='on a review: your own answer as a JSON object, e.g. \'{"label": "Access"}\'')
    ] = None,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Reject a task; a reason is required. On a review, --value gives the right answer (an override)."""
    _decide(task_id, False, comment, actor, json, value)


@tasks_app.command("reassign")
@handled
def tasks_reassign(
    task_id: str,
    to: Annotated[str | None, typer.Option("--to", help="the person who should decide it")] = None,
    unassign: Annotated[bool, typer.Option("--unassign", help="give it back to everyone with its roles")] = False,
    comment: Annotated[str | None, typer.Option()] = None,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Give an open task to someone else."""
    if (to is None) == (not unassign):
        raise typer.BadParameter("give exactly one of --to NAME or --unassign")
    with opened(action="task.reassign", actor=actor) as container:
        task = container.automation.reassign(task_id, to, by=actor or getpass.getuser(), comment=comment)
    if json:
        emit_json(plain(task))
    else:
        typer.echo(f"{task['id']}: assigned to {task['assignee'] or 'nobody (its roles)'}")


def worker() -> None:
    """Run a worker alone: it claims and carries out steps (several may share a PostgreSQL store)."""
    from opsrail.wiring import build

    settings = Settings()
    container = build(settings, migrate=True)
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        container.start()
        typer.echo(f"worker {container.runner.owner} running; Ctrl-C stops it", err=True)
        await container.runner.run_forever(stop)

    try:
        asyncio.run(main())
    finally:
        container.close()
