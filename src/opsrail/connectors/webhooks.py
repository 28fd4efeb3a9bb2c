"""Outbound webhooks: signed JSON events posted to named, configured endpoints.

Settings (``config``)::

    endpoints:
      billing: {url: "https://hooks.example.com/opsrail", secret_file: /run/secrets/billing_webhook}
      crm:     {url: "https://crm.example.com/in/opsrail?tenant=7", secret: "whsec_..."}

A step names an endpoint (``webhook.post`` with ``endpoint: billing``); it can never give a URL, so a playbook
cannot send data anywhere an operator did not configure. URLs are https (plain http only for localhost). Each
endpoint has its own transport, so one failing receiver trips only its own circuit breaker. An endpoint whose
settings cannot work does not stop the connector from being built: :meth:`WebhookConnector.check` reports it and a
post to it is refused as a permanent error (code ``config``).

What is sent: ``POST`` with the JSON body ``{"id", "type", "created", "data"}`` and the headers

``Opsrail-Delivery: <id>``
    The delivery id, derived from the engine's idempotency key: the same on every retry of the step, so a
    receiver that records the ids it has processed handles each event once.
``Opsrail-Signature: t=<unix seconds>,v1=<hex>``
    HMAC-SHA256 with the endpoint's secret over ``"<t>.<raw body>"`` (the scheme Stripe uses), computed per
    attempt over the exact bytes sent. Receivers check it with :func:`verify_signature`.

Outcomes: 2xx is delivered; 410 Gone and other 4xx are permanent (410 means the receiver retired the endpoint:
remove it from the settings); 3xx is permanent too (redirects are not followed, so configure the final URL);
408, 425, 429 (honouring ``Retry-After``), 5xx and timeouts are retryable: the transport retries within a call,
and the engine retries the step.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import Field

from opsrail.connectors._sdk import (
    Connector,
    ConnectorError,
    HttpPolicy,
    HttpTransport,
    Model,
    OperationSpec,
    cleartext_url,
    secret,
)
from opsrail.engine import CallContext, OperationFailed

DELIVERY_HEADER = "Opsrail-Delivery"
SIGNATURE_HEADER = "Opsrail-Signature"
MAX_BODY_BYTES = 512 * 1024


class WebhookPost(Model):
    endpoint: str = Field(min_length=1, max_length=100)
    event_type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    payload: dict[str, Any]


class WebhookDelivered(Model):
    status: int
    delivery_id: str


def delivery_id(idempotency_key: str) -> str:
    """The delivery id of a step: stable across its retries, and revealing nothing of the run it came from."""
    return "dlv_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Opsrail-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(header: str, body: bytes, secret: str, now: float, tolerance_s: float = 300) -> bool:
    """Whether an ``Opsrail-Signature`` header is valid for ``body``: for receivers.

    ``header`` is ``t=<unix seconds>,v1=<hex>`` (several ``v1`` are accepted, as during a secret rotation on the
    sender's side); ``body`` must be the raw bytes received, before any JSON parsing; ``now`` is the receiver's
    clock in Unix seconds. A timestamp more than ``tolerance_s`` away from ``now`` fails, so a captured request
    cannot be replayed later; the comparison is constant-time. Malformed headers are simply invalid.

    A receiver should also remember the ``Opsrail-Delivery`` ids it has processed (at least for the tolerance
    window, better for days) and answer a repeated id with 2xx without acting again.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if timestamp is not None or not value.isdigit():
                return False
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    matched = False
    for candidate in candidates:  # compare all, so the time taken does not tell which one matched
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched


class _Signer(httpx.Auth):
    """Signs each attempt as it is sent: over the exact body bytes, with the time of that attempt."""

    requires_request_body = True

    def __init__(self, secret: str, clock: Callable[[], float]) -> None:
        self.secret = secret
        self.clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[SIGNATURE_HEADER] = sign(request.content, self.secret, int(self.clock()))
        yield request


@dataclass(frozen=True, slots=True)
class _Endpoint:
    http: HttpTransport
    path: str
    signer: _Signer


class WebhookConnector(Connector):
    """Posts signed events to the endpoints in its settings; see the module's documentation."""

    name = "webhook"
    summary = "Outbound webhooks: signed JSON events to configured endpoints"

    def __init__(
        self,
        config: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._endpoints: dict[str, _Endpoint] = {}
        # Settings that cannot work: check() reports them and a post to that endpoint is refused.
        self.problems: dict[str, str] = {}
        self.problem: str | None = None
        endpoints = config.get("endpoints")
        if not isinstance(endpoints, Mapping) or not endpoints:
            self.problem = "webhook: no endpoints are configured"
            endpoints = {}
        for name, settings in endpoints.items():
            try:
                self._endpoints[str(name)] = self._endpoint(str(name), settings, client, policy, sleep)
            except OperationFailed as exc:
                self.problems[str(name)] = str(exc)

    def _endpoint(
        self,
        name: str,
        settings: Any,
        client: httpx.AsyncClient,
        policy: HttpPolicy | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> _Endpoint:
        if not isinstance(settings, Mapping):
            raise OperationFailed(f"webhook: endpoint {name!r} must be a mapping with url and secret", retryable=False)
        parts = urlsplit(str(settings.get("url") or ""))
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.fragment:
            raise OperationFailed(
                f"webhook: endpoint {name!r} needs an https url without credentials or fragment", retryable=False
            )
        if cleartext_url(parts.geturl()):
            raise OperationFailed(
                f"webhook: endpoint {name!r} must use https (plain http only for localhost)", retryable=False
            )
        key = secret(settings, "secret", f"webhook endpoint {name!r}")
        if not key:
            raise OperationFailed(f"webhook: endpoint {name!r} needs a secret (or secret_file)", retryable=False)
        transport = HttpTransport(
            f"webhook {name}",
            client,
            f"{parts.scheme}://{parts.netloc}",
            headers={"User-Agent": "Opsrail-Webhooks/1"},
            policy=policy or HttpPolicy(),
            idempotency_header=DELIVERY_HEADER,
            sleep=sleep,
        )
        path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return _Endpoint(transport, path, _Signer(key, self.clock))

    @property
    def endpoints(self) -> list[str]:
        return sorted(self._endpoints)

    def operations(self) -> list[OperationSpec]:
        return [
            OperationSpec(
                "post", "Post a signed event to a configured endpoint", WebhookPost, WebhookDelivered, self.post
            )
        ]

    async def check(self) -> dict[str, Any]:
        """Reports the settings; it posts nothing, as a test event would be an event to every receiver."""
        problems = [self.problem] if self.problem else []
        problems += [self.problems[name] for name in sorted(self.problems)]
        if problems:
            return {"ok": False, "detail": "; ".join(problems)}
        return {"ok": True, "detail": f"endpoints: {', '.join(self.endpoints)}"}

    async def post(self, arguments: WebhookPost, call: CallContext) -> WebhookDelivered:
        problem = self.problems.get(arguments.endpoint) or (self.problem if not self._endpoints else None)
        if problem is not None:
            raise ConnectorError(problem, retryable=False, code="config")
        endpoint = self._endpoints.get(arguments.endpoint)
        if endpoint is None:
            raise ConnectorError(
                f"webhook: no endpoint named {arguments.endpoint!r}; configured: {', '.join(self.endpoints)}",
                retryable=False,
                code="unknown_endpoint",
            )
        delivery = delivery_id(call.idempotency_key)
        envelope = {
            "id": delivery,
            "type": arguments.event_type,
            "created": datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "data": arguments.payload,
        }
        try:
            size = len(json.dumps(envelope, ensure_ascii=False, allow_nan=False).encode())
        except (TypeError, ValueError):
            raise ConnectorError(
                "webhook: the payload is not plain JSON", retryable=False, code="bad_payload"
            ) from None
        if size > MAX_BODY_BYTES:
            raise ConnectorError(
                f"webhook: the event is {size} bytes; the limit is {MAX_BODY_BYTES}", retryable=False, code="too_large"
            )
        try:
            response = await endpoint.http.request(
                "POST", endpoint.path, json=envelope, idempotency_key=delivery, auth=endpoint.signer
            )
        except ConnectorError as exc:
            if exc.status == 410:
                raise ConnectorError(
                    f"{exc} (410 Gone: the receiver retired this endpoint; remove {arguments.endpoint!r} from the "
                    "settings)",
                    retryable=False,
                    status=410,
                    code="gone",
                ) from exc
            raise
        if not 200 <= response.status_code < 300:
            raise ConnectorError(
                f"webhook {arguments.endpoint}: POST answered {response.status_code}; redirects are not followed, "
                "so configure the final URL",
                retryable=False,
                status=response.status_code,
                code=f"http_{response.status_code}",
            )
        return WebhookDelivered(status=response.status_code, delivery_id=delivery)
