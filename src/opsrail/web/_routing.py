"""The console's routes: HTML pages whose errors are pages too (never JSON, never a traceback)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.responses import RedirectResponse, Response

from opsrail.model import FieldError, InvalidInput, NotFound, OpsrailError, json_path
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


API_PATHS = ("/v1/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/static/")
"""Addresses that are not console pages: their errors stay problem+json whoever asks."""


class MethodNotAllowed(OpsrailError):
    code = "method-not-allowed"
    title = "Not allowed here"
    http_status = 405


def http_error_page(request: Request, status: int, headers: Mapping[str, str] | None = None) -> Response | None:
    """The console's page for a 404 or 405 at an address outside the API asked for by a browser (a mistyped or
    stale console address); None for everything else, which keeps its problem+json answer."""
    path = request.url.path
    if status not in (404, 405) or path.startswith(API_PATHS) or "text/html" not in request.headers.get("accept", ""):
        return None
    error: OpsrailError = (
        NotFound("the console has no page at this address", hint="use the links of the console, from its inbox")
        if status == 404
        else MethodNotAllowed(f"this page cannot take a {request.method} request", hint="use the page's own forms")
    )
    response = error_page(request, error)
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():  # a 405's Allow
        response.headers.setdefault(name, value)
    return response


def console_router() -> APIRouter:
    return APIRouter(route_class=ConsoleRoute, include_in_schema=False)
