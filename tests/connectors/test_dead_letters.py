"""Connector calls that fail for good land in a dead-letter queue and can be replayed with the same parameters and
idempotency key: a webhook whose receiver is down, inside a real run, with a real receiver over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from opsrail.cli import app as cli
from opsrail.fakes.webhook_receiver import create_app as receiver_app
from opsrail.model import Conflict
from opsrail.settings import Settings
from opsrail.wiring import build

PLAYBOOK = """
id: notify-finance
version: 1
steps:
  - id: tell
    action: webhook.post
    with: {endpoint: finance-bus, event_type: credit.approved, payload: {account: "${ run.input.account }"}}
    retry: {attempts: 2, initial: PT0.01S, max: PT0.01S}
"""


def test_a_webhook_that_fails_for_good_is_dead_lettered_and_replayed_once(
    serve: Callable[[FastAPI], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = receiver_app(secret="whsec_test", fail_first=4)  # 2 step attempts of 2 tries each
    url = serve(receiver)
    settings = Settings(
        home=tmp_path,
        connectors={
            "webhook": {
                "endpoints": {"finance-bus": {"url": f"{url}/hooks", "secret": "whsec_test"}},
                "http": {"retries": 1, "backoff_s": 0.01},
            }
        },
    )
    container = build(settings, migrate=True)
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    container.automation.publish(tmp_path / "pb.yaml", "ada")
    run_id = container.automation.start("notify-finance", {"account": "acme"}, actor="olive")
    for _ in range(20):
        asyncio.run(container.runner.tick())
        if container.automation.show(run_id)["status"] != "running":
            break
    assert container.automation.show(run_id)["status"] == "failed"
    [letter] = container.connectors.failures()
    assert letter["operation"] == "webhook.post" and letter["run_id"] == run_id
    assert letter["idempotency_key"] == f"{run_id}:tell" and letter["params"]["payload"] == {"account": "acme"}
    assert receiver.state.deliveries == []

    replayed = asyncio.run(container.connectors.replay(letter["id"], "olive"))
    assert replayed["status"] == "replayed"
    assert [d["data"] for d in receiver.state.deliveries] == [{"account": "acme"}]
    with pytest.raises(Conflict, match="replayed already"):
        asyncio.run(container.connectors.replay(letter["id"], "olive"))
    assert container.connectors.failures() == []
    actions = [e["action"] for e in container.audit.export() if e["action"].startswith("connector.")]
    assert actions.count("connector.dead_lettered") == 1 and actions[-1] == "connector.replayed"
    container.close()

    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    listed = CliRunner().invoke(cli, ["connectors", "dead-letters", "--status", "all", "--json"])
    assert listed.exit_code == 0 and '"replayed"' in listed.stdout
