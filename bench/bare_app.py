"""The I1 peer: a bare FastAPI endpoint that only parses the JSON body (no storage, no validation model)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/v1/events", status_code=202)
async def post_event(event: dict[str, Any]) -> dict[str, str]:
    return {"id": str(event.get("id")), "status": "accepted"}
