"""RFC 9457 problem details: the one way every error leaves the API."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from opsrail.ingest import field_errors
from opsrail.model import FieldError, InvalidInput, OpsrailError, json_path
from opsrail.web import http_error_page

PROBLEM_TYPE = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "hint": {"type": "string"},
        "instance": {"type": "string"},
        "dead_letter_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}, "code": {"type": "string"}},
            },
        },
    },
}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    code: str,
    instance: str | None = None,
    hint: str | None = None,
    errors: list[FieldError] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": f"urn:opsrail:problem:{code}", "title": title, "status": status, "detail": detail}
    if hint:
        body["hint"] = hint
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers)


def from_error(exc: OpsrailError, instance: str | None = None) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="opsrail"'} if exc.http_status == 401 else None
    if exc.http_status == 429 and "retry_after" in exc.extra:
        headers = {"Retry-After": str(max(1, math.ceil(float(exc.extra["retry_after"]))))}
    return problem_response(
        exc.http_status,
        exc.title,
        exc.detail,
        code=exc.code,
        instance=instance,
        hint=exc.hint,
        errors=exc.errors,
        extra=exc.extra,
        headers=headers,
    )


def install(app: FastAPI) -> None:
    async def opsrail_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpsrailError)
        return from_error(exc, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            FieldError(json_path(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")), str(e.get("type", "invalid")))
            for e in exc.errors()
        ]
        return from_error(InvalidInput("the request is not valid", errors=errors), request.url.path)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        page = http_error_page(request, exc.status_code, getattr(exc, "headers", None))
        if page is not None:  # a browser at a console address that is not a page
            return page
        titles = {404: "Not found", 405: "Method not allowed"}
        return problem_response(
            exc.status_code,
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            code="not-found" if exc.status_code == 404 else f"http-{exc.status_code}",
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    app.add_exception_handler(OpsrailError, opsrail_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


__all__ = ["PROBLEM_SCHEMA", "PROBLEM_TYPE", "field_errors", "from_error", "install", "problem_response"]
