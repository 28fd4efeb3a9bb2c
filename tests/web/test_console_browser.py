"""The console in a real Chromium: sign in, the inbox, approving a credit, watching the run advance, refusals."""

from __future__ import annotations

import re
from typing import Any

from tests.web.conftest import Console, screenshot, sign_in


def test_a_wrong_password_is_refused_with_a_message(console: Console, page: Any) -> None:
    sign_in(page, console.url, "fiona", "not her password")
    assert page.url.startswith(f"{console.url}/login")
    assert "the name or the password is wrong" in page.inner_text("[role=alert]")


def test_unsigned_visitors_are_sent_to_sign_in_and_come_back(console: Console, page: Any) -> None:
    page.goto(f"{console.url}/runs?status=running")
    assert page.url.startswith(f"{console.url}/login?next=")
    page.fill("#name", "fiona")
    page.fill("#password", "correct horse battery")
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r".*/runs\?status=running$"))
    assert page.locator("h1").inner_text() == "Runs"


def test_a_finance_controller_approves_a_credit_and_watches_the_run_advance(
    console: Console, page: Any, browser: Any
) -> None:
    run_id = console.start_credit("olive", 2400.0, account="globex")
    task = console.task_of(run_id)
    sign_in(page, console.url, "fiona")
    page.wait_for_url(f"{console.url}/inbox")
    row = page.locator("table.list tr", has_text="Approve a credit of 2400.0 for globex")
    assert row.count() == 1
    screenshot(page, "inbox")

    # A second tab follows the run; it must change without a reload once the credit is approved.
    watcher = page.context.new_page()
    watcher.goto(f"{console.url}/runs/{run_id}")
    assert watcher.locator('g[data-step="approve"]').get_attribute("class") == "node state-waiting"
    watcher.wait_for_function("document.documentElement.dataset.live === 'on'")
    screenshot(watcher, "run-waiting")

    row.locator("a").click()
    page.wait_for_url(f"{console.url}/tasks/{task['id']}")
    advice = page.inner_text("#ai-h >> xpath=..")
    assert "finance_controller" in advice and "confidence" in advice and "100%" in advice
    assert "requested by" in page.inner_text("main") and "olive" in page.inner_text("main")
    screenshot(page, "task")
    page.fill("#comment", "credit ok for the outage")
    page.click("button[value=approve]")
    page.wait_for_url(f"{console.url}/tasks/{task['id']}?done=approved")
    assert "You approved this task." in page.inner_text("[role=status]")
    assert "fiona approved" in page.inner_text("main")

    watcher.wait_for_selector('g[data-step="book"].state-succeeded', timeout=15_000)
    assert "succeeded" in watcher.locator("#live p").first.inner_text()
    screenshot(watcher, "run-succeeded")
    with console.api("ada") as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert next(s for s in run["steps"] if s["id"] == "book")["output"] == {"booked": 2400.0}
    watcher.close()


def test_an_operator_cannot_approve_their_own_request(console: Console, page: Any) -> None:
    run_id = console.start_credit("oscar", 1800.0, account="initech")
    task = console.task_of(run_id)
    sign_in(page, console.url, "oscar")
    page.goto(f"{console.url}/tasks/{task['id']}")
    page.click("button[value=approve]")
    message = page.inner_text("[role=alert]")
    assert "You requested this, so someone else must decide it (separation of duties)." in message
    assert "oscar (finance_controller, operator) may not task.decide" in message
    screenshot(page, "task-refused")
    with console.api("ada") as client:
        assert client.get(f"/v1/tasks/{task['id']}").json()["status"] == "open"


def test_the_inbox_updates_by_itself_when_a_task_arrives(console: Console, page: Any) -> None:
    sign_in(page, console.url, "fiona")
    page.wait_for_url(f"{console.url}/inbox")
    page.wait_for_function("document.documentElement.dataset.live === 'on'")
    console.start_credit("olive", 3100.0, account="umbrella")
    page.wait_for_selector("text=Approve a credit of 3100.0 for umbrella", timeout=15_000)


def test_people_see_only_what_the_policies_allow(console: Console, page: Any) -> None:
    sign_in(page, console.url, "fiona")
    page.wait_for_url(f"{console.url}/inbox")
    nav = page.inner_text("nav[aria-label=Main]")
    assert "Runs" in nav and "Audit" not in nav
    response = page.goto(f"{console.url}/audit")
    assert response.status == 403
    assert "may not audit.read" in page.inner_text("[role=alert]")


def test_an_auditor_sees_the_chain_verified(console: Console, page: Any) -> None:
    sign_in(page, console.url, "aude")
    page.goto(f"{console.url}/audit")
    assert re.search(r"The chain is intact: verified up to entry \d+", page.inner_text("main"))
    with page.expect_download() as download:
        page.click("text=Export the whole trail")
    lines = download.value.path().read_text().splitlines()
    assert lines and '"action"' in lines[0]
    screenshot(page, "audit")


def test_an_invalid_playbook_upload_shows_its_line_numbers(console: Console, page: Any) -> None:
    page.goto(f"{console.url}/login")
    page.click("text=Sign in with an API token instead")
    page.fill("#token", console.tokens["ada"])
    page.click("button:has-text('Sign in with token')")
    page.goto(f"{console.url}/playbooks")
    page.fill("#document", "id: broken\nversion: 1\nsteps:\n  - id: a\n    action: core.set\n    colour: blue\n")
    page.click("button:has-text('Validate and publish')")
    alert = page.inner_text("[role=alert]")
    assert "pasted.yaml:6:5" in alert and "unknown key 'colour'" in alert
    screenshot(page, "playbooks")


def test_the_main_pages_render_and_fit_a_phone(console: Console, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    sign_in(phone, console.url, "ada")
    pages = ("/inbox", "/runs", "/playbooks", "/playbooks/console-credit", "/decisions", "/events", "/kpis")
    for path in (*pages, "/decisions/catalog/credit-tier", "/insights?window=all&playbook=console-credit"):
        response = phone.goto(f"{console.url}{path}")
        assert response.status == 200, path
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than a phone"
        screenshot(phone, "phone" + re.sub(r"[^a-z0-9]+", "-", path))
    context.close()


def test_everything_is_reachable_with_the_keyboard(console: Console, page: Any) -> None:
    sign_in(page, console.url, "fiona")
    page.wait_for_url(f"{console.url}/inbox")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    reached = set()
    for _ in range(15):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Inbox", "Runs", "KPIs", "Sign out"} <= reached
