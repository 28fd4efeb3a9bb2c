"""Published authorization policy sets, the user directory and delegations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, delegations, policy_sets, users


class SqlGovernanceStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- policy sets ---------------------------------------------------------------------------------------

    def latest_policy_version(self) -> int | None:
        with self.engine.connect() as conn:
            version: int | None = conn.execute(sa.select(sa.func.max(policy_sets.c.version))).scalar()
        return version

    def policy_set(self, version: int | None = None) -> dict[str, Any] | None:
        query = sa.select(policy_sets)
        query = (
            query.where(policy_sets.c.version == version)
            if version is not None
            else query.order_by(policy_sets.c.version.desc()).limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return {str(k): v for k, v in row.items()} | {"published_at": as_utc(row["published_at"])}

    def add_policy_set(
        self, document: str, cases: str | None, sha256: str, filename: str, by: str | None, at: datetime
    ) -> int:
        with write_transaction(self.engine) as conn:
            current = conn.execute(
                sa.select(policy_sets.c.sha256, policy_sets.c.version).order_by(policy_sets.c.version.desc()).limit(1)
            ).first()
            if current is not None and current.sha256 == sha256:
                return int(current.version)
            version = (current.version if current is not None else 0) + 1
            conn.execute(
                policy_sets.insert().values(
                    version=version,
                    document=document,
                    cases=cases,
                    sha256=sha256,
                    filename=filename,
                    published_by=by,
                    published_at=at,
                )
            )
        return int(version)

    def policy_sets(self) -> list[dict[str, Any]]:
        columns = [c for c in policy_sets.c if c.name not in ("document", "cases")]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).order_by(policy_sets.c.version.desc())).mappings().all()
        return [{str(k): v for k, v in row.items()} | {"published_at": as_utc(row["published_at"])} for row in rows]

    # -- users ---------------------------------------------------------------------------------------------

    def put_user(self, name: str, roles: list[str], by: str | None, at: datetime) -> bool:
        """Create a user, or replace the roles of an existing one; True when it was new."""
        with write_transaction(self.engine) as conn:
            found = conn.execute(sa.select(users.c.name).where(users.c.name == name)).first()
            if found is None:
                conn.execute(users.insert().values(name=name, roles=roles, created_at=at, created_by=by))
                return True
            conn.execute(users.update().where(users.c.name == name).values(roles=roles, disabled_at=None))
            return False

    def user(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).mappings().first()
        return None if row is None else _user(row)

    def users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.name)).mappings().all()
        return [_user(row) for row in rows]

    def set_password_hash(self, name: str, password_hash: str | None) -> bool:
        with write_transaction(self.engine) as conn:
            done = conn.execute(users.update().where(users.c.name == name).values(password_hash=password_hash))
        return bool(done.rowcount)

    def password_hash(self, name: str) -> str | None:
        """The stored hash of an active user's password (None: no such user, disabled, or no password)."""
        query = sa.select(users.c.password_hash).where(users.c.name == name, users.c.disabled_at.is_(None))
        with self.engine.connect() as conn:
            found: str | None = conn.execute(query).scalar()
        return found

    def disable_user(self, name: str, at: datetime) -> bool:
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                users.update().where(users.c.name == name, users.c.disabled_at.is_(None)).values(disabled_at=at)
            )
        return bool(done.rowcount)

    # -- delegations ---------------------------------------------------------------------------------------

    def add_delegation(self, record: dict[str, Any]) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(delegations.insert().values(**record))

    def delegations(self, *, delegate: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(delegations).order_by(delegations.c.starts_at.desc())
        if delegate is not None:
            query = query.where(delegations.c.delegate == delegate)
        if owner is not None:
            query = query.where(delegations.c.owner == owner)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_delegation(row) for row in rows]

    def active_delegations(self, delegate: str, at: datetime) -> list[dict[str, Any]]:
        query = sa.select(delegations).where(
            delegations.c.delegate == delegate,
            delegations.c.revoked_at.is_(None),
            delegations.c.starts_at <= at,
            delegations.c.ends_at > at,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_delegation(row) for row in rows]

    def revoke_delegation(self, delegation_id: str, at: datetime) -> dict[str, Any] | None:
        with write_transaction(self.engine) as conn:
            row = conn.execute(sa.select(delegations).where(delegations.c.id == delegation_id)).mappings().first()
            if row is None or row["revoked_at"] is not None:
                return None
            conn.execute(delegations.update().where(delegations.c.id == delegation_id).values(revoked_at=at))
        return _delegation(row)


def _user(row: Any) -> dict[str, Any]:
    return {
        "name": row["name"],
        "roles": list(row["roles"]),
        "created_at": as_utc(row["created_at"]),
        "created_by": row["created_by"],
        "disabled_at": as_utc(row["disabled_at"]),
        "has_password": row["password_hash"] is not None,
    }


def _delegation(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "owner": row["owner"],
        "delegate": row["delegate"],
        "roles": list(row["roles"]),
        "starts_at": as_utc(row["starts_at"]),
        "ends_at": as_utc(row["ends_at"]),
        "created_by": row["created_by"],
        "revoked_at": as_utc(row["revoked_at"]),
    }
