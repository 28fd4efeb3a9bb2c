"""Bearer-token authentication for every route but the health probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsrail.model import Forbidden
from opsrail.services import ApiToken
from opsrail.wiring import Container

bearer = HTTPBearer(auto_error=False, description="An API token from `opsrail tokens create`")

# Roles that may only read; everything else may send events. Full policies come with governance.
READ_ONLY_ROLES = frozenset({"auditor"})


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiToken:
    secret = credentials.credentials if credentials is not None else None
    return container_of(request).tokens.authenticate(secret)


async def sender(token: Annotated[ApiToken, Depends(principal)]) -> ApiToken:
    if token.role in READ_ONLY_ROLES:
        raise Forbidden(
            f"the role {token.role!r} may only read; this route changes state",
            hint="use a token with role operator or service",
        )
    return token


Principal = Annotated[ApiToken, Depends(principal)]
Sender = Annotated[ApiToken, Depends(sender)]


def authorize_sender(request: Request) -> ApiToken:
    """The same check as the ``Sender`` dependency, as a plain call for the hot ingestion routes.

    FastAPI's dependency resolution costs more per request than the rest of the ingest path; the
    routes that use this declare the bearer scheme in their OpenAPI entry themselves (``BEARER``).
    """
    header = request.headers.get("authorization")
    secret = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            secret = value.strip() or None
    token = container_of(request).tokens.authenticate(secret)
    if token.role in READ_ONLY_ROLES:
        raise Forbidden(
            f"the role {token.role!r} may not send events", hint="use a token with role operator or service"
        )
    return token


BEARER: list[dict[str, list[str]]] = [{"HTTPBearer": []}]

# Query and path text must not hold control characters: no database stores NUL, and none is meaningful.
PLAIN_TEXT = r"^[^\x00-\x1f]*$"
