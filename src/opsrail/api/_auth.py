"""Authentication (API tokens, OIDC bearer tokens) and the per-route authorization check.

Every route but the health probes declares its action with ``Depends(requires("run.start"))`` (or, on the hot
ingestion routes, calls :func:`authorize` and declares ``x-opsrail-action`` itself). The action appears in the
OpenAPI document as ``x-opsrail-action``, which is how the tests check that each route enforces what the policy
set says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsrail.governance import ACTIONS, Principal
from opsrail.services import OidcVerifier
from opsrail.wiring import Container

bearer = HTTPBearer(
    auto_error=False, description="An API token from `opsrail tokens create`, or an OIDC access token (JWT)"
)


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def authenticate(container: Container, secret: str | None) -> Principal:
    """The caller: an OIDC identity when the secret is a JWT and OIDC is configured, else an API token."""
    if secret and container.oidc is not None and OidcVerifier.looks_like_jwt(secret):
        identity = container.oidc.verify(secret)
        return Principal(identity.name, frozenset(identity.roles), "oidc")
    token = container.tokens.authenticate(secret)
    return Principal(token.name, frozenset((token.role,)), "token")


def bearer_secret(header: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer …`` header; None for no header or another scheme."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def requires(action: str, *, per_resource: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks ``action`` against the active policies.

    ``per_resource``: the answer depends on the resource's attributes (a task's roles and requester), so the
    service checks it once it has loaded the resource; the route only authenticates.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        container = container_of(request)
        principal = authenticate(container, credentials.credentials if credentials is not None else None)
        if not per_resource:
            container.authorization.check(principal, action)
        return principal

    dependency.opsrail_action = action  # type: ignore[attr-defined]
    dependency.opsrail_per_resource = per_resource  # type: ignore[attr-defined]
    return dependency


def authorize(request: Request, action: str) -> Principal:
    """The same as :func:`requires`, as a plain call for the hot ingestion routes.

    FastAPI's dependency resolution costs more per request than the rest of the ingest path; the routes that use
    this declare the bearer scheme and their action in their OpenAPI entry themselves (:func:`declared`).
    """
    container = container_of(request)
    principal = authenticate(container, bearer_secret(request.headers.get("authorization")))
    container.authorization.check(principal, action)
    return principal


def declared(action: str) -> dict[str, Any]:
    """``openapi_extra`` of a route that calls :func:`authorize` itself."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return {"security": BEARER, "x-opsrail-action": action}


BEARER: list[dict[str, list[str]]] = [{"HTTPBearer": []}]

# Query and path text must not hold control characters: no database stores NUL, and none is meaningful.
PLAIN_TEXT = r"^[^\x00-\x1f]*$"
