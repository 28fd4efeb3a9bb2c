"""``/console/stream``: the change stream for signed-in pages (cookie instead of bearer token).

Pages carry the run-log position they were rendered at; the script opens this stream from there and reloads the
page's live region when something changes, so nothing between render and connect is missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from opsrail.web._routing import console_router
from opsrail.web._security import Viewer, page

router = console_router()
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


@router.get("/console/stream")
async def stream(
    request: Request,
    viewer: Annotated[Viewer, page("run.read")],
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    run: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")] = None,
) -> StreamingResponse:
    service = viewer.container.automation

    async def events() -> AsyncIterator[bytes]:
        position, quiet = after, 0.0
        yield b"retry: 2000\n\n"
        while not await request.is_disconnected():
            batch = await run_in_threadpool(service.changes, position, 500)
            if batch:
                position = batch[-1]["seq"]
                if run is None or any(change["run_id"] == run for change in batch):
                    yield f"id: {position}\nevent: change\ndata: {position}\n\n".encode()
                quiet = 0.0
                continue
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield b": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
