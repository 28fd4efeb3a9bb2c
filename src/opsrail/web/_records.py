"""Decision records, events and dead letters, KPIs over time, and the audit trail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from opsrail.model import InvalidInput, OpsrailError
from opsrail.services import EventQuery
from opsrail.web._charts import line_chart
from opsrail.web._render import render
from opsrail.web._routing import console_router
from opsrail.web._security import Viewer, page, read_form, text_field

router = console_router()
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
Filter = Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00-\x1f]*$")]
TIERS = ("autonomous", "approval", "advisory")
RECORD_STATUSES = ("pending", "decided", "accepted", "overridden", "rejected")

# -- decisions ---------------------------------------------------------------------------------------------------


@router.get("/decisions")
async def decisions(
    request: Request,
    viewer: Annotated[Viewer, page("decision_record.read")],
    decision: Filter = None,
    tier: Filter = None,
    status: Filter = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    overridden: Annotated[bool, Query()] = False,
) -> Response:
    if overridden:
        status = "overridden"
    filters = {"decision": decision or None, "tier": tier or None, "status": status or None, "version": version}
    if filters["tier"] not in (None, *TIERS) or filters["status"] not in (None, *RECORD_STATUSES):
        raise InvalidInput("unknown tier or status", hint="pick one from the lists")
    records = await run_in_threadpool(lambda: viewer.container.decisions.records(**filters, limit=100))
    catalog = await run_in_threadpool(viewer.container.decisions.catalog) if viewer.may("decision.read") else []
    return render(
        "decisions.html",
        {
            "viewer": viewer,
            "nav": "decisions",
            "title": "Decisions",
            "records": records,
            "catalog": catalog,
            "filters": filters,
            "tiers": TIERS,
            "statuses": RECORD_STATUSES,
        },
    )


@router.get("/decisions/catalog/{name}")
async def decision(
    request: Request,
    name: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$")],
    viewer: Annotated[Viewer, page("decision.read")],
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """A decision table's inputs, outputs and rules, or a model's figures, with the decision's policy."""
    found = await run_in_threadpool(viewer.container.decisions.describe, name, version)
    return render("decision_catalog.html", {"viewer": viewer, "nav": "decisions", "title": name, "found": found})


