"""OIDC bearer tokens: a JWT from an identity provider, checked against the provider's key set (JWKS).

This module owns turning a bearer JWT into an :class:`OidcIdentity` (a name, Opsrail roles and an expiry) and
everything that takes: loading and caching the JWKS from a file or an ``http(s)://`` URL, picking the key by the
token's ``kid``, checking the signature with an asymmetric algorithm only (never ``none`` or ``HS*``, so a public key
can never be replayed as an HMAC secret), checking ``exp``/``nbf``/``iat`` with leeway and ``iss``/``aud`` when
configured, and mapping the role claim onto :data:`~opsrail.governance.ROLES`.

The key set is loaded on the first verification and kept. It is reloaded after ``refresh_seconds``, and when a token
names a key id the set does not hold (a key rotation), but never more than once every
:data:`RELOAD_INTERVAL_SECONDS`, so a flood of tokens with made-up key ids cannot hammer the provider. When a reload
fails while a key set is already cached, the cached set stays in use.

Every failure is an :class:`~opsrail.model.Unauthenticated` that says what is wrong; the token text never appears in a
message.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt

from opsrail.governance import ROLES
from opsrail.model import Unauthenticated

log = logging.getLogger(__name__)

ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
RELOAD_INTERVAL_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 5.0
MAX_TOKEN_CHARS = 16_384
JWKS_HINT = "check OPSRAIL_OIDC_JWKS: it names the identity provider's JWKS as a file path or an http(s):// URL"

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SAFE_TEXT = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")
_ROLE_SEPARATORS = re.compile(r"[\s,]+")


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who a verified bearer token speaks for."""

    name: str
    roles: tuple[str, ...]
    expires_at: datetime
    claims: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    data: dict[str, Any]
    default: jwt.PyJWK


