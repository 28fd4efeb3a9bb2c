"""Prometheus metrics, on a registry owned by the app (no process-global state)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "opsrail_events_accepted", "Events stored for the first time", ["channel"], registry=self.registry
        )
        self.duplicates = Counter(
            "opsrail_events_duplicate", "Events received again and not stored", ["channel"], registry=self.registry
        )
        self.rejected = Counter(
            "opsrail_events_rejected", "Payloads rejected and dead-lettered", ["channel"], registry=self.registry
        )
        self.latency = Histogram(
            "opsrail_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=self.registry,
        )


class LatencyMiddleware:
    """Pure ASGI middleware (no per-request task or body copy) recording latency by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status)).observe(time.perf_counter() - start)
