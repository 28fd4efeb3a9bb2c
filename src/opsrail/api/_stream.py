"""``GET /v1/stream``: state changes as server-sent events, resumable from a cursor.

Each event's ``id`` is its run-log sequence number; a client that reconnects with ``Last-Event-ID`` (or
``?after=``) gets everything after it, so nothing is missed and nothing needs polling on the client's side.

On PostgreSQL, workers save runs concurrently: a sequence number is taken at insert and its transaction may commit
after a later one's. Entries are therefore sent up to the first missing number only; a gap still open after
``GAP_GRACE_SECONDS`` is an insert that was rolled back (a run saved by someone else meanwhile), and is passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from opsrail.api._auth import container_of, requires
from opsrail.governance import Principal

router = APIRouter(tags=["stream"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
GAP_GRACE_SECONDS = 2.0

Gap = tuple[int, float]
"""(the position after which a number is missing, when that was first seen)."""


def sendable(
    batch: Sequence[dict[str, Any]], position: int, gap: Gap | None, now: float, grace: float = GAP_GRACE_SECONDS
) -> tuple[list[dict[str, Any]], Gap | None]:
    """The entries of ``batch`` (oldest first, all after ``position``) that may be sent now, and the open gap.

    Sending stops before a missing number, which may belong to a transaction still committing, until that same gap
    has been open for ``grace`` seconds."""
    ready: list[dict[str, Any]] = []
    for change in batch:
        seq = int(change["seq"])
        if seq != position + 1:
            if gap is None or gap[0] != position:
                return ready, (position, now)
            if now - gap[1] < grace:
                return ready, gap
        ready.append(change)
        position, gap = seq, None
    return ready, None


@router.get("/v1/stream", summary="Run and step state changes as server-sent events (text/event-stream)")
async def stream(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="resume after this event id")] = None,
    run: Annotated[str | None, Query(max_length=64, description="only this run's changes")] = None,
) -> StreamingResponse:
    header = request.headers.get("last-event-id", "")
    cursor = after if after is not None else (int(header) if header.isdigit() else 0)
    service = container_of(request).automation

    async def events() -> AsyncIterator[bytes]:
        position = cursor
        quiet = 0.0
        gap: Gap | None = None
        yield b": opsrail change stream\n\n"
        while not await request.is_disconnected():
            batch, gap = sendable(
                await run_in_threadpool(service.changes, position, 500), position, gap, time.monotonic()
            )
            for change in batch:
                position = change["seq"]
                if run is None or change["run_id"] == run:
                    data = orjson.dumps(change, default=str).decode()
                    yield f"id: {position}\nevent: {change['activity']}\ndata: {data}\n\n".encode()
            if batch:
                quiet = 0.0
                continue
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:  # a comment keeps proxies from closing an idle stream
                quiet = 0.0
                yield b": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
