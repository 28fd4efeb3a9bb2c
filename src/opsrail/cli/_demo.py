"""``opsrail up --demo``: the whole loop on a fresh machine, without configuring anything.

It serves the vendor fakes in-process (unless ``OPSRAIL_CONNECTORS`` names real systems), trains the demo topic model
from the packaged ticket sample once, publishes the reference decision tables and playbooks, creates the demo people
and their tokens, starts the API with its worker, and runs the simulator against it, so within a minute there are
orders being onboarded, incidents classified and escalated, credits and discounts waiting for approval, and every
decision recorded. The first screen says where to look and what to try.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
import uvicorn

import opsrail.decisions
import opsrail.playbooks
from opsrail.api import create_app
from opsrail.api._logs import configure_logging
from opsrail.cli._connectors import FAKES, fakes_app
from opsrail.model import OpsrailError
from opsrail.settings import Settings
from opsrail.wiring import Container, build

log = logging.getLogger("opsrail.demo")

TABLES = Path(opsrail.decisions.__file__).parent / "reference"
PLAYBOOKS = Path(opsrail.playbooks.__file__).parent / "reference"
PEOPLE = {
    "fiona": "finance_controller",
    "ann": "approver",
    "lena": "legal",
    "olive": "operator",
    "aude": "auditor",
    # The simulator's people, who decide most tasks after realistic delays.
    "sim-fiona": "finance_controller",
    "sim-carl": "finance_controller",
    "sim-abe": "approver",
    "sim-lena": "legal",
    "sim-olive": "operator",
}
TOPIC_POLICY = "decisions:\n  incident-topic: {min_confidence: 0.55, review: {roles: [operator]}}\n"


DEMO_DRIFT = "region=EU:credit_reject=0.7:reject=0.5"
"""The demo's simulated EU approvers reject more often than the others, so ``opsrail insights drift`` and the
console's insights page have something real to find (``opsrail up --demo --drift none`` turns it off)."""


@dataclass
class Demo:
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(9))
    fakes_url: str | None = None
    notes: list[str] = field(default_factory=list)
    drift: str | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_fakes() -> str:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(fakes_app(), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, name="opsrail-demo-fakes", daemon=True).start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def _sample() -> Path | None:
    try:
        import opsrail.simulate

        path = Path(opsrail.simulate.__file__).parent / "data" / "tickets_sample.csv"
    except ImportError:
        return None
    return path if path.is_file() else None


def prepare(settings: Settings) -> tuple[Demo, Container]:
    """Fakes, reference content, people and tokens; returns the container the server will use."""
    demo = Demo(settings)
    if not settings.connectors:
        demo.fakes_url = _serve_fakes()
        connectors = {
            name: {"base_url": f"{demo.fakes_url}/{name}" + ("/api" if name == "slack" else ""), **config}
            for name, (_, config) in FAKES.items()
        }
        connectors["slack"]["users"] = {"U0FIONA": "fiona"}
        demo.settings = settings.model_copy(update={"connectors": connectors})
    container = build(demo.settings, migrate=True)
    for name, role in PEOPLE.items():
        container.directory.put_user(name, [role], "demo")
        if not name.startswith("sim-"):
            container.sessions.set_password(name, demo.password, "demo")
    for table in sorted(TABLES.glob("*.yaml")):
        _quietly(lambda t=table: container.decisions.publish_table(t, "demo"))
    sample = _sample()
    if sample is not None and not _has_model(container, "incident-topic"):
        typer.echo("  training the demo topic model on the packaged ticket sample…")
        container.decisions.train_model(
            "text-classifier", sample, {"text": "Document", "label": "Topic_group"}, name="incident-topic", by="demo"
        )
    policy = Path(demo.settings.home) / "demo-policies.yaml"
    policy.write_text(TOPIC_POLICY, encoding="utf-8")
    container.decisions.apply_policies(policy, "demo")
    for playbook in sorted([*PLAYBOOKS.glob("*.yaml"), *PLAYBOOKS.glob("finance/*.yaml")]):
        if playbook.stem == "sev1-escalation" and not _has_model(container, "incident-topic"):
            demo.notes.append("sev1-escalation is not published: the topic model's sample is missing")
            continue
        _quietly(lambda p=playbook: container.automation.publish(p, "demo"))
    for name in ("fiona", "olive", "aude"):
        demo.tokens[name] = container.tokens.create(PEOPLE[name], name, actor="demo")[1]
    for name, role in PEOPLE.items():
        if name.startswith("sim-"):
            demo.tokens[name] = container.tokens.create(role, name, actor="demo")[1]
    demo.tokens["simulator"] = container.tokens.create("service", "simulator", actor="demo")[1]
    return demo, container


