"""Connectors: the systems Opsrail acts on (ERP, billing, CRM, ITSM, chat, e-mail, webhooks) and the SDK they share."""

from opsrail.connectors._sdk import (
    CallObserver,
    CircuitBreaker,
    Connector,
    ConnectorError,
    HttpPolicy,
    HttpTransport,
    Model,
    OperationSpec,
    RateLimiter,
    bind,
    describe,
    retry_after_seconds,
    secret,
)

__all__ = [
    "CallObserver",
    "CircuitBreaker",
    "Connector",
    "ConnectorError",
    "HttpPolicy",
    "HttpTransport",
    "Model",
    "OperationSpec",
    "RateLimiter",
    "bind",
    "describe",
    "retry_after_seconds",
    "secret",
]
