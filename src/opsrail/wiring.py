"""The one place that picks adapters from settings and assembles the services."""

from __future__ import annotations

import importlib
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from opsrail.connectors import LedgerConnector, LoopLocalClient, build_connectors
from opsrail.engine import CalendarRegistry, Engine, Operations, load_calendars
from opsrail.ingest import builtin_mappers
from opsrail.knowledge import ExtractiveSummarizer, OpenAICompatibleSummarizer, Summarizer, reference_folder
from opsrail.model import Clock, IdFactory, InvalidInput, Unavailable
from opsrail.services import (
    AuditService,
    AuthorizationService,
    AutomationService,
    ChatApprovals,
    ConnectorService,
    DecisionService,
    DirectoryService,
    IngestionService,
    InsightService,
    KpiService,
    LedgerService,
    OidcVerifier,
    RetentionService,
    SessionService,
    TokenService,
    escalation_alert,
)
from opsrail.settings import Settings
from opsrail.storage import (
    SqlAuditStore,
    SqlConnectorDeadLetters,
    SqlDeadLetterStore,
    SqlDecisionStore,
    SqlEventStore,
    SqlGovernanceStore,
    SqlHealth,
    SqlInsightStore,
    SqliteCheckpointer,
    SqlKpiStore,
    SqlLedgerStore,
    SqlRetentionStore,
    SqlRunQueries,
    SqlRunStore,
    SqlSessionStore,
    SqlTokenStore,
    application_role_report,
    create_engine,
    grant_application_role,
    translate_errors,
    upgrade,
)

DatabaseError = sa.exc.SQLAlchemyError

__all__ = [
    "Container",
    "DatabaseError",
    "RandomIds",
    "SystemClock",
    "application_role_report",
    "build",
    "grant_application_role",
    "require_current_schema",
    "translate_errors",
    "upgrade_database",
]


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    """Ids like ``dl_0193a2b4c5d6e7f8a9b0c1d2`` : 48-bit milliseconds then 48 random bits, so they sort by time."""

    def new(self, prefix: str) -> str:
        return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


@dataclass
class Container:
    settings: Settings
    engine: sa.Engine
    health: SqlHealth
    ingestion: IngestionService
    tokens: TokenService
    runner: Engine
    automation: AutomationService
    decisions: DecisionService
    audit: AuditService
    retention: RetentionService
    authorization: AuthorizationService
    directory: DirectoryService
    ledger: LedgerService
    connectors: ConnectorService
    chat_approvals: ChatApprovals
    kpis: KpiService
    insights: InsightService
    sessions: SessionService
    run_queries: SqlRunQueries

    oidc: OidcVerifier | None = None
    checkpointer: SqliteCheckpointer | None = None

    def start(self) -> None:
        """Start the background work a long-running process needs (the API server)."""
        self.ingestion.writer.start()
        if self.checkpointer is not None:
            self.checkpointer.start()

    def close(self) -> None:
        self.ingestion.writer.stop()
        self.ingestion.events.close()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()


