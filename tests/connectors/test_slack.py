"""The Slack connector against the fake Slack Web API over real HTTP: posting, approval requests, no duplicate post
for one idempotency key, Slack's ``ok: false`` errors, retries, timeouts, the health check, and the verification of
signed button clicks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from opsrail.connectors import ConnectorError, HttpPolicy, LoopLocalClient, bind
from opsrail.connectors.slack import (
    APPROVE_ACTION,
    REJECT_ACTION,
    InteractionRefused,
    SlackConnector,
    signature,
    verify_interaction,
)
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.fakes.slack import create_app, interaction_request
from opsrail.model import InvalidInput
from tests.connectors.conftest import RecordedSleep

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def call(step: str = "notify", run_id: str = "run-1", attempt: int = 1) -> CallContext:
    return CallContext(run_id, step, attempt, f"{run_id}:{step}")


_clients: list[LoopLocalClient] = []


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for a whole test, so the HTTP client's pooled connections stay on the loop that opened them;
    the clients the test's connectors made are closed on it at the end."""
    with asyncio.Runner() as loop:
        yield loop
        while _clients:
            loop.run(_clients.pop().aclose())


class Slack:
    """The connector's operations bound to an engine registry, called on the test's event loop."""

    def __init__(
        self, runner: asyncio.Runner, url: str, sleep: RecordedSleep, token: str = "xoxb-test", **policy: Any
    ) -> None:
        self.runner = runner
        client = LoopLocalClient()
        _clients.append(client)
        self.connector = SlackConnector(
            {"base_url": f"{url}/api", "bot_token": token, "signing_secret": SECRET},
            client,
            policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.1, **policy}),
            sleep=sleep,
        )
        self.operations = Operations()
        bind(self.operations, self.connector)

    def post(self, params: dict[str, Any], context: CallContext | None = None) -> Any:
        return self.runner.run(self.operations.call("action", "slack.post_message", params, context or call()))

    def request_approval(self, params: dict[str, Any], context: CallContext) -> Any:
        return self.runner.run(self.operations.call("action", "slack.request_approval", params, context))


def methods(app: FastAPI) -> list[str]:
    return [method for method, _ in app.state.calls]


