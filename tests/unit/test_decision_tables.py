"""Decision tables: loading with located problems, each hit policy, coercion, the table's own tests, fast path = CEL."""

from __future__ import annotations

import ast
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import opsrail.decisions
from opsrail.decisions import (
    AmbiguousMatch,
    NoRuleMatched,
    TableInvalid,
    compile_table,
    load_table,
    load_table_file,
    override_problems,
    run_table_tests,
    validate_table_file,
)
from opsrail.decisions._conditions import parse, translate
from opsrail.model import InvalidInput
from opsrail.playbooks import Expression

PACKAGE = Path(opsrail.decisions.__file__).parent
REFERENCE = sorted((PACKAGE / "reference").glob("*.yaml"))

HEAD = """
name: t
version: 1
hit_policy: {policy}
inputs:
  severity: int
  topic: string
  premium: {{type: bool, default: false}}
  arr: {{type: double, default: 0.0}}
outputs:
  team: {{type: string, default: none}}
  exposure: {{type: double, default: 0.0}}
"""


def table(policy: str, rules: str, extra: str = "") -> str:
    return HEAD.format(policy=policy) + extra + "rules:\n" + dedent(rules)


def problems(text: str) -> list[tuple[str, str, str]]:
    """(code, path, message) of every problem in an invalid table."""
    with pytest.raises(TableInvalid) as caught:
        load_table(text, "t.yaml")
    return [(error.code, error.path, error.message) for error in caught.value.errors]


# -- reference tables -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", REFERENCE, ids=lambda path: path.stem)
def test_reference_tables_validate_and_pass_their_tests(path: Path) -> None:
    assert validate_table_file(path) == []
    outcomes = run_table_tests(load_table_file(path))
    assert outcomes
    assert [outcome.message for outcome in outcomes if not outcome.passed] == []


def test_incident_router_explains_the_match() -> None:
    compiled = compile_table(load_table_file(PACKAGE / "reference" / "incident-router.yaml"))
    result = compiled.evaluate({"severity": 1, "topic": "Hardware", "premium_support": True, "arr": 120000})
    assert result.outputs == {"team": "major-incident", "credit_exposure": pytest.approx(6000.0), "page_oncall": True}
    assert result.matched_rules == ("sev1-premium",)
    assert (result.table, result.version) == ("incident-router", 2)
    assert "sev1-premium" in result.explanation
    assert "severity == 1 && premium_support" in result.explanation
    assert set(compiled.fast_rules) == {rule.id for rule in compiled.table.rules}


# -- hit policies ---------------------------------------------------------------------------------------------------

RULES = """
- id: sev1
  when: "severity == 1"
  then: {team: major, exposure: "${ arr * 0.1 }"}
- id: access
  when: "topic == 'Access'"
  then: {team: identity, exposure: 5.0}
"""


def test_first_takes_the_first_match_in_file_order() -> None:
    compiled = compile_table(load_table(table("first", RULES)))
    result = compiled.evaluate({"severity": 1, "topic": "Access", "arr": 50})
    assert (result.outputs, result.matched_rules) == ({"team": "major", "exposure": 5.0}, ("sev1",))


def test_priority_takes_the_highest_priority() -> None:
    rules = """
    - id: low
      when: "severity == 1"
      then: {team: low}
      priority: 1
    - id: high
      when: "topic == 'Access'"
      then: {team: high}
      priority: 10
    """
    compiled = compile_table(load_table(table("priority", rules)))
    assert compiled.evaluate({"severity": 1, "topic": "Access"}).matched_rules == ("high",)
    assert compiled.evaluate({"severity": 1, "topic": "Other"}).outputs["team"] == "low"
    assert "priority 10" in compiled.evaluate({"severity": 1, "topic": "Access"}).explanation


