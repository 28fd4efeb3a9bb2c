"""Routes for decision tables, models and decision records."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import Principal
from opsrail.services import with_chain

router = APIRouter(tags=["decisions"])
Name = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Id = Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)]


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


@router.get("/v1/decisions", summary="Decisions by name: published tables and trained models, with their tiers")
async def list_decisions(request: Request, _who: Annotated[Principal, Depends(requires("decision.read"))]) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).decisions.catalog)})


@router.post(
    "/v1/decisions",
    summary="Publish a decision table version (YAML in the `document` field); its own tests must pass",
    status_code=201,
)
async def publish_table(
    request: Request,
    token: Annotated[Principal, Depends(requires("decision.publish"))],
    document: Annotated[str, Body(embed=True, min_length=1, max_length=1_000_000)],
) -> Response:
    service = container_of(request).decisions
    table = await run_in_threadpool(service.publish_table_text, document, "request body", token.name)
    return _json({"name": table.name, "version": table.version}, 201)


@router.get("/v1/decision-policies", summary="Decision policies in force: tier, confidence floor, reviewers, approvals")
async def list_decision_policies(
    request: Request, _who: Annotated[Principal, Depends(requires("decision.read"))]
) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).decisions.store.policies)})


@router.post(
    "/v1/decision-policies",
    summary="Set the policies of the decisions a policy document names (YAML in the `document` field)",
)
async def apply_decision_policies(
    request: Request,
    token: Annotated[Principal, Depends(requires("decision.publish"))],
    document: Annotated[str, Body(embed=True, min_length=1, max_length=1_000_000)],
) -> Response:
    service = container_of(request).decisions
    applied = await run_in_threadpool(service.apply_policies_text, document, "request body", token.name)
    return _json({"applied": {name: policy.model_dump(mode="json") for name, policy in applied.items()}})


@router.get("/v1/decisions/{name}", summary="A decision table's rules, or a model's registration")
async def show_decision(
    request: Request,
    name: Name,
    _who: Annotated[Principal, Depends(requires("decision.read"))],
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return _json(await run_in_threadpool(container_of(request).decisions.describe, name, version))


@router.post("/v1/decisions/{name}:evaluate", summary="Evaluate a table or model and record the decision")
async def evaluate(
    request: Request,
    name: Name,
    token: Annotated[Principal, Depends(requires("decision.evaluate"))],
    inputs: Annotated[dict[str, Any], Body(embed=True)],
    version: Annotated[int | None, Body(embed=True, ge=1, le=2**31 - 1)] = None,
) -> Response:
    service = container_of(request).decisions
    record = await run_in_threadpool(lambda: service.evaluate_and_record(name, inputs, version=version))
    return _json(record)


@router.get("/v1/decision-records", summary="Decision records, newest first")
async def list_records(
    request: Request,
    _who: Annotated[Principal, Depends(requires("decision_record.read"))],
    decision: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    status: Annotated[Literal["decided", "pending", "accepted", "overridden", "rejected"] | None, Query()] = None,
    run: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=64)] = None,
    tier: Annotated[Literal["autonomous", "approval", "advisory"] | None, Query()] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Response:
    service = container_of(request).decisions
    items = await run_in_threadpool(
        lambda: service.records(decision=decision, status=status, run_id=run, tier=tier, version=version, limit=limit)
    )
    return _json({"items": items})


@router.get(
    "/v1/decision-records:verify",
    summary="Check every decision record against the audit log (and the log's chain); names what differs",
)
async def verify_records(request: Request, _who: Annotated[Principal, Depends(requires("audit.read"))]) -> Response:
    container = container_of(request)

    def check() -> dict[str, Any]:
        chain = container.audit.verify()
        return with_chain(container.decisions.verify_records(container.audit.export()), chain.as_dict())

    return _json(await run_in_threadpool(check))


@router.get("/v1/decision-records/{record_id}", summary="One decision record in full")
async def show_record(
    request: Request, record_id: Id, _who: Annotated[Principal, Depends(requires("decision_record.read"))]
) -> Response:
    return _json(await run_in_threadpool(container_of(request).decisions.record, record_id))


@router.post("/v1/decision-records/{record_id}:override", summary="Override a decision with a reason")
async def override(
    request: Request,
    record_id: Id,
    token: Annotated[Principal, Depends(requires("decision_record.override"))],
    value: Annotated[dict[str, Any], Body(embed=True)],
    reason: Annotated[str, Body(embed=True, min_length=1, max_length=4000)],
) -> Response:
    service = container_of(request).decisions
    return _json(await run_in_threadpool(service.override, record_id, value, reason, token.name))


@router.get("/v1/models", summary="Registered models, latest version of each")
async def list_models(request: Request, _who: Annotated[Principal, Depends(requires("decision.read"))]) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).decisions.store.list_models)})


@router.get("/v1/models/{name}", summary="A model's registration: data hash, parameters, metrics, thresholds")
async def show_model(
    request: Request,
    name: Name,
    _who: Annotated[Principal, Depends(requires("decision.read"))],
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return _json(await run_in_threadpool(container_of(request).decisions.model_info, name, version))


@router.get("/v1/models/{name}/versions", summary="Every version of a model, newest first, with its figures")
async def model_versions(
    request: Request, name: Name, _who: Annotated[Principal, Depends(requires("decision.read"))]
) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).decisions.model_versions, name)})


@router.post(
    "/v1/models:prune",
    summary="Drop the artifacts of all but the newest versions of each model (registrations stay)",
)
async def prune_models(
    request: Request,
    token: Annotated[Principal, Depends(requires("decision.publish"))],
    keep: Annotated[int, Body(embed=True, ge=1, le=10_000)] = 3,
    name: Annotated[str | None, Body(embed=True, pattern=r"^[a-z][a-z0-9_-]{0,63}$")] = None,
    dry_run: Annotated[bool, Body(embed=True)] = False,
) -> Response:
    service = container_of(request).decisions
    result = await run_in_threadpool(lambda: service.prune_models(keep=keep, name=name, by=token.name, dry_run=dry_run))
    return _json(result)


@router.get("/v1/knowledge", summary="Search approved runbooks and policies")
async def search_knowledge(
    request: Request,
    _who: Annotated[Principal, Depends(requires("knowledge.read"))],
    q: Annotated[str, Query(min_length=1, max_length=2000, pattern=PLAIN_TEXT)],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).decisions.search_knowledge, q, k)})
