"""The console's routes: HTML pages whose errors are pages too (never JSON, never a traceback)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.responses import RedirectResponse, Response

from opsrail.model import FieldError, InvalidInput, OpsrailError, json_path
from opsrail.web._render import render
from opsrail.web._security import SignInNeeded, current_viewer, sign_in_url
from opsrail.wiring import DatabaseError

log = logging.getLogger("opsrail.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class ConsoleRoute(APIRoute):
    """Renders an :class:`OpsrailError` as the console's error page, and a missing sign-in as a redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded as needed:
                response = RedirectResponse(sign_in_url(needed.next_path), status_code=303)
            except OpsrailError as error:
                response = error_page(request, error)
            except RequestValidationError as invalid:  # a hand-edited address: ?by=country, a control character
                response = error_page(request, _invalid_address(invalid))
            except (DatabaseError, ClientDisconnect):
                raise  # the application's handlers answer these
            except Exception:
                log.exception("console page failed", extra={"path": request.url.path})
                response = error_page(request, Internal("this page could not be shown; the error was logged"))
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return handle


def _invalid_address(invalid: RequestValidationError) -> InvalidInput:
    errors = [
        FieldError(json_path(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")), str(e.get("type", "invalid")))
        for e in invalid.errors()
    ]
    named = ", ".join(str(e.get("loc", ("", "?"))[-1]) for e in invalid.errors())
    return InvalidInput(
        f"this address asks for something the page does not offer ({named})",
        hint="use the page's links and filters instead of editing the address",
        errors=errors,
    )


class Internal(OpsrailError):
    code = "internal"
    title = "Something went wrong"
    http_status = 500


def error_page(request: Request, error: OpsrailError) -> Response:
    viewer = current_viewer(request)
    return render(
        "error.html",
        {"viewer": viewer, "error": error, "status": error.http_status, "title": error.title, "nav": None},
        status=error.http_status,
    )


def console_router() -> APIRouter:
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False)
