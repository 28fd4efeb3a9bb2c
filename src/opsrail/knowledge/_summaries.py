"""Case summaries: the request and result records, the ``Summarizer`` protocol, and the extractive summarizer.

Owns what a summary is (``SummaryRequest`` in, ``Summary`` out, with the prompt and raw answer kept when a language
model wrote it, so a decision record can store exactly what was asked and answered) and ``ExtractiveSummarizer``,
the deterministic summarizer that needs no provider and is the fallback when one fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np

from opsrail.knowledge._retrieval import Hit
from opsrail.knowledge._text import sentences as split_sentences
from opsrail.knowledge._text import tokenize

# Sentences an extractive summary ranks at most: TextRank is quadratic in them, and a case with more text than
# this is summarised from its first sentences (event texts come oldest first).
MAX_RANKED_SENTENCES = 1500
# Two sentences this similar (TF-IDF cosine) say the same thing; the summary keeps the first one ranked.
REDUNDANT_SIMILARITY = 0.7


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    """What to summarise.

    ``facts`` are the structured fields of the case (``kind``, ``id``, ``severity``, ``account``, ``tier``,
    ``status``, ``opened_at``, ``resolved_at``, ``as_of``, ``open_for``, …); ``texts`` the event texts and comments,
    oldest first; ``citations`` the knowledge hits the summary may cite. ``max_sentences`` bounds the summary
    body; ``audience`` ("executive", "engineer", …) shapes what a language model is asked to stress.
    """

    title: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    texts: Sequence[str] = ()
    citations: Sequence[Hit] = ()
    max_sentences: int = 5
    audience: str = "executive"


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary and where it came from.

    ``text`` is what to show; ``sentences`` its body sentences; ``citations`` the sources it cites (knowledge
    ``source`` strings). ``provider`` names who wrote it ("extractive", "openai-compatible", or
    "extractive (fallback: <reason>)"); ``model``, ``prompt`` and ``answer`` are set when a language model was
    asked, so the exact exchange can be stored with the decision it supports.
    """

    text: str
    sentences: tuple[str, ...]
    citations: tuple[str, ...]
    provider: str
    model: str | None = None
    prompt: str | None = None
    answer: str | None = None


@runtime_checkable
class Summarizer(Protocol):
    """Anything that turns a ``SummaryRequest`` into a ``Summary``."""

    def summarize(self, request: SummaryRequest) -> Summary: ...