def test_unique_raises_naming_both_rules_when_two_match_at_run_time() -> None:
    # `startsWith` is beyond the overlap reasoning and the sampled literals miss "Acc…" for topic, so it loads.
    rules = """
    - id: one
      when: "topic.startsWith('Acc')"
      then: {team: a}
    - id: two
      when: "topic.endsWith('ess')"
      then: {team: b}
    """
    compiled = compile_table(load_table(table("unique", rules)))
    assert compiled.evaluate({"severity": 2, "topic": "Accounts"}).matched_rules == ("one",)
    with pytest.raises(AmbiguousMatch) as caught:
        compiled.evaluate({"severity": 2, "topic": "Access"})
    assert "'one' and 'two'" in caught.value.detail
    assert caught.value.extra["rules"] == ["one", "two"]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [("list", [10.0, 5.0]), ("sum", 15.0), ("min", 5.0), ("max", 10.0), ("count", 2)],
)
def test_collect_aggregates_each_output(aggregate: str, expected: Any) -> None:
    exposure = "exposure: {type: double, default: 0.0"
    text = table("collect", RULES).replace(exposure, f"{exposure}, aggregate: {aggregate}")
    compiled = compile_table(load_table(text))
    result = compiled.evaluate({"severity": 1, "topic": "Access", "arr": 100})
    assert result.outputs["team"] == ["major", "identity"]
    assert result.matched_rules == ("sev1", "access")
    assert result.outputs["exposure"] == expected
    assert result.explanation.startswith("collect: 2 rules matched")


def test_collect_with_no_match_gives_defaults() -> None:
    compiled = compile_table(load_table(table("collect", RULES, "collect: {aggregate: list}\n")))
    result = compiled.evaluate({"severity": 3, "topic": "Other"})
    assert (result.outputs, result.matched_rules) == ({"team": "none", "exposure": 0.0}, ())


def test_no_match_gives_defaults_or_names_the_outputs_without_one() -> None:
    compiled = compile_table(load_table(table("first", RULES)))
    result = compiled.evaluate({"severity": 3, "topic": "Other"})
    assert (result.outputs, result.matched_rules) == ({"team": "none", "exposure": 0.0}, ())
    text = table("first", RULES).replace("team: {type: string, default: none}", "team: string")
    with pytest.raises(NoRuleMatched) as caught:
        compile_table(load_table(text)).evaluate({"severity": 3, "topic": "Other"})
    assert caught.value.extra["outputs"] == ["team"]
    assert "'team'" in caught.value.detail


# -- inputs ---------------------------------------------------------------------------------------------------------


def test_inputs_are_coerced_and_defaulted() -> None:
    compiled = compile_table(load_table(table("first", RULES)))
    result = compiled.evaluate({"severity": 1, "topic": "x", "arr": 20})
    assert result.inputs == {"severity": 1, "topic": "x", "premium": False, "arr": 20.0}
    assert isinstance(result.inputs["arr"], float)
    assert result.outputs["exposure"] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"severity": "1", "topic": "x"}, "input 'severity': expected an int, got string '1'"),
        ({"severity": True, "topic": "x"}, "input 'severity': expected an int"),
        ({"topic": "x"}, "input 'severity' is required"),
        ({"severity": 1, "topic": "x", "arr": float("nan")}, "input 'arr': NaN"),
        ({"severity": 1, "topic": "x", "sevrity": 2}, "'sevrity' is not an input of this table (did you mean"),
    ],
)
def test_input_errors_name_the_input(inputs: dict[str, Any], fragment: str) -> None:
    compiled = compile_table(load_table(table("first", RULES)))
    with pytest.raises(InvalidInput) as caught:
        compiled.evaluate(inputs)
    assert fragment in caught.value.detail


# -- validation -----------------------------------------------------------------------------------------------------


def test_yaml_and_schema_errors_have_lines() -> None:
    found = problems(
        "name: t\nversion: 1\ninputs: {a: int}\noutputs: {b: string}\nrules:\n  - id: r\n    wen: 'true'\n"
    )
    assert ("unknown_key", "$.rules[0].wen", "t.yaml:7:5: unknown key 'wen' (did you mean 'when'?)") in found
    assert any(code == "missing" and message.startswith("t.yaml:6:") for code, _, message in found)
    [(code, _, message)] = problems("name: t\nversion: [1\n")
    assert code == "yaml_syntax"
    assert message.startswith("t.yaml:")


def test_cel_syntax_and_unknown_inputs_in_conditions_and_templates() -> None:
    rules = """
    - id: a
      when: "severity == "
      then: {team: x}
    - id: b
      when: "sevrity == 1"
      then: {team: "${ topik }"}
    """
    found = problems(table("first", rules))
    assert found[0][:2] == ("cel_syntax", "$.rules[0].when")
    assert found[0][2].startswith("t.yaml:16:")
    unknown = [(path, message) for code, path, message in found if code == "unknown_input"]
    assert unknown[0][0] == "$.rules[1].when"
    assert "no input 'sevrity' in this table (did you mean 'severity'?)" in unknown[0][1]
    assert unknown[1][0] == "$.rules[1].then.team"
    assert unknown[1][1].startswith("t.yaml:20:")


