"""Authorization with Cedar: the action catalogue, the schema built from it, policy sets and their test cases.

Every API route and CLI command names one action from :data:`ACTIONS`; :class:`PolicySet` answers whether a
principal may take it, on a resource that may carry attributes (a task's roles and requester). The schema is
generated from the catalogue, so a policy that names an unknown action or attribute fails validation.

A parsed policy set is reused for every request, and answers that depend only on the principal's roles and the
action (no resource attributes) are memoised, so a check costs a dictionary lookup after the first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cedarpy
import yaml

from opsrail.model import ROLES, FieldError, InvalidInput

NAMESPACE = "Opsrail"

# Action groups: a policy may grant a whole group (``action in Opsrail::Action::"read"``).
GROUPS: dict[str, str] = {
    "read": "see the operational record: events, runs, tasks, decisions, models, knowledge",
    "ingest": "send events",
    "operate": "start and steer runs, replay dead letters, evaluate decisions",
    "configure": "publish playbooks, decision tables and models",
    "decide": "approve, reject or override",
    "audit": "read, verify and export the audit trail",
    "administer": "tokens, users, policies, retention",
}

# action -> (resource type, group, what it allows)
ACTIONS: dict[str, tuple[str, str, str]] = {
    "event.send": ("Event", "ingest", "send events (CloudEvents, batches, vendor payloads)"),
    "event.read": ("Event", "read", "list stored events and sources"),
    "dead_letter.read": ("DeadLetter", "read", "list and read rejected payloads"),
    "dead_letter.replay": ("DeadLetter", "operate", "replay a rejected payload"),
    "schema.read": ("Schema", "read", "read the canonical JSON Schemas"),
    "metrics.read": ("Metrics", "read", "scrape Prometheus metrics"),
    "playbook.read": ("Playbook", "read", "list and show playbooks"),
    "playbook.publish": ("Playbook", "configure", "publish a playbook version"),
    "playbook.activate": ("Playbook", "configure", "activate a version or set a canary"),
    "run.read": ("Run", "read", "list and show runs, follow the stream"),
    "run.start": ("Run", "operate", "start a run"),
    "run.control": ("Run", "operate", "pause, resume, cancel a run or retry a step"),
    "run.migrate": ("Run", "configure", "move in-flight runs to another version"),
    "task.read": ("Task", "read", "list and show human tasks"),
    "task.reassign": ("Task", "operate", "give a task to someone"),
    "task.decide": ("Task", "decide", "approve or reject a task"),
    "decision.read": ("Decision", "read", "list and show decision tables, models and policies"),
    "decision.publish": ("Decision", "configure", "publish decision tables and decision policies, train models"),
    "decision.evaluate": ("Decision", "operate", "evaluate a table or model and record the decision"),
    "decision_record.read": ("DecisionRecord", "read", "read decision records"),
    "decision_record.override": ("DecisionRecord", "decide", "override a decision with a reason"),
    "knowledge.read": ("Knowledge", "read", "search approved runbooks and policies"),
    "token.manage": ("Token", "administer", "create, list, rotate and revoke API tokens"),
    "user.manage": ("Directory", "administer", "create, list and disable users"),
    "delegation.manage": ("Delegation", "decide", "delegate one's approvals to someone until a date"),
    "policy.read": ("Policy", "read", "read the active authorization policies"),
    "policy.publish": ("Policy", "administer", "publish authorization policies"),
    "audit.read": ("Audit", "audit", "list, verify and export audit entries"),
    "retention.run": ("Retention", "administer", "purge or anonymise old payloads"),
    "database.manage": ("Database", "administer", "grant and check the application's database role"),
    "ledger.read": ("Ledger", "read", "read contracts, subscriptions, invoices, credit memos, projects in the ledger"),
    "ledger.write": ("Ledger", "operate", "create ledger records and act on them (hold, release, post time…)"),
    "ledger.approve": ("Ledger", "decide", "approve credit memos and validate change orders in the ledger"),
    "connector.read": ("Connector", "read", "list connectors, their health and their dead letters"),
    "connector.replay": ("Connector", "operate", "replay a connector call that failed for good"),
}

# Attributes a resource type carries in a request; everything else is checked by type and id alone.
RESOURCE_ATTRIBUTES: dict[str, dict[str, str]] = {
    "Task": {"roles": "Set<String>", "requested_by": "String", "kind": "String"},
    "Delegation": {"owner": "String"},
}


def schema_text() -> str:
    """The Cedar schema (human-readable syntax) for the catalogue."""
    lines = [
        f"namespace {NAMESPACE} {{",
        "  entity Role;",
        "  entity User in [Role] { name: String, roles: Set<String> };",
    ]
    for kind in sorted({resource for resource, _, _ in ACTIONS.values()}):
        attributes = RESOURCE_ATTRIBUTES.get(kind)
        if attributes:
            body = ", ".join(f"{name}: {type_}" for name, type_ in attributes.items())
            lines.append(f"  entity {kind} {{ {body} }};")
        else:
            lines.append(f"  entity {kind};")
    for group in GROUPS:
        lines.append(f'  action "{group}";')
    for action, (resource, group, _) in ACTIONS.items():
        applies = f"principal: [User], resource: [{resource}], context: {{}}"
        lines.append(f'  action "{action}" in ["{group}"] appliesTo {{ {applies} }};')
    lines.append("}")
    return "\n".join(lines) + "\n"


_SCHEMA_TEXT = schema_text()
_SCHEMA = cedarpy.Schema.from_str(_SCHEMA_TEXT)
_ROLE_ENTITIES = [{"uid": {"type": f"{NAMESPACE}::Role", "id": role}, "attrs": {}, "parents": []} for role in ROLES]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks: a person or a service token, with the roles that count for this request."""

    name: str
    roles: frozenset[str]
    kind: str = "user"  # "user", "token", "oidc"
    acting_for: tuple[str, ...] = ()  # people whose delegated roles are included in ``roles``

    def entity(self) -> dict[str, Any]:
        return {
            "uid": {"type": f"{NAMESPACE}::User", "id": self.name},
            "attrs": {"name": self.name, "roles": sorted(self.roles)},
            "parents": [{"type": f"{NAMESPACE}::Role", "id": role} for role in sorted(self.roles) if role in ROLES],
        }


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    id: str = "*"
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def entity(self) -> dict[str, Any]:
        attrs = {
            k: sorted(v) if isinstance(v, (set, frozenset, list, tuple)) else v for k, v in self.attributes.items()
        }
        return {"uid": {"type": f"{NAMESPACE}::{self.kind}", "id": self.id}, "attrs": attrs, "parents": []}


