"""`simulate` against a real `opsrail up`: events stored, runs started, tasks decided by the simulated people."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import typer
from typer.testing import CliRunner

from opsrail.cli._common import handled
from opsrail.cli._simulate import provision_people, simulate_command
from opsrail.model import Unauthenticated, Unavailable
from opsrail.settings import Settings
from opsrail.simulate import PEOPLE, World, load_tickets, simulate
from opsrail.wiring import Container, build
from tests.api.conftest import Server, free_port, start_server

PLAYBOOK = """
id: sim-sev1-approval
version: 1
trigger:
  events: [com.opsrail.incident.opened]
  when: "event.data.severity == 1"
steps:
  - id: approve
    approval: {roles: [finance_controller], title: "Approve the Sev1 credit"}
"""
SEED, RATE, SECONDS = 11, 30.0, 6.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("simulate"), None)


def store(server: Server) -> Container:
    return build(Settings(home=Path(server.env["OPSRAIL_HOME"]), database_url=server.env.get("OPSRAIL_DATABASE_URL")))


def wait_for_runs(client: httpx.Client, want: int, seconds: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    while True:
        runs: list[dict[str, object]] = client.get(
            "/v1/runs", params={"playbook": "sim-sev1-approval", "limit": 1000}
        ).json()["items"]
        if len(runs) >= want or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


@pytest.mark.slow
def test_a_simulation_feeds_the_server_and_its_people_decide_the_tasks(server: Server, tmp_path: Path) -> None:
    container = store(server)
    try:
        path = tmp_path / "playbook.yaml"
        path.write_text(PLAYBOOK)
        container.automation.publish(path)
        people, _ = provision_people(container, expires_at=None, actor="tests")
    finally:
        container.close()
    assert set(people) == set(PEOPLE.values())

    report = asyncio.run(
        simulate(
            server.url,
            server.role_tokens["service"],
            rate=RATE,
            duration_s=SECONDS,
            seed=SEED,
            drift=None,
            humans=people,
            progress=None,
            delay_scale=0.2,
            drain_s=20,
        )
    )
    assert report.errors == 0, report.error_samples
    assert report.accepted == report.total_sent >= 0.8 * RATE * SECONDS
    assert report.duplicates == 0

    # The world is deterministic: replaying it tells which Sev1 incidents were sent.
    sent = World(SEED, tickets=load_tickets(), interval_s=1 / RATE).take(report.total_sent)
    assert [e["id"] for e in sent][-1] == f"sim-{SEED}-{report.total_sent:08d}"
    sev1 = [e for e in sent if e["type"] == "com.opsrail.incident.opened" and e["data"]["severity"] == 1]
    assert sev1, "the seed should open at least one Sev1 in the first seconds"

    with server.client() as client:
        stored = client.get("/v1/events", params={"type": "com.opsrail.incident.opened", "limit": 1000}).json()
        assert {e["id"] for e in stored["items"]} >= {e["id"] for e in sent if e["type"].endswith("incident.opened")}
        runs = wait_for_runs(client, len(sev1))
        assert len(runs) == len(sev1)

    assert report.approved + report.rejected >= 1
    decided = [d for d in report.decisions if d.role == "finance_controller"]
    assert decided and all(d.by == "sim-fiona" and d.credit for d in decided)
    assert all(0 < d.delay_s < 12 for d in decided)
    container = store(server)
    try:
        for decision in decided:
            [entry] = container.automation.task(decision.task_id)["decisions"]
            assert entry["by"] == "sim-fiona" and entry["roles"] == ["finance_controller"]
            assert entry["approved"] is decision.approved and entry["comment"] == decision.comment
    finally:
        container.close()
    assert report.as_dict()["tasks"]["by_role"]["finance_controller"]["approved"] == report.approved


def test_sending_the_same_seed_again_gives_duplicates(server: Server) -> None:
    async def once() -> tuple[int, int]:
        report = await simulate(
            server.url, server.token, rate=20, duration_s=0.5, seed=99, drift=None, humans={}, progress=None
        )
        return report.accepted, report.duplicates

    first = asyncio.run(once())
    again = asyncio.run(once())
    assert first[0] > 0 and first[1] == 0
    assert again == (0, first[0])


def test_a_bad_token_and_a_missing_server_are_clear_errors(server: Server) -> None:
    with pytest.raises(Unauthenticated, match="refused the token"):
        asyncio.run(
            simulate(server.url, "opsr_nope", rate=5, duration_s=1, seed=1, drift=None, humans={}, progress=None)
        )
    with pytest.raises(Unauthenticated, match="does not know the simulated finance_controller"):
        asyncio.run(
            simulate(
                server.url,
                server.token,
                rate=5,
                duration_s=1,
                seed=1,
                drift=None,
                humans={"finance_controller": "opsr_nope"},
                progress=None,
            )
        )
    nowhere = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unavailable, match="no Opsrail server answers") as caught:
        asyncio.run(simulate(nowhere, "opsr_x", rate=5, duration_s=1, seed=1, drift=None, humans={}, progress=None))
    assert caught.value.exit_code == 6 and "opsrail up" in str(caught.value.hint)


def test_the_command_creates_the_people_runs_and_reports(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()
    app.command()(handled(simulate_command))
    monkeypatch.setenv("OPSRAIL_HOME", server.env["OPSRAIL_HOME"])
    monkeypatch.delenv("OPSRAIL_TOKEN", raising=False)
    monkeypatch.delenv("OPSRAIL_DATABASE_URL", raising=False)
    result = CliRunner().invoke(
        app, ["--url", server.url, "--rate", "600/m", "--duration", "1s", "--seed", "5", "--no-humans", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.stdout)
    assert body["events"]["sent"] == body["events"]["accepted"] > 0 and body["people"] == {}
    container = store(server)
    try:
        feed = [t for t in container.tokens.all() if t.name == "sim-feed"]
        assert feed and all(t.revoked_at is not None for t in feed)  # the temporary token is gone afterwards
    finally:
        container.close()

    result = CliRunner().invoke(app, ["--url", server.url, "--token", server.token, "--duration", "1s", "--seed", "6"])
    assert result.exit_code == 0, result.output
    assert "Events sent" in result.stdout and "Tasks decided by simulated people" in result.stdout
    container = store(server)
    try:
        assert {u["name"]: u["roles"] for u in container.directory.users()}.items() >= {
            name: [role] for name, role in PEOPLE.items()
        }.items()
    finally:
        container.close()

    unreachable = CliRunner().invoke(
        app, ["--url", f"http://127.0.0.1:{free_port()}", "--token", "t", "--no-humans", "--duration", "1s"]
    )
    assert unreachable.exit_code == 6
    assert "no Opsrail server answers" in unreachable.output and "opsrail up" in unreachable.output
    bad = CliRunner().invoke(app, ["--rate", "fast"])
    assert bad.exit_code == 2 and "--rate 'fast' is not a rate" in bad.output