def format_duration(value: timedelta) -> str:
    """``2 h 10 min``, ``3 d 4 h``, ``45 min``, ``30 s``: short enough for a first sentence."""
    seconds = max(0, int(value.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _format_time(value: Any) -> str:
    moment = _as_datetime(value)
    if moment is None:
        return str(value)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _severity(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"Sev{value}"
    text = str(value).strip()
    if text.lower().startswith("sev"):
        return "Sev" + text[3:].strip()
    return text


def _first(facts: Mapping[str, Any], *keys: str) -> tuple[str | None, Any]:
    for key in keys:
        value = facts.get(key)
        if value is not None and value != "":
            return key, value
    return None, None


_OPEN_STATUSES = {"open", "opened", "new", "active", "investigating", "in progress", "in_progress", "triage"}


def facts_sentence(title: str, facts: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The opening sentence built from the facts, and the fact keys it used.

    e.g. "Sev1 incident INC-42 for Acme (premium) opened 2026-01-05 09:12 UTC, open for 2 h 10 min."
    A duration comes from ``open_for`` (a timedelta, or seconds), else from ``opened_at`` to ``resolved_at`` or
    ``as_of``; the summary never reads the clock, so the same request always gives the same text.
    """
    used: list[str] = []

    def take(*keys: str) -> Any:
        key, value = _first(facts, *keys)
        if key is not None:
            used.append(key)
        return value

    severity = take("severity", "priority")
    kind = take("kind", "type")
    ident = take("id", "key", "case_id", "incident_id")
    account = take("account", "customer", "tenant")
    tier = take("tier", "plan")
    opened = take("opened_at", "opened", "created_at")
    status = take("status", "state")
    resolved = take("resolved_at", "closed_at")
    as_of = take("as_of", "now")
    span = take("open_for", "age", "duration")

    subject = " ".join(
        part
        for part in (_severity(severity) if severity is not None else "", str(kind or "case"), str(ident or ""))
        if part
    )
    if ident is None and severity is None and kind is None:
        subject = title.strip() or "Case"
    else:
        subject = subject[0].upper() + subject[1:]
    if account is not None:
        subject += f" for {account}" + (f" ({tier})" if tier is not None else "")
    elif tier is not None:
        subject += f" ({tier})"
    if opened is not None:
        subject += f" opened {_format_time(opened)}"

    duration: timedelta | None = None
    if isinstance(span, timedelta):
        duration = span
    elif isinstance(span, int | float) and not isinstance(span, bool):
        duration = timedelta(seconds=float(span))
    else:
        start, end = _as_datetime(opened), _as_datetime(resolved) or _as_datetime(as_of)
        if start is not None and end is not None and (start.tzinfo is None) == (end.tzinfo is None):
            duration = end - start
    status_text = str(status).strip() if status is not None else ""
    if status_text:
        if duration is not None:
            joiner = "for" if status_text.lower() in _OPEN_STATUSES else "after"
            subject += f", {status_text} {joiner} {format_duration(duration)}"
        else:
            subject += f", {status_text}"
    elif isinstance(span, str):
        subject += f", open for {span}"
    elif duration is not None:
        subject += f", {format_duration(duration)} so far"
    return subject.rstrip(".") + ".", used


def _extra_facts(facts: Mapping[str, Any], used: Sequence[str], limit: int = 4) -> str | None:
    parts = []
    for key, value in facts.items():
        if key in used or value is None or value == "" or isinstance(value, Mapping | list | tuple | set):
            continue
        shown = _format_time(value) if isinstance(value, datetime) else str(value)
        parts.append(f"{key.replace('_', ' ')} {shown}")
        if len(parts) == limit:
            break
    return f"Also: {', '.join(parts)}." if parts else None


def _tfidf_rows(token_lists: Sequence[Sequence[str]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    vocabulary: dict[str, int] = {}
    for tokens in token_lists:
        for token in tokens:
            vocabulary.setdefault(token, len(vocabulary))
    matrix = np.zeros((len(token_lists), max(1, len(vocabulary))))
    for row, tokens in enumerate(token_lists):
        for token in tokens:
            matrix[row, vocabulary[token]] += 1.0
    df = (matrix > 0).sum(axis=0)
    matrix *= np.log((1.0 + len(token_lists)) / (1.0 + df)) + 1.0
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    normalised: np.ndarray[Any, np.dtype[np.float64]] = np.divide(
        matrix, norms, out=np.zeros_like(matrix), where=norms > 0
    )
    return normalised


def central_sentences(candidates: Sequence[str], count: int) -> list[int]:
    """Indexes of the ``count`` most central sentences (TextRank over TF-IDF cosine), in their original order.

    Ties go to the earlier sentence and near-duplicates of a sentence already chosen are skipped, so the result
    depends only on the input.
    """
    if count <= 0 or not candidates:
        return []
    rows = _tfidf_rows([tokenize(sentence) for sentence in candidates])
    similarity = rows @ rows.T
    np.fill_diagonal(similarity, 0.0)
    n = len(candidates)
    out_weight = similarity.sum(axis=1)
    transition = np.divide(
        similarity, out_weight[:, None], out=np.zeros_like(similarity), where=out_weight[:, None] > 0
    )
    rank = np.full(n, 1.0 / n)
    for _ in range(100):
        updated = 0.15 / n + 0.85 * (transition.T @ rank)
        if np.abs(updated - rank).sum() < 1e-10:
            rank = updated
            break
        rank = updated
    # Rounding makes sentences that are equally central tie exactly, so order (not float noise) decides.
    order = sorted(range(n), key=lambda i: (-round(float(rank[i]), 9), i))
    chosen: list[int] = []
    for index in order:
        if any(similarity[index, other] >= REDUNDANT_SIMILARITY for other in chosen):
            continue
        chosen.append(index)
        if len(chosen) == count:
            break
    return sorted(chosen)


def cited_sources(citations: Sequence[Hit]) -> tuple[str, ...]:
    """The distinct sources of ``citations``, in order."""
    return tuple(dict.fromkeys(hit.source for hit in citations))


class ExtractiveSummarizer:
    """A deterministic summary: a sentence from the facts, the most central sentences of the texts, the sources.

    Same request, same summary, no provider and no clock. ``audience`` is not used: the selection is the same for
    every reader.
    """

    provider = "extractive"

    def summarize(self, request: SummaryRequest) -> Summary:
        budget = max(1, request.max_sentences)
        opening, used = facts_sentence(request.title, request.facts)
        body = [opening]
        extra = _extra_facts(request.facts, used)
        if extra and budget > 2:
            body.append(extra)
        seen: set[str] = set()
        candidates: list[str] = []
        for text in request.texts:
            for sentence in split_sentences(text):
                key = sentence.lower()
                if key not in seen:
                    seen.add(key)
                    candidates.append(sentence)
        candidates = candidates[:MAX_RANKED_SENTENCES]
        body.extend(candidates[i] for i in central_sentences(candidates, budget - len(body)))
        sources = cited_sources(request.citations)
        text = " ".join(body)
        if sources:
            text += f"\nSee: {', '.join(sources)}."
        return Summary(text=text, sentences=tuple(body), citations=sources, provider=self.provider)