class OidcVerifier:
    """Verify bearer JWTs against a JWKS; safe to share between threads."""

    def __init__(
        self,
        jwks: str,
        *,
        issuer: str | None = None,
        audience: str | None = None,
        role_claim: str = "roles",
        name_claim: str = "sub",
        leeway_seconds: float = 30.0,
        http: httpx.Client | None = None,
        refresh_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not jwks.strip():
            raise Unauthenticated("no OIDC key set is configured", hint=JWKS_HINT)
        self.jwks = jwks.strip()
        self.issuer = issuer
        self.audience = audience
        self.role_claim = role_claim
        self.name_claim = name_claim
        self.leeway_seconds = leeway_seconds
        self.refresh_seconds = refresh_seconds
        self._http = http
        self._owns_http = http is None
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: tuple[_Key, ...] | None = None
        self._loaded_at = 0.0
        self._last_attempt: float | None = None
        self._last_error: Unauthenticated | None = None
        self._by_algorithm: dict[tuple[int, str], jwt.PyJWK] = {}

    @property
    def _is_url(self) -> bool:
        return self.jwks.lower().startswith(("http://", "https://"))

    @staticmethod
    def looks_like_jwt(secret: str) -> bool:
        """Whether ``secret`` has the shape of a compact JWT (three base64url segments); nothing is decoded."""
        return len(secret) <= MAX_TOKEN_CHARS and _JWT_SHAPE.fullmatch(secret) is not None

    def close(self) -> None:
        """Close the HTTP client if this verifier created it."""
        with self._lock:
            if self._owns_http and self._http is not None:
                self._http.close()
                self._http = None

    def verify(self, token: str) -> OidcIdentity:
        """Check the token's signature and claims; raise :class:`Unauthenticated` saying what is wrong."""
        if not self.looks_like_jwt(token):
            raise Unauthenticated("the bearer token is not a well-formed JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token's header cannot be read") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            shown = f" {alg!r}" if isinstance(alg, str) and _SAFE_TEXT.fullmatch(alg) else ""
            raise Unauthenticated(
                f"the bearer token's algorithm{shown} is not accepted",
                hint=f"only asymmetric signatures are accepted: {', '.join(ALGORITHMS)}",
            )
        kid = header.get("kid")
        key = self._key_for(kid if isinstance(kid, str) else None, alg)
        claims = self._decode(token, key)
        return self._identity(claims)

    # -- keys -------------------------------------------------------------------------------------------------------

    def _key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        with self._lock:
            now = self._monotonic()
            if self._keys is None:
                self._load(now)
            elif now - self._loaded_at >= self.refresh_seconds and self._may_reload(now):
                self._reload_keeping_cache(now)
            assert self._keys is not None
            found = self._find(kid)
            if found is None and kid is not None and self._may_reload(now):
                self._reload_keeping_cache(now)
                found = self._find(kid)
            if found is None:
                raise self._no_key(kid)
            index, key = found
            return self._with_algorithm(index, key, alg)

    def _may_reload(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= RELOAD_INTERVAL_SECONDS

    def _load(self, now: float) -> None:
        """First load (nothing cached): fail with the reason, and repeat a recent failure without retrying."""
        if not self._may_reload(now) and self._last_error is not None:
            raise Unauthenticated(self._last_error.detail, hint=self._last_error.hint)
        self._last_attempt = now
        try:
            self._keys = self._fetch()
        except Unauthenticated as error:
            self._last_error = error
            raise
        self._loaded_at = now
        self._last_error = None
        self._by_algorithm.clear()

    def _reload_keeping_cache(self, now: float) -> None:
        try:
            self._load(now)
        except Unauthenticated as error:
            log.warning("OIDC key set reload failed, keeping the cached keys: %s", error)

    def _find(self, kid: str | None) -> tuple[int, _Key] | None:
        keys = self._keys or ()
        if kid is None:
            return (0, keys[0]) if len(keys) == 1 else None
        for index, key in enumerate(keys):
            if key.kid == kid:
                return index, key
        return None

    def _no_key(self, kid: str | None) -> Unauthenticated:
        if kid is None:
            return Unauthenticated(
                "the bearer token names no key id (kid) and the key set holds more than one key",
                hint="the identity provider must put a kid in the token header",
            )
        shown = f" {kid!r}" if _SAFE_TEXT.fullmatch(kid) else ""
        return Unauthenticated(
            f"the bearer token is signed with an unknown key{shown}",
            hint="the key is not in the configured JWKS; if the provider rotated keys, retry in a few seconds",
        )

    def _with_algorithm(self, index: int, key: _Key, alg: str) -> jwt.PyJWK:
        """The key bound to one algorithm: the JWK's ``alg`` if it has one, else the family its key type allows."""
        if "alg" in key.data or key.data.get("kty") != "RSA" or alg not in RSA_ALGORITHMS:
            return key.default  # PyJWT refuses a token whose alg differs from the key's
        cached = self._by_algorithm.get((index, alg))
        if cached is None:
            cached = jwt.PyJWK(key.data, algorithm=alg)
            self._by_algorithm[(index, alg)] = cached
        return cached

    def _fetch(self) -> tuple[_Key, ...]:
        text = self._fetch_url() if self._is_url else self._read_file()
        try:
            document = json.loads(text)
        except ValueError:
            raise Unauthenticated(f"the OIDC key set at {self.jwks} is not valid JSON", hint=JWKS_HINT) from None
        raw = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw, list):
            raise Unauthenticated(
                f"the OIDC key set at {self.jwks} is not a JWKS (an object with a 'keys' list)", hint=JWKS_HINT
            )
        keys = tuple(key for key in (_usable(item) for item in raw) if key is not None)
        if not keys:
            raise Unauthenticated(
                f"the OIDC key set at {self.jwks} holds no usable signing key",
                hint=f"{JWKS_HINT}; keys must be RSA, EC or OKP public keys for {', '.join(ALGORITHMS)}",
            )
        return keys

    def _read_file(self) -> str:
        try:
            return Path(self.jwks).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
            raise Unauthenticated(
                f"the OIDC key set file {self.jwks} cannot be read ({reason})", hint=JWKS_HINT
            ) from None

    def _fetch_url(self) -> str:
        if self._http is None:
            self._http = httpx.Client(timeout=HTTP_TIMEOUT_SECONDS)
            self._owns_http = True
        try:
            response = self._http.get(self.jwks, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise Unauthenticated(
                f"the OIDC key set at {self.jwks} is unreachable ({type(error).__name__})", hint=JWKS_HINT
            ) from None
        if response.status_code != 200:
            raise Unauthenticated(
                f"the OIDC key set at {self.jwks} answered HTTP {response.status_code}", hint=JWKS_HINT
            )
        return response.text

    # -- claims -----------------------------------------------------------------------------------------------------

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as error:
            raise self._explain(error) from None

    def _explain(self, error: jwt.PyJWTError) -> Unauthenticated:
        if isinstance(error, jwt.ExpiredSignatureError):
            return Unauthenticated("the bearer token has expired", hint="get a new token from the identity provider")
        if isinstance(error, jwt.ImmatureSignatureError):
            return Unauthenticated(
                "the bearer token is not valid yet (nbf or iat is in the future)",
                hint="check the clocks of the identity provider and this server",
            )
        if isinstance(error, jwt.InvalidIssuerError):
            return Unauthenticated(
                "the bearer token was issued by a different issuer", hint=f"the expected issuer is {self.issuer}"
            )
        if isinstance(error, jwt.InvalidAudienceError):
            return Unauthenticated(
                "the bearer token is for a different audience", hint=f"the expected audience is {self.audience}"
            )
        if isinstance(error, jwt.MissingRequiredClaimError):
            return Unauthenticated(f"the bearer token has no {error.claim!r} claim")
        if isinstance(error, jwt.InvalidSignatureError):
            return Unauthenticated("the bearer token's signature does not verify")
        if isinstance(error, jwt.InvalidAlgorithmError):
            return Unauthenticated(
                "the bearer token's algorithm does not match its key",
                hint="the JWKS key's type or 'alg' decides the algorithm",
            )
        if isinstance(error, jwt.InvalidIssuedAtError):
            return Unauthenticated("the bearer token's iat claim is not a number")
        if isinstance(error, jwt.DecodeError):
            return Unauthenticated("the bearer token is malformed")
        return Unauthenticated(f"the bearer token is invalid ({type(error).__name__})")

    def _identity(self, claims: dict[str, Any]) -> OidcIdentity:
        name = _claim(claims, self.name_claim)
        if not isinstance(name, str) or not name.strip():
            raise Unauthenticated(
                f"the bearer token has no {self.name_claim!r} claim to name the caller",
                hint="set OPSRAIL_OIDC_NAME_CLAIM to a claim that holds a string",
            )
        roles = _roles(_claim(claims, self.role_claim))
        if not roles:
            raise Unauthenticated(
                f"the bearer token has no known role in claim {self.role_claim!r}",
                hint=f"known roles: {', '.join(ROLES)}",
            )
        return OidcIdentity(
            name=name.strip(),
            roles=roles,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=UTC),
            claims=claims,
        )


def _usable(item: object) -> _Key | None:
    """A JWKS member as a verification key, or None when it is not one (encryption, symmetric, broken)."""
    if not isinstance(item, dict) or item.get("kty") not in KEY_TYPES or item.get("use", "sig") != "sig":
        return None
    if "alg" in item and item["alg"] not in ALGORITHMS:
        return None
    if any(part in item for part in ("d", "p", "q")):
        log.warning("OIDC key set member %r holds private key material; ignored", item.get("kid"))
        return None
    try:
        default = jwt.PyJWK(item)
    except jwt.PyJWTError:
        return None
    if default.algorithm_name not in ALGORITHMS:
        return None
    kid = item.get("kid")
    return _Key(kid=kid if isinstance(kid, str) else None, data=item, default=default)


def _claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _roles(value: Any) -> tuple[str, ...]:
    """Known roles in a claim value (a string, a space/comma separated string or a list), in order, once each."""
    if isinstance(value, str):
        candidates = _ROLE_SEPARATORS.split(value)
    elif isinstance(value, list | tuple):
        candidates = [part for item in value if isinstance(item, str) for part in _ROLE_SEPARATORS.split(item)]
    else:
        return ()
    return tuple(dict.fromkeys(role for role in candidates if role in ROLES))
