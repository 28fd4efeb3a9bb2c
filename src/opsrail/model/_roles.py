"""The roles people and services hold: the vocabulary policies, tokens and the user directory share."""

from __future__ import annotations

ROLES: tuple[str, ...] = ("admin", "operator", "approver", "finance_controller", "legal", "auditor", "service")
