"""Summaries written by a language model behind an OpenAI-compatible Chat Completions endpoint.

Owns the prompt (facts, texts and numbered sources, asking for [n] citations), the HTTP exchange with retries on
429/5xx/timeouts (honouring ``Retry-After``, capped), the fallback to another summarizer when the provider stays
unavailable, and ``SummaryProviderError`` for failures a retry cannot fix (bad key, bad request). The API key goes
only into the ``Authorization`` header: it is never logged, never in an error message, never in ``repr``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from opsrail.knowledge._summaries import ExtractiveSummarizer, Summarizer, Summary, SummaryRequest
from opsrail.knowledge._text import sentences as split_sentences

log = logging.getLogger("opsrail.knowledge")

PROVIDER = "openai-compatible"
# Event texts beyond this many characters are left out of the prompt (newest dropped first, and said so), which
# keeps a long-running case inside any model's context window.
MAX_TEXT_CHARS = 12_000
_CITATION = re.compile(r"\[(\d{1,3})\]")

_AUDIENCES = {
    "executive": "an executive: lead with customer impact, current status and any decision needed; no jargon",
    "engineer": "an engineer: include the technical cause, the systems involved and the next diagnostic step",
    "customer": "the customer: plain, factual and calm; no internal names, no blame, no promised fix times",
}


class SummaryProviderError(Exception):
    """The summary provider failed. ``retryable`` is False for failures a retry cannot fix (401/403, 4xx)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def _value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    return str(value)


def build_messages(request: SummaryRequest) -> list[dict[str, str]]:
    """The system and user messages for ``request``: facts, texts (oldest first) and numbered sources."""
    limit = max(1, request.max_sentences)
    reader = _AUDIENCES.get(request.audience, f"a {request.audience} reader")
    system = (
        f"You summarise SaaS operations cases for {reader}. Use only the facts, events and sources given; never "
        f"invent times, amounts, names or causes. Write at most {limit} sentences of plain prose. When a sentence "
        "relies on a numbered source, cite it as [n] at the end of that sentence; cite nothing you did not use."
    )
    lines = [f"Case: {request.title}", ""]
    if request.facts:
        lines.append("Facts:")
        lines.extend(f"- {key}: {_value(value)}" for key, value in request.facts.items())
        lines.append("")
    if request.texts:
        lines.append("Events and comments, oldest first:")
        used = 0
        for position, text in enumerate(request.texts):
            flat = " ".join(text.split())
            if used + len(flat) > MAX_TEXT_CHARS and position > 0:
                lines.append(f"- ({len(request.texts) - position} later entries left out for length)")
                break
            lines.append(f"- {flat[:MAX_TEXT_CHARS]}")
            used += len(flat)
        lines.append("")
    if request.citations:
        lines.append("Sources:")
        for number, hit in enumerate(request.citations, start=1):
            lines.append(f"[{number}] {hit.title} ({hit.source}): {' '.join(hit.snippet.split())}")
        lines.append("")
    lines.append(f"Write the summary now: at most {limit} sentences, citing sources as [n].")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def render_prompt(messages: list[dict[str, str]]) -> str:
    """The messages as one text, the form a decision record stores."""
    return "\n\n".join(f"[{message['role']}]\n{message['content']}" for message in messages)


def _retry_after(response: httpx.Response) -> float | None:
    # OpenAI sends retry-after-ms on some limits; it is more precise than the standard header when present.
    milliseconds = response.headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return str(body["error"].get("message") or body["error"].get("code") or "")[:300]
    return str(body)[:200]


_DEFAULT_FALLBACK: Summarizer = ExtractiveSummarizer()


class OpenAICompatibleSummarizer:
    """Asks an OpenAI-compatible ``/chat/completions`` endpoint for the summary.

    ``base_url`` includes the version prefix (``https://api.openai.com/v1``, ``http://127.0.0.1:11434/v1``).
    429, 5xx, timeouts and connection errors are retried ``max_retries`` times, waiting what ``Retry-After`` says
    (at most ``max_wait`` seconds) or 1 s, 2 s, … without it; then ``fallback`` writes the summary and its
    ``provider`` says why ("extractive (fallback: HTTP 503 after 3 attempts)"). With ``fallback=None`` those
    failures raise ``SummaryProviderError(retryable=True)``. 401/403 and other 4xx raise at once: a wrong key or
    model name is a configuration error to fix, not to hide behind a fallback.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        client: httpx.Client,
        timeout: float = 20.0,
        fallback: Summarizer | None = _DEFAULT_FALLBACK,
        max_retries: int = 2,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.client = client
        self.timeout = timeout
        self.fallback = fallback
        self.max_retries = max(0, max_retries)
        self.max_wait = max_wait
        self._sleep = sleep
        self._api_key = api_key

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"OpenAICompatibleSummarizer(url={self.url!r}, model={self.model!r}, api_key={key})"

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def summarize(self, request: SummaryRequest) -> Summary:
        messages = build_messages(request)
        prompt = render_prompt(messages)
        body = {"model": self.model, "messages": messages, "temperature": 0}
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.max_retries + 1
        reason = "no attempt made"
        for attempt in range(attempts):
            wait: float | None = None
            try:
                response = self.client.post(self.url, json=body, headers=headers, timeout=self.timeout)
            except httpx.TimeoutException:
                reason = f"timeout after {self.timeout:g} s"
            except httpx.TransportError as error:
                reason = f"connection error ({type(error).__name__})"
            else:
                status = response.status_code
                if status == 200:
                    summary = self._parse(request, response, prompt)
                    if summary is not None:
                        return summary
                    reason = "malformed response"
                    break
                message = self._redact(_error_message(response))
                if status in (401, 403):
                    raise SummaryProviderError(
                        f"summary provider refused the API key (HTTP {status}): {message}", status=status
                    )
                if status != 429 and status < 500:
                    raise SummaryProviderError(
                        f"summary provider rejected the request (HTTP {status}): {message}", status=status
                    )
                reason = f"HTTP {status}"
                wait = _retry_after(response)
            if attempt + 1 < attempts:
                delay = min(self.max_wait, wait if wait is not None else float(2**attempt))
                log.warning("summary provider unavailable (%s), retrying in %.2f s", reason, delay)
                self._sleep(delay)
        else:
            reason = f"{reason} after {attempts} attempt{'s' if attempts > 1 else ''}"
        if self.fallback is None:
            raise SummaryProviderError(
                f"summary provider unavailable: {reason}", retryable=reason != "malformed response"
            )
        log.warning("summary provider unavailable (%s), using the fallback summarizer", reason)
        summary = self.fallback.summarize(request)
        return replace(summary, provider=f"{summary.provider} (fallback: {reason})", prompt=prompt)

    def _parse(self, request: SummaryRequest, response: httpx.Response, prompt: str) -> Summary | None:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        if not isinstance(content, str) or not content.strip():
            return None
        answer = content.strip()
        cited: dict[str, None] = {}
        for match in _CITATION.finditer(answer):
            number = int(match.group(1))
            if 1 <= number <= len(request.citations):
                cited[request.citations[number - 1].source] = None
        model = data.get("model") if isinstance(data.get("model"), str) else self.model
        return Summary(
            text=answer,
            sentences=tuple(split_sentences(answer)),
            citations=tuple(cited),
            provider=PROVIDER,
            model=model,
            prompt=prompt,
            answer=content,
        )
