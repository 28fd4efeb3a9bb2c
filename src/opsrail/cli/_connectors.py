"""CLI commands for connectors (`opsrail connectors list|check`) and the local fakes of the vendors
(`opsrail dev fakes`)."""

from __future__ import annotations

import asyncio
import getpass
import importlib
from typing import Annotated, Any

import orjson
import typer

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._output import emit_json, plain, short_time, table
from opsrail.model import require_one_of

connectors_app = typer.Typer(help="The systems Opsrail acts on.", no_args_is_help=True)
dev_app = typer.Typer(help="Tools for local development.", no_args_is_help=True)

# path prefix -> (fake module, the connector settings that point at it)
FAKES: dict[str, tuple[str, dict[str, Any]]] = {
    "jira": ("opsrail.fakes.jira", {"email": "bot@example.test", "api_token": "test-token"}),
    "slack": ("opsrail.fakes.slack", {"bot_token": "xoxb-test", "signing_secret": "slack-signing-secret"}),
    "stripe": ("opsrail.fakes.stripe", {"api_key": "sk_test_fake"}),
    "servicenow": ("opsrail.fakes.servicenow", {"username": "admin", "password": "secret"}),
    "erpnext": ("opsrail.fakes.erpnext", {"api_key": "key", "api_secret": "secret"}),
}


@connectors_app.command("list")
@handled
def connectors_list(json: JsonFlag = False) -> None:
    """Each connector with its operations (what `action: connector.operation` steps may call)."""
    with opened(action="connector.read") as container:
        items = container.connectors.catalogue()
    if json:
        emit_json({"items": items})
        return
    table(
        "Connectors",
        ["operation", "what it does"],
        [[op["name"], op["summary"]] for item in items for op in item["operations"]],
    )


@connectors_app.command("check")
@handled
def connectors_check(json: JsonFlag = False) -> None:
    """Reach each configured system with its credentials; exits 1 when one is not healthy."""
    with opened(action="connector.read") as container:
        results = asyncio.run(container.connectors.check())
    if json:
        emit_json({"items": results})
    else:
        table("Connector health", ["connector", "ok", "detail"], [[r["name"], r["ok"], r["detail"]] for r in results])
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


def fakes_app() -> Any:
    """One ASGI app serving every vendor fake under its own prefix (/jira, /stripe, …)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    routes = []
    for prefix, (module_name, _) in FAKES.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        routes.append(Mount(f"/{prefix}", app=module.create_app()))
    return Starlette(routes=routes)


@dev_app.command("fakes")
@handled
def dev_fakes(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 8099,
    print_settings: Annotated[bool, typer.Option("--print-settings", help="print OPSRAIL_CONNECTORS and exit")] = False,
) -> None:
    """Serve local fakes of Jira, Slack, Stripe, ServiceNow and ERPNext that follow their published APIs."""
    base = f"http://127.0.0.1:{port}"
    settings = {
        name: {"base_url": f"{base}/{name}" + ("/api" if name == "slack" else ""), **config}
        for name, (_, config) in FAKES.items()
    }
    line = orjson.dumps(settings).decode()
    if print_settings:
        typer.echo(line)
        return
    import uvicorn

    from opsrail.cli._listen import check_listen_address

    check_listen_address("127.0.0.1", port)
    typer.echo(f"fakes on {base}; point Opsrail at them with:", err=True)
    typer.echo(f"export OPSRAIL_CONNECTORS='{line}'", err=True)
    uvicorn.run(fakes_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


@connectors_app.command("dead-letters")
@handled
def connectors_dead_letters(
    status: Annotated[str | None, typer.Option(help="dead (default), replayed, or all")] = "dead",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json: JsonFlag = False,
) -> None:
    """Connector calls that failed for good (a permanent error, or the last attempt of their step)."""
    require_one_of("--status", status, ("dead", "replayed", "all"))
    with opened(action="connector.read") as container:
        items = container.connectors.failures(None if status == "all" else status, limit)
    if json:
        emit_json(plain({"items": items}))
        return
    table(
        "Connector dead letters",
        ["id", "operation", "run", "status", "when", "error"],
        [
            [i["id"], i["operation"], i["run_id"] or "", i["status"], short_time(i["created_at"]), i["error"][:80]]
            for i in items
        ],
        empty="No connector call has failed for good",
    )


@connectors_app.command("replay")
@handled
def connectors_replay(
    letter_id: str, actor: Annotated[str | None, typer.Option("--as")] = None, json: JsonFlag = False
) -> None:
    """Call a dead-lettered operation again, with its parameters and idempotency key."""
    with opened(action="connector.replay", actor=actor) as container:
        result = asyncio.run(container.connectors.replay(letter_id, actor or getpass.getuser()))
    if json:
        emit_json(plain(result))
    else:
        typer.echo(f"{letter_id}: {result['operation']} replayed")
