"""``opsrail up``: migrate, assemble, and serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from opsrail.api import create_app
from opsrail.api._logs import configure_logging
from opsrail.settings import Settings
from opsrail.wiring import build


def serve(settings: Settings, host: str, port: int) -> None:
    configure_logging(settings.log_level, settings.log_format)
    container = build(settings, migrate=True)
    app = create_app(container)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",
        http="auto",
        access_log=settings.access_log,
        log_config=None,
        log_level=settings.log_level,
        server_header=False,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        container.close()
