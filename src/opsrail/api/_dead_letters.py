"""Dead-letter routes: see what was rejected and why, and replay it once the cause is fixed."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import Principal
from opsrail.model import NotFound

router = APIRouter(tags=["dead letters"])
LetterId = Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)]


@router.get("/v1/dead-letters", summary="List rejected payloads, newest first")
async def list_dead_letters(
    request: Request,
    _who: Annotated[Principal, Depends(requires("dead_letter.read"))],
    status: Annotated[Literal["pending", "replayed"] | None, Query()] = None,
    before: Annotated[
        str | None, Query(pattern=PLAIN_TEXT, max_length=64, description="page cursor: ids below this")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    store = container_of(request).ingestion.dead_letters
    items = await run_in_threadpool(store.find, status, limit, before)
    body = {
        "items": [d.as_dict(include_body=False) for d in items],
        "next_before": items[-1].id if len(items) == limit else None,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/v1/dead-letters/{dead_letter_id}", summary="One rejected payload with its body")
async def get_dead_letter(
    request: Request, dead_letter_id: LetterId, _who: Annotated[Principal, Depends(requires("dead_letter.read"))]
) -> Response:
    letter = await run_in_threadpool(container_of(request).ingestion.dead_letters.get, dead_letter_id)
    if letter is None:
        raise NotFound(f"no dead letter {dead_letter_id!r}")
    return Response(orjson.dumps(letter.as_dict()), media_type="application/json")


@router.post("/v1/dead-letters/{dead_letter_id}:replay", summary="Run a rejected payload through ingestion again")
async def replay_dead_letter(
    request: Request, dead_letter_id: LetterId, _who: Annotated[Principal, Depends(requires("dead_letter.replay"))]
) -> Response:
    receipts = await run_in_threadpool(container_of(request).ingestion.replay, dead_letter_id)
    body = {"dead_letter_id": dead_letter_id, "events": [{**r.as_dict(), "status": r.status} for r in receipts]}
    return Response(orjson.dumps(body), media_type="application/json")
