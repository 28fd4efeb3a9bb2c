"""OIDC bearer tokens: real RSA/EC/Ed25519 keys, a JWKS in a file or served over HTTP, tokens signed with PyJWT.

The reload throttle runs on an injected monotonic clock so key rotation can be tested without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from opsrail.model import Unauthenticated
from opsrail.services._oidc import RELOAD_INTERVAL_SECONDS, OidcIdentity, OidcVerifier

ISSUER = "https://idp.example.test/realms/opsrail"
AUDIENCE = "opsrail-api"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_ROTATED = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, alg: str | None = "RS256") -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    jwk = {**jwk, "kid": kid, "use": "sig"}
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def ec_jwk(kid: str) -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": kid, "alg": "ES256"}


def ed_jwk(kid: str) -> dict[str, Any]:
    jwk = OKPAlgorithm.to_jwk(ED_KEY.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": kid}


def write_jwks(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}), encoding="utf-8")
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@example.test",
        "iat": now,
        "exp": now + 600,
        "roles": ["operator", "auditor"],
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(payload: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "jwks.json", rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk("ec-1"), ed_jwk("ed-1"))


@pytest.fixture
def verifier(jwks_file: Path) -> OidcVerifier:
    return OidcVerifier(str(jwks_file), issuer=ISSUER, audience=AUDIENCE)


def refused(verifier: OidcVerifier, token: str, *words: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        verifier.verify(token)
    message = str(caught.value)
    for word in words:
        assert word in message, message
    if len(token) > 8:
        assert token not in message
    for segment in token.split("."):
        if len(segment) > 8:
            assert segment not in message
    assert caught.value.__cause__ is None
    return caught.value


# -- valid tokens ---------------------------------------------------------------------------------------------------


def test_a_valid_rsa_token_gives_an_identity(verifier: OidcVerifier) -> None:
    payload = claims()
    identity = verifier.verify(sign(payload))
    assert isinstance(identity, OidcIdentity)
    assert identity.name == "alice@example.test"
    assert identity.roles == ("operator", "auditor")
    assert identity.expires_at == datetime.fromtimestamp(payload["exp"], tz=UTC)
    assert identity.expires_at.tzinfo is UTC
    assert identity.claims["iss"] == ISSUER


def test_ec_and_eddsa_tokens_verify(verifier: OidcVerifier) -> None:
    assert verifier.verify(sign(claims(), EC_KEY, "ES256", "ec-1")).roles == ("operator", "auditor")
    assert verifier.verify(sign(claims(), ED_KEY, "EdDSA", "ed-1")).name == "alice@example.test"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("finance_controller", ("finance_controller",)),
        (["approver", "legal"], ("approver", "legal")),
        ("approver legal  auditor", ("approver", "legal", "auditor")),
        ("approver,legal, auditor", ("approver", "legal", "auditor")),
        (["offline_access", "legal", "uma_authorization", "legal", "admin"], ("legal", "admin")),
        ("legal approver legal", ("legal", "approver")),
    ],
)
def test_the_role_claim_may_be_a_string_a_list_or_a_separated_string(
    verifier: OidcVerifier, value: Any, expected: tuple[str, ...]
) -> None:
    assert verifier.verify(sign(claims(roles=value))).roles == expected


def test_a_dotted_role_claim_reads_a_nested_claim(jwks_file: Path) -> None:
    verifier = OidcVerifier(str(jwks_file), role_claim="realm_access.roles", name_claim="preferred_username")
    payload = claims(
        roles=None,
        aud=None,
        preferred_username="alice",
        realm_access={"roles": ["default-roles-opsrail", "approver", "finance_controller"]},
    )
    identity = verifier.verify(sign(payload))
    assert identity.name == "alice"
    assert identity.roles == ("approver", "finance_controller")


def test_a_claim_whose_name_contains_dots_is_read_as_is(jwks_file: Path) -> None:
    verifier = OidcVerifier(str(jwks_file), role_claim="https://opsrail.example/roles")
    identity = verifier.verify(sign(claims(aud=None, **{"https://opsrail.example/roles": "service"})))
    assert identity.roles == ("service",)


def test_an_rsa_key_without_alg_accepts_any_rsa_algorithm(tmp_path: Path) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(RSA_KEY, "rsa-1", alg=None))
    verifier = OidcVerifier(str(jwks))
    for alg in ("RS256", "RS512", "PS256", "PS384"):
        assert verifier.verify(sign(claims(aud=None), alg=alg)).roles == ("operator", "auditor")


def test_a_token_without_kid_is_accepted_only_when_the_set_has_one_key(tmp_path: Path, jwks_file: Path) -> None:
    single = OidcVerifier(str(write_jwks(tmp_path / "one.json", rsa_jwk(RSA_KEY, "rsa-1"))))
    assert single.verify(sign(claims(aud=None), kid=None)).name == "alice@example.test"
    several = OidcVerifier(str(jwks_file))
    refused(several, sign(claims(aud=None), kid=None), "no key id")


def test_nbf_and_iat_are_honoured_with_leeway(verifier: OidcVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(sign(claims(nbf=now + 10, iat=now + 10))).roles
    refused(verifier, sign(claims(nbf=now + 300)), "not valid yet")
    refused(verifier, sign(claims(iat=now + 300)), "not valid yet")


# -- refused tokens -------------------------------------------------------------------------------------------------


def test_an_expired_token_is_refused(verifier: OidcVerifier) -> None:
    now = int(time.time())
    refused(verifier, sign(claims(iat=now - 3600, exp=now - 120)), "expired")


def test_an_expiry_within_the_leeway_is_accepted(verifier: OidcVerifier) -> None:
    assert verifier.verify(sign(claims(exp=int(time.time()) - 5))).roles


def test_a_token_without_exp_is_refused(verifier: OidcVerifier) -> None:
    refused(verifier, sign(claims(exp=None)), "'exp'")


def test_a_wrong_issuer_is_refused(verifier: OidcVerifier) -> None:
    error = refused(verifier, sign(claims(iss="https://evil.example.test")), "different issuer")
    assert error.hint is not None
    assert ISSUER in error.hint


def test_a_missing_issuer_is_refused_when_one_is_configured(verifier: OidcVerifier) -> None:
    refused(verifier, sign(claims(iss=None)), "'iss'")


def test_a_wrong_audience_is_refused(verifier: OidcVerifier) -> None:
    refused(verifier, sign(claims(aud="another-api")), "different audience")
    refused(verifier, sign(claims(aud=None)), "'aud'")


def test_audience_lists_are_accepted_when_they_contain_ours(verifier: OidcVerifier) -> None:
    assert verifier.verify(sign(claims(aud=["account", AUDIENCE]))).roles


def test_a_tampered_signature_is_refused(verifier: OidcVerifier) -> None:
    header, payload, signature = sign(claims()).split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    refused(verifier, f"{header}.{payload}.{flipped}", "signature does not verify")


def test_a_tampered_payload_is_refused(verifier: OidcVerifier) -> None:
    header, _, signature = sign(claims()).split(".")
    forged = b64(json.dumps(claims(roles=["admin"])).encode())
    refused(verifier, f"{header}.{forged}.{signature}", "signature does not verify")


def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(verifier: OidcVerifier) -> None:
    refused(verifier, sign(claims(), RSA_ROTATED, kid="rsa-1"), "signature does not verify")


def test_alg_none_is_refused(verifier: OidcVerifier) -> None:
    token = unsigned({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims()) + "."
    assert OidcVerifier.looks_like_jwt(token)
    error = refused(verifier, token, "'none' is not accepted")
    assert error.hint is not None
    assert "RS256" in error.hint


def test_hs256_signed_with_the_public_key_is_refused(verifier: OidcVerifier) -> None:
    """Algorithm confusion: the public key's PEM used as an HMAC secret must never verify."""
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for kid in ("rsa-1", None):
        header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
        signing_input = unsigned(header, claims(roles=["admin"]))
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        refused(verifier, f"{signing_input}.{b64(mac)}", "'HS256' is not accepted")


