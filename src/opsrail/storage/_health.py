"""Readiness checks for the store."""

from __future__ import annotations

import sqlalchemy as sa

from opsrail.storage._migrate import current_revision, head_revision


class SqlHealth:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def schema_is_current(self) -> bool:
        return current_revision(self.engine) == head_revision()
