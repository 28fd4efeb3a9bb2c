"""``opsrail up``: migrate, assemble, and serve the API with uvicorn (one process, or several workers)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from opsrail.api import create_app
from opsrail.api._logs import configure_logging
from opsrail.settings import Settings
from opsrail.wiring import build


def app_from_environment() -> FastAPI:
    """The app factory each worker process calls: settings come from its environment."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(build(settings))


def serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    configure_logging(settings.log_level, settings.log_format)
    common = {
        "host": host,
        "port": port,
        "access_log": settings.access_log,
        "log_config": None,
        "log_level": settings.log_level,
        "server_header": False,
    }
    if workers > 1:
        # Migrate once here; each worker builds its own container (engine, writer) after the fork.
        container = build(settings, migrate=True)
        container.close()
        uvicorn.run("opsrail.cli._serve:app_from_environment", factory=True, workers=workers, **common)  # type: ignore[arg-type]
        return
    container = build(settings, migrate=True)
    try:
        uvicorn.Server(uvicorn.Config(create_app(container), **common)).run()  # type: ignore[arg-type]
    finally:
        container.close()
