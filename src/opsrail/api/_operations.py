"""Operational routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import container_of, requires
from opsrail.api._metrics import Metrics
from opsrail.api._problems import problem_response
from opsrail.governance import Principal

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz", summary="Readiness: the database answers, its schema is current, the writer runs")
async def readyz(request: Request) -> Response:
    container = container_of(request)
    try:
        await run_in_threadpool(container.health.ping)
        current = await run_in_threadpool(container.health.schema_is_current)
    except Exception as exc:  # any failure to reach the store means not ready, whatever its type
        return problem_response(
            503, "Not ready", f"the database does not answer: {type(exc).__name__}", code="not-ready"
        )
    if not current:
        return problem_response(
            503, "Not ready", "the database schema is not current", code="not-ready", hint="run `opsrail db upgrade`"
        )
    if not container.ingestion.writer.running:
        return problem_response(503, "Not ready", "the ingest writer is not running", code="not-ready")
    return Response(orjson.dumps({"status": "ready"}), media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request, _who: Annotated[Principal, Depends(requires("metrics.read"))]) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
