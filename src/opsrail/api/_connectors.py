"""Routes for connectors: their catalogue and health, and the Slack interactivity URL (approve/reject buttons)."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import Principal

router = APIRouter(tags=["connectors"])
Reader = Annotated[Principal, Depends(requires("connector.read"))]
SIGNED = {"x-opsrail-action": "task.decide", "x-opsrail-per-resource": True, "x-opsrail-auth": "slack-signature"}


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


@router.get("/v1/connectors", summary="Connectors and their operations, with input and output schemas")
async def list_connectors(
    request: Request, _who: Annotated[Principal, Depends(requires("connector.read"))]
) -> Response:
    return _json({"items": container_of(request).connectors.catalogue()})


@router.get("/v1/connectors:check", summary="Reach each configured system with its credentials")
async def check_connectors(
    request: Request, _who: Annotated[Principal, Depends(requires("connector.read"))]
) -> Response:
    return _json({"items": await container_of(request).connectors.check()})


@router.post(
    "/v1/connectors/slack/interactions",
    summary="Slack's interactivity URL: a signed Approve or Reject click decides the task",
    description="Authenticated by Slack's request signature (X-Slack-Signature, X-Slack-Request-Timestamp), not "
    "a bearer token; the clicking Slack user must map to a person in the directory, whose roles decide.",
    openapi_extra={
        "x-opsrail-action": "task.decide",
        "x-opsrail-per-resource": True,
        "x-opsrail-auth": "slack-signature",
    },
)
async def slack_interactions(request: Request) -> Response:
    body = await request.body()
    approvals = container_of(request).chat_approvals
    return _json(await run_in_threadpool(approvals.slack_interaction, request.headers, body))


@router.get("/v1/connectors/dead-letters", summary="Connector calls that failed for good, newest first")
async def connector_dead_letters(
    request: Request,
    _who: Reader,
    status: Annotated[Literal["dead", "replayed"] | None, Query()] = "dead",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    return _json({"items": await run_in_threadpool(container_of(request).connectors.failures, status, limit)})


@router.post("/v1/connectors/dead-letters/{letter_id}:replay", summary="Call the operation again, same key")
async def replay_connector_call(
    request: Request,
    letter_id: Annotated[str, Path(pattern=PLAIN_TEXT, max_length=64)],
    who: Annotated[Principal, Depends(requires("connector.replay"))],
) -> Response:
    return _json(await container_of(request).connectors.replay(letter_id, who.name))