def test_post_message_stores_the_message_with_the_idempotency_key_as_metadata(
    serve: Callable[[FastAPI], str],
    recorded_sleep: RecordedSleep,
    runner: asyncio.Runner,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app()
    slack = Slack(runner, serve(app), recorded_sleep)
    result = slack.post({"channel": "C0OPS", "text": "Provisioning for ACME slipped <!channel>"})
    assert result == {"channel": "C0OPS", "ts": "1700000000.000100"}
    [message] = app.state.messages["C0OPS"]
    assert message["text"] == "Provisioning for ACME slipped <!channel>"  # post_message sends the caller's mrkdwn
    assert message["metadata"] == {"event_type": "opsrail_step", "event_payload": {"idempotency_key": "run-1:notify"}}
    assert methods(app) == ["conversations.history", "chat.postMessage"]
    history = app.state.calls[0][1]
    assert history == {"channel": "C0OPS", "limit": "50", "include_all_metadata": "true"}
    assert "missing_charset" not in caplog.text  # JSON declared as UTF-8, as Slack asks

    reply = slack.post(
        {"channel": "C0OPS", "text": "details", "thread_ts": result["ts"], "blocks": [{"type": "divider"}]},
        call("details"),
    )
    assert reply["ts"] == "1700000000.000200"
    assert app.state.messages["C0OPS"][1]["thread_ts"] == result["ts"]
    assert methods(app)[-2:] == ["conversations.replies", "chat.postMessage"]  # a reply is looked for in its thread


def test_request_approval_posts_approve_and_reject_buttons_carrying_the_task_id(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app()
    slack = Slack(runner, serve(app), recorded_sleep)
    params = {
        "channel": "C0FIN",
        "task_id": "task-42",
        "title": "Credit memo for ACME",
        "text": "Sev1 <outage> & SLA breach: issue a 10% credit?",
        "recommendation": "approve",
        "confidence": 0.87,
    }
    result = slack.request_approval(params, call("approve"))
    assert result["channel"] == "C0FIN"
    [message] = app.state.messages["C0FIN"]
    assert message["text"] == "Approval needed: Credit memo for ACME"
    header, section, context, actions = message["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "Credit memo for ACME", "emoji": False}}
    assert section["text"] == {"type": "mrkdwn", "text": "Sev1 &lt;outage&gt; &amp; SLA breach: issue a 10% credit?"}
    assert context["elements"][0]["text"] == "Recommendation: *approve* · Confidence: 87%"
    assert actions["type"] == "actions"
    buttons = {b["action_id"]: b for b in actions["elements"]}
    assert set(buttons) == {APPROVE_ACTION, REJECT_ACTION} == {"opsrail_approve", "opsrail_reject"}
    assert {b["value"] for b in buttons.values()} == {"task-42"}
    assert buttons[APPROVE_ACTION]["style"] == "primary" and buttons[REJECT_ACTION]["style"] == "danger"

    plain = slack.request_approval(
        {"channel": "C0FIN", "task_id": "task-43", "title": "T" * 200, "text": "ok"}, call("approve-2")
    )
    blocks = app.state.messages["C0FIN"][-1]["blocks"]
    assert plain["ts"] != result["ts"] and [b["type"] for b in blocks] == ["header", "section", "actions"]
    assert len(blocks[0]["text"]["text"]) == 150  # Slack's header limit


def test_a_retried_step_does_not_post_twice(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app()
    slack = Slack(runner, serve(app), recorded_sleep)
    params = {"channel": "C0OPS", "text": "Invoice INV-7 is on hold"}
    first = slack.post(params, call(attempt=1))
    for other in range(5):  # other steps post in between: the message is no longer the newest
        slack.post({"channel": "C0OPS", "text": f"noise {other}"}, call(f"other-{other}"))
    again = slack.post(params, call(attempt=2))
    assert again == first
    assert [m["text"] for m in app.state.messages["C0OPS"]].count("Invoice INV-7 is on hold") == 1
    other_run = slack.post(params, call(run_id="run-2"))
    assert other_run["ts"] != first["ts"]  # another key is another message


def test_an_answer_lost_after_slack_posted_is_not_posted_again(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app(post_then_fail_first=1)
    slack = Slack(runner, serve(app), recorded_sleep)
    result = slack.post({"channel": "C0OPS", "text": "once"})
    assert len(app.state.messages["C0OPS"]) == 1 and result["ts"] == app.state.messages["C0OPS"][0]["ts"]
    assert methods(app) == ["conversations.history", "chat.postMessage", "conversations.history"]
    assert len(recorded_sleep.waits) == 1  # backed off once, looked, found it


def test_the_fake_pages_history_newest_first_and_shows_metadata_only_when_asked(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app()
    slack = Slack(runner, serve(app), recorded_sleep)
    for number in range(3):
        slack.post({"channel": "C0OPS", "text": f"message {number}"}, call(f"step-{number}"))
    first = runner.run(slack.connector.call("conversations.history", form={"channel": "C0OPS", "limit": "2"}))
    assert [m["text"] for m in first["messages"]] == ["message 2", "message 1"] and first["has_more"]
    assert all("metadata" not in m for m in first["messages"])
    cursor = first["response_metadata"]["next_cursor"]
    form = {"channel": "C0OPS", "limit": "2", "cursor": cursor, "include_all_metadata": "true"}
    rest = runner.run(slack.connector.call("conversations.history", form=form))
    assert [m["text"] for m in rest["messages"]] == ["message 0"] and not rest["has_more"]
    assert rest["messages"][0]["metadata"]["event_payload"] == {"idempotency_key": "run-1:step-0"}
    assert rest["response_metadata"]["next_cursor"] == ""
    with pytest.raises(ConnectorError) as caught:
        runner.run(slack.connector.call("conversations.history", form={"channel": "C0OPS", "cursor": "bogus"}))
    assert caught.value.code == "invalid_cursor" and not caught.value.retryable


@pytest.mark.parametrize(
    ("channel", "token", "code"),
    [
        ("C0NOPE", "xoxb-test", "channel_not_found"),
        ("C0PRIV", "xoxb-test", "not_in_channel"),
        ("C0OPS", "xoxb-wrong", "invalid_auth"),
    ],
)
def test_slack_refusals_are_permanent(
    serve: Callable[[FastAPI], str],
    recorded_sleep: RecordedSleep,
    runner: asyncio.Runner,
    channel: str,
    token: str,
    code: str,
) -> None:
    app = create_app()
    slack = Slack(runner, serve(app), recorded_sleep, token=token)
    with pytest.raises(ConnectorError) as caught:
        slack.post({"channel": channel, "text": "hello"})
    assert not caught.value.retryable and caught.value.code == code and code in str(caught.value)
    assert caught.value.status == 200 and recorded_sleep.waits == []
    assert sum(len(messages) for messages in app.state.messages.values()) == 0


def test_a_channel_name_is_refused_before_calling_slack(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app()
    slack = Slack(runner, serve(app), recorded_sleep)
    with pytest.raises(OperationFailed, match="invalid input: channel") as caught:
        slack.post({"channel": "#ops", "text": "hello"})
    assert not caught.value.retryable and app.state.calls == []


def test_ratelimited_is_retried_after_retry_after(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app(rate_limit_first=2, retry_after_s=3)
    slack = Slack(runner, serve(app), recorded_sleep)
    result = slack.post({"channel": "C0OPS", "text": "hello"})
    assert result["ts"] == "1700000000.000100"
    assert recorded_sleep.waits == [3.0, 3.0]
    assert len(app.state.messages["C0OPS"]) == 1


def test_a_long_retry_after_is_left_to_the_engine(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app(rate_limit_first=1, retry_after_s=120)
    slack = Slack(runner, serve(app), recorded_sleep)
    with pytest.raises(ConnectorError) as caught:
        slack.post({"channel": "C0OPS", "text": "hello"})
    assert caught.value.retryable and caught.value.retry_after == 120.0 and recorded_sleep.waits == []


def test_5xx_is_retried(serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner) -> None:
    app = create_app(fail_first=2)
    slack = Slack(runner, serve(app), recorded_sleep)
    assert slack.post({"channel": "C0OPS", "text": "hello"})["channel"] == "C0OPS"
    assert len(recorded_sleep.waits) == 2 and len(app.state.messages["C0OPS"]) == 1


def test_5xx_that_never_ends_is_retryable_for_the_engine(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app(fail_first=100)
    slack = Slack(runner, serve(app), recorded_sleep, retries=1)
    with pytest.raises(ConnectorError) as caught:
        slack.post({"channel": "C0OPS", "text": "hello"})
    assert caught.value.retryable and caught.value.status == 500


def test_a_timeout_is_retryable(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep, runner: asyncio.Runner
) -> None:
    app = create_app(delay_s=1.0)
    slack = Slack(runner, serve(app), recorded_sleep, timeout_s=0.2, retries=0)
    with pytest.raises(ConnectorError, match="timed out") as caught:
        slack.post({"channel": "C0OPS", "text": "hello"})
    assert caught.value.retryable and caught.value.code == "timeout"


def test_check_calls_auth_test(serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep) -> None:
    url = serve(create_app())
    good = SlackConnector({"base_url": f"{url}/api", "bot_token": "xoxb-test"}, LoopLocalClient(), sleep=recorded_sleep)
    health = run(good.check())
    assert health["ok"] and "U0OPSBOT" in health["detail"] and "T0OPSRAIL" in health["detail"]
    bad = SlackConnector({"base_url": f"{url}/api", "bot_token": "xoxb-no"}, LoopLocalClient(), sleep=recorded_sleep)
    assert run(bad.check()) == {"ok": False, "detail": "slack: auth.test failed: invalid_auth"}


def test_the_token_can_come_from_a_file_and_is_required(tmp_path: Any) -> None:
    path = tmp_path / "token"
    path.write_text("xoxb-from-file\n")
    connector = SlackConnector({"bot_token_file": str(path)}, LoopLocalClient())
    assert connector.http.headers["Authorization"] == "Bearer xoxb-from-file"
    assert connector.http.base_url == "https://slack.com/api"
    with pytest.raises(InvalidInput, match="no bot token"):
        SlackConnector({}, LoopLocalClient())


# -- signed button clicks -------------------------------------------------------------------------------------


def test_a_signed_click_is_accepted() -> None:
    now = time.time()
    headers, body = interaction_request(SECRET, "task-42", True, "U0ALICE", now, user_name="alice")
    clicked = verify_interaction(headers, body, SECRET, now + 10)
    assert clicked.task_id == "task-42" and clicked.approve
    assert (clicked.user_id, clicked.user_name) == ("U0ALICE", "alice")
    assert (clicked.channel, clicked.message_ts) == ("C0OPS", "1700000000.000100")
    lowered = {name.lower(): value for name, value in headers.items()}
    assert not verify_interaction(*interaction_request(SECRET, "task-42", False, ts=now), SECRET, now).approve
    assert verify_interaction(lowered, body, SECRET, now).task_id == "task-42"  # header names in any case

    connector = SlackConnector({"bot_token": "xoxb-test", "signing_secret": SECRET}, LoopLocalClient())
    assert connector.interaction(headers, body, now).approve


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("wrong secret", "bad signature"),
        ("stale", "stale request"),
        ("future", "stale request"),
        ("tampered body", "bad signature"),
        ("unknown action", "not our action"),
        ("unsigned", "unsigned request"),
        ("not a form", "malformed body"),
    ],
)
def test_a_click_that_is_not_ours_or_not_signed_is_refused(tamper: str, reason: str) -> None:
    now = 1_760_000_000.0
    secret = "another-secret" if tamper == "wrong secret" else SECRET
    when = {"stale": now - 301, "future": now + 301}.get(tamper, now)
    action = "someone_else_button" if tamper == "unknown action" else None
    headers, body = interaction_request(secret, "task-42", True, ts=when, action_id=action)
    if tamper == "tampered body":
        body = body.replace(b"task-42", b"task-99")
    if tamper == "unsigned":
        headers = {"Content-Type": headers["Content-Type"]}
    if tamper == "not a form":
        body = b"\xff\xfe"
        headers["X-Slack-Signature"] = signature(SECRET, str(int(now)), body)
    with pytest.raises(InteractionRefused) as caught:
        verify_interaction(headers, body, SECRET, now)
    assert reason in caught.value.reason and isinstance(caught.value, ValueError)