def build(
    settings: Settings, *, migrate: bool = False, clock: Clock | None = None, ids: IdFactory | None = None
) -> Container:
    """Assemble Opsrail from settings. With ``migrate``, bring the database schema up to date first."""
    url = settings.resolved_database_url()
    engine = create_engine(url, sqlite_synchronous=settings.sqlite_synchronous, pool_size=settings.pool_size)
    if migrate:
        try:
            upgrade(engine)
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise translate_errors(exc) from None
    clock = clock or SystemClock()
    ids = ids or RandomIds()
    health = SqlHealth(engine)
    event_store = SqlEventStore(engine, sqlite_synchronous=settings.sqlite_synchronous)
    ingestion = IngestionService(
        event_store,
        SqlDeadLetterStore(engine),
        clock,
        ids,
        builtin_mappers(),
        max_batch=settings.ingest_batch_limit,
        inline_commit=settings.is_sqlite and settings.sqlite_synchronous in ("OFF", "NORMAL"),
        write_async=event_store.append_async if event_store.appends_async else None,
    )
    database = engine.url.database
    run_store = SqlRunStore(engine, ids)
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
    runner = Engine(
        run_store,
        operations(settings),
        clock,
        ids,
        owner=owner,
        lease_seconds=settings.lease_seconds,
        concurrency=settings.worker_concurrency,
        calendars=CalendarRegistry(load_calendars(settings.calendars) if settings.calendars else {}),
        store_in_thread=not settings.is_sqlite,
    )
    automation = AutomationService(run_store, runner, clock)
    decisions = DecisionService(
        SqlDecisionStore(engine),
        automation,
        clock,
        ids,
        knowledge_dir=settings.knowledge_dir or reference_folder(),
        summarizer=summarizer(settings),
        redact_fields=settings.redact_fields,
    )
    runner.operations.set_decider(decisions.decide_step)
    automation.decision_names = lambda: [item["name"] for item in decisions.catalog()]
    audit = AuditService(SqlAuditStore(engine), clock, settings.redact_fields)
    tokens = TokenService(SqlTokenStore(engine), clock, ids)
    automation.token_roles = tokens.roles_of
    automation.token_accounts = tokens.accounts
    retention = RetentionService(
        SqlRetentionStore(engine), clock, settings.retention, archive_dir=settings.retention_archive
    )
    retention.prune_models = decisions.prune_models
    authorization = AuthorizationService(SqlGovernanceStore(engine), clock)
    directory = DirectoryService(SqlGovernanceStore(engine), clock, ids)
    automation.authorization = authorization
    automation.directory = directory
    runner.periodic.append(lambda: len(automation.escalate()))
    decisions.alerts.append(escalation_alert(ingestion, clock))
    runner.alerts.append(escalation_alert(ingestion, clock))
    ledger = LedgerService(SqlLedgerStore(engine), clock, ids)
    http = LoopLocalClient(timeout=10.0)
    connectors = ConnectorService(
        [LedgerConnector(ledger), *build_connectors(settings.connectors, http)],
        SqlConnectorDeadLetters(engine),
        clock,
        ids,
    )
    connectors.register(runner.operations)
    chat_approvals = ChatApprovals(
        connectors.connectors, automation, directory, settings.connectors.get("slack", {}).get("users")
    )
    sessions = SessionService(SqlSessionStore(engine), SqlGovernanceStore(engine), directory, tokens)
    for service in (automation, decisions, tokens, retention, authorization, directory, ledger, connectors, sessions):
        service.audit = audit
    kpis = KpiService(SqlKpiStore(engine), clock)
    insights = InsightService(SqlInsightStore(engine), clock, kpis, automation, decisions)
    retention.archive_runs = insights.archive_runs
    return Container(
        settings=settings,
        engine=engine,
        health=health,
        ingestion=ingestion,
        tokens=tokens,
        runner=runner,
        automation=automation,
        decisions=decisions,
        audit=audit,
        retention=retention,
        authorization=authorization,
        directory=directory,
        ledger=ledger,
        connectors=connectors,
        chat_approvals=chat_approvals,
        kpis=kpis,
        insights=insights,
        sessions=sessions,
        run_queries=SqlRunQueries(engine),
        oidc=oidc_verifier(settings),
        checkpointer=SqliteCheckpointer(database) if settings.is_sqlite and database else None,
    )


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """Bearer JWTs are accepted when OPSRAIL_OIDC_JWKS names a key set."""
    if not settings.oidc_jwks:
        return None
    return OidcVerifier(
        settings.oidc_jwks,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        role_claim=settings.oidc_role_claim,
        name_claim=settings.oidc_name_claim,
        http=httpx.Client(timeout=5.0) if settings.oidc_jwks.startswith(("http://", "https://")) else None,
    )


def summarizer(settings: Settings) -> Summarizer:
    """Extractive and local by default; an OpenAI-compatible provider when OPSRAIL_SUMMARY_URL is set."""
    if not settings.summary_url:
        return ExtractiveSummarizer()
    key = settings.summary_api_key.get_secret_value() if settings.summary_api_key else None
    return OpenAICompatibleSummarizer(
        settings.summary_url, key, settings.summary_model, client=httpx.Client(timeout=20.0)
    )


def operations(settings: Settings) -> Operations:
    """The built-in operations plus those of every configured plugin module."""
    registry = Operations()
    for name in settings.plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise InvalidInput(f"plugin {name!r} cannot be imported: {exc}", hint="check OPSRAIL_PLUGINS") from None
        register = getattr(module, "register", None)
        if not callable(register):
            raise InvalidInput(f"plugin {name!r} has no register(operations) function", hint="check OPSRAIL_PLUGINS")
        register(registry)
    return registry


def upgrade_database(container: Container) -> tuple[str | None, str]:
    """Apply the migrations; returns the revisions before and after."""
    try:
        return upgrade(container.engine)
    except sa.exc.SQLAlchemyError as exc:
        raise translate_errors(exc) from None


def require_current_schema(container: Container) -> None:
    try:
        current = container.health.schema_is_current()
    except sa.exc.SQLAlchemyError as exc:
        raise translate_errors(exc) from None
    if not current:
        raise Unavailable("the database schema is not up to date", hint="run `opsrail db upgrade`")