def _has_model(container: Container, name: str) -> bool:
    try:
        container.decisions.model_info(name)
    except OpsrailError:
        return False
    return True


def _quietly(action: Any) -> None:
    try:
        action()
    except OpsrailError as exc:  # published before (same content), or not publishable here: say so and go on
        log.info("demo: %s", exc)


def first_screen(demo: Demo, url: str) -> str:
    fiona, olive, aude = demo.tokens["fiona"], demo.tokens["olive"], demo.tokens["aude"]
    lines = [
        "",
        "Opsrail demo",
        f"  Console        {url}/   sign in as fiona (finance controller), olive (operator) or aude (auditor)",
        f"                 password {demo.password}   (the same for the demo's people; printed once)",
        f"  API            {url}   (OpenAPI: {url}/docs)",
        f"  home           {demo.settings.home}",
        f"  vendor fakes   {demo.fakes_url or 'OPSRAIL_CONNECTORS (real systems)'}",
        "  simulator      orders, incidents, quotes, invoices and people deciding, a few events a second",
        *(
            [
                f"  drift          one segment behaves differently ({demo.drift})",
                f"                 {url}/insights and `opsrail insights drift` find it in about ten minutes",
            ]
            if demo.drift
            else ["  drift          none: every segment behaves alike"]
        ),
        "",
        "Tokens (printed once):",
        f"  export OPSRAIL_TOKEN={olive}      # olive, operator",
        f"  export FIONA={fiona}              # fiona, finance controller",
        f"  export AUDE={aude}                # aude, auditor",
        "",
        "Try:",
        f'  curl -s -H "Authorization: Bearer $FIONA" "{url}/v1/tasks?mine=true"      # fiona\'s inbox',
        f'  curl -s -X POST -H "Authorization: Bearer $FIONA" {url}/v1/tasks/<TASK>:approve -d \'{{"comment": "ok"}}\'',
        "  opsrail runs list && opsrail runs show <RUN>                               # a run's steps and timeline",
        "  opsrail decisions records list                                          # every decision, its confidence",
        "  opsrail tasks approve <TASK> --as fiona --comment 'credit ok'            # or approve from the CLI",
        "  opsrail insights drift && opsrail insights health                        # where a region differs; debt",
        "  opsrail audit verify --as aude && opsrail connectors list",
        "",
        *demo.notes,
    ]
    return "\n".join(lines)


def _simulate(url: str, demo: Demo, stop: threading.Event) -> None:
    try:
        from opsrail.simulate import parse_drift, simulate
    except ImportError:
        log.warning("the simulator is not available; the demo serves without traffic")
        return
    humans = {
        role: demo.tokens[name] for name, role in PEOPLE.items() if name.startswith("sim-") and name in demo.tokens
    }
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stop.is_set():
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    try:
        asyncio.run(
            simulate(
                url,
                demo.tokens["simulator"],
                rate=4.0,
                duration_s=24 * 3600,
                seed=7,
                drift=parse_drift(demo.drift) if demo.drift else None,
                humans=humans,
            )
        )
    except Exception:
        log.exception("the demo simulator stopped")


def run(settings: Settings, host: str, port: int, *, drift: str | None = DEMO_DRIFT) -> None:
    # The first screen should be readable: unless a log level was asked for, only warnings are logged.
    if "log_level" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_level": "warning"})
    configure_logging(settings.log_level, settings.log_format)
    typer.echo("Preparing the demo (fakes, reference playbooks and tables, people, tokens)…")
    demo, container = prepare(settings)
    demo.drift = drift
    url = f"http://{host}:{port}"
    typer.echo(first_screen(demo, url))
    stop = threading.Event()
    threading.Thread(target=_simulate, args=(url, demo, stop), name="opsrail-demo-simulator", daemon=True).start()
    try:
        config = uvicorn.Config(
            create_app(container),
            host=host,
            port=port,
            log_config=None,
            log_level=settings.log_level,
            access_log=False,
            server_header=False,
        )
        uvicorn.Server(config).run()
    finally:
        stop.set()
        container.close()
