"""Reading request bodies with a size limit, keeping the head of an oversized one for the dead letters."""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsrail.api._problems import from_error
from opsrail.model import PayloadTooLarge

HEAD_BYTES = 64 * 1024


class BodyTooLarge(PayloadTooLarge):
    """Carries what was read of the body (at most its head) and its size, or a lower bound of it."""

    head: bytes = b""
    size: int = 0


def _too_large(limit: int, head: bytes, size: int) -> BodyTooLarge:
    exc = BodyTooLarge(
        f"the request body is larger than {limit} bytes",
        hint="send fewer events per request, or raise OPSRAIL_MAX_BODY_BYTES",
    )
    exc.head = head[:HEAD_BYTES]
    exc.size = size
    return exc


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        head = b""
        async for chunk in request.stream():
            head += chunk
            if len(head) >= HEAD_BYTES:
                break
        raise _too_large(limit, head, int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, b"".join(chunks) + chunk, size)
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimitMiddleware:
    """Pure ASGI middleware: every route but the ingestion ones (which dead-letter an oversized body's head
    themselves) refuses a body larger than the limit with 413, whether it declares its length or streams it."""

    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ("/v1/events", "/v1/ingest/")) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                response = from_error(_plain_too_large(self.limit), scope["path"])
                await response(scope, receive, send)
                return
        seen = 0
        refused = False

        async def counted() -> Message:
            # Past the limit, answer 413 at once and tell the application the client went away; whatever it
            # answers to that is dropped.
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await from_error(_plain_too_large(self.limit), scope["path"])(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)


def _plain_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes", hint="send less, or raise OPSRAIL_MAX_BODY_BYTES"
    )
