"""Routes for insights: process maps and variants, conformance, drift between segments, automation health, and
the runs as an event log file (definitions in ``opsrail.services._insights`` and ``opsrail.insights``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.api._kpis import Moment
from opsrail.governance import Principal
from opsrail.services import InsightService

router = APIRouter(tags=["insights"])
PlaybookId = Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)]
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="only the runs of this version")]


async def _answer(request: Request, since: str | None, until: str | None, compute: Callable[..., Any]) -> Response:
    service: InsightService = container_of(request).insights

    def run() -> Any:
        start, end = service.window(since, until)
        return compute(service, start, end)

    body = await run_in_threadpool(run)
    return Response(orjson.dumps(body, default=str), media_type="application/json")


@router.get(
    "/v1/insights/process/{playbook_id}",
    summary="The process map and the most frequent variants of a playbook's runs started in the window",
)
async def process(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    playbook_id: PlaybookId,
    version: Version = None,
    since: Moment = None,
    until: Moment = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 10,
    order: Annotated[
        Literal["ended", "playbook"],
        Query(description="a variant's steps in the order they ended, or in the playbook's order"),
    ] = "ended",
) -> Response:
    return await _answer(
        request,
        since,
        until,
        lambda s, start, end: s.process(playbook_id, start, end, version=version, top=top, order=order),
    )


@router.get(
    "/v1/insights/conformance",
    summary="Each playbook version's runs replayed against that version: fitness, deviations, interventions",
)
async def conformance(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    playbook: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    version: Version = None,
    since: Moment = None,
    until: Moment = None,
) -> Response:
    return await _answer(
        request, since, until, lambda s, start, end: s.conformance(playbook, start, end, version=version)
    )


@router.get(
    "/v1/insights/drift",
    summary="Where one segment is decided or served differently: outcomes and times compared between segments",
)
async def drift(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    by: Annotated[Literal["region", "channel", "tier"], Query()] = "region",
    since: Moment = None,
    until: Moment = None,
    min_n: Annotated[int, Query(ge=2, le=1_000_000)] = 20,
    alpha: Annotated[float, Query(gt=0.0, lt=1.0)] = 0.01,
    min_difference: Annotated[float, Query(ge=0.0, lt=1.0)] = 0.10,
    min_ratio: Annotated[float, Query(ge=1.0, le=1000.0)] = 1.5,
    min_gap_minutes: Annotated[float, Query(ge=0.0, le=1_000_000.0)] = 1.0,
) -> Response:
    from opsrail.insights import DriftSettings

    settings = DriftSettings(
        min_n=min_n, alpha=alpha, min_difference=min_difference, min_ratio=min_ratio, min_gap_minutes=min_gap_minutes
    )
    return await _answer(request, since, until, lambda s, start, end: s.drift(by, start, end, settings))


@router.get(
    "/v1/insights/health",
    summary="Automation health: rules never matched, decisions overridden, confidence shifts, failing steps, ...",
)
async def health(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    since: Moment = None,
    until: Moment = None,
) -> Response:
    return await _answer(request, since, until, lambda s, start, end: s.health(start, end))


@router.get(
    "/v1/insights/models",
    summary="Model monitoring: routes, confidence, how people settled the answers, calibration in production",
)
async def models(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    decision: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    by: Annotated[Literal["region", "channel", "tier"], Query()] = "region",
    since: Moment = None,
    until: Moment = None,
    min_bin: Annotated[int, Query(ge=2, le=1_000_000)] = 20,
    min_gap: Annotated[float, Query(ge=0.0, le=1.0)] = 0.10,
    alpha: Annotated[float, Query(gt=0.0, lt=1.0)] = 0.01,
) -> Response:
    from opsrail.insights import MonitoringSettings

    settings = MonitoringSettings(min_bin=min_bin, min_gap=min_gap, alpha=alpha)
    return await _answer(
        request, since, until, lambda s, start, end: s.models(start, end, by=by, decision=decision, settings=settings)
    )


@router.get(
    "/v1/insights/at-risk",
    summary="The open runs most at risk, scored by an event-log model trained on an export of the finished runs",
)
async def runs_at_risk(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    model: Annotated[str, Query(pattern=PLAIN_TEXT, max_length=64, description="an event-log model's name")],
    playbook: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Response:
    service: InsightService = container_of(request).insights
    body = await run_in_threadpool(lambda: service.at_risk(model, playbook_id=playbook, limit=limit))
    return Response(orjson.dumps(body, default=str), media_type="application/json")


@router.get(
    "/v1/insights/log",
    summary="The finished runs started in the window as an event log file: CSV, XES or Parquet (a case a run, an "
    "event a step end)",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the event log file",
            "content": {
                "text/csv": {},
                "application/xml": {},
                "application/vnd.apache.parquet": {},
                "application/gzip": {},
            },
        }
    },
)
async def event_log(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    fmt: Annotated[Literal["csv", "xes", "parquet"], Query(alias="format", description="the file's format")] = "csv",
    gzip: Annotated[bool, Query(description="gzip the CSV or XES file")] = False,
    playbook: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    since: Moment = None,
    until: Moment = None,
    include_open: Annotated[bool, Query(description="also the runs still open (left out by default)")] = False,
) -> Response:
    service: InsightService = container_of(request).insights

    def run() -> tuple[FilePath, dict[str, Any]]:
        start, end = service.window(since, until)
        return service.export_log_file(fmt, gzip, start, end, playbook_id=playbook, include_open=include_open)

    path, written = await run_in_threadpool(run)
    return FileResponse(
        path,
        media_type=written["media_type"],
        filename=path.name,
        headers={
            "X-Opsrail-Runs": str(written["runs"]),
            "X-Opsrail-Events": str(written["events"]),
            "X-Opsrail-Open-Runs-Left-Out": str(written["open_runs_left_out"]),
        },
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )
