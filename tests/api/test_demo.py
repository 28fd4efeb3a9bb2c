"""The demo smoke test: `opsrail up --demo` on a fresh home, in a subprocess, answers within 90 s with runs of the
reference playbooks, a waiting approval, decision records with confidence, and non-empty KPIs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import free_port


@pytest.mark.slow
def test_the_demo_shows_the_whole_loop_within_90_seconds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env["OPSRAIL_HOME"] = str(tmp_path)
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "opsrail", "up", "--demo", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        token = None
        seen: dict[str, Any] = {}
        while time.monotonic() - started < 90:
            time.sleep(2)
            assert process.poll() is None, log.read_text()
            if token is None:
                found = re.search(r"OPSRAIL_TOKEN=(\S+)", log.read_text())
                if not found:
                    continue
                token = found.group(1)
            headers = {"Authorization": f"Bearer {token}"}
            try:
                runs = httpx.get(f"{url}/v1/runs", params={"limit": 1000}, headers=headers, timeout=5).json()["items"]
                tasks = httpx.get(f"{url}/v1/tasks", headers=headers, timeout=5).json()["items"]
                records = httpx.get(f"{url}/v1/decision-records", headers=headers, timeout=5).json()["items"]
                kpis = httpx.get(f"{url}/v1/kpis", headers=headers, timeout=5).json()["kpis"]
            except httpx.TransportError:
                continue
            seen = {
                "playbooks": {r["playbook"] for r in runs},
                "waiting": len(tasks),
                "confident": [r for r in records if r.get("confidence") is not None],
                "touches": kpis["manual_touches"]["value"],
            }
            if len(seen["playbooks"]) >= 6 and seen["waiting"] and seen["confident"] and seen["touches"]:
                break
        assert len(seen.get("playbooks", ())) >= 6, (seen, log.read_text()[-3000:])
        assert seen["waiting"] >= 1 and seen["confident"] and seen["touches"] > 0, seen
        first_screen = log.read_text()
        assert "Opsrail demo" in first_screen and "Try:" in first_screen
        assert "drift          one segment behaves differently (region=EU:" in first_screen
        assert "opsrail insights drift" in first_screen
        assert '"level":"info"' not in first_screen  # the first screen is not buried in logs
        _console_tour(url, first_screen, runs)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _console_tour(url: str, first_screen: str, runs: list[dict[str, Any]]) -> None:
    """What the first screen promises: the console, fiona's password, her inbox, a Sev1 run's page, the KPIs and
    the insights."""
    assert f"Console        {url}/" in first_screen
    password = re.search(r"password (\S+)", first_screen)
    assert password is not None
    with httpx.Client(base_url=url, timeout=10) as browser:
        login = browser.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf is not None
        signed = browser.post("/login", data={"csrf": csrf.group(1), "name": "fiona", "password": password.group(1)})
        assert signed.status_code == 303 and signed.headers["location"] == "/inbox"
        # Simulated finance controllers answer within seconds, so the inbox can be empty for a moment: wait for a task.
        deadline = time.monotonic() + 45
        inbox = browser.get("/inbox")
        while "/tasks/task_" not in inbox.text and time.monotonic() < deadline:
            time.sleep(1)
            inbox = browser.get("/inbox")
        assert inbox.status_code == 200 and "/tasks/task_" in inbox.text
        sev1 = next(r for r in runs if r["playbook"] == "sev1-escalation")
        run_page = browser.get(f"/runs/{sev1['id']}")
        assert run_page.status_code == 200 and 'class="dag"' in run_page.text
        kpis = browser.get("/kpis")
        assert kpis.status_code == 200 and 'class="chart"' in kpis.text
        finished = next(r for r in runs if r["status"] == "succeeded")  # its steps have ended: a map to draw
        insights = browser.get("/insights", params={"playbook": finished["playbook"], "window": "24h"})
        assert insights.status_code == 200 and "Conformance to the pinned playbook version" in insights.text
        assert '<svg class="dag pmap"' in insights.text
        # A Sev1 run has asked the topic model: the model's card has a row.
        assert 'href="/decisions/catalog/incident-topic">incident-topic</a>' in insights.text
