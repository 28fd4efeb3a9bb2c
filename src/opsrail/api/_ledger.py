"""Routes of the built-in ledger: ``/v1/ledger/{collection}``, one record, and named actions on it.

Writes take an ``Idempotency-Key`` header: the same key with the same request answers what it answered first; the
same key with another request is 409.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from opsrail.api._auth import PLAIN_TEXT, container_of, requires
from opsrail.governance import Principal
from opsrail.services import COLLECTIONS

router = APIRouter(tags=["ledger"])
CollectionName = Annotated[str, Path(pattern="^(" + "|".join(COLLECTIONS) + ")$")]
Id = Annotated[str, Path(pattern=PLAIN_TEXT, min_length=1, max_length=64)]
Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256, pattern=PLAIN_TEXT)]
APPROVING = {"approve", "validate"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, default=str), status_code=status, media_type="application/json")


@router.get("/v1/ledger", summary="The ledger's collections and the actions each takes")
async def ledger_index(request: Request, _who: Annotated[Principal, Depends(requires("ledger.read"))]) -> Response:
    return _json({"collections": container_of(request).ledger.collections()})


@router.get("/v1/ledger/{collection}", summary="Records of a collection, newest first")
async def list_records(
    request: Request,
    collection: CollectionName,
    _who: Annotated[Principal, Depends(requires("ledger.read"))],
    account_id: Annotated[str | None, Query(pattern=PLAIN_TEXT, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    ledger = container_of(request).ledger
    return _json({"items": await run_in_threadpool(ledger.list, collection, account_id, limit)})


@router.post("/v1/ledger/{collection}", summary="Create a record (idempotent with Idempotency-Key)", status_code=201)
async def create_record(
    request: Request,
    collection: CollectionName,
    who: Annotated[Principal, Depends(requires("ledger.write"))],
    body: Annotated[dict[str, Any], Body()],
    idempotency_key: Key = None,
) -> Response:
    ledger = container_of(request).ledger
    record = await run_in_threadpool(
        lambda: ledger.create(collection, body, actor=who.name, idempotency_key=idempotency_key)
    )
    return _json(record, 201)


@router.get("/v1/ledger/{collection}/{record_id}", summary="One record")
async def get_record(
    request: Request,
    collection: CollectionName,
    record_id: Id,
    _who: Annotated[Principal, Depends(requires("ledger.read"))],
) -> Response:
    return _json(await run_in_threadpool(container_of(request).ledger.get, collection, record_id))


@router.post(
    "/v1/ledger/{collection}/{record_id}:{action}",
    summary="Act on a record: hold, release, approve, void, validate, update-milestone…",
)
async def act_on_record(
    request: Request,
    collection: CollectionName,
    record_id: Id,
    action: Annotated[str, Path(pattern=r"^[a-z][a-z-]{1,40}$")],
    who: Annotated[Principal, Depends(requires("ledger.write", per_resource=True))],
    params: Annotated[dict[str, Any] | None, Body()] = None,
    idempotency_key: Key = None,
) -> Response:
    container = container_of(request)
    # Approving a credit memo or validating a change order is finance's decision; other actions are operations.
    if action in APPROVING:
        container.authorization.check(who, "ledger.approve")
        params = {**(params or {}), "by": who.name}
    else:
        container.authorization.check(who, "ledger.write")
    record = await run_in_threadpool(
        lambda: container.ledger.act(
            collection, record_id, action, params, actor=who.name, idempotency_key=idempotency_key
        )
    )
    return _json(record)