def test_type_errors_in_conditions_and_output_values() -> None:
    rules = """
    - id: a
      when: "severity + 1"
      then: {team: x}
    - id: b
      when: "topic > 3"
      then: {team: 7}
    - id: c
      when: "premium"
      then: {exposure: "${ topic }"}
    - id: d
      when: "arr + severity > 1.0"
      then: {}
    """
    found = {(code, path): message for code, path, message in problems(table("first", rules))}
    assert "is an int" in found[("type", "$.rules[0].when")]
    assert found[("type", "$.rules[0].when")].startswith("t.yaml:16:")
    assert "does not compare a string with an int" in found[("type", "$.rules[1].when")]
    assert "expected a string, got integer 7" in found[("type", "$.rules[1].then.team")]
    assert "must be a double" in found[("type", "$.rules[2].then.exposure")]
    assert "+ is not defined for a double and an int" in found[("type", "$.rules[3].when")]


def test_unreachable_rules_under_first() -> None:
    rules = """
    - id: broad
      when: "severity <= 2 && topic in ['Access', 'Billing']"
      then: {team: a}
    - id: narrow
      when: "topic == 'Access' && severity == 1 && arr > 10.0"
      then: {team: b}
    - id: same
      when: "severity <= 2  &&  topic in ['Access', 'Billing']"
      then: {team: c}
    - id: split
      when: "severity < 3"
      then: {team: d}
    - id: covered-by-two
      when: "severity in [1, 2, 3]"
      then: {team: e}
    - id: impossible
      when: "severity > 5 && severity < 3"
      then: {team: f}
    - id: all
      when: "true"
      then: {team: g}
    - id: after-all
      when: "topic.contains('x')"
      then: {team: h}
    """
    messages = {path: message for _, path, message in problems(table("first", rules))}
    narrow = messages["$.rules[1].when"]
    assert "rule 'narrow' can never match: it matches only inputs already taken by 'broad'" in narrow
    assert "t.yaml:19:" in messages["$.rules[1].when"]
    assert "same condition as 'broad'" in messages["$.rules[2].when"]
    assert "$.rules[3].when" not in messages
    assert "$.rules[4].when" not in messages  # severity == 3 is not taken by 'split'
    assert "is never true" in messages["$.rules[5].when"]
    assert "comes after 'all', whose condition is always true" in messages["$.rules[7].when"]


@pytest.mark.parametrize("policy", ["unique", "collect"])
def test_a_condition_that_is_never_true_is_reported_under_every_policy(policy: str) -> None:
    rules = """
    - id: low
      when: "severity >= 3"
      then: {team: a}
    - id: impossible
      when: "severity > 5 && severity < 3"
      then: {team: b}
    """
    found = problems(table(policy, rules))
    assert [(code, path) for code, path, _ in found] == [("never_matches", "$.rules[1].when")]
    assert "rule 'impossible' can never match" in found[0][2] and "t.yaml:" in found[0][2]


def test_unreachable_under_priority_and_a_rule_covered_by_a_union() -> None:
    rules = """
    - id: one
      when: "severity == 1"
      then: {team: a}
    - id: two
      when: "severity >= 2"
      then: {team: b}
    - id: both
      when: "severity > 0"
      then: {team: c}
    """
    found = problems(table("first", rules))
    assert [(code, path) for code, path, _ in found] == [("unreachable", "$.rules[2].when")]
    assert "'one' and 'two'" in found[0][2]


def test_overlaps_under_unique_name_both_rules_and_an_input() -> None:
    rules = """
    - id: low
      when: "severity <= 2"
      then: {team: a}
    - id: access
      when: "topic == 'Access' && severity == 2"
      then: {team: b}
    - id: odd
      when: "topic.startsWith('Bill') && arr > 100.0"
      then: {team: c}
    - id: rich
      when: "arr > 1000.0 && severity >= 3"
      then: {team: d}
    """
    found = [(path, message) for code, path, message in problems(table("unique", rules)) if code == "overlap"]
    assert found[0][0] == "$.rules[1].when"
    assert "rules 'low' and 'access' both match {" in found[0][1]
    assert "severity: 2" in found[0][1]
    assert "topic: 'Access'" in found[0][1]
    assert not any("'odd'" in message for _, message in found)


