"""CLI commands for authorization policies, the user directory and delegations."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._output import emit_json, fail, plain, short_time, table
from opsrail.model import InvalidInput

PasswordFile = Annotated[
    Path | None, typer.Option("--password-file", help="a file whose first line is the console password")
]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="read the console password from stdin")]

policies_app = typer.Typer(help="Who may do what: Cedar authorization policies.", no_args_is_help=True)
users_app = typer.Typer(help="People and their roles.", no_args_is_help=True)
delegations_app = typer.Typer(help="Let someone decide with your roles until a date.", no_args_is_help=True)

Actor = Annotated[str | None, typer.Option("--as", help="who is acting [default: the login name]")]
Cases = Annotated[
    Path | None, typer.Option("--cases", help="test cases (YAML) [default: FILE with .tests.yaml beside it]")
]


# -- policies ---------------------------------------------------------------------------------------------


@policies_app.command("schema")
@handled
def policies_schema(json: JsonFlag = False) -> None:
    """Print the Cedar schema: roles, resource types with their attributes, actions and their groups."""
    from opsrail.governance import ACTIONS, GROUPS, schema_text

    if json:
        emit_json(
            {
                "schema": schema_text(),
                "groups": GROUPS,
                "actions": {a: {"resource": r, "group": g, "allows": d} for a, (r, g, d) in ACTIONS.items()},
            }
        )
    else:
        typer.echo(schema_text(), nl=False)


@policies_app.command("test")
@handled
def policies_test(file: Path, cases: Cases = None, json: JsonFlag = False) -> None:
    """Validate a policy file against the schema and run its test cases; exits 1 when one fails."""
    from opsrail.services import AuthorizationService

    service = AuthorizationService.offline()
    _, results = service.test(file, cases)
    failed = [r for r in results if not r.passed]
    if json:
        emit_json(
            {
                "file": str(file),
                "valid": True,
                "cases": len(results),
                "failed": [
                    {"name": r.case.name, "expected": r.case.allow, "got": r.answer.allowed, "by": r.answer.reasons}
                    for r in failed
                ],
            }
        )
    else:
        for result in results:
            mark = "ok  " if result.passed else "FAIL"
            got = "allow" if result.answer.allowed else "deny"
            by = f" by {', '.join(result.answer.reasons)}" if result.answer.reasons else ""
            typer.echo(f"{mark} {result.case.name}: {got}{by}")
        summary = f"{file}: valid; {len(results) - len(failed)} of {len(results)} cases pass"
        if failed:
            fail(summary)
        else:
            typer.echo(summary if results else f"{file}: valid (no test cases found; add --cases)")
    if failed:
        raise typer.Exit(1)


@policies_app.command("publish")
@handled
def policies_publish(file: Path, cases: Cases = None, actor: Actor = None, json: JsonFlag = False) -> None:
    """Make a policy file the active set, after validating it and running its test cases."""
    with opened(action="policy.publish", actor=actor) as container:
        published = container.authorization.publish(file, cases, actor or getpass.getuser())
    if json:
        emit_json(published)
    else:
        typer.echo(f"published policies version {published['version']} ({published['cases']} cases pass)")


@policies_app.command("show")
@handled
def policies_show(json: JsonFlag = False) -> None:
    """Print the active policy set (the built-in reference policies until one is published)."""
    with opened(action="policy.read") as container:
        active = container.authorization.active()
    if json:
        emit_json(plain({k: v for k, v in active.items() if k != "cases"}))
    else:
        typer.echo(f"# version {active['version'] or '(reference)'} from {active['source']}")
        typer.echo(active["document"], nl=False)


@policies_app.command("list")
@handled
def policies_list(json: JsonFlag = False) -> None:
    """Published policy versions, newest first (the newest is active)."""
    with opened(action="policy.read") as container:
        items = container.authorization.versions()
    if json:
        emit_json(plain({"items": items}))
        return
    table(
        "Policy sets",
        ["version", "published", "by", "file", "sha256"],
        [
            [i["version"], short_time(i["published_at"]), i["published_by"] or "", i["filename"], i["sha256"][:12]]
            for i in items
        ],
    )


@policies_app.command("check")
@handled
def policies_check(
    action: str,
    role: Annotated[list[str], typer.Option("--role", help="a role of the principal (repeat for several)")],
    json: JsonFlag = False,
) -> None:
    """Would the active policies allow ACTION to someone with these roles? Exits 1 when denied."""
    from opsrail.governance import ACTIONS, Principal

    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}", hint="see `opsrail policies schema --json` for the actions")
    with opened(action="policy.read") as container:
        answer = container.authorization.policies().authorize(Principal("probe", frozenset(role)), action)
    if json:
        emit_json({"action": action, "roles": role, "allowed": answer.allowed, "by": answer.reasons})
    else:
        by = f" by {', '.join(answer.reasons)}" if answer.reasons else ""
        typer.echo(f"{'allow' if answer.allowed else 'deny'}{by}")
    if not answer.allowed:
        raise typer.Exit(1)


# -- users --------------------------------------------------------------------------------------------------


@users_app.command("create")
@handled
def users_create(
    name: str,
    role: Annotated[list[str], typer.Option("--role", help="a role (repeat for several)")],
    password_file: PasswordFile = None,
    password_stdin: PasswordStdin = False,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Add a person with their roles, or replace the roles of an existing one; optionally set their console
    password (from a file or standard input, never from the command line)."""
    password = _password(password_file, password_stdin)
    with opened(action="user.manage", actor=actor) as container:
        user = container.directory.put_user(name, role, actor or getpass.getuser())
        if password is not None:
            container.sessions.set_password(name, password, actor or getpass.getuser())
            user = {**user, "has_password": True}
    if json:
        emit_json(plain(user))
    else:
        typer.echo(f"{user['name']}: {', '.join(user['roles'])}")


