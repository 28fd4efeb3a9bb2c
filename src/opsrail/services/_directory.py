"""The user directory and delegations: who holds which roles, and who acts for whom until when."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from opsrail.governance import ROLES, Principal
from opsrail.model import Clock, Conflict, FieldError, IdFactory, InvalidInput, NotFound
from opsrail.services._audit import Auditor, not_audited

# Whoever runs the CLI without being in the directory acts with these roles: they can read the database anyway.
LOCAL_ROLES = frozenset({"admin"})
_MAX_DELEGATION = timedelta(days=366)


class DirectoryStore(Protocol):
    def put_user(self, name: str, roles: list[str], by: str | None, at: datetime) -> bool: ...

    def user(self, name: str) -> dict[str, Any] | None: ...

    def users(self) -> list[dict[str, Any]]: ...

    def disable_user(self, name: str, at: datetime) -> bool: ...

    def add_delegation(self, record: dict[str, Any]) -> None: ...

    def delegations(self, *, delegate: str | None = None, owner: str | None = None) -> list[dict[str, Any]]: ...

    def active_delegations(self, delegate: str, at: datetime) -> list[dict[str, Any]]: ...

    def revoke_delegation(self, delegation_id: str, at: datetime) -> dict[str, Any] | None: ...


def check_roles(roles: list[str], path: str = "$.roles") -> list[str]:
    unknown = [role for role in roles if role not in ROLES]
    if unknown or not roles:
        raise InvalidInput(
            f"unknown roles: {', '.join(unknown)}" if unknown else "give at least one role",
            hint=f"choose from: {', '.join(ROLES)}",
            errors=[FieldError(path, "unknown role" if unknown else "at least one", "enum")],
        )
    return list(dict.fromkeys(roles))


def check_name(name: str, what: str = "a user name") -> str:
    name = name.strip()
    if not 1 <= len(name) <= 128 or any(ord(c) < 32 for c in name):
        raise InvalidInput(f"{what} has 1 to 128 printable characters")
    return name


class DirectoryService:
    def __init__(self, store: DirectoryStore, clock: Clock, ids: IdFactory) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.audit: Auditor = not_audited

    # -- users -----------------------------------------------------------------------------------------------

    def put_user(self, name: str, roles: list[str], by: str | None = None) -> dict[str, Any]:
        name, roles = check_name(name), check_roles(roles)
        created = self.store.put_user(name, roles, by, self.clock.now())
        self.audit(by, "user.created" if created else "user.roles_changed", name, {"roles": roles})
        user = self.store.user(name)
        assert user is not None
        return user

    def users(self) -> list[dict[str, Any]]:
        return self.store.users()

    def disable(self, name: str, by: str | None = None) -> None:
        if not self.store.disable_user(name, self.clock.now()):
            raise NotFound(f"no active user {name!r}", hint="list them with `opsrail users list`")
        self.audit(by, "user.disabled", name, {})

    # -- delegations -----------------------------------------------------------------------------------------

    def delegate(
        self,
        owner: str,
        delegate: str,
        until: datetime,
        roles: list[str] | None = None,
        by: str | None = None,
        starts: datetime | None = None,
    ) -> dict[str, Any]:
        """Let ``delegate`` decide with ``owner``'s roles (all, or ``roles``) until ``until``."""
        owner, delegate = check_name(owner, "the owner"), check_name(delegate, "the delegate")
        now = self.clock.now()
        starts = starts or now
        if owner == delegate:
            raise InvalidInput("a person cannot delegate to themselves")
        if until <= starts or until <= now:
            raise InvalidInput("a delegation ends in the future, after it starts", hint="e.g. --until 2026-12-31")
        if until - starts > _MAX_DELEGATION:
            raise InvalidInput("a delegation lasts at most 366 days", hint="delegations must end; renew it later")
        held = self.roles_of(owner)
        if held is None:
            raise NotFound(f"no user {owner!r} in the directory", hint="create them with `opsrail users create`")
        chosen = check_roles(roles) if roles else sorted(held)
        missing = [role for role in chosen if role not in held]
        if missing:
            raise Conflict(f"{owner} does not hold {', '.join(missing)}", hint="one can only delegate roles one has")
        delegation_id = self.ids.new("dlg")
        record: dict[str, Any] = {
            "id": delegation_id,
            "owner": owner,
            "delegate": delegate,
            "roles": chosen,
            "starts_at": starts,
            "ends_at": until,
            "created_by": by,
            "revoked_at": None,
        }
        self.store.add_delegation(record)
        self.audit(
            by, "delegation.created", delegation_id, {k: record[k] for k in ("owner", "delegate", "roles", "ends_at")}
        )
        return record

    def delegations(self, *, delegate: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
        return self.store.delegations(delegate=delegate, owner=owner)

    def revoke_delegation(self, delegation_id: str, by: str | None = None) -> dict[str, Any]:
        found = self.store.revoke_delegation(delegation_id, self.clock.now())
        if found is None:
            raise NotFound(f"no active delegation {delegation_id!r}", hint="list them with `opsrail delegations list`")
        self.audit(by, "delegation.revoked", delegation_id, {"owner": found["owner"], "delegate": found["delegate"]})
        return found

    # -- principals ------------------------------------------------------------------------------------------

    def roles_of(self, name: str) -> frozenset[str] | None:
        user = self.store.user(name)
        if user is None or user["disabled_at"] is not None:
            return None
        return frozenset(user["roles"])

    def principal(self, name: str, roles: frozenset[str], kind: str) -> Principal:
        """``roles`` plus those delegated to ``name`` right now (from owners still in the directory)."""
        extra: set[str] = set()
        owners: list[str] = []
        for item in self.store.active_delegations(name, self.clock.now()):
            held = self.roles_of(item["owner"]) or frozenset()
            granted = held & set(item["roles"])
            if granted:
                extra |= granted
                owners.append(item["owner"])
        return Principal(name, frozenset(roles | extra), kind, tuple(owners))

    def local(self, name: str) -> Principal:
        """The principal of a CLI user: their directory roles, or ``admin`` when they are not in it."""
        roles = self.roles_of(name)
        if roles is None and self.store.user(name) is not None:
            raise InvalidInput(f"the user {name!r} is disabled", hint="ask an admin to re-enable them")
        return self.principal(name, roles if roles is not None else LOCAL_ROLES, "user")
