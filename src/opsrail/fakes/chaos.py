"""Fault injection for the fakes: a wrapper that makes a share of calls fail for a while.

``Chaos(app, rate=0.3, calls=100, status=503)`` answers ``status`` (with ``Retry-After: 0`` for 429 and 503) to a
seeded random ``rate`` of the first ``calls`` requests, then lets everything through; ``injected`` counts what it
failed. A 4xx ``status`` makes the failures permanent, to fill a dead-letter queue.
"""

from __future__ import annotations

import random
import threading

from starlette.types import ASGIApp, Receive, Scope, Send


class Chaos:
    def __init__(self, app: ASGIApp, *, rate: float, calls: int, status: int = 503, seed: int = 7) -> None:
        self.app = app
        self.rate = rate
        self.calls = calls
        self.status = status
        self.random = random.Random(seed)
        self.seen = 0
        self.injected = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.seen += 1
            fail = self.seen <= self.calls and self.random.random() < self.rate
            if fail:
                self.injected += 1
        if not fail:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json")]
        if self.status in (429, 503):
            headers.append((b"retry-after", b"0"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"error": "injected failure"}'})
