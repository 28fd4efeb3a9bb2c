"""The connector SDK: typed operations, HTTP with timeouts, retries that honour ``Retry-After``, a circuit breaker
and a rate limit per connector, vendor idempotency keys, and errors marked retryable or permanent.

A connector declares its operations (:class:`OperationSpec`: a pydantic input model, an output model, a handler);
:func:`bind` registers them with the engine as ``<connector>.<operation>``, validating the step's parameters first.
HTTP connectors talk through :class:`HttpTransport`, which owns the shared machinery so each connector only says
what to send and how to read the vendor's errors.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from opsrail.connectors._http_client import HeaderAuth, LoopLocalClient
from opsrail.engine import CallContext, OperationFailed, Operations

log = logging.getLogger("opsrail.connectors")


class ConnectorError(OperationFailed):
    """A vendor call that did not succeed. ``retryable``: trying again later may help (5xx, 429, timeouts)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class Model(BaseModel):
    """Base of operation inputs and outputs: unknown fields are refused, so a typo in a playbook is an error."""

    model_config = ConfigDict(extra="forbid")


Handler = Callable[[Any, CallContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class OperationSpec:
    name: str
    summary: str
    input: type[BaseModel]
    output: type[BaseModel] | None
    handler: Handler


class Connector:
    """A system Opsrail acts on. Subclasses set ``name`` and ``summary`` and list their operations."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def operations(self) -> list[OperationSpec]:
        raise NotImplementedError

    async def check(self) -> dict[str, Any]:
        """Is the system reachable with these credentials? ``{"ok": bool, "detail": str}``; never raises."""
        return {"ok": True, "detail": "nothing to check"}

    async def aclose(self) -> None:
        """Release connections the connector opened itself."""


# -- shared HTTP machinery ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    timeout_s: float = 10.0
    retries: int = 3  # extra attempts within one step attempt, for 429, 5xx and transport errors
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    max_retry_after_s: float = 30.0  # a longer Retry-After ends the call: the engine's retry waits instead
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    rate_per_s: float | None = None


class CircuitBreaker:
    """Closed until ``failures`` calls in a row fail; then open (calls fail fast) for ``reset_s``; then one trial."""

    def __init__(self, failures: int, reset_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.monotonic = monotonic
        self.consecutive = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.monotonic() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        return self.state != "open"

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None

    def failure(self) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures or self.state == "half-open":
            self.opened_at = self.monotonic()


class RateLimiter:
    """An asynchronous token bucket: ``rate`` calls a second, bursts of up to ``rate`` (at least one)."""

    def __init__(self, rate: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.level = self.capacity
        self.monotonic = monotonic
        self.last = monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self.monotonic()
                self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
                self.last = now
                if self.level >= 1.0:
                    self.level -= 1.0
                    return
                await asyncio.sleep((1.0 - self.level) / self.rate)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


ErrorReader = Callable[[httpx.Response], str]


def default_error(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] or response.reason_phrase


@dataclass
class HttpTransport:
    """One connector's HTTP: base URL, auth headers, timeouts, retries, breaker, rate limit, idempotency header."""

    connector: str
    client: httpx.AsyncClient
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    policy: HttpPolicy = field(default_factory=HttpPolicy)
    idempotency_header: str | None = None
    error_message: ErrorReader = default_error
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.breaker = CircuitBreaker(self.policy.breaker_failures, self.policy.breaker_reset_s, self.monotonic)
        self.limiter = RateLimiter(self.policy.rate_per_s, self.monotonic) if self.policy.rate_per_s else None
        self.calls = 0  # attempts sent, for metrics and tests

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        if not self.breaker.allow():
            raise ConnectorError(
                f"{self.connector}: circuit open after {self.breaker.consecutive} failures in a row; "
                f"not calling for {self.policy.breaker_reset_s:g} s",
                retryable=True,
                code="circuit_open",
            )
        sent_headers = {**self.headers, **(headers or {})}
        if idempotency_key and self.idempotency_header:
            sent_headers[self.idempotency_header] = idempotency_key
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                await self.limiter.acquire()
            self.calls += 1
            try:
                if (
                    isinstance(self.client, LoopLocalClient)
                    and (auth is None or isinstance(auth, HeaderAuth))
                    and (data is None or (json is None and isinstance(data, Mapping)))
                ):
                    response = await self.client.exchange(
                        method,
                        url,
                        headers=sent_headers,
                        json=json,
                        form=data,
                        params=params,
                        auth=auth,
                        timeout=self.policy.timeout_s,
                    )
                else:
                    response = await self._send(method, url, json, data, params, sent_headers, auth)
            except httpx.TimeoutException:
                error = ConnectorError(
                    f"{self.connector}: {method} {path} timed out after {self.policy.timeout_s:g} s",
                    retryable=True,
                    code="timeout",
                )
            except httpx.TransportError as exc:
                error = ConnectorError(
                    f"{self.connector}: {method} {path} failed: {type(exc).__name__}", retryable=True, code="transport"
                )
            else:
                if response.status_code < 400:
                    self.breaker.success()
                    return response
                error = self._error(method, path, response)
                if not error.retryable:
                    # The vendor answered and refused: the system is up, the request is wrong.
                    self.breaker.success()
                    raise error
            self.breaker.failure()
            if attempt > self.policy.retries or not self.breaker.allow():
                raise error
            wait = error.retry_after
            if wait is None:
                wait = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (attempt - 1))
                wait *= 0.5 + random.random() / 2
            elif wait > self.policy.max_retry_after_s:
                raise error
            log.info("retrying %s %s in %.2f s: %s", method, path, wait, error, extra={"connector": self.connector})
            await self.sleep(wait)

    async def _send(
        self,
        method: str,
        url: str,
        json: Any,
        data: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        auth: httpx.Auth | None,
    ) -> httpx.Response:
        request = self.client.build_request(
            method, url, json=json, data=data, params=params, headers=headers, timeout=self.policy.timeout_s
        )
        return await self.client.send(request, auth=auth) if auth else await self.client.send(request)

    def _error(self, method: str, path: str, response: httpx.Response) -> ConnectorError:
        status = response.status_code
        retryable = status in (408, 425, 429) or status >= 500
        detail = self.error_message(response)
        return ConnectorError(
            f"{self.connector}: {method} {path} answered {status}: {detail}",
            retryable=retryable,
            status=status,
            code=f"http_{status}",
            retry_after=retry_after_seconds(response.headers.get("retry-after")) if retryable else None,
        )


# -- settings ---------------------------------------------------------------------------------------------------

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def cleartext_url(url: str) -> bool:
    """True for a plain-http URL to anywhere but this machine: credentials must not travel that way."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in LOOPBACK


def settings_problem(connector: str, base_url: str, required: Mapping[str, str], example: str) -> str | None:
    """What makes a connector's settings unusable (missing values, a base URL that is not https), or None.

    ``required`` maps each setting's name, as the user would write it, to its value.
    """
    missing = [name for name, value in (("base_url", base_url), *required.items()) if not value]
    if missing:
        return f"{connector}: missing settings: {', '.join(missing)}"
    address = urlsplit(base_url)
    if address.scheme not in ("https", "http") or not address.hostname:
        return f"{connector}: base_url must be an https URL such as {example}"
    if cleartext_url(base_url):
        return f"{connector}: base_url must use https (plain http only for localhost)"
    return None


# -- credentials ------------------------------------------------------------------------------------------------


def secret(config: Mapping[str, Any], key: str, connector: str) -> str | None:
    """A credential from the connector's settings: ``key`` itself, or the first line of the file ``key_file``."""
    path = config.get(f"{key}_file")
    if path:
        try:
            return Path(str(path)).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError):
            raise OperationFailed(
                f"{connector}: cannot read the secret file named by {key}_file", retryable=False
            ) from None
    value = config.get(key)
    return str(value) if value else None


