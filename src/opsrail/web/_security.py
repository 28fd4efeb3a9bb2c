"""Who is looking at the console, and whether a form really came from it.

A session cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS) names a server-side session; every
page asks :class:`~opsrail.services.AuthorizationService` with the same action the matching API route uses, so a
person sees and does in the console exactly what the policies allow them through the API. Every form carries the
session's CSRF secret and is refused without it, and a cross-site ``Origin`` is refused outright. Before signing
in, the sign-in form is protected the same way by a double-submit cookie.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

from opsrail.governance import Principal
from opsrail.model import Forbidden, OpsrailError
from opsrail.services import Session
from opsrail.wiring import Container

SESSION_COOKIE = "opsrail_session"
LOGIN_CSRF_COOKIE = "opsrail_login_csrf"
MAX_FORM_BYTES = 1_000_000


class SignInNeeded(Exception):
    """The page needs a signed-in person; the console answers with a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(OpsrailError):
    code = "csrf"
    title = "Form refused"
    http_status = 403
    exit_code = 3


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


@dataclass(frozen=True)
class Viewer:
    """The signed-in person on this request, and what the policies let them do."""

    session: Session
    container: Container

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def csrf(self) -> str:
        return self.session.csrf

    def may(self, action: str) -> bool:
        return self.container.authorization.allows(self.principal, action)


def current_viewer(request: Request) -> Viewer | None:
    container = container_of(request)
    session = container.sessions.resolve(request.cookies.get(SESSION_COOKIE))
    return None if session is None else Viewer(session, container)


def page(action: str) -> Any:
    """A dependency: the signed-in viewer, allowed ``action`` (else a sign-in redirect or a 403 page)."""

    def dependency(request: Request) -> Viewer:
        viewer = current_viewer(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInNeeded(target)
        viewer.container.authorization.check(viewer.principal, action)
        return viewer

    dependency.opsrail_action = action  # type: ignore[attr-defined]
    return Depends(dependency)


def same_origin(request: Request) -> None:
    """Refuse a form posted from another site (``Origin`` or, failing that, ``Referer`` names another host)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host and host != request.headers.get("host", ""):
            raise CsrfRefused("this form was sent from another site", hint="use the console's own pages")


async def read_form(request: Request, expected: str) -> FormData:
    """The posted form, once its CSRF field matches ``expected`` and its origin is this site."""
    same_origin(request)
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise CsrfRefused("the form is too large", hint="upload at most 1 MB")
    form = await request.form(max_files=1, max_fields=200)
    sent = form.get("csrf")
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise CsrfRefused(
            "the form's security token is missing or stale", hint="reload the page and send the form again"
        )
    return form


def text_field(form: FormData, name: str, *, limit: int = 4000) -> str | None:
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > limit:
        raise Forbidden(f"{name} is longer than {limit} characters")
    return value or None


def sign_in_url(next_path: str) -> str:
    return f"/login?next={quote(next_path, safe='')}"


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an absolute URL a phishing link could smuggle in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/inbox"
    return value
