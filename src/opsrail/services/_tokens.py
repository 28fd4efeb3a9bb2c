"""API tokens: issued once in clear text, stored as a SHA-256 hash, checked on every request.

Tokens are 256 random bits, so a fast hash is the right tool (a password hash such as argon2 is for
low-entropy secrets and would cost milliseconds per request). Verified tokens are cached for a short
time so a request does not pay a database round trip; a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import datetime, timedelta

from opsrail.model import Clock, FieldError, IdFactory, InvalidInput, NotFound, Unauthenticated
from opsrail.services._audit import Auditor, not_audited
from opsrail.services._ports import ApiToken, TokenStore

ROLES: tuple[str, ...] = ("admin", "operator", "approver", "finance_controller", "legal", "auditor", "service")
TOKEN_PREFIX = "opsr_"  # noqa: S105 - a public prefix that makes leaked tokens easy to scan for
CACHE_SECONDS = 30.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenService:
    def __init__(self, store: TokenStore, clock: Clock, ids: IdFactory) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self._cache: dict[str, tuple[ApiToken, datetime]] = {}
        self._lock = threading.Lock()
        self.audit: Auditor = not_audited

    def create(self, role: str, name: str | None = None, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
        """Issue a token; the clear text is returned here once and never stored."""
        if role not in ROLES:
            raise InvalidInput(
                f"unknown role {role!r}",
                hint=f"choose one of: {', '.join(ROLES)}",
                errors=[FieldError("$.role", "unknown role", "enum")],
            )
        if name is not None and not 1 <= len(name.strip()) <= 128:
            raise InvalidInput(
                "a token name has 1 to 128 characters",
                errors=[FieldError("$.name", "1 to 128 characters", "length")],
            )
        token_id = self.ids.new("tok")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(
            id=token_id,
            name=name or f"{role}-{token_id[-6:]}",
            role=role,
            created_at=self.clock.now(),
            expires_at=expires_at,
        )
        self.store.add(record, hash_token(secret))
        self.audit(None, "token.created", token_id, {"name": record.name, "role": role, "expires_at": expires_at})
        return record, secret

    def authenticate(self, secret: str | None) -> ApiToken:
        if not secret:
            raise Unauthenticated(
                "this route needs an API token",
                hint="send 'Authorization: Bearer <token>'; create one with `opsrail tokens create --role operator`",
            )
        digest = hash_token(secret)
        now = self.clock.now()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            token = cached[0]
        else:
            found = self.store.by_hash(digest)
            if found is None:
                raise Unauthenticated("the API token is not valid", hint="check it, or create a new one")
            token = found
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (token, now + timedelta(seconds=CACHE_SECONDS))
        if token.revoked_at is not None:
            raise Unauthenticated("the API token was revoked", hint="create a new one")
        if token.expires_at is not None and token.expires_at <= now:
            raise Unauthenticated("the API token has expired", hint="create a new one")
        return token

    def all(self) -> list[ApiToken]:
        return self.store.all()

    def revoke(self, token_id: str) -> None:
        if not self.store.revoke(token_id, self.clock.now()):
            raise NotFound(f"no active token {token_id!r}", hint="list them with `opsrail tokens list`")
        with self._lock:
            self._cache.clear()
        self.audit(None, "token.revoked", token_id, {})