@router.get("/decisions/{record_id}")
async def decision_page(
    request: Request,
    record_id: Id,
    viewer: Annotated[Viewer, page("decision_record.read")],
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    record = await run_in_threadpool(viewer.container.decisions.record, record_id)
    return render(
        "decision.html",
        {
            "viewer": viewer,
            "nav": "decisions",
            "title": f"Decision {record_id}",
            "record": record,
            "error": None,
            "notice": "Override recorded." if done == "overridden" else None,
        },
    )


@router.post("/decisions/{record_id}/override")
async def override(
    request: Request, record_id: Id, viewer: Annotated[Viewer, page("decision_record.override")]
) -> Response:
    form = await read_form(request, viewer.csrf)
    service = viewer.container.decisions
    reason, raw = "", ""
    try:
        reason = text_field(form, "reason") or ""
        raw = text_field(form, "value", limit=20_000) or ""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidInput("the new value is not JSON", hint='e.g. {"team": "billing"}') from None
        if not isinstance(value, dict):
            raise InvalidInput("the new value is a JSON object", hint='e.g. {"team": "billing"}')
        await run_in_threadpool(service.override, record_id, value, reason, viewer.principal.name)
    except OpsrailError as error:
        record = await run_in_threadpool(service.record, record_id)
        return render(
            "decision.html",
            {
                "viewer": viewer,
                "nav": "decisions",
                "title": f"Decision {record_id}",
                "record": record,
                "error": error,
                "notice": None,
                "draft": {"value": raw, "reason": reason},  # what the person typed comes back with the error
            },
            status=error.http_status,
        )
    return RedirectResponse(f"/decisions/{record_id}?done=overridden", 303)


# -- events and dead letters -------------------------------------------------------------------------------------


@router.get("/events")
async def events(
    request: Request,
    viewer: Annotated[Viewer, page("event.read")],
    type: Filter = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    done: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    container = viewer.container

    def load() -> dict[str, Any]:
        found = container.ingestion.events.find(EventQuery(type=type or None, before_seq=before, limit=50))
        letters = container.ingestion.dead_letters.find(None, 50, None) if viewer.may("dead_letter.read") else []
        failures = container.connectors.failures(None, 50) if viewer.may("dead_letter.read") else []
        return {
            "events": [e.as_dict() for e in found],
            "letters": [d.as_dict(include_body=False) for d in letters],
            "failures": failures,
            "next": found[-1].seq if len(found) == 50 else None,
        }

    view = await run_in_threadpool(load)
    notice = f"Replayed {done}." if done else None
    return render(
        "events.html",
        {"viewer": viewer, "nav": "events", "title": "Events", "type": type or "", "notice": notice, **view},
    )


@router.post("/dead-letters/{letter_id}/replay")
async def replay_letter(
    request: Request, letter_id: Id, viewer: Annotated[Viewer, page("dead_letter.replay")]
) -> Response:
    await read_form(request, viewer.csrf)
    await run_in_threadpool(viewer.container.ingestion.replay, letter_id)
    return RedirectResponse(f"/events?done={letter_id}", 303)


@router.post("/connector-failures/{letter_id}/replay")
async def replay_failure(
    request: Request, letter_id: Id, viewer: Annotated[Viewer, page("dead_letter.replay")]
) -> Response:
    await read_form(request, viewer.csrf)
    await viewer.container.connectors.replay(letter_id, viewer.principal.name)
    return RedirectResponse(f"/events?done={letter_id}", 303)


# -- KPIs --------------------------------------------------------------------------------------------------------

PERIODS: dict[str, tuple[timedelta, int, str]] = {
    "15m": (timedelta(minutes=1), 15, "%H:%M"),
    "1h": (timedelta(minutes=5), 12, "%H:%M"),
    "24h": (timedelta(hours=2), 12, "%H:%M"),
    "7d": (timedelta(days=1), 7, "%b %d"),
    "30d": (timedelta(days=3), 10, "%b %d"),
}
CHARTED = (
    ("time_to_provision_hours", "Time to provision", "hours"),
    ("time_to_escalate_minutes", "Time to escalate", "minutes"),
    ("sla_breach_rate", "SLA breach rate", "share"),
    ("manual_touches", "Manual touches", "touches"),
    ("billing_exceptions", "Billing exceptions", "exceptions"),
    ("credit_approval_cycle_hours", "Credit approval cycle time", "hours"),
    ("override_rate", "Override rate", "share"),
    ("acceptance_rate", "Decision acceptance rate", "share"),
)
SEGMENTS = ("region", "tier", "channel")


_CACHE_SECONDS = 20.0
_cache: dict[tuple[int, str, str, datetime], tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def kpi_series(viewer: Viewer, period: str, by: str) -> dict[str, Any]:
    """:func:`compute_series`, kept for 20 s: each bucket reads the whole log, and many people open this page."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    key = (id(viewer.container), period, by, end)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None and time.monotonic() - found[0] < _CACHE_SECONDS:
            return found[1]
    view = compute_series(viewer, period, by, end)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = (time.monotonic(), view)
    return view


def compute_series(viewer: Viewer, period: str, by: str, end: datetime) -> dict[str, Any]:
    """Each charted KPI per bucket of ``period`` ending at ``end``, overall and per segment, plus the whole
    period's figures."""
    size, count, fmt = PERIODS[period]
    service = viewer.container.kpis
    starts = [end - size * (count - i) for i in range(count)]
    reports = [service.compute(start, start + size, by) for start in starts]
    labels = [start.strftime(fmt) for start in starts]
    charts = []
    for key, label, unit in CHARTED:
        segments = sorted({name for r in reports for name in (r["kpis"][key].get("by") or {})})
        series: dict[str, list[float | None]] = {"all": [_value(r["kpis"][key]) for r in reports]}
        for name in segments:
            series[name] = [_value((r["kpis"][key].get("by") or {}).get(name)) for r in reports]
        charts.append({"key": key, "label": label, "unit": unit, "svg": line_chart(labels, series, unit)})
    whole = service.compute(starts[0], end, None)["kpis"]
    return {"charts": charts, "whole": whole, "since": starts[0], "until": end}


def default_period(first_run: datetime | None) -> str:
    """The shortest period that reaches back to the first run, so a young installation's charts are not empty."""
    age = datetime.now(UTC) - first_run if first_run is not None else timedelta(days=365)
    for name, (size, count, _) in PERIODS.items():
        if age <= size * count:
            return name
    return "30d"


def _value(figures: Any) -> float | None:
    if not isinstance(figures, dict):
        return None
    value = figures.get("value")
    if isinstance(value, dict):  # counts split by kind: chart the total
        return float(sum(v for v in value.values() if isinstance(v, int | float)))
    return None if value is None else float(value)


@router.get("/kpis")
async def kpis(
    request: Request,
    viewer: Annotated[Viewer, page("run.read")],
    period: Annotated[str | None, Query(pattern=r"^(15m|1h|24h|7d|30d)$")] = None,
    by: Annotated[str, Query(pattern=r"^(region|tier|channel)$")] = "region",
) -> Response:
    if period is None:
        period = default_period(await run_in_threadpool(viewer.container.run_queries.first_run_at))
    view = await run_in_threadpool(kpi_series, viewer, period, by)
    return render(
        "kpis.html",
        {
            "viewer": viewer,
            "nav": "kpis",
            "title": "KPIs",
            "period": period,
            "by": by,
            "periods": list(PERIODS),
            "segments": SEGMENTS,
            **view,
        },
    )


# -- audit -------------------------------------------------------------------------------------------------------


@router.get("/audit")
async def audit(request: Request, viewer: Annotated[Viewer, page("audit.read")]) -> Response:
    def load() -> dict[str, Any]:
        service = viewer.container.audit
        report = service.verify()
        recent: list[dict[str, Any]] = []
        for entry in service.export():
            recent.append(entry)
            if len(recent) > 50:
                recent.pop(0)
        return {"report": report, "recent": list(reversed(recent))}

    view = await run_in_threadpool(load)
    return render("audit.html", {"viewer": viewer, "nav": "audit", "title": "Audit", **view})


@router.get("/audit/export")
async def audit_export(request: Request, viewer: Annotated[Viewer, page("audit.read")]) -> Response:
    service = viewer.container.audit

    def lines() -> Iterator[bytes]:
        for entry in service.export():
            yield orjson.dumps(entry, default=str) + b"\n"

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="opsrail-audit-{stamp}.ndjson"'},
    )
