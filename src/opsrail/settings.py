"""The one settings object. Built once at start (``Settings()``) and passed in; never read at import."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob Opsrail has, read from ``OPSRAIL_*`` environment variables (or a ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="OPSRAIL_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".opsrail"), description="folder for the embedded SQLite store and local files")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means SQLite in OPSRAIL_HOME. PostgreSQL: postgresql+psycopg://user@host/db",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="NORMAL",
        description="SQLite synchronous pragma; NORMAL in WAL mode survives process crashes, FULL also power loss",
    )
    pool_size: int = Field(default=10, ge=1, le=200, description="database connection pool size per process")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="API server processes sharing the port")
    console_secure_cookies: bool = Field(
        default=False,
        description="mark console cookies Secure even when requests arrive over plain HTTP (behind a TLS proxy)",
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="largest request body accepted")
    ingest_batch_limit: int = Field(default=10_000, ge=1, description="most events in one batch request")
    lease_seconds: float = Field(default=30.0, gt=0.5, le=3600, description="how long a worker holds a claimed step")
    worker: bool = Field(default=True, description="run the engine's worker inside `opsrail up`")
    worker_concurrency: int = Field(default=256, ge=1, le=10_000, description="steps a worker runs at once")
    calendars: Path | None = Field(
        default=None, description="YAML file of business calendars for SLA clocks (built-in: 24x7, business-hours)"
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="modules whose register(operations) adds operations, e.g. OPSRAIL_PLUGINS='[\"acme.ops\"]'",
    )
    knowledge_dir: Path | None = Field(
        default=None,
        description="folder of Markdown runbooks and policies cited in reviews (default: the built-in samples)",
    )
    summary_url: str | None = Field(
        default=None, description="base URL of an OpenAI-compatible API for summaries (default: extractive, local)"
    )
    summary_api_key: SecretStr | None = Field(default=None, description="API key for OPSRAIL_SUMMARY_URL")
    summary_model: str = Field(default="gpt-4o-mini", description="model name sent to OPSRAIL_SUMMARY_URL")
    retention: dict[str, timedelta] = Field(
        default_factory=dict,
        description="how long payloads are kept per kind (events, dead_letters, decision_records, model_versions, "
        'runs), e.g. \'{"events": "P365D", "dead_letters": "P30D", "runs": "P730D"}\'',
    )
    retention_archive: Path | None = Field(
        default=None, description="folder where retention writes old runs (an event log file) before deleting them"
    )
    redact_fields: list[str] = Field(
        default_factory=list,
        description="field names masked whole in decision records and audit details, e.g. '[\"customer_name\"]'",
    )
    connectors: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='vendor connectors and their settings, e.g. \'{"jira": {"base_url": "…", "email": "…", '
        '"api_token_file": "/run/secrets/jira"}}\' (secrets may be given as <name>_file)',
    )
    oidc_jwks: str | None = Field(
        default=None, description="JWKS file or URL: bearer JWTs signed by these keys are accepted (default: off)"
    )
    oidc_issuer: str | None = Field(default=None, description="required `iss` of OIDC tokens")
    oidc_audience: str | None = Field(default=None, description="required `aud` of OIDC tokens")
    oidc_role_claim: str = Field(default="roles", description="claim holding Opsrail roles (dotted for nested)")
    oidc_name_claim: str = Field(default="sub", description="claim naming the person, e.g. preferred_username")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    access_log: bool = False

    @field_validator("database_url")
    @classmethod
    def _supported(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("OPSRAIL_DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value or None

    @field_validator("knowledge_dir")
    @classmethod
    def _a_folder(cls, value: Path | None) -> Path | None:
        # A mistyped folder would otherwise leave every review without runbooks, silently.
        if value is not None and not value.is_dir():
            raise ValueError(f"no folder {value} (a folder of Markdown runbooks and policies)")
        return value

    @field_validator("summary_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Caught here, a typo is one clear line at start; caught at the first summary, three retries and a fallback.
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1")
        return value or None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'opsrail.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
