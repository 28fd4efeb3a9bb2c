"""API token records; only the SHA-256 of a token is stored."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opsrail.services import ApiToken
from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import api_tokens, as_utc


class SqlTokenStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, token: ApiToken, token_hash: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                api_tokens.insert().values(
                    id=token.id,
                    name=token.name,
                    role=token.role,
                    token_hash=token_hash,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                    rate_limit=token.rate_limit,
                )
            )

    def by_hash(self, token_hash: str) -> ApiToken | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.token_hash == token_hash)).mappings().first()
        return _token(row) if row else None

    def all(self) -> list[ApiToken]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.created_at)).mappings().all()
        return [_token(r) for r in rows]

    def revoke(self, id: str, at: datetime) -> bool:
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return result.rowcount == 1

    def expire(self, id: str, at: datetime) -> bool:
        """Make an active token stop working at ``at`` (sooner only: an earlier expiry is kept)."""
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                api_tokens.update()
                .where(
                    api_tokens.c.id == id,
                    api_tokens.c.revoked_at.is_(None),
                    sa.or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > at),
                )
                .values(expires_at=at)
            )
        return result.rowcount == 1


def _token(row: sa.RowMapping) -> ApiToken:
    return ApiToken(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        created_at=as_utc(row["created_at"]) or row["created_at"],
        expires_at=as_utc(row["expires_at"]),
        revoked_at=as_utc(row["revoked_at"]),
        rate_limit=row["rate_limit"],
    )
