"""CLI commands for the database itself: the PostgreSQL role the application runs as."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from opsrail.cli._common import JsonFlag, opened
from opsrail.cli._output import emit_json, fail, table
from opsrail.model import InvalidInput


def db_grant_app_role(
    role: Annotated[str, typer.Argument(help="the role the application logs in as, e.g. opsrail_app")],
    password_file: Annotated[
        Path | None,
        typer.Option(help="a file whose first line is the role's password (set on creation, replaced otherwise)"),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="change nothing: report what ROLE may do; exits 1 when it differs")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Let ROLE run Opsrail on PostgreSQL while it may only read and append to the audit log (run as the owner).

    Connects with OPSRAIL_DATABASE_URL, which must name the owner of the tables (the role that runs `opsrail db
    upgrade`); the application then uses a URL naming ROLE. Run it again after every upgrade.
    """
    from opsrail.wiring import application_role_report, grant_application_role

    if check:
        if password_file is not None:
            raise InvalidInput("--password-file has no effect with --check", hint="leave one of them out")
        with opened(action="database.manage") as container:
            report = application_role_report(container.engine, role)
        if json:
            emit_json(report)
        else:
            _show(report)
        if not report["ok"]:
            raise typer.Exit(1)
        return
    password = _read_password(password_file) if password_file is not None else None
    with opened(action="database.manage") as container:
        statements = grant_application_role(container.engine, role, password=password)
        report = application_role_report(container.engine, role)
    if json:
        emit_json({"role": role, "statements": statements, "report": report})
        return
    for statement in statements:
        typer.echo(f"{statement};")
    typer.echo(
        f"role {role} may use the tables in {report['database']}.{report['schema']} "
        "and only read and append to audit_log; grant again after every `opsrail db upgrade`"
    )


def _read_password(path: Path) -> str:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}", hint="give a file holding the password on its first line")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the password file {path}: {exc}", hint="give a readable UTF-8 file") from None
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise InvalidInput(f"the password file {path} is empty", hint="put the password on its first line")
    return password


def _show(report: dict[str, Any]) -> None:
    if report["exists"]:
        rows = [(name, item) for name, item in report["tables"].items()]
        rows += [(f"sequence {name}", item) for name, item in report["sequences"].items()]
        table(
            f"Role {report['role']} in {report['database']}.{report['schema']}",
            ["object", "holds", "expected"],
            [(name, ", ".join(item["holds"]) or "-", ", ".join(item["expected"])) for name, item in rows],
        )
        typer.echo(f"owns: {', '.join(report['owns']) or 'nothing'}")
    if report["ok"]:
        typer.echo(f"role {report['role']} holds exactly the application role's rights")
        return
    for problem in report["problems"]:
        fail(problem)
