"""A real ``opsrail up`` with people who sign in with passwords, and a real Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsrail.settings import Settings
from opsrail.wiring import build
from tests.api.conftest import Server, start_server

PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "console"
PEOPLE = {
    "fiona": ["finance_controller"],
    "oscar": ["operator", "finance_controller"],
    "olive": ["operator"],
    "aude": ["auditor"],
    "ada": ["admin"],
    "abe": ["approver"],
    "ann": ["approver"],
}
CREDIT = """
id: console-credit
version: 1
title: Service credit approval
steps:
  - id: tier
    decide: credit-tier
    with: {amount: "${ run.input.amount }", segment: "${ run.input.segment }"}
  - id: approve
    needs: [tier]
    approval:
      title: "Approve a credit of ${ run.input.amount } for ${ run.input.account_id }"
      roles: [finance_controller]
      rules:
        - when: "run.input.amount > 5000.0"
          roles: [finance_controller, approver]
          count: 2
          require: [finance_controller]
  - id: book
    needs: [approve]
    action: core.set
    with: {booked: "${ run.input.amount }"}
"""


@dataclass
class Console:
    server: Server
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, who: str) -> httpx.Client:
        return self.server.client(self.tokens[who])

    def start_credit(self, who: str, amount: float, account: str = "acme") -> str:
        body = {"playbook": "console-credit", "input": {"amount": amount, "segment": "smb", "account_id": account}}
        with self.api(who) as client:
            response = client.post("/v1/runs", json=body)
        assert response.status_code == 201, response.text
        run_id: str = response.json()["run_id"]
        return run_id

    def task_of(self, run_id: str, seconds: float = 15.0) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + seconds
        with self.api("ada") as client:
            while time.monotonic() < deadline:
                for task in client.get("/v1/tasks", params={"limit": 1000}).json()["items"]:
                    if task["run_id"] == run_id:
                        return dict(task)
                time.sleep(0.1)
        raise AssertionError(f"run {run_id} opened no task")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    home = tmp_path_factory.mktemp("console")
    container = build(Settings(home=home), migrate=True)
    tokens: dict[str, str] = {}
    for name, roles in PEOPLE.items():
        container.directory.put_user(name, roles, "tests")
        container.sessions.set_password(name, PASSWORD, "tests")
        tokens[name] = container.tokens.create(roles[0], name)[1]
    # Service accounts: tokens whose names are nobody in the directory.
    container.tokens.create("finance_controller", "billing-bot")
    container.tokens.create("operator", "ops-bot")
    table = Path(__file__).resolve().parents[2] / "src" / "opsrail" / "decisions" / "reference" / "credit-tier.yaml"
    container.decisions.publish_table(table, "tests")
    playbook = home / "credit.yaml"
    playbook.write_text(CREDIT, encoding="utf-8")
    container.automation.publish(playbook, "tests")
    container.close()
    for server in start_server(home, None):
        yield Console(server, tokens)


def chromium_path() -> str:
    found = os.environ.get("OPSRAIL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("the console tests need Chromium: script/test installs Debian's chromium package")
    return found


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Package scope: Playwright's sync API keeps an event loop running in this thread while it is open, and tests
    # run after the console's (asyncio.run in tests/simulate, say) need the thread free, whatever the order.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")
