"""The route for the seed KPIs of service delivery (see ``opsrail.services._kpis`` for their definitions)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import Principal

router = APIRouter(tags=["kpis"])
Moment = Annotated[
    str | None,
    Query(
        pattern=PLAIN_TEXT,
        max_length=64,
        description="an ISO 8601 date or time (UTC unless it names an offset), or a duration back from now: P7D",
    ),
]


@router.get("/v1/kpis", summary="Service-delivery KPIs over a time window, optionally split by account segment")
async def kpis(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    since: Moment = None,
    until: Moment = None,
    by: Annotated[Literal["region", "channel", "tier"] | None, Query()] = None,
) -> Response:
    service = container_of(request).kpis

    def compute() -> dict[str, Any]:
        start, end = service.window(since, until)
        report: dict[str, Any] = service.compute(start, end, by)
        return report

    body = await run_in_threadpool(compute)
    return Response(orjson.dumps(body, default=str), media_type="application/json")
