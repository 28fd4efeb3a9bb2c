"""A fake webhook receiver that does what a careful receiver of Opsrail's webhooks should.

Owns ``create_app``: ``POST`` on any path. It checks ``Opsrail-Signature`` with
:func:`opsrail.connectors.webhooks.verify_signature` against the raw body (400 if it fails or the body is not the
JSON envelope whose ``id`` is the ``Opsrail-Delivery`` header), then deduplicates on ``Opsrail-Delivery``: a
redelivery answers 200 ``{"received": true, "duplicate": true}`` and is not stored again.

Knobs: the first ``fail_first`` posts get 500 before anything is checked; ``status_after`` is the status of the
others (e.g. 410 to say the endpoint is gone; a non-2xx status stores nothing); ``delay_s`` delays every answer;
``tolerance_s`` is the signature's age limit. State on ``app.state``: ``deliveries`` (each accepted event once:
``id``, ``type``, ``created``, ``data``, ``path``, ``query``, ``headers``) and ``attempts`` (every post: ``id``,
``status``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from opsrail.connectors.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature


def create_app(
    *,
    secret: str = "whsec_test",  # noqa: S107 (a fake's test credential)
    fail_first: int = 0,
    status_after: int = 200,
    delay_s: float = 0.0,
    tolerance_s: float = 300.0,
) -> FastAPI:
    """The fake receiver; see the module's documentation."""
    app = FastAPI(title="Fake webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    seen: set[str] = set()
    app.state.deliveries = []
    app.state.attempts = []

    @app.post("/{path:path}")
    async def receive(path: str, request: Request) -> Any:
        body = await request.body()
        delivery = request.headers.get(DELIVERY_HEADER, "")
        with lock:
            number = len(app.state.attempts) + 1
            attempt: dict[str, Any] = {"id": delivery, "status": None}
            app.state.attempts.append(attempt)

        def answer(status: int, content: dict[str, Any]) -> JSONResponse:
            attempt["status"] = status
            return JSONResponse(content, status_code=status)

        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if number <= fail_first:
            return answer(500, {"error": "the receiver failed on purpose"})
        if not verify_signature(request.headers.get(SIGNATURE_HEADER, ""), body, secret, time.time(), tolerance_s):
            return answer(400, {"error": "invalid signature"})
        try:
            envelope = json.loads(body)
        except ValueError:
            return answer(400, {"error": "the body is not JSON"})
        if not isinstance(envelope, dict) or not delivery or envelope.get("id") != delivery:
            return answer(400, {"error": "the body's id does not match the Opsrail-Delivery header"})
        with lock:
            if delivery in seen:
                return answer(200, {"received": True, "duplicate": True})
            if not 200 <= status_after < 300:
                return answer(status_after, {"error": f"answering {status_after} on purpose"})
            seen.add(delivery)
            app.state.deliveries.append(
                {
                    "id": delivery,
                    "type": envelope.get("type"),
                    "created": envelope.get("created"),
                    "data": envelope.get("data"),
                    "path": "/" + path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                }
            )
        return answer(status_after, {"received": True})

    return app
