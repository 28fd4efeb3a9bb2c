"""Decision policies: the tier of each decision (autonomous, approval, advisory), its confidence floor, who
reviews it, and the CEL thresholds that pick approver roles and how many.

A policy file names decisions (decision tables or models) and gives each a policy::

    decisions:
      incident-topic:
        tier: autonomous
        min_confidence: 0.80          # below it the decision becomes a review task
        review: {roles: [operator], due: PT4H}
        demotion: {override_rate: 0.2, window: 50}   # the default: >20% of the last 50 overridden
      credit-recommendation:
        tier: approval
        approval:                     # the first rule whose `when` holds decides
          - when: "output.credit <= 500.0"
            tier: autonomous
          - when: "output.credit <= 5000.0"
            roles: [finance_controller]
          - roles: [finance_controller, approver]
            count: 2

A rule's ``when`` is CEL over ``output`` (the decision's outputs), ``inputs`` and ``confidence``. A decision
without a policy is autonomous; a model's own per-class thresholds (chosen on its training data) then decide
whether a prediction is confident enough. An autonomous decision whose answers people override more often than
``demotion.override_rate`` over the last ``demotion.window`` settled decisions is demoted to ``approval``
automatically; promoting it back is a person applying a policy again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsrail.model import ALREADY_PUBLISHED, FieldError, InvalidInput, KnownRole
from opsrail.playbooks import Expression, ExpressionError

Tier = Literal["autonomous", "approval", "advisory"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Review(_Strict):
    roles: list[KnownRole] = Field(default_factory=lambda: ["operator"], min_length=1)
    due: timedelta | None = Field(default=timedelta(hours=4), description="when the review task is due")


class ApprovalRule(_Strict):
    when: str | None = Field(default=None, description="CEL over output, inputs, confidence; absent: always")
    tier: Literal["autonomous", "approval"] = "approval"
    roles: list[KnownRole] = Field(default_factory=lambda: ["approver"], min_length=1)
    count: int = Field(default=1, ge=1, le=10, description="distinct approvers needed")


class Demotion(_Strict):
    """When an autonomous decision is overridden too often, it needs approval until a person promotes it back."""

    override_rate: float = Field(default=0.2, gt=0.0, le=1.0, description="demote above this share of overrides")
    window: int = Field(default=50, ge=2, le=10_000, description="over the last this many settled decisions")


class DecisionPolicy(_Strict):
    tier: Tier = "autonomous"
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    review: Review = Field(default_factory=Review)
    approval: list[ApprovalRule] = Field(default_factory=list)
    demotion: Demotion = Field(default_factory=Demotion)
    demoted: str | None = Field(default=None, description="why it was demoted, when it was (set by Opsrail)")


class PolicyFile(_Strict):
    decisions: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")], DecisionPolicy]


DEFAULT_POLICY = DecisionPolicy()


def load_policies(text: str, source: str) -> dict[str, DecisionPolicy]:
    """Parse and check a policy file; every CEL rule must compile."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML: {exc}") from None
    try:
        parsed = PolicyFile.model_validate(document)
    except ValidationError as exc:
        errors = [FieldError("$." + ".".join(str(p) for p in e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        raise InvalidInput(f"{source} is not a valid decision policy file", errors=errors) from None
    problems = []
    for name, policy in parsed.decisions.items():
        for i, rule in enumerate(policy.approval):
            if rule.when:
                try:
                    Expression(rule.when)
                except ExpressionError as exc:
                    problems.append(FieldError(f"$.decisions.{name}.approval[{i}].when", exc.detail, "invalid_cel"))
    if problems:
        raise InvalidInput(f"{source} has expressions that do not compile", errors=problems)
    return dict(parsed.decisions)


def parse_policy(value: dict[str, Any]) -> DecisionPolicy:
    """A stored policy (checked when it was applied; its roles are not checked again)."""
    return DecisionPolicy.model_validate(value, context={ALREADY_PUBLISHED: True})


def route(
    policy: DecisionPolicy, outputs: dict[str, Any], inputs: dict[str, Any], confidence: float, accepted: bool
) -> tuple[str, tuple[str, ...], int, str]:
    """Where a decision goes: ``(route, roles, count, why)`` with route ``acted``, ``review``, ``approval`` or
    ``advisory``."""
    if policy.tier == "advisory":
        return "advisory", tuple(policy.review.roles), 1, "advisory tier: a person decides, the answer is advice"
    floor = policy.min_confidence
    confident = accepted if floor is None else confidence >= floor
    if not confident:
        shown = f"{confidence:.2f}"
        why = f"confidence {shown} is below " + (f"{floor:.2f}" if floor is not None else "the model's threshold")
        return "review", tuple(policy.review.roles), 1, why
    if policy.tier == "approval":
        context = {"output": outputs, "inputs": inputs, "confidence": confidence}
        for i, rule in enumerate(policy.approval):
            if rule.when is None or Expression(rule.when).evaluate_bool(context):
                if rule.tier == "autonomous":
                    return "acted", (), 0, f"approval rule {i + 1} ({rule.when or 'always'}) lets it act"
                return "approval", tuple(rule.roles), rule.count, f"approval rule {i + 1} ({rule.when or 'always'})"
        return "approval", ("approver",), 1, "approval tier: no rule matched, one approver by default"
    return "acted", (), 0, "autonomous and confident"
