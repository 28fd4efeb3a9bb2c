"""Console sign-in: a directory user's password (argon2id) or an API token becomes a session.

The session cookie holds 256 random bits; the store keeps only their SHA-256 (as for API tokens), with a CSRF
secret every form must echo. A password session reads its roles from the directory on every request, so
disabling a person or changing their roles takes effect at once; a token session ends when its token is revoked.
Failed sign-ins are throttled per name: after five within five minutes, that name waits a minute.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from opsrail.governance import Principal
from opsrail.model import InvalidInput, NotFound, RateLimited, Unauthenticated
from opsrail.services._audit import Auditor, not_audited
from opsrail.services._directory import DirectoryService, check_name
from opsrail.services._tokens import TokenService, hash_token

SESSION_HOURS = 12
MIN_PASSWORD = 10
_FAILURES = 5
_FAILURE_WINDOW = timedelta(minutes=5)
_LOCKOUT = timedelta(minutes=1)


class SessionStore(Protocol):
    def add_session(self, record: dict[str, Any]) -> None: ...

    def session(self, session_id: str) -> dict[str, Any] | None: ...

    def revoke_session(self, session_id: str, at: datetime) -> None: ...

    def revoke_sessions_of(self, principal: str, at: datetime) -> int: ...


class PasswordStore(Protocol):
    def set_password_hash(self, name: str, password_hash: str | None) -> bool: ...

    def password_hash(self, name: str) -> str | None: ...


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str
    expires_at: datetime


class SessionService:
    def __init__(
        self,
        store: SessionStore,
        passwords: PasswordStore,
        directory: DirectoryService,
        tokens: TokenService,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self.directory = directory
        self.tokens = tokens
        self.clock = directory.clock
        self.hasher = PasswordHasher()
        self._decoy_hash: str | None = None
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()
        self.audit: Auditor = not_audited

    def _decoy(self) -> str:
        """A hash verified against when the name has no password, so a wrong name costs what a wrong password costs.

        Made by ``prepare`` (the server calls it in the background as it starts) or on first use: hashing takes
        about 0.15 s, which every process that builds the services (each CLI command) would otherwise pay, most of
        them never signing anyone in.
        """
        if self._decoy_hash is None:
            self._decoy_hash = self.hasher.hash(secrets.token_hex(16))
        return self._decoy_hash

    def prepare(self) -> None:
        """Make the decoy hash now, so that not even the first sign-in of an unknown name takes longer than others."""
        self._decoy()

    # -- passwords -------------------------------------------------------------------------------------------

    def set_password(self, name: str, password: str, by: str | None = None) -> None:
        name = check_name(name)
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters", hint="use a passphrase")
        if self.directory.roles_of(name) is None:
            raise NotFound(f"no active user {name!r}", hint="create them with `opsrail users create`")
        self.passwords.set_password_hash(name, self.hasher.hash(password))
        self.store.revoke_sessions_of(name, self.clock.now())
        self.audit(by, "user.password_set", name, {})

    # -- signing in and out ----------------------------------------------------------------------------------

    def sign_in_password(self, name: str, password: str) -> tuple[Session, str]:
        name = name.strip()
        self._throttle(name)
        stored = self.passwords.password_hash(name) if name else None
        try:
            self.hasher.verify(stored or self._decoy(), password)
            ok = stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        roles = self.directory.roles_of(name) if ok else None
        if not ok or roles is None:
            self._failed(name)
            self.audit(name or None, "session.refused", name or "-", {"method": "password"})
            raise Unauthenticated("the name or the password is wrong", hint="ask an admin to set your password")
        if stored is not None and self.hasher.check_needs_rehash(stored):
            self.passwords.set_password_hash(name, self.hasher.hash(password))
        with self._lock:
            self._failures.pop(name, None)
        return self._open(name, sorted(roles), "password")

    def sign_in_token(self, token: str) -> tuple[Session, str]:
        api_token = self.tokens.authenticate(token.strip())
        return self._open(api_token.name, [api_token.role], "token", token_hash=hash_token(token.strip()))

    def resolve(self, secret: str | None) -> Session | None:
        """The live session the cookie names, with the principal's current roles; None when there is none."""
        if not secret:
            return None
        found = self.store.session(hash_token(secret))
        now = self.clock.now()
        if found is None or found["revoked_at"] is not None or found["expires_at"] <= now:
            return None
        name = found["principal"]
        if found["kind"] == "password":
            roles = self.directory.roles_of(name)
            if roles is None:
                return None
            principal = self.directory.principal(name, roles, "user")
        else:
            token = self.tokens.store.by_hash(found["token_hash"] or "")
            if (
                token is None
                or token.revoked_at is not None
                or (token.expires_at is not None and token.expires_at <= now)
            ):
                return None
            principal = self.directory.principal(name, frozenset(found["roles"]), "token")
        return Session(principal, found["csrf"], found["expires_at"])

    def sign_out(self, secret: str) -> None:
        self.store.revoke_session(hash_token(secret), self.clock.now())

    # -- internals -------------------------------------------------------------------------------------------

    def _open(self, name: str, roles: list[str], kind: str, token_hash: str | None = None) -> tuple[Session, str]:
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + timedelta(hours=SESSION_HOURS)
        record: dict[str, Any] = {
            "id": hash_token(secret),
            "principal": name,
            "roles": roles,
            "kind": kind,
            "csrf": csrf,
            "created_at": now,
            "expires_at": expires,
            "token_hash": token_hash,
        }
        self.store.add_session(record)
        self.audit(name, "session.created", name, {"method": kind})
        principal = Principal(name, frozenset(roles), "user" if kind == "password" else "token")
        return Session(principal, csrf, expires), secret

    def _throttle(self, name: str) -> None:
        now = self.clock.now()
        with self._lock:
            recent = self._failures.get(name)
            if recent is None:
                return
            while recent and recent[0] < now - _FAILURE_WINDOW:
                recent.popleft()
            if len(recent) >= _FAILURES and recent[-1] > now - _LOCKOUT:
                wait = int((recent[-1] + _LOCKOUT - now).total_seconds()) + 1
                raise RateLimited(
                    f"too many failed sign-ins for {name!r}; wait {wait} s",
                    hint="check the name and password, or ask an admin to reset the password",
                    extra={"retry_after": wait},
                )

    def _failed(self, name: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            self._failures.setdefault(name, deque(maxlen=_FAILURES * 2)).append(self.clock.now())