@users_app.command("set-password")
@handled
def users_set_password(
    name: str, password_file: PasswordFile = None, password_stdin: PasswordStdin = False, actor: Actor = None
) -> None:
    """Set a person's console password (argon2id); their open console sessions end."""
    password = _password(password_file, password_stdin)
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with opened(action="user.manage", actor=actor) as container:
        container.sessions.set_password(name, password, actor or getpass.getuser())
    typer.echo(f"password set for {name}")


def _password(path: Path | None, stdin: bool) -> str | None:
    if path is not None and stdin:
        raise InvalidInput("give --password-file or --password-stdin, not both")
    if path is not None:
        if not path.is_file():
            raise InvalidInput(f"no such file: {path}", hint="give the path of a file holding the password")
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return None


@users_app.command("list")
@handled
def users_list(json: JsonFlag = False) -> None:
    """People in the directory."""
    with opened(action="user.manage") as container:
        items = container.directory.users()
    if json:
        emit_json(plain({"items": items}))
        return
    table(
        "Users",
        ["name", "roles", "created", "disabled"],
        [
            [
                u["name"],
                ", ".join(u["roles"]),
                short_time(u["created_at"]),
                short_time(u["disabled_at"]) if u["disabled_at"] else "",
            ]
            for u in items
        ],
        empty="Add people with `opsrail users create NAME --role ROLE`",
    )


@users_app.command("disable")
@handled
def users_disable(name: str, actor: Actor = None) -> None:
    """Disable a person: they keep their history but act with no role."""
    with opened(action="user.manage", actor=actor) as container:
        container.directory.disable(name, actor or getpass.getuser())
    typer.echo(f"disabled {name}")


# -- delegations --------------------------------------------------------------------------------------------


def _until(text: str) -> datetime:
    try:
        if text.upper().startswith("P"):
            return datetime.now(UTC) + TypeAdapter(timedelta).validate_python(text)
        moment = datetime.fromisoformat(text)
    except (ValueError, ValidationError):
        raise InvalidInput(
            f"--until {text!r} is not a date, time or duration", hint="e.g. 2026-12-31, 2026-12-31T18:00Z or P14D"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
        if len(text) == 10:  # a date: the whole of that day
            moment += timedelta(days=1)
    return moment


@delegations_app.command("create")
@handled
def delegations_create(
    to: Annotated[str, typer.Option("--to", help="who may decide for the owner")],
    until: Annotated[str, typer.Option("--until", help="end: a date (inclusive), a time, or a duration like P14D")],
    owner: Annotated[str | None, typer.Option("--from", help="whose roles [default: the actor]")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", help="only these roles [default: all]")] = None,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Let someone decide tasks with your roles (or only some) until a date, e.g. during a holiday."""
    from opsrail.governance import Resource

    by = actor or getpass.getuser()
    with opened() as container:
        who = container.directory.local(by)
        container.authorization.check(who, "delegation.manage", Resource("Delegation", "new", {"owner": owner or by}))
        record = container.directory.delegate(owner or by, to, _until(until), role or None, by)
    if json:
        emit_json(plain(record))
    else:
        typer.echo(
            f"{record['id']}: {record['delegate']} decides as {record['owner']} ({', '.join(record['roles'])}) "
            f"until {record['ends_at'].isoformat()}"
        )


@delegations_app.command("list")
@handled
def delegations_list(
    to: Annotated[str | None, typer.Option("--to", help="only delegations to this person")] = None,
    owner: Annotated[str | None, typer.Option("--from", help="only delegations from this person")] = None,
    json: JsonFlag = False,
) -> None:
    """Delegations, newest first, with their end dates."""
    with opened(action="decision.read") as container:
        items = container.directory.delegations(delegate=to, owner=owner)
    if json:
        emit_json(plain({"items": items}))
        return
    now = datetime.now(UTC)
    table(
        "Delegations",
        ["id", "from", "to", "roles", "until", "state"],
        [
            [
                d["id"],
                d["owner"],
                d["delegate"],
                ", ".join(d["roles"]),
                short_time(d["ends_at"]),
                "revoked" if d["revoked_at"] else ("ended" if d["ends_at"] <= now else "active"),
            ]
            for d in items
        ],
    )


@delegations_app.command("revoke")
@handled
def delegations_revoke(delegation_id: str, actor: Actor = None) -> None:
    """End a delegation now."""
    from opsrail.governance import Resource

    by = actor or getpass.getuser()
    with opened() as container:
        found = next((d for d in container.directory.delegations() if d["id"] == delegation_id), None)
        container.authorization.check(
            container.directory.local(by),
            "delegation.manage",
            Resource("Delegation", delegation_id, {"owner": found["owner"] if found else by}),
        )
        container.directory.revoke_delegation(delegation_id, by)
    typer.echo(f"revoked {delegation_id}")
