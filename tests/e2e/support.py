"""Pieces the end-to-end suites share: the vendor fakes on a real port with switchable fault injection, a real
``opsrail up`` process prepared with the reference content and the people who decide, and HTTP helpers that wait
with deadlines."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

import opsrail.decisions
import opsrail.playbooks
import opsrail.simulate
from opsrail.cli._connectors import FAKES
from opsrail.fakes.chaos import Chaos
from opsrail.settings import Settings
from opsrail.wiring import build
from tests.api.conftest import free_port, running_opsrail
from tests.support import every_audit_entry

PLAYBOOKS = Path(opsrail.playbooks.__file__).parent / "reference"
TABLES = Path(opsrail.decisions.__file__).parent / "reference"
TICKETS = Path(opsrail.simulate.__file__).parent / "data" / "tickets_sample.csv"
TOPIC_POLICY = "decisions:\n  incident-topic: {min_confidence: 0.55, review: {roles: [operator]}}\n"

# Who acts over HTTP: each person is in the directory with one role, and holds a token in their own name.
PEOPLE: dict[str, str] = {
    "fiona": "finance_controller",
    "carol": "finance_controller",
    "ann": "approver",
    "bob": "approver",
    "lena": "legal",
    "olive": "operator",
    "aude": "auditor",
    "crm": "service",
}
DEADLINE_S = 20.0
POLL_S = 0.05
_serial = itertools.count(1)
T = TypeVar("T")


def unique(prefix: str) -> str:
    """An id no other test in the session uses."""
    return f"{prefix}-{os.getpid()}-{next(_serial)}"


# -- vendor fakes ------------------------------------------------------------------------------------------------


class Faults:
    """An ASGI app in front of a fake that passes everything through until told to inject failures."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.chaos: Chaos | None = None

    def inject(self, *, status: int, calls: int, rate: float = 1.0) -> Chaos:
        """Fail a ``rate`` of the next ``calls`` requests with ``status``, then let everything through."""
        self.chaos = Chaos(self.app, rate=rate, calls=calls, status=status)
        return self.chaos

    def clear(self) -> None:
        self.chaos = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target: ASGIApp = self.chaos if self.chaos is not None else self.app
        await target(scope, receive, send)


@dataclass
class Vendors:
    url: str
    faults: dict[str, Faults]
    server: uvicorn.Server

    def connectors(self) -> dict[str, dict[str, Any]]:
        """``OPSRAIL_CONNECTORS`` for the fakes, as ``opsrail dev fakes --print-settings`` prints it, with Jira's
        own retries within a call off so that a vendor failure reaches the engine's durable retry."""
        settings = {
            name: {"base_url": f"{self.url}/{name}" + ("/api" if name == "slack" else ""), **config}
            for name, (_, config) in FAKES.items()
        }
        settings["jira"]["http"] = {"retries": 0, "breaker_failures": 1000}
        return settings

    def jira(self) -> httpx.Client:
        config = FAKES["jira"][1]
        return httpx.Client(
            base_url=f"{self.url}/jira/rest/api/3", auth=(config["email"], config["api_token"]), timeout=10.0
        )


def serve_vendors() -> Iterator[Vendors]:
    faults: dict[str, Faults] = {}
    routes = []
    for prefix, (module_name, _) in FAKES.items():
        faults[prefix] = Faults(importlib.import_module(module_name).create_app())
        routes.append(Mount(f"/{prefix}", app=faults[prefix]))
    port = free_port()
    config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="e2e-vendor-fakes", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the vendor fakes did not start")
        time.sleep(0.02)
    try:
        yield Vendors(url=f"http://127.0.0.1:{port}", faults=faults, server=server)
    finally:
        server.should_exit = True
        thread.join(10)


# -- the Opsrail server ------------------------------------------------------------------------------------------


@dataclass
class Content:
    """What is published before the server starts."""

    playbooks: list[str]
    tables: list[str] = field(default_factory=list)
    topic_model: bool = False


@dataclass
class Opsrail:
    url: str
    tokens: dict[str, str]
    log: Path

    def client(self, person: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[person]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0)


def start_opsrail(home: Path, content: Content, connectors: dict[str, dict[str, Any]]) -> Iterator[Opsrail]:
    settings = Settings(home=home, connectors=connectors)
    container = build(settings, migrate=True)
    tokens: dict[str, str] = {}
    for person, role in PEOPLE.items():
        container.directory.put_user(person, [role], "e2e")
        tokens[person] = container.tokens.create(role, person, actor="e2e")[1]
    for table in content.tables:
        container.decisions.publish_table(TABLES / f"{table}.yaml", "e2e")
    if content.topic_model:
        container.decisions.train_model(
            "text-classifier", TICKETS, {"text": "Document", "label": "Topic_group"}, name="incident-topic", by="e2e"
        )
        policy = home / "topic-policy.yaml"
        policy.write_text(TOPIC_POLICY, encoding="utf-8")
        container.decisions.apply_policies(policy, "e2e")
    for playbook in content.playbooks:
        container.automation.publish(PLAYBOOKS / f"{playbook}.yaml", "e2e")
    container.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env.update(
        OPSRAIL_HOME=str(home),
        OPSRAIL_CONNECTORS=json.dumps(connectors),
        OPSRAIL_LOG_LEVEL="warning",
    )
    log = home / "server.log"
    with running_opsrail(env, log) as url:
        yield Opsrail(url=url, tokens=tokens, log=log)


