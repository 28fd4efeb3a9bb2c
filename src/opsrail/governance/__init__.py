"""Governance (pure): Cedar authorization, the tamper-evident audit chain and data minimisation."""

from opsrail.governance._audit import GENESIS, AuditEntry, ChainReport, canonical, entry_hash, verify_chain
from opsrail.governance._authorization import (
    ACTIONS,
    GROUPS,
    Answer,
    CaseResult,
    PolicyCase,
    PolicySet,
    Principal,
    Resource,
    load_cases,
    schema_text,
    validate_policies,
)
from opsrail.governance._redaction import REDACTED, redact, redact_text
from opsrail.model import ROLES

__all__ = [
    "ACTIONS",
    "GENESIS",
    "GROUPS",
    "REDACTED",
    "ROLES",
    "Answer",
    "AuditEntry",
    "CaseResult",
    "ChainReport",
    "PolicyCase",
    "PolicySet",
    "Principal",
    "Resource",
    "canonical",
    "entry_hash",
    "load_cases",
    "redact",
    "redact_text",
    "schema_text",
    "validate_policies",
    "verify_chain",
]
