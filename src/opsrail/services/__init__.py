"""Use cases: they validate, call the pure layers and the storage ports, and own transactions."""

from opsrail.governance import ROLES
from opsrail.services._alerts import Alert, escalation_alert
from opsrail.services._at_risk import LOG_TASKS
from opsrail.services._audit import Auditor, AuditService, AuditStore, not_audited
from opsrail.services._authorization import AuthorizationService, PolicyStore, reference_cases, reference_policies
from opsrail.services._automation import AutomationService, AutomationStore, describe
from opsrail.services._chat_approvals import ChatApprovals
from opsrail.services._connectors import ConnectorService
from opsrail.services._decision_policies import DecisionPolicy, load_policies
from opsrail.services._decisions import DecisionService, DecisionStore, Evaluation
from opsrail.services._directory import DirectoryService, DirectoryStore
from opsrail.services._group_commit import GroupCommitter
from opsrail.services._ingestion import BatchOutcome, IngestionService, ItemResult, ParsedBatch, assemble_batch
from opsrail.services._insights import InsightService, InsightStore
from opsrail.services._kpis import KpiService, KpiStore
from opsrail.services._ledger import COLLECTIONS, LedgerService, LedgerStore
from opsrail.services._oidc import OidcIdentity, OidcVerifier
from opsrail.services._ports import ApiToken, DeadLetterStore, EventQuery, EventStore, Health, TokenStore
from opsrail.services._record_check import with_chain
from opsrail.services._retention import RETAINED_KINDS, RetentionService, RetentionStore
from opsrail.services._sessions import MIN_PASSWORD, SESSION_HOURS, Session, SessionService
from opsrail.services._tokens import TokenService, hash_token

__all__ = [
    "COLLECTIONS",
    "LOG_TASKS",
    "MIN_PASSWORD",
    "RETAINED_KINDS",
    "ROLES",
    "SESSION_HOURS",
    "Alert",
    "ApiToken",
    "AuditService",
    "AuditStore",
    "Auditor",
    "AuthorizationService",
    "AutomationService",
    "AutomationStore",
    "BatchOutcome",
    "ChatApprovals",
    "ConnectorService",
    "DeadLetterStore",
    "DecisionPolicy",
    "DecisionService",
    "DecisionStore",
    "DirectoryService",
    "DirectoryStore",
    "Evaluation",
    "EventQuery",
    "EventStore",
    "GroupCommitter",
    "Health",
    "IngestionService",
    "InsightService",
    "InsightStore",
    "ItemResult",
    "KpiService",
    "KpiStore",
    "LedgerService",
    "LedgerStore",
    "OidcIdentity",
    "OidcVerifier",
    "ParsedBatch",
    "PolicyStore",
    "RetentionService",
    "RetentionStore",
    "Session",
    "SessionService",
    "TokenService",
    "TokenStore",
    "assemble_batch",
    "describe",
    "escalation_alert",
    "hash_token",
    "load_policies",
    "not_audited",
    "reference_cases",
    "reference_policies",
    "with_chain",
]
