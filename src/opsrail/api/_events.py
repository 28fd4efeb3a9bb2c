"""Event routes: single CloudEvents, batches, vendor payloads, listing."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, authorize, container_of, declared, requires
from opsrail.api._bodies import BodyTooLarge, read_body
from opsrail.api._metrics import Metrics
from opsrail.api._openapi import (
    BATCH_BODY,
    BATCH_RESPONSES,
    EVENT_BODY,
    INGEST_RESPONSES,
    RECEIPT_RESPONSES,
    VENDOR_BODY,
)
from opsrail.governance import Principal
from opsrail.model import InvalidInput, NotFound, OpsrailError, UnsupportedMediaType, UtcMoment
from opsrail.services import EventQuery, IngestionService
from opsrail.services import assemble_batch as assemble_batch_results

router = APIRouter(tags=["events"])
JSON = "application/json"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _body_or_reject(request: Request, channel: str, source: str | None = None) -> bytes:
    container = container_of(request)
    try:
        return await read_body(request, container.settings.max_body_bytes)
    except BodyTooLarge as exc:
        await _reject(request, channel, exc.head, exc, source=source, body_bytes=exc.size)
        raise


async def _reject(
    request: Request,
    channel: str,
    body: bytes,
    exc: OpsrailError,
    *,
    source: str | None = None,
    body_bytes: int | None = None,
) -> None:
    service = container_of(request).ingestion
    letter = service.make_dead_letter(
        channel=channel,
        body=body,
        content_type=request.headers.get("content-type"),
        error=exc,
        source=source,
        headers=dict(request.headers),
        body_bytes=body_bytes,
    )
    await run_in_threadpool(service.reject, exc, letter)
    _metrics(request).rejected.labels(f"{channel}:{source}" if source else channel).inc()


def _count(request: Request, channel: str, accepted: int, duplicates: int) -> None:
    metrics = _metrics(request)
    if accepted:
        metrics.accepted.labels(channel).inc(accepted)
    if duplicates:
        metrics.duplicates.labels(channel).inc(duplicates)


@router.post(
    "/v1/events",
    summary="Send one CloudEvent",
    description="Structured-mode CloudEvents 1.0. A new event answers 202 with a receipt; the same "
    "(source, id) again answers 200 with the first receipt and stores nothing.",
    openapi_extra={"requestBody": EVENT_BODY, **declared("event.send")},
    responses=RECEIPT_RESPONSES,
    status_code=202,
)
async def post_event(request: Request) -> Response:
    authorize(request, "event.send")
    service: IngestionService = container_of(request).ingestion
    body = await _body_or_reject(request, "api")
    try:
        event = service.parse_single(body, request.headers.get("content-type"))
    except (InvalidInput, UnsupportedMediaType) as exc:
        await _reject(request, "api", body, exc)
        raise
    receipt = (await service.store_grouped([event], "api"))[0]
    if not receipt.duplicate:
        container_of(request).runner.wake()
    _count(request, "api", int(not receipt.duplicate), int(receipt.duplicate))
    return _json(receipt.as_dict(), 200 if receipt.duplicate else 202)


@router.post(
    "/v1/events:batch",
    summary="Send a batch of CloudEvents",
    description="NDJSON (one event a line) or a CloudEvents JSON batch (an array). Every event gets its own "
    "result; a bad event is dead-lettered alone and does not reject the others.",
    openapi_extra={"requestBody": BATCH_BODY, **declared("event.send")},
    responses=BATCH_RESPONSES,
)
async def post_batch(request: Request) -> Response:
    authorize(request, "event.send")
    service: IngestionService = container_of(request).ingestion
    body = await _body_or_reject(request, "batch")
    try:
        parsed = service.parse_batch(body, request.headers.get("content-type"))
    except (InvalidInput, UnsupportedMediaType) as exc:
        await _reject(request, "batch", body, exc)
        raise
    receipts = await service.store_grouped([e for _, e in parsed.valid], "batch")
    if any(not r.duplicate for r in receipts):
        container_of(request).runner.wake()
    letters = [
        service.make_dead_letter(channel="batch", body=raw, content_type=JSON, error=err)
        for _, raw, err in parsed.invalid
    ]
    if letters:
        await run_in_threadpool(service.dead_letters.add, letters)
        _metrics(request).rejected.labels("batch").inc(len(letters))
    outcome = assemble_batch_results(parsed, receipts, letters)
    _count(request, "batch", outcome.count("accepted"), outcome.count("duplicate"))
    return _json(outcome.as_dict())


@router.post(
    "/v1/ingest/{source}",
    summary="Send a vendor's raw payload",
    description="A webhook body or record from Jira, ServiceNow, Zendesk, Stripe, Alertmanager (or CloudEvents), "
    "mapped to canonical events. 202 when something new was stored, 200 when all of it was seen before.",
    openapi_extra={"requestBody": VENDOR_BODY, **declared("event.send")},
    responses=INGEST_RESPONSES,
    status_code=202,
)
async def post_vendor(source: Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)], request: Request) -> Response:
    authorize(request, "event.send")
    service: IngestionService = container_of(request).ingestion
    channel = "ingest"
    body = await _body_or_reject(request, channel, source)
    try:
        events = service.parse_vendor(source, body, request.headers)
    except (InvalidInput, NotFound) as exc:
        await _reject(request, channel, body, exc, source=source)
        raise
    receipts = await service.store_grouped(events, f"ingest:{source}")
    if any(not r.duplicate for r in receipts):
        container_of(request).runner.wake()
    accepted = sum(1 for r in receipts if not r.duplicate)
    _count(request, f"ingest:{source}", accepted, len(receipts) - accepted)
    result = {
        "source": source,
        "accepted": accepted,
        "duplicates": len(receipts) - accepted,
        "events": [{**r.as_dict(), "status": r.status} for r in receipts],
    }
    return _json(result, 202 if accepted else 200)


@router.get("/v1/events", summary="List stored events, newest first")
async def list_events(
    request: Request,
    _who: Annotated[Principal, Depends(requires("event.read"))],
    type: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=256, description="exact event type")] = None,
    kind: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64, description="canonical kind")] = None,
    source: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=512)] = None,
    object_id: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=256)] = None,
    since: Annotated[UtcMoment | None, Query(description="received at or after (RFC 3339)")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="page cursor: events with seq below this")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    query = EventQuery(
        type=type, kind=kind, source=source, object_id=object_id, since=since, before_seq=before, limit=limit
    )
    items = await run_in_threadpool(container_of(request).ingestion.events.find, query)
    next_before = items[-1].seq if len(items) == limit else None
    return _json({"items": [e.as_dict() for e in items], "next_before": next_before})


@router.get("/v1/sources", summary="The source mappers POST /v1/ingest/{source} knows")
async def list_sources(request: Request, _who: Annotated[Principal, Depends(requires("event.read"))]) -> Response:
    mappers = container_of(request).ingestion.mappers
    return _json({"items": [{"name": m.name, "description": m.description} for m in mappers.values()]})
