"""The connectors' whole story under crashes: one run pauses a Stripe invoice, opens a Jira defect, posts a Slack
approval that a signed click on the fake approves, writes a provisional credit to the ledger and e-mails the account
team; a worker process is SIGKILLed again and again in the middle, and in the end there is exactly one of each."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from opsrail.fakes.jira import create_app as jira_app
from opsrail.fakes.slack import create_app as slack_app
from opsrail.fakes.slack import interaction_request
from opsrail.fakes.stripe import create_app as stripe_app
from opsrail.model import OpsrailError
from opsrail.settings import Settings
from opsrail.wiring import build
from tests.connectors.test_email import Mailbox, Serve

ROOT = Path(__file__).resolve().parents[2]
SIGNING = "slack-signing-secret"
PLAYBOOK = """
id: sev1-governed
version: 1
steps:
  - id: pause-billing
    action: stripe.pause_collection
    with: {subscription: sub_123}
    retry: {attempts: 5, initial: PT0.2S}
  - id: defect
    action: jira.create_issue
    with: {project: ENG, summary: "Sev1 ${ run.input.title }"}
    retry: {attempts: 5, initial: PT0.2S}
  - id: ask
    needs: [defect]
    action: slack.request_approval
    with: {channel: C0FIN, task_id: "${ run.id }", title: "Credit for ${ run.input.account }", text: "300 EUR"}
    retry: {attempts: 5, initial: PT0.2S}
  - id: approve
    needs: [ask]
    approval: {roles: [finance_controller]}
  - id: credit
    needs: [approve, pause-billing]
    action: ledger.create_credit_memo
    with: {account_id: "${ run.input.account }", amount: 300, currency: EUR, reason: "Sev1 goodwill"}
  - id: tell-account-team
    needs: [credit]
    action: email.send
    with:
      to: [account-team@acme.test]
      subject: "Sev1 credit for ${ run.input.account }"
      text: "A provisional credit of 300 EUR was approved."
    retry: {attempts: 5, initial: PT0.2S}
"""


@pytest.mark.slow
def test_one_of_each_after_repeated_kills(
    serve: Callable[[FastAPI], str],
    smtp_server: Serve,
    tmp_path: Path,
) -> None:
    stripe, jira, slack = stripe_app(), jira_app(), slack_app()
    mailbox = Mailbox()
    smtp_port = smtp_server(mailbox)
    connectors = {
        "stripe": {"base_url": serve(stripe), "api_key": "sk_test_fake"},
        "jira": {"base_url": serve(jira), "email": "bot@example.test", "api_token": "test-token"},
        "slack": {
            "base_url": f"{serve(slack)}/api",
            "bot_token": "xoxb-test",
            "signing_secret": SIGNING,
            "users": {"U0FIONA": "fiona"},
        },
        "email": {"host": "127.0.0.1", "port": smtp_port, "from_address": "opsrail@acme.test", "starttls": False},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env.update(
        OPSRAIL_HOME=str(tmp_path),
        OPSRAIL_CONNECTORS=json.dumps(connectors),
        OPSRAIL_LEASE_SECONDS="1",
        OPSRAIL_LOG_LEVEL="error",
        PYTHONPATH=str(ROOT),
    )
    settings = Settings(home=tmp_path, connectors=connectors)
    container = build(settings, migrate=True)
    container.directory.put_user("fiona", ["finance_controller"], "tests")
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    container.automation.publish(tmp_path / "pb.yaml", "ada")
    run_id = container.automation.start("sev1-governed", {"account": "acme", "title": "Checkout down"}, actor="olive")

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "opsrail", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def click() -> None:
        headers, body = interaction_request(SIGNING, run_id, True, "U0FIONA", user_name="fiona")
        with contextlib.suppress(OpsrailError):  # no open task yet, or decided already
            container.chat_approvals.slack_interaction(headers, body)

    rng = random.Random(20261130)
    kills = 0
    deadline = time.monotonic() + 180

    def kill_once(click_first: bool) -> None:
        nonlocal kills
        process = worker()
        time.sleep(rng.uniform(1.5, 3.5))  # start-up takes most of a second and a half; then it is mid-work
        if click_first:
            click()
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1

    # Before anyone approves, the run can only get as far as the approval: these kills land in the first half.
    for _ in range(3):
        kill_once(click_first=False)
    # Then the approval comes in, and the kills go on through the credit and the e-mail.
    while kills < 6 and time.monotonic() < deadline and container.automation.show(run_id)["status"] == "running":
        kill_once(click_first=True)
    process = worker()
    try:
        while time.monotonic() < deadline and container.automation.show(run_id)["status"] == "running":
            click()
            time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(10)

    run = container.automation.show(run_id)
    container.close()
    assert run["status"] == "succeeded", run
    assert kills >= 3
    paused = stripe.state.subscriptions["sub_123"]["pause_collection"]
    assert paused and paused["behavior"] == "keep_as_draft"
    assert len(jira.state.issues) == 1
    assert len(slack.state.messages["C0FIN"]) == 1
    [memo] = build(settings).ledger.list("credit-memos", "acme")
    assert memo["status"] == "provisional"
    message_ids = {d.message["Message-ID"] for d in mailbox.delivered}
    assert len(message_ids) == 1 and mailbox.delivered  # one e-mail (receivers dedupe on its Message-ID)
    print(f"{kills} kills; {len(mailbox.delivered)} SMTP deliveries of one Message-ID")
