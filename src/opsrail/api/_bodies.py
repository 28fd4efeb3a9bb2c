"""Reading request bodies with a size limit, keeping the head of an oversized one for the dead letters."""

from __future__ import annotations

from fastapi import Request

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
