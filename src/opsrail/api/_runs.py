"""Routes for playbooks, runs and human tasks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import Principal

router = APIRouter(tags=["runs"])
Id = Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


@router.get("/v1/playbooks", summary="Published playbook versions")
async def list_playbooks(request: Request, _who: Annotated[Principal, Depends(requires("playbook.read"))]) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).automation.playbooks)})


@router.post(
    "/v1/playbooks",
    summary="Publish a playbook version (YAML in the `document` field) and, unless `activate` is false, make it active",
    status_code=201,
)
async def publish_playbook(
    request: Request,
    token: Annotated[Principal, Depends(requires("playbook.publish"))],
    document: Annotated[str, Body(embed=True, min_length=1, max_length=1_000_000)],
    activate: Annotated[bool, Body(embed=True, description="make it the version new runs take")] = True,
) -> Response:
    container = container_of(request)
    automation = container.automation

    def publish() -> dict[str, Any]:
        if activate:
            container.authorization.check(token, "playbook.activate")
        playbook = automation.publish_text(document, "request body", token.name, activate=activate)
        warnings = [e.as_dict() for e in automation.unresolved(playbook)]
        return {"id": playbook.id, "version": playbook.version, "active": activate, "warnings": warnings}

    return _json(await run_in_threadpool(publish), 201)


@router.get("/v1/playbooks/{playbook_id}", summary="A playbook version (the active one by default), as published")
async def show_playbook(
    request: Request,
    playbook_id: Id,
    _who: Annotated[Principal, Depends(requires("playbook.read"))],
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    automation = container_of(request).automation

    def show() -> dict[str, Any]:
        playbook = automation.playbook(playbook_id, version)
        warnings = [e.as_dict() for e in automation.unresolved(playbook)]
        return {**playbook.model_dump(mode="json", by_alias=True, exclude_none=True), "warnings": warnings}

    return _json(await run_in_threadpool(show))


@router.post("/v1/playbooks/{playbook_id}:activate", summary="Make a version the active one, or a canary for a share")
async def activate_playbook(
    request: Request,
    playbook_id: Id,
    token: Annotated[Principal, Depends(requires("playbook.activate"))],
    version: Annotated[int, Body(embed=True, ge=1, le=2**31 - 1)],
    canary_percent: Annotated[
        int | None, Body(embed=True, ge=0, le=100, description="this share of new runs only; 0 ends a canary")
    ] = None,
) -> Response:
    automation = container_of(request).automation
    await run_in_threadpool(automation.activate, playbook_id, version, canary_percent, token.name)
    return _json({"id": playbook_id, "version": version, "canary_percent": canary_percent})


@router.post(
    "/v1/playbooks/{playbook_id}:migrate",
    summary="Move in-flight runs from one version to another; without `apply`, only report what would happen",
)
async def migrate_runs(
    request: Request,
    playbook_id: Id,
    token: Annotated[Principal, Depends(requires("run.migrate"))],
    from_version: Annotated[int, Body(alias="from", ge=1, le=2**31 - 1, description="the version runs follow now")],
    to_version: Annotated[int, Body(alias="to", ge=1, le=2**31 - 1, description="the version to move them to")],
    map: Annotated[dict[str, str], Body(description="old step id to new, for renamed steps")] = {},  # noqa: B006
    apply: Annotated[bool, Body()] = False,
) -> Response:
    automation = container_of(request).automation
    report = await run_in_threadpool(
        lambda: automation.migrate(playbook_id, from_version, to_version, map, apply=apply, actor=token.name)
    )
    return _json(report)


@router.post("/v1/runs", summary="Start a run of a playbook", status_code=201)
async def start_run(
    request: Request,
    token: Annotated[Principal, Depends(requires("run.start"))],
    playbook: Annotated[str, Body(pattern=PLAIN_TEXT, max_length=64)],
    input: Annotated[dict[str, Any], Body()] = {},  # noqa: B006 - FastAPI copies body defaults
    version: Annotated[int | None, Body(ge=1, le=2**31 - 1)] = None,
    check_input: Annotated[
        bool, Body(description="refuse an input unlike the one the playbook's trigger gives its runs")
    ] = True,
) -> Response:
    automation = container_of(request).automation
    run_id = await run_in_threadpool(
        lambda: automation.start(playbook, input, version, token.name, check_input=check_input)
    )
    return _json({"run_id": run_id}, 201)


@router.get("/v1/runs", summary="Runs, newest first")
async def list_runs(
    request: Request,
    _who: Annotated[Principal, Depends(requires("run.read"))],
    status: Annotated[Literal["running", "paused", "succeeded", "failed", "cancelled"] | None, Query()] = None,
    playbook: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    items = await run_in_threadpool(container_of(request).automation.runs, status, playbook, limit)
    return _json({"items": items})


@router.get("/v1/runs/{run_id}", summary="A run with its steps and timeline")
async def show_run(request: Request, run_id: Id, _who: Annotated[Principal, Depends(requires("run.read"))]) -> Response:
    return _json(await run_in_threadpool(container_of(request).automation.show, run_id))


@router.post("/v1/runs/{run_id}:{action}", summary="cancel, pause, resume, or retry-step (with ?step=)")
async def control_run(
    request: Request,
    run_id: Id,
    action: Literal["cancel", "pause", "resume", "retry-step"],
    token: Annotated[Principal, Depends(requires("run.control"))],
    step: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
) -> Response:
    service = container_of(request).automation
    run = await run_in_threadpool(service.control, run_id, action.replace("-", "_"), step, token.name)
    return _json({"id": run.id, "status": run.status})


@router.get("/v1/tasks", summary="Open human tasks, soonest due first")
async def list_tasks(
    request: Request,
    token: Annotated[Principal, Depends(requires("task.read"))],
    role: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    mine: Annotated[bool, Query(description="assigned to the caller, or unassigned for the caller's role")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    service = container_of(request).automation
    if mine:
        items = await run_in_threadpool(
            lambda: service.tasks(None, limit, mine=token.name, my_roles=tuple(token.roles))
        )
    else:
        items = await run_in_threadpool(service.tasks, role, limit)
    return _json({"items": items})


@router.get("/v1/tasks/{task_id}", summary="A task: what it asks, the run's context, a review's recommendation")
async def show_task(
    request: Request, task_id: Id, _who: Annotated[Principal, Depends(requires("task.read"))]
) -> Response:
    return _json(await run_in_threadpool(container_of(request).automation.task, task_id))


@router.post("/v1/tasks/{task_id}:reassign", summary="Give an open task to someone (or back to its roles)")
async def reassign_task(
    request: Request,
    task_id: Id,
    token: Annotated[Principal, Depends(requires("task.reassign"))],
    to: Annotated[str | None, Body(embed=True, pattern=PLAIN_TEXT, min_length=1, max_length=128)] = None,
    comment: Annotated[str | None, Body(embed=True, max_length=4000)] = None,
) -> Response:
    service = container_of(request).automation
    return _json(await run_in_threadpool(lambda: service.reassign(task_id, to, by=token.name, comment=comment)))


@router.post("/v1/tasks/{task_id}:{decision}", summary="Approve or reject a task (a review may carry a value)")
async def decide_task(
    request: Request,
    task_id: Id,
    decision: Literal["approve", "reject"],
    token: Annotated[Principal, Depends(requires("task.decide", per_resource=True))],
    comment: Annotated[str | None, Body(embed=True, max_length=4000)] = None,
    value: Annotated[dict[str, Any] | None, Body(embed=True)] = None,
) -> Response:
    service = container_of(request).automation
    task = await run_in_threadpool(
        lambda: service.decide(task_id, approve=decision == "approve", by=token, comment=comment, value=value)
    )
    return _json(task)
