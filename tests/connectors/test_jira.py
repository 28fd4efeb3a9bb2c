"""The Jira connector against the fake Jira Cloud over real HTTP: idempotent creates through an issue property,
transitions by name, comments, Jira's error bodies, 429/500/timeouts, ``check()``, configuration and the engine."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from opsrail.connectors import ConnectorError, HttpPolicy, LoopLocalClient, bind
from opsrail.connectors.jira import CreateIssue, FindByProperty, JiraConnector, adf, jira_error, property_jql
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.fakes.jira import create_app
from tests.connectors.conftest import RecordedSleep

Serve = Callable[[FastAPI], str]
TOKEN = "test-token"


def call(step: str = "open-ticket", attempt: int = 1) -> CallContext:
    return CallContext("run-1", step, attempt, f"run-1:{step}")


def connector(url: str, sleep: RecordedSleep, *, token: str = TOKEN, **policy: Any) -> JiraConnector:
    config = {"base_url": url, "email": "bot@example.test", "api_token": token}
    return JiraConnector(
        config, LoopLocalClient(), policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.1, **policy}), sleep=sleep
    )


def ticket(**overrides: Any) -> dict[str, Any]:
    return {"project": "ENG", "summary": "Checkout fails for EU customers", **overrides}


async def create(jira: JiraConnector, step: str = "open-ticket", **overrides: Any) -> dict[str, Any]:
    result = await jira.create_issue(CreateIssue.model_validate(ticket(**overrides)), call(step))
    return result.model_dump()


def engine(jira: JiraConnector) -> Operations:
    operations = Operations()
    bind(operations, jira)
    return operations


def test_create_sends_adf_and_marks_the_issue_with_the_idempotency_key(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    url = serve(app)
    jira = connector(url, recorded_sleep)
    result = asyncio.run(
        create(
            jira, description="EU cards are declined.\nSince 09:00.\n\nSee INC-7.", labels=["opsrail"], priority="High"
        )
    )
    assert result == {"key": "ENG-1", "id": "10001", "url": f"{url}/browse/ENG-1", "created": True}
    issue = app.state.issues["ENG-1"]
    assert issue["properties"]["opsrail"] == {"idempotency_key": "run-1:open-ticket"}
    assert issue["fields"]["labels"] == ["opsrail"] and issue["fields"]["priority"]["name"] == "High"
    assert issue["fields"]["description"] == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "EU cards are declined."},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "Since 09:00."},
                ],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "See INC-7."}]},
        ],
    }
    sent = [(r["method"], r["path"]) for r in app.state.requests]
    assert sent == [
        ("POST", "/rest/api/3/search/jql"),
        ("POST", "/rest/api/3/issue"),
    ]
    assert app.state.requests[0]["json"]["jql"] == 'issue.property[opsrail].idempotency_key = "run-1:open-ticket"'
    assert app.state.requests[1]["json"]["properties"] == [
        {"key": "opsrail", "value": {"idempotency_key": "run-1:open-ticket"}}
    ]


def test_the_same_idempotency_key_twice_makes_one_issue(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    jira = connector(serve(app), recorded_sleep)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        return await create(jira), await create(jira, summary="retried"), await create(jira, step="other-step")

    first, again, other = asyncio.run(scenario())
    assert first["created"] and not again["created"] and again["key"] == first["key"] == "ENG-1"
    assert other["created"] and other["key"] == "ENG-2"
    assert sorted(app.state.issues) == ["ENG-1", "ENG-2"]
    assert app.state.issues["ENG-1"]["fields"]["summary"] == "Checkout fails for EU customers"


def test_a_create_whose_answer_was_lost_is_found_not_repeated(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    app.state.lose_next_creates = 1  # the issue is made, the answer is a 504
    jira = connector(serve(app), recorded_sleep)
    result = asyncio.run(create(jira))
    assert result["key"] == "ENG-1" and result["created"]  # this call made it
    assert list(app.state.issues) == ["ENG-1"] and len(recorded_sleep.waits) == 1
    methods = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in app.state.requests]
    assert methods == [("POST", "jql"), ("POST", "issue"), ("POST", "jql")]


def test_find_by_property_follows_next_page_tokens(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(page_size=1)
    jira = connector(serve(app), recorded_sleep)

    async def scenario() -> tuple[list[str], list[bool], str]:
        await create(jira)
        await create(jira, step="second")
        app.state.issues["ENG-2"]["properties"]["opsrail"] = {"idempotency_key": "run-1:open-ticket"}  # a duplicate
        app.state.requests.clear()
        found = await jira.find_by_property(FindByProperty(key="run-1:open-ticket"), call())
        pages = [r["json"].get("nextPageToken") is not None for r in app.state.requests]
        return found.issues, pages, (await create(jira))["key"]

    found, pages, again = asyncio.run(scenario())
    assert found == ["ENG-1", "ENG-2"] and pages == [False, True]
    assert again == "ENG-1"  # with duplicates, the oldest


def test_transition_by_name_case_insensitive_and_a_no_op_when_already_there(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    jira = connector(serve(app), recorded_sleep)
    operations = engine(jira)

    async def scenario() -> list[Any]:
        await create(jira)
        moves = []
        for to in ["in progress", "In Progress", "DONE", "to do"]:  # "to do" from Done: the "Reopen" transition
            moves.append(await operations.call("action", "jira.transition", {"issue": "ENG-1", "to": to}, call()))
        return moves

    moves = asyncio.run(scenario())
    assert moves == [
        {"issue": "ENG-1", "status": "In Progress", "changed": True},
        {"issue": "ENG-1", "status": "In Progress", "changed": False},
        {"issue": "ENG-1", "status": "Done", "changed": True},
        {"issue": "ENG-1", "status": "To Do", "changed": True},
    ]
    posted = [r["json"] for r in app.state.requests if r["method"] == "POST" and r["path"].endswith("/transitions")]
    assert posted == [{"transition": {"id": "21"}}, {"transition": {"id": "31"}}, {"transition": {"id": "41"}}]


def test_an_unknown_transition_is_permanent_and_names_the_options(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    jira = connector(serve(app), recorded_sleep)
    operations = engine(jira)

    async def scenario() -> None:
        await create(jira)
        await operations.call("action", "jira.transition", {"issue": "ENG-1", "to": "Done"}, call())

    with pytest.raises(ConnectorError) as caught:
        asyncio.run(scenario())
    assert not caught.value.retryable and caught.value.code == "unknown_transition"
    assert "'To Do'" in str(caught.value) and "available: 'In Progress'" in str(caught.value)
    assert app.state.issues["ENG-1"]["fields"]["status"]["name"] == "To Do"


def test_transition_of_a_missing_issue_reads_jiras_404(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    jira = connector(serve(create_app()), recorded_sleep)
    with pytest.raises(ConnectorError, match="Issue does not exist") as caught:
        asyncio.run(engine(jira).call("action", "jira.transition", {"issue": "ENG-99", "to": "Done"}, call()))
    assert caught.value.status == 404 and not caught.value.retryable


def test_comment_is_sent_as_adf(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    jira = connector(serve(app), recorded_sleep)

    async def scenario() -> Any:
        await create(jira)
        return await engine(jira).call("action", "jira.comment", {"issue": "ENG-1", "body": "Rolled back."}, call())

    assert asyncio.run(scenario()) == {"id": "10001"}
    (comment,) = app.state.issues["ENG-1"]["comments"]
    assert comment["body"] == adf("Rolled back.")


def test_bad_credentials_are_a_permanent_401_that_never_shows_the_token(
    serve: Serve, recorded_sleep: RecordedSleep, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app()
    jira = connector(serve(app), recorded_sleep, token="wrong-token")
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectorError) as caught:
        asyncio.run(create(jira))
    error = caught.value
    assert error.status == 401 and not error.retryable and recorded_sleep.waits == []
    assert "Client must be authenticated to access this resource." in str(error)
    basic = base64.b64encode(b"bot@example.test:wrong-token").decode()
    for text in (str(error), caplog.text, repr(vars(jira))):
        assert "wrong-token" not in text and basic not in text
    assert app.state.issues == {}


def test_an_unknown_project_is_a_permanent_400_with_jiras_field_message(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    jira = connector(serve(create_app()), recorded_sleep)
    with pytest.raises(ConnectorError) as caught:
        asyncio.run(create(jira, project="NOPE"))
    assert caught.value.status == 400 and not caught.value.retryable
    assert "project: valid project is required" in str(caught.value)


def test_429_waits_for_retry_after(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(rate_limit_first=1, retry_after_s=2)
    jira = connector(serve(app), recorded_sleep)
    assert asyncio.run(create(jira))["created"]
    assert recorded_sleep.waits == [2.0] and list(app.state.issues) == ["ENG-1"]


def test_500s_are_retried_with_backoff(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(fail_first=2)
    jira = connector(serve(app), recorded_sleep)
    assert asyncio.run(create(jira))["key"] == "ENG-1"
    assert len(recorded_sleep.waits) == 2
    assert 0.05 <= recorded_sleep.waits[0] <= 0.1 and 0.1 <= recorded_sleep.waits[1] <= 0.2


def test_retries_that_run_out_leave_a_retryable_error(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    jira = connector(serve(create_app(fail_first=10)), recorded_sleep, retries=1)
    with pytest.raises(ConnectorError, match="Internal server error") as caught:
        asyncio.run(create(jira))
    assert caught.value.retryable and caught.value.status == 500


def test_a_timeout_is_a_retryable_error(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    jira = connector(serve(create_app(delay_s=0.5)), recorded_sleep, timeout_s=0.1, retries=0)
    with pytest.raises(ConnectorError, match="timed out") as caught:
        asyncio.run(create(jira))
    assert caught.value.retryable and caught.value.code == "timeout"


def test_check_says_ok_and_not_ok_without_raising(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    url = serve(create_app())
    assert asyncio.run(connector(url, recorded_sleep).check()) == {
        "ok": True,
        "detail": "authenticated to 127.0.0.1 as Opsrail Bot",
    }
    refused = asyncio.run(connector(url, recorded_sleep, token="nope").check())
    assert refused["ok"] is False and "401" in refused["detail"] and "nope" not in refused["detail"]
    unreachable = asyncio.run(connector("http://127.0.0.1:9", recorded_sleep).check())
    assert unreachable["ok"] is False


def test_through_the_engine(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    jira = connector(serve(app), recorded_sleep)
    operations = Operations()
    names = bind(operations, jira)
    assert names == ["jira.create_issue", "jira.transition", "jira.comment", "jira.find_by_property"]
    context = CallContext("run-7", "escalate", 1, "run-7:escalate")
    params = {"project": "OPS", "issue_type": "Bug", "summary": "Refund stuck", "labels": ["sev2"]}

    async def scenario() -> tuple[Any, Any, Any]:
        first = await operations.call("action", "jira.create_issue", params, context)
        retried = await operations.call(
            "action", "jira.create_issue", params, CallContext("run-7", "escalate", 2, "run-7:escalate")
        )
        found = await operations.call("action", "jira.find_by_property", {"key": "run-7:escalate"}, context)
        return first, retried, found

    first, retried, found = asyncio.run(scenario())
    assert first["key"] == "OPS-1" and first["created"] and retried == {**first, "created": False}
    assert found == {"issues": ["OPS-1"]}
    assert app.state.issues["OPS-1"]["fields"]["issuetype"]["name"] == "Bug"
    for bad in ({**params, "colour": "red"}, {**params, "summary": "two\nlines"}, {**params, "labels": ["a b"]}):
        with pytest.raises(OperationFailed, match="invalid input") as caught:
            asyncio.run(operations.call("action", "jira.create_issue", bad, context))
        assert not caught.value.retryable
    with pytest.raises(OperationFailed, match="invalid input: fields"):
        asyncio.run(operations.call("action", "jira.create_issue", {**params, "fields": {"summary": "x"}}, context))
    with pytest.raises(OperationFailed, match="invalid input: issue"):
        asyncio.run(operations.call("action", "jira.comment", {"issue": "../myself", "body": "x"}, context))


def test_configuration_problems_are_reported_not_raised(tmp_path: Path) -> None:
    client = LoopLocalClient()
    token_file = tmp_path / "jira-token"
    token_file.write_text("from-a-file\n", encoding="utf-8")
    jira = JiraConnector(
        {"base_url": "https://example.atlassian.net/", "email": "bot@example.test", "api_token_file": str(token_file)},
        client,
    )
    assert jira.problem is None and jira.base_url == "https://example.atlassian.net"
    assert "from-a-file" not in repr(vars(jira))
    problems = {
        "jira: missing settings: email, api_token or api_token_file": {"base_url": "https://example.atlassian.net"},
        "jira: base_url must use https": {"base_url": "http://example.atlassian.net", "email": "e", "api_token": "t"},
        "cannot read the secret file": {"base_url": "https://x.test", "email": "e", "api_token_file": str(tmp_path)},
    }
    for problem, config in problems.items():
        broken = JiraConnector(config, client)
        report = asyncio.run(broken.check())
        assert report["ok"] is False and problem in report["detail"]
        with pytest.raises(ConnectorError, match=problem) as caught:
            asyncio.run(engine(broken).call("action", "jira.find_by_property", {"key": "k"}, call()))
        assert not caught.value.retryable and caught.value.code == "config" and broken.http.calls == 0


def test_helpers_read_jira_errors_and_quote_jql() -> None:
    body = {"errorMessages": ["Bad thing."], "errors": {"summary": "You must specify a summary of the issue."}}
    response = httpx.Response(400, json=body)
    assert jira_error(response) == "Bad thing.; summary: You must specify a summary of the issue."
    assert jira_error(httpx.Response(401, text="Client must be authenticated")) == "Client must be authenticated"
    assert property_jql('a"b\\c') == 'issue.property[opsrail].idempotency_key = "a\\"b\\\\c"'
    assert adf("  \n\n ") == {"type": "doc", "version": 1, "content": []}


def test_the_fake_refuses_other_jql_and_the_removed_search(serve: Serve) -> None:
    url = serve(create_app(indexed_properties=()))
    with httpx.Client(base_url=url, auth=("bot@example.test", TOKEN)) as client:
        other = client.post("/rest/api/3/search/jql", json={"jql": "project = ENG"})
        assert other.status_code == 400 and other.json()["errorMessages"][0].startswith("Error in the JQL Query")
        assert client.post("/rest/api/3/search/jql", json={"jql": ""}).status_code == 400
        assert client.get("/rest/api/3/search", params={"jql": "project = ENG"}).status_code == 410
        # Not indexed (no app declared it): the property search finds nothing, as on a real site.
        unindexed = client.post("/rest/api/3/search/jql", json={"jql": property_jql("k")})
        assert unindexed.json() == {"issues": [], "isLast": True}
