"""The Cedar policy set on its own: the schema built from the catalogue, validation errors, test cases, memoised
answers, and the reference policies' own test cases."""

from __future__ import annotations

import pytest

from opsrail.governance import ACTIONS, ROLES, PolicySet, Principal, Resource, load_cases, schema_text
from opsrail.model import InvalidInput
from opsrail.services import reference_cases, reference_policies


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return PolicySet(reference_policies(), "reference")


def task(roles: list[str], requested_by: str = "olive") -> Resource:
    return Resource("Task", "t1", {"roles": roles, "requested_by": requested_by, "kind": "approval"})


def test_the_reference_policies_pass_their_own_cases(policies: PolicySet) -> None:
    results = policies.run_cases(load_cases(reference_cases(), "reference cases"))
    assert len(results) >= 12
    assert [r.case.name for r in results if not r.passed] == []


def test_the_schema_names_every_action_and_validates(policies: PolicySet) -> None:
    text = schema_text()
    for action in ACTIONS:
        assert f'action "{action}"' in text
    assert "entity Task { roles: Set<String>, requested_by: String, kind: String };" in text


def test_answers_name_the_deciding_policies(policies: PolicySet) -> None:
    answer = policies.authorize(
        Principal("carol", frozenset({"finance_controller"})), "task.decide", task(["finance_controller"])
    )
    assert answer.allowed and answer.reasons == ("decide-tasks-for-your-role",)
    denied = policies.authorize(
        Principal("olive", frozenset({"finance_controller"})), "task.decide", task(["finance_controller"])
    )
    assert not denied.allowed and denied.reasons == ("separation-of-duties",)
    nothing = policies.authorize(Principal("x", frozenset({"service"})), "audit.read")
    assert not nothing.allowed and nothing.reasons == ()


def test_role_only_answers_are_memoised_and_attribute_answers_are_not(policies: PolicySet) -> None:
    someone = Principal("a", frozenset({"operator"}))
    first = policies.authorize(someone, "run.start")
    assert policies.authorize(Principal("b", frozenset({"operator"})), "run.start") is first
    one = policies.authorize(Principal("c", frozenset({"approver"})), "task.decide", task(["approver"]))
    other = policies.authorize(Principal("c", frozenset({"approver"})), "task.decide", task(["approver"], "c"))
    assert one.allowed and not other.allowed


def test_every_role_has_a_sensible_set_of_actions(policies: PolicySet) -> None:
    allowed = {role: set(policies.allowed_actions(frozenset({role}))) for role in ROLES}
    assert "token.manage" in allowed["admin"] and "task.decide" not in allowed["admin"]
    assert allowed["auditor"] >= {"audit.read", "run.read"} and "run.start" not in allowed["auditor"]
    assert allowed["service"] == {"event.send", "run.start", "run.read", "decision.evaluate", "ledger.write"}
    assert "audit.read" not in allowed["operator"] and "policy.publish" not in allowed["operator"]


def test_a_syntax_error_is_a_clear_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="not a valid Cedar policy set") as caught:
        PolicySet("permit(principal, action, resource", "broken.cedar")
    assert caught.value.errors[0].path == "broken.cedar"


def test_unknown_actions_and_attributes_fail_validation() -> None:
    with pytest.raises(InvalidInput, match="does not fit the Opsrail schema") as caught:
        PolicySet('permit(principal, action == Opsrail::Action::"run.destroy", resource);', "p.cedar")
    assert any("run.destroy" in e.message for e in caught.value.errors)
    with pytest.raises(InvalidInput) as caught:
        PolicySet(
            'permit(principal, action == Opsrail::Action::"task.decide", resource) when { resource.amount > 5 };',
            "p.cedar",
        )
    assert any("amount" in e.message for e in caught.value.errors)


def test_malformed_cases_are_reported_by_position() -> None:
    with pytest.raises(InvalidInput, match="malformed") as caught:
        load_cases(
            """
cases:
  - {action: run.fly, principal: {roles: [operator]}, allow: true}
  - {action: run.start, principal: {roles: [wizard]}, allow: true}
  - {action: run.start, principal: {roles: [operator]}, allow: maybe}
  - {action: task.decide, principal: {roles: [operator]}, resource: {type: Task, roles: [x]}, allow: true}
""",
            "cases.yaml",
        )
    assert [e.path for e in caught.value.errors] == ["$.cases[0]", "$.cases[1]", "$.cases[2]", "$.cases[3]"]
    with pytest.raises(InvalidInput, match="YAML"):
        load_cases("cases: [", "cases.yaml")
    with pytest.raises(InvalidInput, match="cases"):
        load_cases("nothing: here", "cases.yaml")


def test_a_forbid_wins_over_a_permit() -> None:
    text = reference_policies() + '\nforbid(principal, action == Opsrail::Action::"run.start", resource);\n'
    assert not PolicySet(text).authorize(Principal("o", frozenset({"operator"})), "run.start").allowed
