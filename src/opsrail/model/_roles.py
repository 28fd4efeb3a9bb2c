"""The roles people and services hold: the vocabulary policies, tokens and the user directory share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

ROLES: tuple[str, ...] = ("admin", "operator", "approver", "finance_controller", "legal", "auditor", "service")


ALREADY_PUBLISHED = "already_published"
"""Validation context key: the document was accepted when it was published (reading it back from a store checks no
role, so a version published before this check still loads)."""


def known_role(name: str, info: ValidationInfo) -> str:
    """``name`` if it is one of ``ROLES``; a ValueError (a field error) that lists them otherwise."""
    if name not in ROLES and not (info.context or {}).get(ALREADY_PUBLISHED):
        raise ValueError(f"unknown role {name!r}; the roles are {', '.join(ROLES)}")
    return name


KnownRole = Annotated[str, AfterValidator(known_role)]
"""A role named in a playbook or policy: a task for a role nobody can hold would wait forever."""
