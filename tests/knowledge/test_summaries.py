"""Summaries: the extractive summarizer, and the OpenAI-compatible one against the fake server over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from opsrail.fakes.openai import MODEL_ID, create_app
from opsrail.knowledge import (
    REFERENCE_DIR,
    ExtractiveSummarizer,
    Hit,
    KnowledgeIndex,
    OpenAICompatibleSummarizer,
    SummaryProviderError,
    SummaryRequest,
    load_markdown_folder,
)

Serve = Callable[[FastAPI], str]
KEY = "sk-test-secret-0123456789"

TEXTS = (
    "Checkout requests for EU tenants fail with HTTP 502. Monitoring shows the load balancer health checks failing.",
    "We rolled back the 09:05 deploy. Checkout errors dropped but did not stop.",
    "The database connection pool on the EU primary is exhausted. Checkout requests queue behind it.",
    "Customer success asked for an update for Acme. Lunch order is in the kitchen.",
    "Raised the connection pool limit on the EU primary; checkout requests succeed again.",
)


@pytest.fixture(scope="module")
def citations() -> list[Hit]:
    index = KnowledgeIndex.build(load_markdown_folder(REFERENCE_DIR))
    return index.search("Sev1 customer update premium account", k=2)


@pytest.fixture
def request_(citations: list[Hit]) -> SummaryRequest:
    return SummaryRequest(
        title="Checkout down for EU tenants",
        facts={
            "severity": 1,
            "kind": "incident",
            "id": "INC-42",
            "account": "Acme",
            "tier": "premium",
            "opened_at": datetime(2026, 1, 5, 9, 12, tzinfo=UTC),
            "as_of": datetime(2026, 1, 5, 11, 22, tzinfo=UTC),
            "status": "open",
        },
        texts=TEXTS,
        citations=citations,
        max_sentences=4,
    )


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_extractive_summary_opens_with_the_facts_and_cites_sources(request_: SummaryRequest) -> None:
    summary = ExtractiveSummarizer().summarize(request_)

    assert summary.sentences[0] == (
        "Sev1 incident INC-42 for Acme (premium) opened 2026-01-05 09:12 UTC, open for 2 h 10 min."
    )
    assert len(summary.sentences) == 4
    assert all(any(sentence in text for text in TEXTS) for sentence in summary.sentences[1:])
    assert "Lunch order is in the kitchen." not in summary.sentences
    assert summary.citations == tuple(hit.source for hit in request_.citations)
    assert summary.text.endswith(f"See: {', '.join(summary.citations)}.")
    assert summary.provider == "extractive"
    assert (summary.model, summary.prompt, summary.answer) == (None, None, None)


def test_extractive_summary_is_deterministic(request_: SummaryRequest) -> None:
    first = ExtractiveSummarizer().summarize(request_)
    assert all(ExtractiveSummarizer().summarize(request_) == first for _ in range(3))


def test_extractive_summary_keeps_text_order_and_breaks_ties_by_position() -> None:
    texts = ["Alpha one.", "Bravo two.", "Charlie three.", "Delta four."]  # no shared words: every rank is equal
    summary = ExtractiveSummarizer().summarize(SummaryRequest(title="Quiet case", texts=texts, max_sentences=3))
    assert summary.sentences == ("Quiet case.", "Alpha one.", "Bravo two.")
    assert summary.citations == ()
    assert "See:" not in summary.text


def test_facts_sentence_handles_resolved_cases_and_extra_facts() -> None:
    request = SummaryRequest(
        title="Billing dispute",
        facts={
            "id": "CASE-7",
            "account": "Globex",
            "status": "resolved",
            "open_for": timedelta(hours=27),
            "owner": "Dana",
        },
        max_sentences=3,
    )
    summary = ExtractiveSummarizer().summarize(request)
    assert summary.sentences == ("Case CASE-7 for Globex, resolved after 1 d 3 h.", "Also: owner Dana.")


def test_provider_summary_keeps_prompt_and_answer(serve: Serve, client: httpx.Client, request_: SummaryRequest) -> None:
    app = create_app(api_key=KEY)
    url = serve(app)
    summarizer = OpenAICompatibleSummarizer(f"{url}/v1", KEY, MODEL_ID, client=client)

    summary = summarizer.summarize(request_)

    assert summary.provider == "openai-compatible"
    assert summary.model == MODEL_ID
    assert summary.prompt is not None
    assert "INC-42" in summary.prompt
    assert TEXTS[0] in summary.prompt
    assert f"[1] {request_.citations[0].title} ({request_.citations[0].source})" in summary.prompt
    assert summary.answer is not None
    assert summary.text == summary.answer.strip()
    assert "[1]" in summary.answer
    assert summary.citations == tuple(hit.source for hit in request_.citations)
    sent = app.state.requests[0]
    assert sent["model"] == MODEL_ID
    assert sent["temperature"] == 0
    assert [message["role"] for message in sent["messages"]] == ["system", "user"]
    assert KEY not in repr(summarizer)


def test_wrong_key_is_a_clear_error_not_a_fallback(
    serve: Serve, client: httpx.Client, request_: SummaryRequest, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(create_app(api_key=KEY))
    sleeps = Sleeps()
    summarizer = OpenAICompatibleSummarizer(f"{url}/v1", "sk-wrong-key-999", MODEL_ID, client=client, sleep=sleeps)

    with caplog.at_level(logging.DEBUG), pytest.raises(SummaryProviderError) as raised:
        summarizer.summarize(request_)

    assert raised.value.status == 401
    assert raised.value.retryable is False
    assert "API key" in str(raised.value)
    assert "sk-wrong-key-999" not in str(raised.value)
    assert "sk-wrong-key-999" not in caplog.text
    assert sleeps.waits == []


def test_rate_limit_is_retried_after_the_advertised_wait(
    serve: Serve, client: httpx.Client, request_: SummaryRequest, caplog: pytest.LogCaptureFixture
) -> None:
    url = serve(create_app(api_key=KEY, rate_limit_first=2, retry_after_s=3))
    sleeps = Sleeps()
    summarizer = OpenAICompatibleSummarizer(f"{url}/v1", KEY, MODEL_ID, client=client, sleep=sleeps)

    with caplog.at_level(logging.DEBUG):
        summary = summarizer.summarize(request_)

    assert summary.provider == "openai-compatible"
    assert sleeps.waits == [3.0, 3.0]
    assert KEY not in caplog.text


def test_retry_after_is_capped(serve: Serve, client: httpx.Client, request_: SummaryRequest) -> None:
    url = serve(create_app(api_key=KEY, rate_limit_first=1, retry_after_s=600))
    sleeps = Sleeps()
    summarizer = OpenAICompatibleSummarizer(f"{url}/v1", KEY, MODEL_ID, client=client, sleep=sleeps, max_wait=5)

    assert summarizer.summarize(request_).provider == "openai-compatible"
    assert sleeps.waits == [5.0]


def test_server_errors_fall_back_to_the_extractive_summary(
    serve: Serve, client: httpx.Client, request_: SummaryRequest
) -> None:
    url = serve(create_app(api_key=KEY, fail_first=3))
    sleeps = Sleeps()
    summarizer = OpenAICompatibleSummarizer(f"{url}/v1", KEY, MODEL_ID, client=client, sleep=sleeps)

    summary = summarizer.summarize(request_)

    assert summary.provider == "extractive (fallback: HTTP 500 after 3 attempts)"
    assert sleeps.waits == [1.0, 2.0]
    expected = ExtractiveSummarizer().summarize(request_)
    assert (summary.text, summary.citations, summary.answer) == (expected.text, expected.citations, None)
    assert summary.prompt is not None


def test_without_fallback_unavailability_raises_retryable(
    serve: Serve, client: httpx.Client, request_: SummaryRequest
) -> None:
    url = serve(create_app(api_key=KEY, fail_first=5))
    summarizer = OpenAICompatibleSummarizer(
        f"{url}/v1", KEY, MODEL_ID, client=client, fallback=None, max_retries=1, sleep=Sleeps()
    )
    with pytest.raises(SummaryProviderError) as raised:
        summarizer.summarize(request_)
    assert raised.value.retryable is True
    assert "HTTP 500 after 2 attempts" in str(raised.value)


def test_timeouts_fall_back(serve: Serve, client: httpx.Client, request_: SummaryRequest) -> None:
    url = serve(create_app(api_key=KEY, delay_s=0.5))
    sleeps = Sleeps()
    summarizer = OpenAICompatibleSummarizer(
        f"{url}/v1", KEY, MODEL_ID, client=client, timeout=0.1, max_retries=1, sleep=sleeps
    )
    summary = summarizer.summarize(request_)
    assert summary.provider == "extractive (fallback: timeout after 0.1 s after 2 attempts)"
    assert sleeps.waits == [1.0]


def test_fake_server_speaks_the_openai_error_shape(serve: Serve, client: httpx.Client) -> None:
    url = serve(create_app(api_key=KEY))
    auth = {"Authorization": f"Bearer {KEY}"}

    missing_model = client.post(f"{url}/v1/chat/completions", json={"messages": []}, headers=auth)
    assert missing_model.status_code == 400
    assert missing_model.json()["error"]["type"] == "invalid_request_error"
    assert missing_model.json()["error"]["param"] == "model"

    missing_messages = client.post(f"{url}/v1/chat/completions", json={"model": MODEL_ID}, headers=auth)
    assert missing_messages.status_code == 400
    assert missing_messages.json()["error"] == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }

    no_key = client.post(f"{url}/v1/chat/completions", json={"model": MODEL_ID, "messages": []})
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"

    models = client.get(f"{url}/v1/models", headers=auth)
    assert models.status_code == 200
    assert models.json()["data"][0]["id"] == MODEL_ID

    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Disk full on db-2. Cleared logs. See [2]."}]}
    answer = client.post(f"{url}/v1/chat/completions", json=body, headers=auth).json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Disk full on db-2. Cleared logs. [2]",
        "refusal": None,
    }
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]


def test_fake_server_counts_rate_limits_then_failures(serve: Serve, client: httpx.Client) -> None:
    url = serve(create_app(api_key=None, rate_limit_first=1, fail_first=1))
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hello."}]}
    statuses = [client.post(f"{url}/v1/chat/completions", json=body).status_code for _ in range(3)]
    assert statuses == [429, 500, 200]
