"""``POST /v1/events`` without the framework's per-request machinery, for the common case of a good event.

Single-event ingest is the hottest route: monitoring and CRM webhooks send one event per request. Routing,
dependency solving, the exception middleware and the request wrapper cost more CPU per request than the durable
write itself. This pure ASGI layer serves the route directly when everything goes well: the caller authenticates
and may send events, the body is within the limit and parses, and the event is stored.

Anything else goes to the FastAPI route, which replays the body read so far. That route answers every error
exactly as before (problem+json, the dead letter, the metrics), because it is the same code; nothing is stored on
this path before the handover, so nothing happens twice. The route stays registered, so OpenAPI and the
authorization table still describe it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsrail.api._auth import authenticate, bearer_secret
from opsrail.api._metrics import Metrics
from opsrail.api._problems import from_error
from opsrail.model import OpsrailError
from opsrail.wiring import Container, DatabaseError, translate_errors

PATH = "/v1/events"
ACTION = "event.send"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class SingleEventFastPath:
    """Pure ASGI middleware serving a good ``POST /v1/events`` itself; everything else passes to ``app``."""

    def __init__(self, app: ASGIApp, container: Container, metrics: Metrics, route: BaseRoute) -> None:
        self.app = app
        self.container = container
        self._route = route
        self._accepted = metrics.accepted.labels("api")
        self._duplicates = metrics.duplicates.labels("api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = content_type = None
        limit = self.container.settings.max_body_bytes
        for name, value in scope["headers"]:  # the first of a repeated header counts, as for the route
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await self.app(scope, receive, send)  # the route dead-letters an oversized body's head
                return
        received: list[Message] = []
        body = await _read(receive, received, limit)
        if body is None or (event := self._accept(authorization, content_type, body)) is None:
            await self.app(scope, _replay(received, receive), send)
            return
        service = self.container.ingestion
        try:
            receipt = (await service.store_grouped([event], "api"))[0]
        except DatabaseError as exc:
            await from_error(translate_errors(exc), PATH)(scope, receive, send)
            return
        except OpsrailError as exc:
            await from_error(exc, PATH)(scope, receive, send)
            return
        if receipt.duplicate:
            self._duplicates.inc()
            status = 200
        else:
            self.container.runner.wake()
            self._accepted.inc()
            status = 202
        scope["route"] = self._route  # the latency metric's route label, as the router would set it
        payload = orjson.dumps(receipt.as_dict())
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _accept(self, authorization: str | None, content_type: str | None, body: bytes) -> Any:
        """The parsed event when the caller may send it and it is valid; ``None`` hands the request over."""
        try:
            principal = authenticate(self.container, bearer_secret(authorization))
            self.container.authorization.check(principal, ACTION)
            return self.container.ingestion.parse_single(body, content_type)
        except Exception:  # the route meets the same error and answers it (problem+json, dead letter, metrics)
            return None


async def _read(receive: Receive, received: list[Message], limit: int) -> bytes | None:
    """The whole body, keeping each message for a replay; ``None`` when it is over the limit or the client left."""
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            break
    if len(received) == 1:
        body: bytes = received[0].get("body", b"")
        return body
    return b"".join(m.get("body", b"") for m in received)


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands out the messages already read, then the client's own."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
