"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import BaseRoute

import opsrail
from opsrail.api import (
    _connectors,
    _dead_letters,
    _decisions,
    _events,
    _governance,
    _insights,
    _kpis,
    _ledger,
    _operations,
    _problems,
    _runs,
    _schemas,
    _stream,
)
from opsrail.api._bodies import BodyLimitMiddleware
from opsrail.api._fast_ingest import PATH as FAST_PATH
from opsrail.api._fast_ingest import SingleEventFastPath
from opsrail.api._metrics import LatencyMiddleware, Metrics
from opsrail.web import mount_console
from opsrail.wiring import Container, DatabaseError, translate_errors

log = logging.getLogger("opsrail.api")


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        container.start()
        # The sign-in decoy hash (0.15 s of argon2, which releases the GIL) is made beside the start, not in it.
        prepared = asyncio.create_task(asyncio.to_thread(container.sessions.prepare), name="opsrail-sessions")
        # Everything allocated so far (routes, schemas, models) lives as long as the process. Freezing it
        # keeps full garbage collections from walking it again and again, which otherwise shows as
        # latency spikes of tens of milliseconds under load.
        gc.collect()
        gc.freeze()
        # Requests allocate many short-lived objects that reference counting frees; a batch keeps
        # thousands alive at once. Collecting the young generation every 50,000 allocations instead of
        # 700 (and the old ones rarely) cuts the time spent in the cycle collector by more than half.
        gc.set_threshold(50_000, 50, 100)
        stop = asyncio.Event()
        worker = (
            asyncio.create_task(container.runner.run_forever(stop), name="opsrail-worker")
            if container.settings.worker
            else None
        )
        log.info("opsrail api ready", extra={"database": container.engine.url.render_as_string(hide_password=True)})
        try:
            yield
        finally:
            stop.set()
            await prepared
            if worker is not None:
                await worker
            container.ingestion.writer.stop()
            if container.checkpointer is not None:
                container.checkpointer.stop()

    app = FastAPI(
        title="Opsrail",
        version=opsrail.__version__,
        description="Governed AI operations for SaaS service delivery and escalations.",
        lifespan=lifespan,
    )
    app.state.container = container
    metrics = Metrics()
    app.state.metrics = metrics
    _problems.install(app)

    async def database_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DatabaseError)
        log.error("database error", exc_info=exc)
        return _problems.from_error(translate_errors(exc), request.url.path)

    async def client_gone(request: Request, exc: Exception) -> Response:
        # The client hung up before sending its whole body: nothing was received, nobody is listening.
        log.debug("client disconnected", extra={"path": request.url.path})
        return Response(status_code=400)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        return _problems.problem_response(
            500,
            "Internal error",
            "an unexpected error occurred; it was logged",
            code="internal",
            instance=request.url.path,
        )

    app.add_exception_handler(DatabaseError, database_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)
    for module in (
        _operations,
        _events,
        _dead_letters,
        _schemas,
        _runs,
        _decisions,
        _governance,
        _ledger,
        _connectors,
        _kpis,
        _insights,
        _stream,
    ):
        _declare_actions(module.router.routes)
        app.include_router(module.router)
    mount_console(app)

    single_event = next(
        r
        for r in _events.router.routes
        if isinstance(r, APIRoute) and r.path == FAST_PATH and "POST" in (r.methods or ())
    )
    app.add_middleware(SingleEventFastPath, container=container, metrics=metrics, route=single_event)
    app.add_middleware(BodyLimitMiddleware, limit=container.settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app


def _declare_actions(routes: Sequence[BaseRoute]) -> None:
    """Write each route's authorization action into its OpenAPI entry (``x-opsrail-action``)."""
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        stack = list(route.dependant.dependencies)
        while stack:
            dependency = stack.pop()
            action = getattr(dependency.call, "opsrail_action", None)
            if action is not None:
                extra = dict(route.openapi_extra or {})
                extra["x-opsrail-action"] = action
                if getattr(dependency.call, "opsrail_per_resource", False):
                    extra["x-opsrail-per-resource"] = True
                route.openapi_extra = extra
            stack.extend(dependency.dependencies)
