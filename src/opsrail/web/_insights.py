"""The console's insights page: drift between segments, automation health, models in production, conformance per
playbook version, and one playbook's variants and process map (the same reports as ``opsrail insights`` and
``/v1/insights``); and the window's runs as an event log file to download."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from opsrail.insights import readable_hours
from opsrail.model import OpsrailError
from opsrail.services import LOG_TASKS
from opsrail.web._process_map import process_map_svg
from opsrail.web._render import render
from opsrail.web._routing import console_router
from opsrail.web._security import Viewer, page

router = console_router()

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
SEGMENTS = ("region", "channel", "tier")


_CACHE_SECONDS = 20.0
_cache: dict[tuple[int, str, str, str | None, str, str | None], tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _cached_view(
    viewer: Viewer, window: str, by: str, playbook: str | None, order: str, risk: str | None = None
) -> dict[str, Any]:
    """:func:`_view`, kept for 20 s: three reports read the window's runs, and many people may open this page."""
    key = (id(viewer.container), window, by, playbook, order, risk)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None and time.monotonic() - found[0] < _CACHE_SECONDS:
            return found[1]
    view = _view(viewer, window, by, playbook, order, risk)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = (time.monotonic(), view)
    return view


def _view(
    viewer: Viewer, window: str, by: str, playbook: str | None, order: str, risk: str | None = None
) -> dict[str, Any]:
    insights = viewer.container.insights
    span = WINDOWS[window]
    since = insights.clock.now() - span if span is not None else None
    view: dict[str, Any] = {
        "drift": insights.drift(by, since, None),
        "health": insights.health(since, None),
        "conformance": insights.conformance(None, since, None),
        "models": insights.models(since, None, by=by),
        "playbooks": sorted({item["id"] for item in viewer.container.automation.playbooks()}),
        "process": None,
        "process_svg": "",
        "process_error": None,
        "at_risk": None,
        "risk_error": None,
    }
    if risk:
        try:
            view["at_risk"] = insights.at_risk(risk, playbook_id=playbook, limit=10)
        except OpsrailError as error:
            view["risk_error"] = str(error)
    if playbook:
        try:
            view["process"] = insights.process(playbook, since, None, top=10, order=order)
            view["process_svg"] = process_map_svg(view["process"]["map"])
        except OpsrailError as error:
            view["process_error"] = str(error)
    return view


@router.get("/insights")
async def insights_page(
    request: Request,
    viewer: Annotated[Viewer, page("run.read")],
    window: Annotated[str, Query(pattern=r"^(24h|7d|30d|all)$")] = "30d",
    by: Annotated[str, Query(pattern=r"^(region|channel|tier)$")] = "region",
    playbook: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f]*$")] = None,
    order: Annotated[str, Query(pattern=r"^(ended|playbook)$")] = "ended",
    risk: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f]*$")] = None,
) -> Response:
    view = await run_in_threadpool(_cached_view, viewer, window, by, playbook or None, order, risk or None)
    # Read on every request (one query): a model trained a moment ago is offered at once.
    risk_models = [
        item["name"]
        for item in await run_in_threadpool(viewer.container.decisions.catalog)
        if item.get("kind") == "model" and item.get("task") in LOG_TASKS
    ]
    return render(
        "insights.html",
        {
            "viewer": viewer,
            "nav": "insights",
            "title": "Insights",
            "window": window,
            "windows": list(WINDOWS),
            "by": by,
            "segments": SEGMENTS,
            "playbook": playbook,
            "order": order,
            "risk": risk,
            "risk_models": risk_models,
            "duration": readable_hours,
            **view,
        },
    )


@router.get("/insights/log")
async def insights_log(
    request: Request,
    viewer: Annotated[Viewer, page("run.read")],
    fmt: Annotated[str, Query(alias="format", pattern=r"^(csv|xes|parquet)$")] = "csv",
    window: Annotated[str, Query(pattern=r"^(24h|7d|30d|all)$")] = "30d",
    playbook: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f]*$")] = None,
) -> Response:
    """The window's runs (of one playbook, or all) as an event log file (``opsrail insights export``)."""
    insights = viewer.container.insights
    span = WINDOWS[window]
    since = insights.clock.now() - span if span is not None else None
    zipped = fmt != "parquet"  # a browser download: CSV and XES compress about tenfold
    path, written = await run_in_threadpool(
        lambda: insights.export_log_file(fmt, zipped, since, None, playbook_id=playbook or None)
    )
    return FileResponse(
        path,
        media_type=written["media_type"],
        filename=f"opsrail-{playbook or 'runs'}-{window}{''.join(path.suffixes)}",
        background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
    )
