"""Signing in and out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from opsrail.model import OpsrailError
from opsrail.services import SESSION_HOURS
from opsrail.web._render import render
from opsrail.web._routing import console_router
from opsrail.web._security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    container_of,
    current_viewer,
    read_form,
    safe_next,
    text_field,
)

router = console_router()


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or container_of(request).settings.console_secure_cookies


def _login_page(request: Request, next_path: str, error: str | None = None, status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        "login.html",
        {"viewer": None, "nav": None, "title": "Sign in", "csrf": token, "next": next_path, "error": error},
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login"
    )
    return response


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/inbox" if current_viewer(request) else "/login", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request, request.cookies.get(LOGIN_CSRF_COOKIE, ""))
    next_path = safe_next(text_field(form, "next"))
    sessions = container_of(request).sessions
    name, password, token = text_field(form, "name", limit=128), form.get("password"), text_field(form, "token")
    try:
        if token:
            _, secret = await run_in_threadpool(sessions.sign_in_token, token)
        elif name and isinstance(password, str) and password:
            _, secret = await run_in_threadpool(sessions.sign_in_password, name, password)
        else:
            return _login_page(request, next_path, "Give your name and password, or an API token.", 400)
    except OpsrailError as error:
        return _login_page(request, next_path, error.detail, error.http_status)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=SESSION_HOURS * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer = current_viewer(request)
    if viewer is not None:
        await read_form(request, viewer.csrf)
        await run_in_threadpool(container_of(request).sessions.sign_out, request.cookies[SESSION_COOKIE])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