def test_overlaps_found_by_sampling_test_inputs() -> None:
    rules = """
    - id: one
      when: "topic.startsWith('Acc')"
      then: {team: a}
    - id: two
      when: "topic.endsWith('ess')"
      then: {team: b}
    """
    extra_tests = "tests:\n  - name: access\n    inputs: {severity: 1, topic: Access}\n"
    found = problems(table("unique", rules) + extra_tests)
    assert [code for code, _, _ in found] == ["overlap"]
    assert "'one' and 'two' both match {" in found[0][2]


def test_duplicate_ids_unknown_outputs_missing_outputs_and_policy_keys() -> None:
    text = (
        table(
            "first",
            """
    - id: a
      when: "true"
      then: {team: x, exposur: 1.0}
      priority: 2
    - id: a
      when: "severity == 1"
      then: {team: y}
    """,
        )
        .replace("team: {type: string, default: none}", "team: string")
        .replace("exposure: {type: double, default: 0.0}", "exposure: {type: double, default: 0.0, aggregate: sum}")
    )
    found = {(code, path) for code, path, _ in problems(text)}
    assert ("unknown_output", "$.rules[0].then.exposur") in found
    assert ("policy", "$.rules[0].priority") in found
    assert ("policy", "$.outputs.exposure.aggregate") in found
    assert ("duplicate_id", "$.rules[1].id") in found
    assert ("unreachable", "$.rules[1].when") in found


def test_missing_output_without_default_is_reported() -> None:
    text = table("first", RULES.replace("{team: identity, exposure: 5.0}", "{exposure: 5.0}"))
    text = text.replace("team: {type: string, default: none}", "team: string")
    [(code, path, message)] = problems(text)
    assert (code, path) == ("missing_output", "$.rules[1].then")
    assert "gives no value for output 'team', which has no default" in message


def test_table_tests_are_checked_and_run() -> None:
    tests = """tests:
  - name: ok
    inputs: {severity: 1, topic: x, arr: 10}
    expect: {team: major, exposure: 1.0}
    expect_rules: [sev1]
  - name: wrong
    inputs: {severity: 2, topic: Access}
    expect: {team: major}
"""
    outcomes = run_table_tests(load_table(table("first", RULES) + tests))
    assert [(outcome.name, outcome.passed) for outcome in outcomes] == [("ok", True), ("wrong", False)]
    assert outcomes[1].message == "team: expected 'major', got 'identity'"
    assert outcomes[1].matched_rules == ("access",)
    bad = """tests:
  - name: bad
    inputs: {severity: one, topik: x}
    expect: {tema: a}
    expect_rules: [nope]
"""
    found = {(code, path) for code, path, _ in problems(table("first", RULES) + bad)}
    assert found == {
        ("type", "$.tests[0].inputs.severity"),
        ("unknown_input", "$.tests[0].inputs.topik"),
        ("missing_input", "$.tests[0].inputs"),
        ("unknown_output", "$.tests[0].expect.tema"),
        ("unknown_rule", "$.tests[0].expect_rules[0]"),
    }


def test_validate_table_file_lists_problems_and_refuses_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(table("first", RULES.replace("severity == 1", "severity == 'x'")))
    [error] = validate_table_file(path)
    assert error.path == "$.rules[0].when"
    assert error.message.startswith(f"{path}:16:")
    with pytest.raises(InvalidInput):
        validate_table_file(tmp_path / "missing.yaml")


# -- the fast path --------------------------------------------------------------------------------------------------

TYPES = {"i": "int", "d": "double", "s": "string", "b": "bool"}
_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_DOUBLE = st.floats(allow_nan=False, width=64)
_TEXT = st.text(alphabet="abAé😀 '\"\\", max_size=5)


def _literal(kind: str) -> st.SearchStrategy[str]:
    if kind == "int":
        return st.one_of(st.integers(-5, 5), _INT).map(str)
    if kind == "double":
        return st.one_of(
            st.sampled_from([0.0, -1.5, 2.0, 1e300]), _DOUBLE.filter(lambda x: abs(x) != float("inf"))
        ).map(repr)
    if kind == "bool":
        return st.sampled_from(["true", "false"])
    return _TEXT.map(lambda text: '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')


