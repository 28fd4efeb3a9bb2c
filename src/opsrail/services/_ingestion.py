"""The ingestion use cases: accept events, deduplicate, dead-letter what is rejected, replay it later.

Nothing received is lost: a payload either becomes stored events (with receipts) or a dead letter that
keeps its exact bytes, the reason and the JSON path of every error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opsrail.ingest import (
    Arrival,
    DeadLetter,
    NormalisedEvent,
    Receipt,
    SourceMapper,
    check_single_media_type,
    decode_json,
    normalise,
    refuse_nul,
    rfc3339,
    split_batch,
)
from opsrail.model import (
    Clock,
    Conflict,
    FieldError,
    IdFactory,
    InvalidInput,
    NotFound,
    OpsrailError,
    UnsupportedMediaType,
)
from opsrail.services._group_commit import GroupCommitter
from opsrail.services._ports import DeadLetterStore, EventStore

KEPT_BODY_BYTES = 64 * 1024
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})


@dataclass(slots=True)
class ItemResult:
    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    receipt: Receipt | None = None
    dead_letter_id: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        receipt = self.receipt
        if receipt is not None:
            return {
                "index": self.index,
                "id": receipt.id,
                "source": receipt.source,
                "received_at": rfc3339(receipt.received_at),
                "status": self.status,
            }
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.dead_letter_id is not None:
            out["dead_letter_id"] = self.dead_letter_id
            out["errors"] = self.errors
        return out


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    results: list[ItemResult]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.count("accepted"),
            "duplicates": self.count("duplicate"),
            "rejected": self.count("rejected"),
            "results": [r.as_dict() for r in self.results],
        }


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    valid: list[tuple[int, NormalisedEvent]]
    invalid: list[tuple[int, bytes, InvalidInput]]


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers worth keeping with a dead letter (a mapper may need them on replay); never credentials."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS and len(v) <= 1024}


class IngestionService:
    def __init__(
        self,
        events: EventStore,
        dead_letters: DeadLetterStore,
        clock: Clock,
        ids: IdFactory,
        mappers: Mapping[str, SourceMapper],
        *,
        max_batch: int = 10_000,
        inline_commit: bool = True,
        write_async: Callable[[Sequence[Arrival]], Awaitable[list[Receipt]]] | None = None,
    ) -> None:
        self.events = events
        self.dead_letters = dead_letters
        self.clock = clock
        self.ids = ids
        self.mappers = mappers
        self.max_batch = max_batch
        self.writer: GroupCommitter[Arrival, Receipt] = GroupCommitter(
            events.append, inline=inline_commit, write_async=write_async, name="opsrail-ingest-writer"
        )

    # -- parsing: pure, no side effects -------------------------------------------------------------

    def parse_single(self, body: bytes, content_type: str | None) -> NormalisedEvent:
        check_single_media_type(content_type)
        value = decode_json(body)
        if isinstance(value, list):
            raise InvalidInput(
                "this route takes one event, not an array",
                hint="send batches to POST /v1/events:batch",
                errors=[FieldError("$", "expected an object, got an array", "type")],
            )
        refuse_nul(body, value)
        return normalise(value)

    def parse_batch(self, body: bytes, content_type: str | None) -> ParsedBatch:
        items = split_batch(body, content_type)
        if len(items) > self.max_batch:
            raise InvalidInput(
                f"the batch holds {len(items)} events; the most one request may carry is {self.max_batch}",
                hint="split it into smaller batches",
                errors=[FieldError("$", "too many events", "too_long")],
            )
        parsed = ParsedBatch(valid=[], invalid=[])
        for item in items:
            if item.error is not None:
                parsed.invalid.append((item.index, item.raw, item.error))
                continue
            try:
                refuse_nul(item.raw, item.value, f"$[{item.index}]")
                parsed.valid.append((item.index, normalise(item.value, f"$[{item.index}]")))
            except InvalidInput as exc:
                parsed.invalid.append((item.index, item.raw, exc))
        return parsed

    def mapper(self, source: str) -> SourceMapper:
        try:
            return self.mappers[source]
        except KeyError:
            raise NotFound(
                f"no source mapper named {source!r}", hint=f"known sources: {', '.join(sorted(self.mappers))}"
            ) from None

    def parse_vendor(self, source: str, body: bytes, headers: Mapping[str, str]) -> list[NormalisedEvent]:
        mapper = self.mapper(source)
        payload = decode_json(body)
        refuse_nul(body, payload)
        lowered = {k.lower(): v for k, v in headers.items()}
        raw_events = mapper.map(payload, lowered)
        events: list[NormalisedEvent] = []
        errors: list[FieldError] = []
        for index, raw in enumerate(raw_events):
            try:
                events.append(normalise(raw, f"$.events[{index}]"))
            except InvalidInput as exc:
                errors.extend(exc.errors)
        if errors:
            raise InvalidInput(
                f"the {source} payload mapped to events that are not valid",
                hint="fix the mapping or the payload, then replay the dead letter",
                errors=errors,
            )
        return events

    # -- effects -------------------------------------------------------------------------------------

    def arrivals(self, events: Sequence[NormalisedEvent], channel: str) -> list[Arrival]:
        now = self.clock.now()
        return [Arrival(event=e, received_at=now, channel=channel) for e in events]

    def store(self, events: Sequence[NormalisedEvent], channel: str) -> list[Receipt]:
        """Store events in one transaction; the receipts come back after the commit."""
        return self.events.append(self.arrivals(events, channel))

    async def store_grouped(self, events: Sequence[NormalisedEvent], channel: str) -> list[Receipt]:
        """Store events through the group-commit writer, sharing a transaction with concurrent requests."""
        return await self.writer.submit(self.arrivals(events, channel))

    def reject(self, error: OpsrailError, letter: DeadLetter) -> DeadLetter:
        """Keep a rejected payload; the error learns the dead letter's id so the sender is told it."""
        self.dead_letters.add([letter])
        error.extra["dead_letter_id"] = letter.id
        return letter

    def make_dead_letter(
        self,
        *,
        channel: str,
        body: bytes,
        content_type: str | None,
        error: OpsrailError,
        source: str | None = None,
        headers: Mapping[str, str] | None = None,
        body_bytes: int | None = None,
    ) -> DeadLetter:
        size = len(body) if body_bytes is None else body_bytes
        truncated = len(body) > KEPT_BODY_BYTES or size > len(body)
        return DeadLetter(
            id=self.ids.new("dl"),
            received_at=self.clock.now(),
            channel=channel,
            source=source.replace("\x00", "")[:64] if source else None,
            content_type=content_type[:256] if content_type else None,
            headers=safe_headers(headers or {}),
            body=body[:KEPT_BODY_BYTES],
            body_bytes=size,
            truncated=truncated,
            reason=error.detail,
            errors=[e.as_dict() for e in error.errors],
        )

    # -- whole use cases (used by the CLI, replay and tests; the API interleaves the parts itself) ----

    def ingest_single(
        self, body: bytes, content_type: str | None = "application/json", channel: str = "api"
    ) -> Receipt:
        try:
            event = self.parse_single(body, content_type)
        except (InvalidInput, UnsupportedMediaType) as exc:
            self.reject(exc, self.make_dead_letter(channel=channel, body=body, content_type=content_type, error=exc))
            raise
        return self.store([event], channel)[0]

    def ingest_batch(self, body: bytes, content_type: str | None, channel: str = "batch") -> BatchOutcome:
        try:
            parsed = self.parse_batch(body, content_type)
        except (InvalidInput, UnsupportedMediaType) as exc:
            self.reject(exc, self.make_dead_letter(channel=channel, body=body, content_type=content_type, error=exc))
            raise
        receipts = self.store([e for _, e in parsed.valid], channel)
        letters = [
            self.make_dead_letter(channel=channel, body=raw, content_type="application/json", error=err)
            for _, raw, err in parsed.invalid
        ]
        if letters:
            self.dead_letters.add(letters)
        return assemble_batch(parsed, receipts, letters)

    def ingest_vendor(
        self, source: str, body: bytes, content_type: str | None, headers: Mapping[str, str]
    ) -> list[Receipt]:
        try:
            events = self.parse_vendor(source, body, headers)
        except (InvalidInput, NotFound) as exc:
            letter = self.make_dead_letter(
                channel="ingest", source=source, body=body, content_type=content_type, error=exc, headers=headers
            )
            self.reject(exc, letter)
            raise
        return self.store(events, f"ingest:{source}")

    def _parse_letter(self, letter: DeadLetter) -> list[NormalisedEvent]:
        """Parse a dead letter the way its channel would today; a replayed batch must be valid as a whole."""
        if letter.channel == "ingest" and letter.source:
            return self.parse_vendor(letter.source, letter.body, letter.headers)
        if not _looks_like_batch(letter.body):
            return [self.parse_single(letter.body, "application/json")]
        kind = "application/cloudevents-batch+json" if letter.body.strip().startswith(b"[") else "application/x-ndjson"
        parsed = self.parse_batch(letter.body, kind)
        if parsed.invalid:
            raise InvalidInput(
                f"{len(parsed.invalid)} of the batch's events are still not valid",
                hint="nothing from this dead letter was stored",
                errors=[error for _, _, exc in parsed.invalid for error in exc.errors],
            )
        return [event for _, event in parsed.valid]

    def replay(self, dead_letter_id: str) -> list[Receipt]:
        """Run a dead letter through today's validation and mappings again; on success it is marked replayed."""
        letter = self.dead_letters.get(dead_letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {dead_letter_id!r}", hint="list them with `opsrail events dead-letters`")
        if letter.status == "replayed":
            raise Conflict(
                f"dead letter {dead_letter_id} was already replayed",
                hint="its events are stored; see `opsrail events list`",
            )
        if letter.truncated:
            raise InvalidInput(
                f"dead letter {dead_letter_id} kept only the first {KEPT_BODY_BYTES} bytes of the payload",
                hint="ask the sender to resend it in smaller parts",
            )
        try:
            events = self._parse_letter(letter)
        except (InvalidInput, NotFound) as exc:
            self.dead_letters.record_attempt(
                letter.id,
                replayed_at=None,
                receipts=None,
                reason=exc.detail,
                errors=[e.as_dict() for e in exc.errors],
            )
            exc.extra["dead_letter_id"] = letter.id
            raise
        receipts = self.store(events, "replay")
        self.dead_letters.record_attempt(
            letter.id,
            replayed_at=self.clock.now(),
            receipts=[{**r.as_dict(), "status": r.status} for r in receipts],
            reason=None,
            errors=None,
        )
        return receipts


def _looks_like_batch(body: bytes) -> bool:
    # NDJSON only when every line opens an object: a pretty-printed single event spans lines too.
    stripped = body.strip()
    if stripped.startswith(b"["):
        return True
    lines = [line for line in stripped.splitlines() if line.strip()]
    return len(lines) > 1 and all(line.lstrip().startswith(b"{") for line in lines)


def assemble_batch(parsed: ParsedBatch, receipts: list[Receipt], letters: list[DeadLetter]) -> BatchOutcome:
    results = [
        ItemResult(index, receipt.status, receipt) for (index, _), receipt in zip(parsed.valid, receipts, strict=True)
    ]
    if letters:
        for (index, _, error), letter in zip(parsed.invalid, letters, strict=True):
            results.append(
                ItemResult(index, "rejected", dead_letter_id=letter.id, errors=[e.as_dict() for e in error.errors])
            )
        results.sort(key=lambda r: r.index)
    return BatchOutcome(results)
