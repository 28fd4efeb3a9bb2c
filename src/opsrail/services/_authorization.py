"""The one enforcement point: every API route and CLI command asks :meth:`AuthorizationService.check`.

The active policy set is the latest published version, or the reference policies shipped in the package when
none has been published. It is parsed once and re-read when another process publishes a newer version (checked
at most every few seconds, a single indexed query).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from opsrail.governance import ACTIONS, CaseResult, PolicySet, Principal, Resource, load_cases
from opsrail.model import Clock, FieldError, Forbidden, InvalidInput, NotFound
from opsrail.services._audit import Auditor, not_audited

REFRESH_SECONDS = 5.0


def reference_policies() -> str:
    return resources.files("opsrail.governance").joinpath("reference/policies.cedar").read_text(encoding="utf-8")


def reference_cases() -> str:
    return resources.files("opsrail.governance").joinpath("reference/policies.tests.yaml").read_text(encoding="utf-8")


class PolicyStore(Protocol):
    def latest_policy_version(self) -> int | None: ...

    def policy_set(self, version: int | None = None) -> dict[str, Any] | None: ...

    def add_policy_set(
        self, document: str, cases: str | None, sha256: str, filename: str, by: str | None, at: datetime
    ) -> int: ...

    def policy_sets(self) -> list[dict[str, Any]]: ...


class AuthorizationService:
    def __init__(self, store: PolicyStore, clock: Clock, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        self.audit: Auditor = not_audited
        self._lock = threading.Lock()
        self._active: tuple[int | None, PolicySet] | None = None
        self._checked_at = -1e18

    @classmethod
    def offline(cls, clock: Clock | None = None) -> AuthorizationService:
        """A service without a database, for validating and testing policy files."""
        from datetime import UTC

        class _Clock:
            def now(self) -> datetime:
                return datetime.now(UTC)

        return cls(_NoStore(), clock or _Clock())

    # -- the enforcement point ---------------------------------------------------------------------------

    def check(self, principal: Principal, action: str, resource: Resource | None = None) -> None:
        """Raise 403 naming the action unless the active policies allow it."""
        answer = self.policies().authorize(principal, action, resource)
        if not answer.allowed:
            roles = ", ".join(sorted(principal.roles)) or "no role"
            what = ACTIONS[action][2]
            raise Forbidden(
                f"{principal.name} ({roles}) may not {action}: {what}",
                hint="ask an admin for a role the authorization policies allow (`opsrail policies show`)",
                extra={"action": action, **({"policies": list(answer.reasons)} if answer.reasons else {})},
            )

    def allows(self, principal: Principal, action: str, resource: Resource | None = None) -> bool:
        return self.policies().authorize(principal, action, resource).allowed

    def policies(self) -> PolicySet:
        now = self.monotonic()
        active = self._active
        if active is not None and now - self._checked_at < REFRESH_SECONDS:
            return active[1]
        with self._lock:
            self._checked_at = now
            version = self.store.latest_policy_version()
            if self._active is None or self._active[0] != version:
                self._active = (version, self._load(version))
            return self._active[1]

    def _load(self, version: int | None) -> PolicySet:
        if version is None:
            return PolicySet(reference_policies(), "reference policies")
        found = self.store.policy_set(version)
        assert found is not None
        return PolicySet(found["document"], f"policy set version {version}")

    # -- policy files ------------------------------------------------------------------------------------

    def test(self, path: Path, cases_path: Path | None = None) -> tuple[PolicySet, list[CaseResult]]:
        text = _read(path)
        policies = PolicySet(text, str(path))
        cases_file = cases_path or _sibling_cases(path)
        if cases_file is None:
            return policies, []
        return policies, policies.run_cases(load_cases(_read(cases_file), str(cases_file)))

    def publish(self, path: Path, cases_path: Path | None = None, by: str | None = None) -> dict[str, Any]:
        """Validate, run the test cases (they must all pass), and make the file the active policy set."""
        policies, results = self.test(path, cases_path)
        failed = [r for r in results if not r.passed]
        if failed:
            raise InvalidInput(
                f"{len(failed)} of {len(results)} policy test cases fail; nothing was published",
                hint="run `opsrail policies test FILE` to see each case",
                errors=[
                    FieldError(
                        f"$.cases[{r.case.name}]",
                        f"expected {_word(r.case.allow)}, got {_word(r.answer.allowed)}",
                        "policy_case",
                    )
                    for r in failed
                ],
            )
        cases_file = cases_path or _sibling_cases(path)
        cases = _read(cases_file) if cases_file else None
        digest = hashlib.sha256(policies.text.encode()).hexdigest()
        version = self.store.add_policy_set(policies.text, cases, digest, str(path), by, self.clock.now())
        with self._lock:
            self._active = (version, policies)
            self._checked_at = self.monotonic()
        self.audit(
            by, "policy.published", f"policies@{version}", {"file": str(path), "sha256": digest, "cases": len(results)}
        )
        return {"version": version, "sha256": digest, "cases": len(results)}

    def active(self) -> dict[str, Any]:
        found = self.store.policy_set()
        if found is None:
            return {"version": None, "source": "reference", "document": reference_policies()}
        return {**found, "source": found["filename"]}

    def versions(self) -> list[dict[str, Any]]:
        return self.store.policy_sets()


class _NoStore:
    def latest_policy_version(self) -> int | None:
        return None

    def policy_set(self, version: int | None = None) -> dict[str, Any] | None:
        return None

    def add_policy_set(
        self, document: str, cases: str | None, sha256: str, filename: str, by: str | None, at: datetime
    ) -> int:
        raise InvalidInput("policies are published to a database", hint="run this with a configured database")

    def policy_sets(self) -> list[dict[str, Any]]:
        return []


def _word(allowed: bool) -> str:
    return "allow" if allowed else "deny"


def _sibling_cases(path: Path) -> Path | None:
    candidate = path.with_suffix(".tests.yaml")
    return candidate if candidate.is_file() else None


def _read(path: Path) -> str:
    if not path.is_file():
        raise NotFound(f"no such file: {path}", hint="give the path of a Cedar policy file or its test cases")
    return path.read_text(encoding="utf-8")
