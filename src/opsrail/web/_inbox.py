"""The inbox (a person's approvals and reviews) and a task's page, where it is decided."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from opsrail.model import InvalidInput, OpsrailError
from opsrail.web._render import render
from opsrail.web._routing import console_router
from opsrail.web._security import Viewer, page, read_form, text_field

router = console_router()
Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
_RISK = {"breached": 0, "near_breach": 1, "running": 2, "met": 3}
_FAR = datetime.max.replace(tzinfo=UTC)
_DONE = {"approved": "You approved this task.", "rejected": "You rejected this task.", "reassigned": "Reassigned."}


def inbox_items(viewer: Viewer, limit: int = 200) -> list[dict[str, Any]]:
    """The viewer's open tasks: most at risk of breaching an SLA first, then soonest due."""
    container = viewer.container
    principal = viewer.principal
    tasks = container.automation.tasks(None, limit, mine=principal.name, my_roles=tuple(principal.roles))
    states = container.run_queries.sla_states(sorted({t["run_id"] for t in tasks}))
    for task in tasks:
        task["sla"] = states.get(task["run_id"])
    tasks.sort(key=lambda t: (_RISK.get(t["sla"] or "", 4), t["due_at"] or _FAR, t["created_at"]))
    return tasks


@router.get("/inbox")
async def inbox(request: Request, viewer: Annotated[Viewer, page("task.read")]) -> Response:
    items = await run_in_threadpool(inbox_items, viewer)
    live = await run_in_threadpool(viewer.container.run_queries.latest_change)
    return render("inbox.html", {"viewer": viewer, "nav": "inbox", "title": "Inbox", "tasks": items, "live": live})


def _task_view(viewer: Viewer, task_id: str) -> dict[str, Any]:
    container = viewer.container
    task = container.automation.task(task_id)
    run = container.automation.show(task["run_id"])
    context = task.get("context") or {}
    record = None
    earlier: list[dict[str, Any]] = []
    if viewer.may("decision_record.read"):
        if context.get("decision_record"):
            try:
                record = container.decisions.record(context["decision_record"])
            except OpsrailError:
                record = None
        else:
            # An approval step: the run's own decisions (a recommended credit, a route) are what the person weighs.
            earlier = container.decisions.records(run_id=task["run_id"], limit=3)
    people = container.automation.assignees(task)  # only those who may decide it
    accounts = container.automation.service_accounts(task)
    return {
        "task": task,
        "run": run,
        "context": context,
        "record": record,
        "earlier": earlier,
        "people": people,
        "accounts": accounts,
    }


@router.get("/tasks/{task_id}")
async def task_page(
    request: Request,
    task_id: Id,
    viewer: Annotated[Viewer, page("task.read")],
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    view = await run_in_threadpool(_task_view, viewer, task_id)
    live = await run_in_threadpool(viewer.container.run_queries.latest_change)
    return render(
        "task.html",
        {
            "viewer": viewer,
            "nav": "inbox",
            "title": view["task"]["title"],
            "notice": _DONE.get(done or ""),
            "error": None,
            "live": live,
            **view,
        },
    )


@router.post("/tasks/{task_id}/decide")
async def decide(request: Request, task_id: Id, viewer: Annotated[Viewer, page("task.read")]) -> Response:
    form = await read_form(request, viewer.csrf)
    choice = text_field(form, "decision", limit=16)
    comment = text_field(form, "comment")
    automation = viewer.container.automation
    try:
        if choice not in ("approve", "reject"):
            raise InvalidInput("choose approve or reject")
        await run_in_threadpool(
            lambda: automation.decide(task_id, approve=choice == "approve", by=viewer.principal, comment=comment)
        )
    except OpsrailError as error:
        return await _task_with_error(viewer, task_id, error)
    return RedirectResponse(f"/tasks/{task_id}?done={'approved' if choice == 'approve' else 'rejected'}", 303)


@router.post("/tasks/{task_id}/reassign")
async def reassign(request: Request, task_id: Id, viewer: Annotated[Viewer, page("task.reassign")]) -> Response:
    form = await read_form(request, viewer.csrf)
    to = text_field(form, "to", limit=128)
    comment = text_field(form, "comment")
    automation = viewer.container.automation
    try:
        await run_in_threadpool(lambda: automation.reassign(task_id, to, by=viewer.principal.name, comment=comment))
    except OpsrailError as error:
        return await _task_with_error(viewer, task_id, error)
    return RedirectResponse(f"/tasks/{task_id}?done=reassigned", 303)


# Plain words for refusals the policies explain by name.
_REFUSALS = {
    "separation-of-duties": "You requested this, so someone else must decide it (separation of duties).",
}


def explained(error: OpsrailError) -> OpsrailError:
    """The refusal in the words a person needs, keeping the policy's own message as the hint."""
    for policy in error.extra.get("policies", ()):
        if policy in _REFUSALS:
            return type(error)(_REFUSALS[policy], hint=error.detail, extra=error.extra)
    return error


async def _task_with_error(viewer: Viewer, task_id: str, error: OpsrailError) -> Response:
    error = explained(error)
    view = await run_in_threadpool(_task_view, viewer, task_id)
    return render(
        "task.html",
        {
            "viewer": viewer,
            "nav": "inbox",
            "title": view["task"]["title"],
            "notice": None,
            "error": error,
            "live": None,
            **view,
        },
        status=error.http_status,
    )