@dataclass(frozen=True, slots=True)
class Answer:
    allowed: bool
    reasons: tuple[str, ...]  # ids of the policies that decided
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyCase:
    name: str
    principal: Principal
    action: str
    resource: Resource
    allow: bool


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    answer: Answer

    @property
    def passed(self) -> bool:
        return self.answer.allowed == self.case.allow


class PolicySet:
    """A validated Cedar policy set, parsed once."""

    def __init__(self, text: str, source: str = "<policies>") -> None:
        self.text = text
        self.source = source
        validate_policies(text, source)
        self._policies = cedarpy.PolicySet.from_str(text)
        self._names = _policy_names(text)
        self._memo: dict[tuple[frozenset[str], str], Answer] = {}
        self._lock = threading.Lock()

    def authorize(self, principal: Principal, action: str, resource: Resource | None = None) -> Answer:
        if action not in ACTIONS:
            raise KeyError(f"unknown action {action!r}")
        if resource is None or not resource.attributes:
            key = (principal.roles, action)
            found = self._memo.get(key)
            if found is not None:
                return found
            answer = self._evaluate(principal, action, resource or Resource(ACTIONS[action][0]))
            with self._lock:
                if len(self._memo) > 4096:
                    self._memo.clear()
                self._memo[key] = answer
            return answer
        return self._evaluate(principal, action, resource)

    def _evaluate(self, principal: Principal, action: str, resource: Resource) -> Answer:
        if resource.kind != ACTIONS[action][0]:
            raise ValueError(f"{action} applies to {ACTIONS[action][0]}, not {resource.kind}")
        entities = [*_ROLE_ENTITIES, principal.entity()]
        if resource.attributes:
            entities.append(resource.entity())
        request = {
            "principal": {"type": f"{NAMESPACE}::User", "id": principal.name},
            "action": {"type": f"{NAMESPACE}::Action", "id": action},
            "resource": {"type": f"{NAMESPACE}::{resource.kind}", "id": resource.id},
            "context": {},
        }
        result = cedarpy.is_authorized(request, self._policies, entities, _SCHEMA)
        diagnostics = result.diagnostics
        return Answer(
            allowed=result.allowed,
            reasons=tuple(sorted(self._names.get(r, r) for r in diagnostics.reasons)),
            errors=tuple(str(e) for e in diagnostics.errors),
        )

    def run_cases(self, cases: list[PolicyCase]) -> list[CaseResult]:
        return [CaseResult(case, self.authorize(case.principal, case.action, case.resource)) for case in cases]

    def allowed_actions(self, roles: frozenset[str]) -> list[str]:
        probe = Principal("probe", roles)
        return [action for action in ACTIONS if self.authorize(probe, action).allowed]