def test_an_algorithm_that_does_not_match_the_key_is_refused(verifier: OidcVerifier) -> None:
    refused(verifier, sign(claims(), RSA_KEY, "PS256", "rsa-1"), "does not match its key")
    refused(verifier, sign(claims(), EC_KEY, "ES256", "rsa-1"), "does not match its key")
    refused(verifier, sign(claims(), RSA_KEY, "RS256", "ec-1"), "does not match its key")


def test_no_known_role_is_refused(verifier: OidcVerifier) -> None:
    error = refused(verifier, sign(claims(roles=["offline_access", "superuser"])), "no known role in claim 'roles'")
    assert error.hint is not None
    assert "finance_controller" in error.hint
    refused(verifier, sign(claims(roles=None)), "no known role")
    refused(verifier, sign(claims(roles=42)), "no known role")


def test_a_token_without_a_name_is_refused(verifier: OidcVerifier) -> None:
    refused(verifier, sign(claims(sub=None)), "'sub'")


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "eyJ!.eyJ.x", "opsr_" + "x" * 43])
def test_garbage_is_refused_without_decoding(verifier: OidcVerifier, token: str) -> None:
    refused(verifier, token, "not a well-formed JWT")


def test_an_unreadable_header_is_refused(verifier: OidcVerifier) -> None:
    refused(verifier, "bm90LWpzb24.eyJ9.abc", "header cannot be read")


