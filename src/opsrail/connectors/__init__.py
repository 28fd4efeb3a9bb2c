"""Connectors: the systems Opsrail acts on (ERP, billing, CRM, ITSM, chat, e-mail, webhooks) and the SDK they share."""

from opsrail.connectors._http_client import HeaderAuth, LoopLocalClient
from opsrail.connectors._registry import CATALOG, build_connectors
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
from opsrail.connectors.ledger import LedgerConnector, LedgerPort

__all__ = [
    "CATALOG",
    "CallObserver",
    "CircuitBreaker",
    "Connector",
    "ConnectorError",
    "HeaderAuth",
    "HttpPolicy",
    "HttpTransport",
    "LedgerConnector",
    "LedgerPort",
    "LoopLocalClient",
    "Model",
    "OperationSpec",
    "RateLimiter",
    "bind",
    "build_connectors",
    "describe",
    "retry_after_seconds",
    "secret",
]
