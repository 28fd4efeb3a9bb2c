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

from opsrail.governance import ROLES
from opsrail.model import Clock, FieldError, IdFactory, InvalidInput, NotFound, RateLimited, Unauthenticated
from opsrail.services._audit import Auditor, not_audited
from opsrail.services._ports import ApiToken, TokenStore

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
        self._buckets: dict[str, tuple[float, datetime]] = {}
        self._lock = threading.Lock()
        self.audit: Auditor = not_audited

    def create(
        self,
        role: str,
        name: str | None = None,
        expires_at: datetime | None = None,
        rate_limit: float | None = None,
        actor: str | None = None,
    ) -> tuple[ApiToken, str]:
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
        if expires_at is not None and expires_at <= self.clock.now():
            raise InvalidInput("a token's expiry must be in the future", hint="e.g. --expires-in P90D")
        if rate_limit is not None and not 0 < rate_limit <= 100_000:
            raise InvalidInput("a rate limit is a number of requests per second above 0 and at most 100,000")
        token_id = self.ids.new("tok")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = ApiToken(
            id=token_id,
            name=name or f"{role}-{token_id[-6:]}",
            role=role,
            created_at=self.clock.now(),
            expires_at=expires_at,
            rate_limit=rate_limit,
        )
        self.store.add(record, hash_token(secret))
        self.audit(
            actor,
            "token.created",
            token_id,
            {"name": record.name, "role": role, "expires_at": expires_at, "rate_limit": rate_limit},
        )
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
        if token.rate_limit is not None:
            self._take(token, now)
        return token

    def _take(self, token: ApiToken, now: datetime) -> None:
        """A token bucket per token: ``rate_limit`` requests a second, bursts up to twice that."""
        assert token.rate_limit is not None
        capacity = max(1.0, 2 * token.rate_limit)
        with self._lock:
            level, last = self._buckets.get(token.id, (capacity, now))
            level = min(capacity, level + (now - last).total_seconds() * token.rate_limit)
            if level < 1.0:
                self._buckets[token.id] = (level, now)
                wait = (1.0 - level) / token.rate_limit
                raise RateLimited(
                    f"token {token.name!r} is limited to {token.rate_limit:g} requests a second",
                    hint=f"retry after {wait:.2f} s, or ask for a higher limit",
                    extra={"retry_after": round(wait, 3)},
                )
            self._buckets[token.id] = (level - 1.0, now)

    def rotate(self, token_id: str, grace: timedelta | None = None, actor: str | None = None) -> tuple[ApiToken, str]:
        """A new secret for the same name, role, limit and expiry; the old one stops now, or after ``grace``."""
        old = next((t for t in self.store.all() if t.id == token_id), None)
        now = self.clock.now()
        if old is None or old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
            raise NotFound(f"no active token {token_id!r}", hint="list them with `opsrail tokens list`")
        record, secret = self.create(old.role, old.name, old.expires_at, old.rate_limit, actor)
        if grace:
            self.store.expire(token_id, now + grace)
        else:
            self.store.revoke(token_id, now)
        with self._lock:
            self._cache.clear()
        self.audit(
            actor, "token.rotated", token_id, {"new": record.id, "grace_seconds": grace.total_seconds() if grace else 0}
        )
        return record, secret

    def all(self) -> list[ApiToken]:
        return self.store.all()

    def roles_of(self, name: str) -> frozenset[str] | None:
        """The roles of the usable tokens named ``name`` (a service account, say); None when there is none."""
        return self.accounts().get(name)

    def accounts(self) -> dict[str, frozenset[str]]:
        """Every name that usable tokens carry (service accounts), with the roles of its tokens, by name."""
        now = self.clock.now()
        roles: dict[str, set[str]] = {}
        for t in self.store.all():
            if t.revoked_at is None and (t.expires_at is None or t.expires_at > now):
                roles.setdefault(t.name, set()).add(t.role)
        return {name: frozenset(roles[name]) for name in sorted(roles)}

    def revoke(self, token_id: str, actor: str | None = None) -> None:
        if not self.store.revoke(token_id, self.clock.now()):
            raise NotFound(f"no active token {token_id!r}", hint="list them with `opsrail tokens list`")
        with self._lock:
            self._cache.clear()
        self.audit(actor, "token.revoked", token_id, {})