# -- the key set ----------------------------------------------------------------------------------------------------


def test_an_unknown_kid_reloads_the_set_and_finds_a_rotated_in_key(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(RSA_KEY, "rsa-1"))
    verifier = OidcVerifier(str(jwks), monotonic=clock)
    assert verifier.verify(sign(claims(aud=None))).roles  # loads the set

    write_jwks(jwks, rsa_jwk(RSA_KEY, "rsa-1"), rsa_jwk(RSA_ROTATED, "rsa-2"))
    rotated = sign(claims(aud=None), RSA_ROTATED, kid="rsa-2")
    clock.advance(RELOAD_INTERVAL_SECONDS / 2)
    refused(verifier, rotated, "unknown key 'rsa-2'")  # throttled: the set was loaded moments ago

    clock.advance(RELOAD_INTERVAL_SECONDS)
    assert verifier.verify(rotated).name == "alice@example.test"
    assert verifier.verify(sign(claims(aud=None))).roles  # the old key still works


def test_a_rotated_out_key_is_refused_after_a_refresh(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(RSA_KEY, "rsa-1"))
    verifier = OidcVerifier(str(jwks), monotonic=clock, refresh_seconds=60)
    old = sign(claims(aud=None))
    assert verifier.verify(old).roles
    write_jwks(jwks, rsa_jwk(RSA_ROTATED, "rsa-2"))
    clock.advance(30)
    assert verifier.verify(old).roles  # cached set still in use
    clock.advance(31)
    refused(verifier, old, "unknown key 'rsa-1'")
    assert verifier.verify(sign(claims(aud=None), RSA_ROTATED, kid="rsa-2")).roles


def test_a_failed_refresh_keeps_the_cached_keys(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(RSA_KEY, "rsa-1"))
    verifier = OidcVerifier(str(jwks), monotonic=clock, refresh_seconds=60)
    token = sign(claims(aud=None))
    assert verifier.verify(token).roles
    jwks.write_text("{not json", encoding="utf-8")
    clock.advance(120)
    assert verifier.verify(token).roles


def test_an_unreadable_jwks_file_is_unauthenticated_with_a_hint(tmp_path: Path) -> None:
    verifier = OidcVerifier(str(tmp_path / "missing.json"))
    error = refused(verifier, sign(claims(aud=None)), "cannot be read")
    assert error.hint is not None
    assert "OPSRAIL_OIDC_JWKS" in error.hint


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "not a JWKS"),
        ('{"keys": []}', "no usable signing key"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1"}]}', "no usable signing key"),
    ],
)
def test_a_broken_jwks_file_is_unauthenticated_with_a_hint(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content, encoding="utf-8")
    error = refused(OidcVerifier(str(path)), sign(claims(aud=None)), words)
    assert error.hint is not None
    assert "OPSRAIL_OIDC_JWKS" in error.hint


def test_symmetric_and_encryption_keys_in_the_set_are_ignored(tmp_path: Path) -> None:
    jwks = write_jwks(
        tmp_path / "jwks.json",
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {**rsa_jwk(RSA_ROTATED, "enc"), "use": "enc", "alg": "RSA-OAEP"},
        rsa_jwk(RSA_KEY, "rsa-1"),
    )
    verifier = OidcVerifier(str(jwks))
    assert verifier.verify(sign(claims(aud=None), kid=None)).roles  # the only usable key
    mac = jwt.encode(
        claims(aud=None), "secret-with-enough-bytes-for-hs256!", algorithm="HS256", headers={"kid": "hmac"}
    )
    refused(verifier, mac, "'HS256' is not accepted")


