"""Which connectors exist and how each is built from its settings (``OPSRAIL_CONNECTORS``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import httpx

from opsrail.connectors._sdk import Connector, HttpPolicy
from opsrail.model import InvalidInput

# name -> (module, class, needs an HTTP client)
CATALOG: dict[str, tuple[str, str, bool]] = {
    "jira": ("opsrail.connectors.jira", "JiraConnector", True),
    "slack": ("opsrail.connectors.slack", "SlackConnector", True),
    "stripe": ("opsrail.connectors.stripe", "StripeConnector", True),
    "servicenow": ("opsrail.connectors.servicenow", "ServiceNowConnector", True),
    "erpnext": ("opsrail.connectors.erpnext", "ERPNextConnector", True),
    "email": ("opsrail.connectors.email", "EmailConnector", False),
    "webhook": ("opsrail.connectors.webhooks", "WebhookConnector", True),
}


def build_connectors(configs: Mapping[str, Mapping[str, Any]], client: httpx.AsyncClient) -> list[Connector]:
    """The configured vendor connectors (the ledger is added by the caller, which owns it)."""
    built: list[Connector] = []
    for name, config in configs.items():
        if name not in CATALOG:
            raise InvalidInput(
                f"no connector named {name!r} in OPSRAIL_CONNECTORS", hint=f"known: {', '.join(sorted(CATALOG))}"
            )
        module_name, class_name, http = CATALOG[name]
        cls = getattr(importlib.import_module(module_name), class_name)
        if not http:
            built.append(cls(config))
            continue
        tuning = config.get("http")
        try:
            policy = HttpPolicy(**tuning) if isinstance(tuning, Mapping) else None
        except TypeError:
            raise InvalidInput(
                f"OPSRAIL_CONNECTORS: {name}.http has an unknown setting",
                hint="known: " + ", ".join(HttpPolicy.__dataclass_fields__),
            ) from None
        connector = cls(config, client, policy=policy)
        built.append(connector)
    return built
