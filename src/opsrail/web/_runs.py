"""Runs (filtered, paginated), a run's page with its step graph and timeline, and the playbooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response

from opsrail.model import InvalidInput, NotFound, OpsrailError
from opsrail.web._graph import Node, dag_svg
from opsrail.web._render import render
from opsrail.web._routing import console_router, error_page
from opsrail.web._security import Viewer, page, read_form, text_field

router = console_router()
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
Filter = Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00-\x1f]*$")]
STATUSES = ("running", "paused", "succeeded", "failed", "cancelled")
SLA_STATES = ("breached", "near_breach", "running", "met")
REGIONS = ("EU", "US", "APAC")
PAGE = 50
MAX_UPLOAD = 256 * 1024


def _cursor(text: str | None) -> tuple[datetime, str] | None:
    if not text:
        return None
    moment, _, run_id = text.partition("|")
    try:
        return datetime.fromisoformat(moment), run_id
    except ValueError:
        raise InvalidInput("the page cursor is not valid", hint="start again from the first page") from None


@router.get("/runs")
async def runs(
    request: Request,
    viewer: Annotated[Viewer, page("run.read")],
    playbook: Filter = None,
    status: Filter = None,
    account: Filter = None,
    region: Filter = None,
    sla: Filter = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    filters = {
        k: v or None
        for k, v in {"playbook": playbook, "status": status, "account": account, "region": region, "sla": sla}.items()
    }
    if filters["status"] not in (None, *STATUSES) or filters["sla"] not in (None, *SLA_STATES):
        raise InvalidInput("unknown status or SLA state", hint="pick one from the lists")
    container = viewer.container

    def load() -> tuple[list[dict[str, Any]], list[str]]:
        items = container.run_queries.page(**filters, before=_cursor(before), limit=PAGE + 1)
        return items, sorted({p["id"] for p in container.automation.playbooks()})

    items, playbooks = await run_in_threadpool(load)
    more = len(items) > PAGE
    items = items[:PAGE]
    following = f"{items[-1]['created_at'].isoformat()}|{items[-1]['id']}" if more else None
    return render(
        "runs.html",
        {
            "viewer": viewer,
            "nav": "runs",
            "title": "Runs",
            "runs": items,
            "filters": filters,
            "next": following,
            "playbooks": playbooks,
            "statuses": STATUSES,
            "sla_states": SLA_STATES,
            "regions": REGIONS,
            "first_page": before is None,
        },
    )


def _run_view(viewer: Viewer, run_id: str) -> dict[str, Any]:
    container = viewer.container
    run = container.automation.show(run_id)
    playbook = container.automation.playbook(run["playbook"], run["version"])
    states = {s["id"]: s["status"] for s in run["steps"]}
    graph = dag_svg([Node(s.id, s.kind, tuple(s.needs)) for s in playbook.steps], states, link_prefix="#step-")
    records = container.decisions.records(run_id=run_id, limit=100) if viewer.may("decision_record.read") else []
    tasks = [t for t in container.automation.tasks(None, 100) if t["run_id"] == run_id]
    audit: list[dict[str, Any]] = []
    if viewer.may("audit.read"):
        subjects = [run_id, *(r["id"] for r in records), *(t["id"] for t in tasks)]
        audit = container.run_queries.audit_entries(subjects)
    return {
        "run": run,
        "graph": graph,
        "records": records,
        "open_tasks": tasks,
        "audit": audit,
        "title_text": playbook.title or playbook.id,
    }


@router.get("/runs/{run_id}")
async def run_page(
    request: Request,
    run_id: Id,
    viewer: Annotated[Viewer, page("run.read")],
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    view = await run_in_threadpool(_run_view, viewer, run_id)
    live = await run_in_threadpool(viewer.container.run_queries.latest_change)
    notice = {
        "cancel": "Run cancelled.",
        "pause": "Run paused.",
        "resume": "Run resumed.",
        "retry-step": "Step retried.",
    }.get(done or "")
    return render(
        "run.html",
        {
            "viewer": viewer,
            "nav": "runs",
            "title": f"Run {run_id}",
            "live": live,
            "notice": notice,
            "error": None,
            **view,
        },
    )


@router.post("/runs/{run_id}/control")
async def control(request: Request, run_id: Id, viewer: Annotated[Viewer, page("run.control")]) -> Response:
    form = await read_form(request, viewer.csrf)
    action = text_field(form, "action", limit=16)
    step = text_field(form, "step", limit=64)
    automation = viewer.container.automation
    try:
        if action not in ("cancel", "pause", "resume", "retry-step"):
            raise InvalidInput("choose cancel, pause, resume or retry-step")
        if action == "retry-step" and not step:
            raise InvalidInput("name the step to retry")
        await run_in_threadpool(automation.control, run_id, action.replace("-", "_"), step, viewer.principal.name)
    except OpsrailError as error:
        view = await run_in_threadpool(_run_view, viewer, run_id)
        return render(
            "run.html",
            {
                "viewer": viewer,
                "nav": "runs",
                "title": f"Run {run_id}",
                "live": None,
                "notice": None,
                "error": error,
                **view,
            },
            status=error.http_status,
        )
    return RedirectResponse(f"/runs/{run_id}?done={action}", 303)


# -- playbooks ---------------------------------------------------------------------------------------------------


def _playbooks(viewer: Viewer) -> list[dict[str, Any]]:
    """One entry per playbook: its versions (newest first), the active one and any canary."""
    grouped: dict[str, dict[str, Any]] = {}
    for item in viewer.container.automation.playbooks():
        entry = grouped.setdefault(item["id"], {"id": item["id"], "versions": [], "active": None, "canary": None})
        entry["versions"].insert(0, item)
        if item["active"]:
            entry["active"] = item["version"]
        if item["canary_percent"]:
            entry["canary"] = (item["version"], item["canary_percent"])
    return [grouped[key] for key in sorted(grouped)]


@router.get("/playbooks")
async def playbooks(request: Request, viewer: Annotated[Viewer, page("playbook.read")]) -> Response:
    items = await run_in_threadpool(_playbooks, viewer)
    return render(
        "playbooks.html",
        {
            "viewer": viewer,
            "nav": "playbooks",
            "title": "Playbooks",
            "playbooks": items,
            "error": None,
            "published": None,
        },
    )


def _playbook_view(viewer: Viewer, playbook_id: str, version: int | None) -> dict[str, Any]:
    automation = viewer.container.automation
    listed = next((p for p in _playbooks(viewer) if p["id"] == playbook_id), None)
    if listed is None:
        raise NotFound(f"no playbook {playbook_id!r}", hint="see the list of playbooks")
    chosen = automation.playbook(playbook_id, version)
    graph = dag_svg([Node(s.id, s.kind, tuple(s.needs)) for s in chosen.steps], None)
    return {
        "listed": listed,
        "playbook": chosen,
        "graph": graph,
        "unresolved": automation.unresolved(chosen),
        "run_input": orjson.dumps(automation.input_skeleton(chosen), option=orjson.OPT_INDENT_2).decode(),
    }


@router.get("/playbooks/{playbook_id}")
async def playbook_page(
    request: Request,
    playbook_id: Id,
    viewer: Annotated[Viewer, page("playbook.read")],
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    done: Annotated[Literal["active", "canary"] | None, Query()] = None,
) -> Response:
    view = await run_in_threadpool(_playbook_view, viewer, playbook_id, version)
    notice = {"active": "This version is now the active one.", "canary": "The canary share is set."}.get(done or "")
    return render(
        "playbook.html",
        {"viewer": viewer, "nav": "playbooks", "title": playbook_id, "notice": notice, "error": None, **view},
    )


@router.post("/playbooks/{playbook_id}/runs")
async def start_run(request: Request, playbook_id: Id, viewer: Annotated[Viewer, page("run.start")]) -> Response:
    form = await read_form(request, viewer.csrf)
    text = text_field(form, "input", limit=100_000) or "{}"
    version_text = text_field(form, "version", limit=10)
    version = int(version_text) if version_text and version_text.isdigit() and int(version_text) < 2**31 else None
    check = form.get("skip_check") != "yes"
    automation = viewer.container.automation
    try:
        try:
            run_input = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the input is not valid JSON: {exc}", hint='e.g. {"id": "acme:INC-1"}') from None
        if not isinstance(run_input, dict):
            raise InvalidInput("the input must be a JSON object", hint='e.g. {"id": "acme:INC-1"}')
        run_id = await run_in_threadpool(
            lambda: automation.start(playbook_id, run_input, version, viewer.principal.name, check_input=check)
        )
    except OpsrailError as error:
        view = await run_in_threadpool(_playbook_view, viewer, playbook_id, version)
        context = {"viewer": viewer, "nav": "playbooks", "title": playbook_id, "notice": None, "error": error}
        return render("playbook.html", {**context, **view, "run_input": text}, status=error.http_status)
    return RedirectResponse(f"/runs/{run_id}", 303)


@router.post("/playbooks/{playbook_id}/activate")
async def activate(request: Request, playbook_id: Id, viewer: Annotated[Viewer, page("playbook.activate")]) -> Response:
    form = await read_form(request, viewer.csrf)
    version_text = text_field(form, "version", limit=10) or ""
    canary_text = text_field(form, "canary", limit=3)
    try:
        if not version_text.isdigit() or not 1 <= int(version_text) < 2**31:
            raise InvalidInput("choose a version to activate")
        if canary_text is not None and not canary_text.isdigit():
            raise InvalidInput("the canary share is a whole percentage from 0 to 100")
        version, canary = int(version_text), None if canary_text is None else int(canary_text)
        automation = viewer.container.automation
        await run_in_threadpool(automation.activate, playbook_id, version, canary, viewer.principal.name)
    except OpsrailError as error:
        return error_page(request, error)
    done = "active" if canary is None else "canary"
    return RedirectResponse(f"/playbooks/{playbook_id}?version={version}&done={done}", 303)


@router.post("/playbooks")
async def publish(request: Request, viewer: Annotated[Viewer, page("playbook.publish")]) -> Response:
    form = await read_form(request, viewer.csrf)
    upload = form.get("file")
    pasted = text_field(form, "document", limit=MAX_UPLOAD)
    activate: Literal["yes"] | None = "yes" if form.get("activate") == "yes" else None
    automation = viewer.container.automation
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(MAX_UPLOAD + 1)
            if len(raw) > MAX_UPLOAD:
                raise InvalidInput("the playbook file is larger than 256 KiB")
            try:
                document, filename = raw.decode("utf-8"), upload.filename
            except UnicodeDecodeError:
                raise InvalidInput(f"{upload.filename} is not UTF-8 text") from None
        elif pasted:
            document, filename = pasted, "pasted.yaml"
        else:
            raise InvalidInput(
                "choose a YAML file or paste the playbook", hint="docs/playbooks.md describes the format"
            )
        if activate:
            viewer.container.authorization.check(viewer.principal, "playbook.activate")
        published = await run_in_threadpool(
            lambda: automation.publish_text(document, filename, viewer.principal.name, activate=activate is not None)
        )
    except OpsrailError as error:
        items = await run_in_threadpool(_playbooks, viewer)
        return render(
            "playbooks.html",
            {
                "viewer": viewer,
                "nav": "playbooks",
                "title": "Playbooks",
                "playbooks": items,
                "error": error,
                "published": None,
            },
            status=error.http_status,
        )
    return RedirectResponse(f"/playbooks/{published.id}?version={published.version}", 303)
