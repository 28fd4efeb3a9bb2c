"""Governance (pure): the tamper-evident audit chain and data minimisation."""

from opsrail.governance._audit import GENESIS, AuditEntry, ChainReport, canonical, entry_hash, verify_chain
from opsrail.governance._redaction import REDACTED, redact, redact_text

__all__ = [
    "GENESIS",
    "REDACTED",
    "AuditEntry",
    "ChainReport",
    "canonical",
    "entry_hash",
    "redact",
    "redact_text",
    "verify_chain",
]
