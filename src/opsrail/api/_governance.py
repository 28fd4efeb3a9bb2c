"""Routes for the audit trail, the active authorization policies, the user directory and delegations."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import ROLES, Principal, Resource
from opsrail.model import NotFound, UtcMoment

router = APIRouter(tags=["governance"])
Name = Annotated[str, Path(pattern=PLAIN_TEXT, min_length=1, max_length=128)]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


@router.get("/v1/audit", summary="Audit entries, oldest first, with both hashes; a page at a time")
async def list_audit(
    request: Request,
    _who: Annotated[Principal, Depends(requires("audit.read"))],
    since: Annotated[UtcMoment | None, Query(description="entries at or after this time (ISO 8601)")] = None,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="page cursor: entries after this sequence number (next_after)")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    audit = container_of(request).audit
    items = await run_in_threadpool(lambda: list(audit.export(since, after, limit)))
    # A full page may have more behind it: the next page starts after its last entry.
    next_after = items[-1]["seq"] if len(items) == limit else None
    return _json({"items": items, "next_after": next_after})


@router.get("/v1/audit:verify", summary="Check the whole hash chain; names the first bad entry")
async def verify_audit(request: Request, _who: Annotated[Principal, Depends(requires("audit.read"))]) -> Response:
    report = await run_in_threadpool(container_of(request).audit.verify)
    return _json(report.as_dict())


@router.get("/v1/policies", summary="The active authorization policy set (Cedar)")
async def show_policies(request: Request, _who: Annotated[Principal, Depends(requires("policy.read"))]) -> Response:
    active = await run_in_threadpool(container_of(request).authorization.active)
    return _json({k: v for k, v in active.items() if k != "cases"})


@router.get("/v1/users", summary="People in the directory with their roles")
async def list_users(request: Request, _who: Annotated[Principal, Depends(requires("user.manage"))]) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).directory.users)})


@router.put("/v1/users/{name}", summary="Create a person or replace their roles")
async def put_user(
    request: Request,
    name: Name,
    who: Annotated[Principal, Depends(requires("user.manage"))],
    roles: Annotated[list[str], Body(embed=True, min_length=1, max_length=len(ROLES))],
) -> Response:
    directory = container_of(request).directory
    return _json(await run_in_threadpool(directory.put_user, name, roles, who.name))


@router.get("/v1/delegations", summary="Delegations, newest first")
async def list_delegations(
    request: Request,
    _who: Annotated[Principal, Depends(requires("task.read"))],
    to: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=128)] = None,
    owner: Annotated[str | None, Query(alias="from", pattern=PLAIN_TEXT, max_length=128)] = None,
) -> Response:
    directory = container_of(request).directory
    return _json({"items": await run_in_threadpool(lambda: directory.delegations(delegate=to, owner=owner))})


@router.post("/v1/delegations", summary="Let someone decide with the owner's roles until a time", status_code=201)
async def create_delegation(
    request: Request,
    who: Annotated[Principal, Depends(requires("delegation.manage", per_resource=True))],
    to: Annotated[str, Body(embed=True, pattern=PLAIN_TEXT, min_length=1, max_length=128)],
    until: Annotated[UtcMoment, Body(embed=True, description="end of the delegation (ISO 8601 with offset)")],
    owner: Annotated[str | None, Body(embed=True, alias="from", pattern=PLAIN_TEXT, max_length=128)] = None,
    roles: Annotated[list[str] | None, Body(embed=True, max_length=len(ROLES))] = None,
) -> Response:
    container = container_of(request)
    owner = owner or who.name
    container.authorization.check(who, "delegation.manage", Resource("Delegation", "new", {"owner": owner}))
    record = await run_in_threadpool(container.directory.delegate, owner, to, until, roles, who.name)
    return _json(record, 201)


@router.post("/v1/delegations/{delegation_id}:revoke", summary="End a delegation now")
async def revoke_delegation(
    request: Request,
    delegation_id: Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)],
    who: Annotated[Principal, Depends(requires("delegation.manage", per_resource=True))],
) -> Response:
    container = container_of(request)
    found = next((d for d in container.directory.delegations() if d["id"] == delegation_id), None)
    if found is None:
        raise NotFound(f"no delegation {delegation_id!r}", hint="list them with GET /v1/delegations")
    resource = Resource("Delegation", delegation_id, {"owner": found["owner"]})
    container.authorization.check(who, "delegation.manage", resource)
    return _json(await run_in_threadpool(container.directory.revoke_delegation, delegation_id, who.name))
