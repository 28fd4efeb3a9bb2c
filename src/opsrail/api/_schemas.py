"""Schema routes: the versioned JSON Schemas of the canonical model and the event envelope."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends
from starlette.responses import Response

from opsrail.api._auth import requires
from opsrail.governance import Principal
from opsrail.model import SCHEMA_NAMES, SCHEMA_VERSION, json_schema

router = APIRouter(tags=["schemas"])


@router.get("/v1/schemas", summary="Names of the canonical schemas")
async def list_schemas(_who: Annotated[Principal, Depends(requires("schema.read"))]) -> Response:
    body = {"version": SCHEMA_VERSION, "items": list(SCHEMA_NAMES)}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/v1/schemas/{name}", summary="One JSON Schema (draft 2020-12)")
async def get_schema(name: str, _who: Annotated[Principal, Depends(requires("schema.read"))]) -> Response:
    return Response(orjson.dumps(json_schema(name)), media_type="application/schema+json")