def validate_policies(text: str, source: str = "<policies>") -> None:
    """Parse and validate ``text`` against the schema; raises :class:`InvalidInput` naming each problem."""
    try:
        cedarpy.PolicySet.from_str(text)
    except Exception as exc:  # cedarpy raises ValueError with Cedar's own message
        raise InvalidInput(
            f"{source} is not a valid Cedar policy set",
            hint="check the syntax against the Cedar language reference",
            errors=[FieldError(source, _one_line(str(exc)), "cedar_syntax")],
        ) from None
    result = cedarpy.validate_policies(text, _SCHEMA)
    if not result.validation_passed:
        raise InvalidInput(
            f"{source} does not fit the Opsrail schema",
            hint="see `opsrail policies schema` for the actions, resource types and attributes",
            errors=[
                FieldError(
                    f"{source}:{getattr(error, 'policy_id', '?')}",
                    _one_line(str(getattr(error, "error", error))),
                    "cedar_validation",
                )
                for error in result.errors
            ],
        )


def load_cases(text: str, source: str = "<tests>") -> list[PolicyCase]:
    """Test cases from YAML: ``cases: [{name, principal: {name, roles}, action, resource: {type, id, …}, allow}]``."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(
            f"{source} is not valid YAML", errors=[FieldError(source, _one_line(str(exc)), "yaml")]
        ) from None
    items = document.get("cases") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise InvalidInput(f"{source} needs a list under `cases`", hint="see docs/authorization.md for the format")
    cases, problems = [], []
    for i, item in enumerate(items):
        path = f"$.cases[{i}]"
        try:
            cases.append(_case(item, i))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(FieldError(path, _one_line(str(exc)), "case"))
    if problems:
        raise InvalidInput(f"{source} has malformed test cases", errors=problems)
    return cases


def _case(item: Any, index: int) -> PolicyCase:
    if not isinstance(item, dict):
        raise TypeError("a case is a mapping")
    action = str(item["action"])
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    who = item.get("principal") or {}
    roles = who.get("roles", [])
    if isinstance(roles, str):
        roles = [roles]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown roles {unknown}")
    principal = Principal(str(who.get("name", "someone")), frozenset(str(r) for r in roles))
    raw = dict(item.get("resource") or {})
    kind = str(raw.pop("type", ACTIONS[action][0]))
    resource_id = str(raw.pop("id", "*"))
    expected = RESOURCE_ATTRIBUTES.get(kind, {})
    missing = [name for name in expected if raw and name not in raw]
    if missing or set(raw) - set(expected):
        raise ValueError(f"a {kind} resource has the attributes {sorted(expected) or 'none'}")
    allow = item.get("allow")
    if not isinstance(allow, bool):
        raise ValueError("`allow` is true or false")
    return PolicyCase(
        str(item.get("name") or f"case {index + 1}"), principal, action, Resource(kind, resource_id, raw), allow
    )


_POLICY_HEAD = re.compile(r'(?:@id\(\s*"([^"]*)"\s*\)\s*(?:@\w+\([^)]*\)\s*)*)?\b(?:permit|forbid)\s*\(')
_COMMENT = re.compile(r"//[^\n]*")


def _policy_names(text: str) -> dict[str, str]:
    """Cedar numbers policies ``policy0``, ``policy1``…; map those to their ``@id`` annotations where given."""
    names = {}
    for index, match in enumerate(_POLICY_HEAD.finditer(_COMMENT.sub("", text))):
        if match.group(1):
            names[f"policy{index}"] = match.group(1)
    return names


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