@st.composite
def _atom(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(TYPES)))
    kind = TYPES[name]
    shape = draw(st.sampled_from(["compare", "in", "size", "string", "bare"]))
    if kind == "bool":
        return draw(st.sampled_from([name, f"!{name}", f"{name} == true", f"{name} != false"]))
    if shape == "in":
        kinds = ["int", "double"] if kind in ("int", "double") else [kind, "int"]
        items = draw(st.lists(st.sampled_from(kinds).flatmap(_literal), max_size=3))
        return f"{name} in [{', '.join(items)}]"
    if kind == "string" and shape == "size":
        return f"size({name}) {draw(st.sampled_from(['==', '<', '>=']))} {draw(st.integers(0, 12))}"
    if kind == "string" and shape == "string":
        method = draw(st.sampled_from(["startsWith", "endsWith", "contains"]))
        return f"{name}.{method}({draw(_literal('string'))})"
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
    other = kind if kind == "string" else draw(st.sampled_from(["int", "double"]))
    literal = draw(_literal(other))
    return f"{name} {op} {literal}" if draw(st.booleans()) else f"{literal} {op} {name}"


_CONDITION = st.recursive(
    _atom(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda text: f"!({text})"),
    ),
    max_leaves=6,
)
_VALUES = st.fixed_dictionaries(
    {
        "i": st.one_of(st.integers(-6, 6), _INT),
        "d": st.one_of(st.sampled_from([0.0, -1.5, 2.0, 5.0]), _DOUBLE),
        "s": _TEXT,
        "b": st.booleans(),
    }
)


@settings(max_examples=400, deadline=None)
@given(condition=_CONDITION, values=_VALUES)
def test_the_fast_path_agrees_with_cel(condition: str, values: dict[str, Any]) -> None:
    node = parse(condition)
    assert node is not None, condition
    fast = translate(node, TYPES)
    assert fast is not None, condition
    assert fast(values) == Expression(condition).evaluate_bool(values)


@pytest.mark.parametrize(
    "condition",
    ["s.matches('a+')", "i + 1 > 2", "s > 1", "d in x", "r'raw' == s", "i == 1u", "has(m.a)", "s == '''x'''"],
)
def test_conditions_outside_the_subset_are_left_to_cel(condition: str) -> None:
    node = parse(condition)
    assert node is None or translate(node, {**TYPES, "x": "list", "m": "map"}) is None


def test_fast_and_cel_tables_give_the_same_results() -> None:
    path = PACKAGE / "reference" / "incident-router.yaml"
    fast, slow = compile_table(load_table_file(path)), compile_table(load_table_file(path), fast=False)
    assert slow.fast_rules == ()
    for severity in range(1, 5):
        for topic in ("Access", "Billing", "Purchase", "Hardware", "Device x", "Other"):
            for premium in (True, False):
                inputs = {"severity": severity, "topic": topic, "premium_support": premium, "arr": 1234.5}
                one, two = fast.evaluate(inputs), slow.evaluate(inputs)
                assert (one.outputs, one.matched_rules) == (two.outputs, two.matched_rules)


def test_the_package_never_calls_eval_exec_or_compile() -> None:
    for module in PACKAGE.glob("*.py"):
        tree = ast.parse(module.read_text())
        called = {
            node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert not called & {"eval", "exec", "compile", "__import__"}, module.name


def test_an_override_must_name_the_tables_outputs_with_their_types() -> None:
    router = load_table_file(PACKAGE / "reference" / "incident-router.yaml")
    assert override_problems(router, {"team": "sre", "credit_exposure": 10, "page_oncall": True}) == []
    found = [(e.path, e.code) for e in override_problems(router, {"team": 1, "page_oncall": "yes", "queue": "x"})]
    assert found == [("$.value.team", "type"), ("$.value.page_oncall", "type"), ("$.value.queue", "invalid")]
    credit = load_table_file(PACKAGE / "reference" / "credit-tier.yaml")  # collect: lists, a count, a maximum
    assert override_problems(credit, {"approver": ["cfo"], "approvals": 1, "hold_days": 3}) == []
    found = [(e.path, e.message) for e in override_problems(credit, {"approver": "cfo", "approvals": "two"})]
    assert found == [
        (
            "$.value.approver",
            "output 'approver': expected a list (collected from every matching rule), got string 'cfo'",
        ),
        ("$.value.approvals", "output 'approvals': expected an int, got string 'two'"),
    ]