# -- HTTP helpers ------------------------------------------------------------------------------------------------


def send_event(client: httpx.Client, kind: str, verb: str, data: dict[str, Any], source: str = "crm/acme") -> str:
    """POST one CloudEvent of type ``com.opsrail.<kind>.<verb>``; returns its id."""
    event_id = unique(f"{kind}-{verb}")
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": f"com.opsrail.{kind}.{verb}",
        "datacontenttype": "application/json",
        "data": data,
    }
    answer = client.post("/v1/events", json=event)
    assert answer.status_code == 202, answer.text
    return event_id


def poll(probe: Callable[[], T | None], what: str, seconds: float = DEADLINE_S) -> T:
    """Call ``probe`` until it answers something other than None; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(POLL_S)


def runs_of(client: httpx.Client, playbook: str, object_id: str) -> list[dict[str, Any]]:
    """Runs of ``playbook`` started by the canonical object ``object_id`` (a run's input is its event's data)."""
    answer = client.get("/v1/runs", params={"playbook": playbook, "limit": 1000})
    assert answer.status_code == 200, answer.text
    return [r for r in answer.json()["items"] if r["input"].get("id") == object_id]


def run_started(client: httpx.Client, playbook: str, object_id: str) -> str:
    def probe() -> str | None:
        found = runs_of(client, playbook, object_id)
        return str(found[0]["id"]) if found else None

    return poll(probe, f"a run of {playbook} for {object_id}")


def show_run(client: httpx.Client, run_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def steps(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in run["steps"]}


def step_statuses(run: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run["steps"]}


def wait_run(client: httpx.Client, run_id: str, status: str, seconds: float = DEADLINE_S) -> dict[str, Any]:
    """The run once its status is ``status``; fails with the run's steps if it settles otherwise."""
    last: dict[str, Any] = {}

    def probe() -> dict[str, Any] | None:
        nonlocal last
        last = show_run(client, run_id)
        if last["status"] == status:
            return last
        if last["status"] not in ("running", "paused"):
            raise AssertionError(f"run {run_id} is {last['status']} ({last['error']}): {step_statuses(last)}")
        return None

    try:
        return poll(probe, f"run {run_id} to be {status}", seconds)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; steps: {step_statuses(last)}") from None


def wait_step(client: httpx.Client, run_id: str, step: str, status: str, seconds: float = DEADLINE_S) -> dict[str, Any]:
    """The run once its step ``step`` has status ``status``."""

    def probe() -> dict[str, Any] | None:
        run = show_run(client, run_id)
        return run if step_statuses(run).get(step) == status else None

    return poll(probe, f"step {step} of run {run_id} to be {status}", seconds)


def open_task(client: httpx.Client, run_id: str, step: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        answer = client.get("/v1/tasks", params={"limit": 1000})
        assert answer.status_code == 200, answer.text
        found = [t for t in answer.json()["items"] if t["run_id"] == run_id and t["step_id"] == step]
        return found[0] if found else None

    return poll(probe, f"an open task for step {step} of run {run_id}")


def open_tasks(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    answer = client.get("/v1/tasks", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return [t for t in answer.json()["items"] if t["run_id"] == run_id]


def decide(
    client: httpx.Client, task_id: str, approve: bool, comment: str | None = None, **body: Any
) -> httpx.Response:
    payload: dict[str, Any] = {**body}
    if comment is not None:
        payload["comment"] = comment
    return client.post(f"/v1/tasks/{task_id}:{'approve' if approve else 'reject'}", json=payload)


def ledger(client: httpx.Client, collection: str, account_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/ledger/{collection}", params={"account_id": account_id})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def ledger_record(client: httpx.Client, collection: str, record_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/ledger/{collection}/{record_id}")
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()
    return record


def decision_records(client: httpx.Client, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's decision records by decision name."""
    answer = client.get("/v1/decision-records", params={"run": run_id})
    assert answer.status_code == 200, answer.text
    return {r["decision"]: r for r in answer.json()["items"]}


def audit_entries(auditor: httpx.Client) -> list[dict[str, Any]]:
    return every_audit_entry(auditor)


def task_trail(auditor: httpx.Client, task_id: str) -> list[tuple[str, str]]:
    """(actor, action) of every audit entry about a task, oldest first."""
    return [(e["actor"], e["action"]) for e in audit_entries(auditor) if e["subject"] == task_id]


def connector_calls(auditor: httpx.Client, run_id: str, step: str) -> list[dict[str, Any]]:
    """The ``connector.called`` audit entries of one step of a run, oldest first."""
    return [
        e
        for e in audit_entries(auditor)
        if e["action"] == "connector.called" and e["details"].get("run") == run_id and e["details"].get("step") == step
    ]