def test_a_failed_first_load_is_not_retried_within_the_throttle(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    path = tmp_path / "jwks.json"
    verifier = OidcVerifier(str(path), monotonic=clock)
    token = sign(claims(aud=None))
    refused(verifier, token, "cannot be read")
    write_jwks(path, rsa_jwk(RSA_KEY, "rsa-1"))
    clock.advance(1)
    refused(verifier, token, "cannot be read")
    clock.advance(RELOAD_INTERVAL_SECONDS)
    assert verifier.verify(token).roles


# -- JWKS over HTTP -------------------------------------------------------------------------------------------------


class JwksHandler(BaseHTTPRequestHandler):
    body: ClassVar[bytes] = b""
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path != "/jwks":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[str]:
    JwksHandler.body = json.dumps({"keys": [rsa_jwk(RSA_KEY, "rsa-1"), ec_jwk("ec-1")]}).encode()
    JwksHandler.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_the_jwks_is_fetched_over_http_once_and_bogus_kids_are_throttled(jwks_server: str) -> None:
    clock = FakeMonotonic()
    with httpx.Client(timeout=5.0) as http:
        verifier = OidcVerifier(f"{jwks_server}/jwks", issuer=ISSUER, audience=AUDIENCE, http=http, monotonic=clock)
        assert verifier.verify(sign(claims())).roles == ("operator", "auditor")
        assert verifier.verify(sign(claims(), EC_KEY, "ES256", "ec-1")).roles
        assert JwksHandler.hits == ["/jwks"]

        for index in range(50):
            refused(verifier, sign(claims(), kid=f"bogus-{index}"), "unknown key")
        assert len(JwksHandler.hits) == 1  # all within the throttle window

        clock.advance(RELOAD_INTERVAL_SECONDS)
        for index in range(50):
            refused(verifier, sign(claims(), kid=f"bogus-{index}"), "unknown key")
        assert len(JwksHandler.hits) == 2  # one reload per window


def test_a_key_rotated_in_over_http_is_picked_up(jwks_server: str) -> None:
    clock = FakeMonotonic()
    with httpx.Client(timeout=5.0) as http:
        verifier = OidcVerifier(f"{jwks_server}/jwks", http=http, monotonic=clock)
        assert verifier.verify(sign(claims(aud=None))).roles
        JwksHandler.body = json.dumps({"keys": [rsa_jwk(RSA_ROTATED, "rsa-2")]}).encode()
        clock.advance(RELOAD_INTERVAL_SECONDS)
        assert verifier.verify(sign(claims(aud=None), RSA_ROTATED, kid="rsa-2")).name == "alice@example.test"


def test_a_verifier_without_a_client_makes_its_own(jwks_server: str) -> None:
    verifier = OidcVerifier(f"{jwks_server}/jwks")
    try:
        assert verifier.verify(sign(claims(aud=None))).roles
    finally:
        verifier.close()


def test_an_http_error_from_the_jwks_url_is_unauthenticated(jwks_server: str) -> None:
    with httpx.Client(timeout=5.0) as http:
        error = refused(OidcVerifier(f"{jwks_server}/missing", http=http), sign(claims(aud=None)), "HTTP 404")
    assert error.hint is not None
    assert "OPSRAIL_OIDC_JWKS" in error.hint


def test_an_unreachable_jwks_url_is_unauthenticated() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on this port any more
    with httpx.Client(timeout=2.0) as http:
        error = refused(OidcVerifier(f"http://127.0.0.1:{port}/jwks", http=http), sign(claims(aud=None)), "unreachable")
    assert error.hint is not None
    assert "OPSRAIL_OIDC_JWKS" in error.hint


# -- shape check ----------------------------------------------------------------------------------------------------


def test_looks_like_jwt() -> None:
    assert OidcVerifier.looks_like_jwt(sign(claims()))
    assert not OidcVerifier.looks_like_jwt("opsr_" + "A1b2-C3d4_" * 4 + "xyz")
    assert not OidcVerifier.looks_like_jwt("")
    assert not OidcVerifier.looks_like_jwt("a.b")
    assert not OidcVerifier.looks_like_jwt("a.b.c.d")
    assert not OidcVerifier.looks_like_jwt("a b.c.d")
