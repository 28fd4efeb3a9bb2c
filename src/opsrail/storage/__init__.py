"""Storage adapters: SQLAlchemy Core tables, Alembic migrations, repositories for SQLite and PostgreSQL."""

from opsrail.storage._audit import SqlAuditStore
from opsrail.storage._checkpoint import SqliteCheckpointer
from opsrail.storage._connector_dead_letters import SqlConnectorDeadLetters
from opsrail.storage._dead_letters import SqlDeadLetterStore
from opsrail.storage._decisions import SqlDecisionStore
from opsrail.storage._engine import create_engine, translate_errors, write_transaction
from opsrail.storage._events import SqlEventStore
from opsrail.storage._governance import SqlGovernanceStore
from opsrail.storage._health import SqlHealth
from opsrail.storage._insights import SqlInsightStore
from opsrail.storage._kpis import SqlKpiStore
from opsrail.storage._ledger import SqlLedgerStore
from opsrail.storage._migrate import current_revision, head_revision, upgrade
from opsrail.storage._retention import SqlRetentionStore
from opsrail.storage._roles import application_role_report, grant_application_role
from opsrail.storage._run_queries import EXPRESSION_INDEXES, SLA_STATES, SqlRunQueries
from opsrail.storage._runs import SqlRunStore
from opsrail.storage._sessions import SqlSessionStore
from opsrail.storage._tables import metadata
from opsrail.storage._tokens import SqlTokenStore

__all__ = [
    "EXPRESSION_INDEXES",
    "SLA_STATES",
    "SqlAuditStore",
    "SqlConnectorDeadLetters",
    "SqlDeadLetterStore",
    "SqlDecisionStore",
    "SqlEventStore",
    "SqlGovernanceStore",
    "SqlHealth",
    "SqlInsightStore",
    "SqlKpiStore",
    "SqlLedgerStore",
    "SqlRetentionStore",
    "SqlRunQueries",
    "SqlRunStore",
    "SqlSessionStore",
    "SqlTokenStore",
    "SqliteCheckpointer",
    "application_role_report",
    "create_engine",
    "current_revision",
    "grant_application_role",
    "head_revision",
    "metadata",
    "translate_errors",
    "upgrade",
    "write_transaction",
]
