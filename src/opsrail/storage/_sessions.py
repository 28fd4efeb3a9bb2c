"""Console sign-in sessions, keyed by the SHA-256 of the cookie's secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, console_sessions


class SqlSessionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add_session(self, record: dict[str, Any]) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(console_sessions.insert().values(**record))

    def session(self, session_id: str) -> dict[str, Any] | None:
        query = sa.select(console_sessions).where(console_sessions.c.id == session_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return {
            "id": row["id"],
            "principal": row["principal"],
            "roles": list(row["roles"]),
            "kind": row["kind"],
            "csrf": row["csrf"],
            "token_hash": row["token_hash"],
            "created_at": as_utc(row["created_at"]),
            "expires_at": as_utc(row["expires_at"]),
            "revoked_at": as_utc(row["revoked_at"]),
        }

    def revoke_session(self, session_id: str, at: datetime) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                console_sessions.update()
                .where(console_sessions.c.id == session_id, console_sessions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )

    def revoke_sessions_of(self, principal: str, at: datetime) -> int:
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                console_sessions.update()
                .where(console_sessions.c.principal == principal, console_sessions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return int(done.rowcount)

    def purge_sessions(self, before: datetime) -> int:
        with write_transaction(self.engine) as conn:
            done = conn.execute(console_sessions.delete().where(console_sessions.c.expires_at < before))
        return int(done.rowcount)