# -- binding to the engine --------------------------------------------------------------------------------------

CallObserver = Callable[[str, CallContext, str, str | None], None]
"""``observer(operation, call, outcome, error)``: told after every call (outcome ``ok``, ``retryable``, ``failed``)."""


DeadLetter = Callable[[str, dict[str, Any], CallContext, str], None]
"""``dead_letter(operation, params, call, error)``: told when a call failed for good (permanent, or the last try)."""


def bind(
    operations: Operations,
    connector: Connector,
    observer: CallObserver | None = None,
    dead_letter: DeadLetter | None = None,
) -> list[str]:
    """Register the connector's operations with the engine; returns their full names."""
    names = []
    for spec in connector.operations():
        full = f"{connector.name}.{spec.name}"
        operations.register(full, _operation(full, spec, observer, dead_letter))
        names.append(full)
    return names


def _operation(
    full: str, spec: OperationSpec, observer: CallObserver | None, dead_letter: DeadLetter | None
) -> Callable[..., Awaitable[Any]]:
    async def operation(params: dict[str, Any], call: CallContext) -> Any:
        try:
            arguments = spec.input.model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(input)'}: {e['msg']}" for e in exc.errors()[:5]
            )
            if observer is not None:
                observer(full, call, "failed", problems)
            raise OperationFailed(f"{full}: invalid input: {problems}", retryable=False) from None
        try:
            result = await spec.handler(arguments, call)
        except OperationFailed as exc:
            if observer is not None:
                observer(full, call, "retryable" if exc.retryable else "failed", str(exc))
            if dead_letter is not None and (call.final or not exc.retryable):
                dead_letter(full, params, call, str(exc))
            raise
        if observer is not None:
            observer(full, call, "ok", None)
        if isinstance(result, BaseModel):
            return result.model_dump(mode="json")
        return result

    return operation


def describe(connector: Connector) -> dict[str, Any]:
    return {
        "name": connector.name,
        "summary": connector.summary,
        "operations": [
            {
                "name": f"{connector.name}.{spec.name}",
                "summary": spec.summary,
                "input": spec.input.model_json_schema(),
                "output": spec.output.model_json_schema() if spec.output else None,
            }
            for spec in connector.operations()
        ],
    }
