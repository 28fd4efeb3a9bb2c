"""The web console: server-rendered pages on the API's port, signed in with a password or an API token.

See ``docs/console.md`` and ADR 0011 for the choices (Jinja2 pages, a few lines of script, SVG drawn on the server).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from opsrail.web import _auth_pages, _inbox, _insights, _live, _records, _runs
from opsrail.web._routing import http_error_page

STATIC = Path(__file__).parent / "static"


def mount_console(app: FastAPI) -> None:
    """Add the console's pages and its static files (``/static``) to the application."""
    for module in (_auth_pages, _inbox, _runs, _records, _insights, _live):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC, packages=None), name="static")


__all__ = ["http_error_page", "mount_console"]
