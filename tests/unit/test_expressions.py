"""CEL expressions and ``${ }`` templates: typed values, strings, clear errors, and the names playbooks see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsrail.model import InvalidInput
from opsrail.playbooks import Expression, ExpressionError, context_for, render, template_expressions

CONTEXT = context_for(
    event={"data": {"severity": 1, "id": "mon:77"}},
    run={"id": "run-1", "input": {"title": "Checkout down", "severity": 1, "tags": ["eu", "sev1"], "ok": True}},
    steps={"classify": {"status": "succeeded", "output": {"team": "sre"}}},
)


# -- evaluating ----------------------------------------------------------------------------------------------------


def test_evaluate_returns_typed_values() -> None:
    assert Expression("event.data.severity == 1").evaluate(CONTEXT) is True
    assert Expression("run.input.severity + 1").evaluate(CONTEXT) == 2
    assert Expression("run.input.tags").evaluate(CONTEXT) == ["eu", "sev1"]
    assert Expression("steps.classify.output.team").evaluate(CONTEXT) == "sre"


def test_compiled_programs_are_shared_by_source_text() -> None:
    first, second = Expression("1 + 2"), Expression("1 + 2")
    assert first._program is second._program


def test_a_missing_key_names_the_expression_and_the_key() -> None:
    source = "steps.classify.output.credit_exposure > 0.0"
    with pytest.raises(ExpressionError) as caught:
        Expression(source).evaluate(CONTEXT)
    assert caught.value.detail == f"{source}: no key 'credit_exposure'"
    assert caught.value.expression == source
    assert caught.value.hint is not None
    assert "has(" in caught.value.hint


def test_an_undefined_name_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression("incident.id").evaluate(CONTEXT)
    assert caught.value.detail == "incident.id: Undefined variable or function: 'incident'"


def test_a_type_error_is_an_expression_error_with_the_advice_in_the_hint() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression("run.input.title + 1").evaluate(CONTEXT)
    assert caught.value.detail.startswith("run.input.title + 1: Unsupported operation: string + int")
    assert caught.value.hint is not None


@pytest.mark.parametrize("source", ["1 / 0", "[1, 2][5]", "int('x')"])
def test_every_runtime_failure_is_an_expression_error(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression(source).evaluate(CONTEXT)
    assert caught.value.detail.startswith(f"{source}: ")


def test_expression_errors_are_invalid_input() -> None:
    assert issubclass(ExpressionError, InvalidInput)


def test_a_syntax_error_names_the_column() -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression("severity ==")
    assert caught.value.detail == "severity ==: syntax error at column 12: mismatched input '<EOF>'"
    assert caught.value.extra["column"] == 12


def test_an_empty_expression_does_not_compile() -> None:
    with pytest.raises(ExpressionError, match="empty expression"):
        Expression("  ")


def test_evaluate_bool_requires_true_or_false() -> None:
    assert Expression("run.input.ok").evaluate_bool(CONTEXT) is True
    with pytest.raises(ExpressionError) as caught:
        Expression("run.input.severity").evaluate_bool(CONTEXT)
    assert caught.value.detail == "run.input.severity: expected true or false, got int 1"


def test_a_long_expression_is_shortened_in_the_message_and_kept_whole_in_extra() -> None:
    source = " && ".join(["run.input.nothing"] * 10)
    with pytest.raises(ExpressionError) as caught:
        Expression(source).evaluate(CONTEXT)
    assert len(caught.value.detail.split(": ")[0]) == 80
    assert caught.value.expression == source


# -- the names an expression sees ----------------------------------------------------------------------------------


def test_context_binds_every_name_so_has_works_before_a_step_has_a_result() -> None:
    context = context_for(run={"input": {}})
    assert set(context) == {"event", "run", "steps", "result"}
    assert Expression("has(result.total)").evaluate_bool(context) is False
    assert Expression("has(run.input.title)").evaluate_bool(context) is False
    assert Expression("size(steps) == 0").evaluate_bool(context) is True


def test_context_copies_the_top_level_mappings() -> None:
    event: dict[str, Any] = {"data": {}}
    context = context_for(event=event)
    assert context["event"] == event
    assert context["event"] is not event


# -- templates -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${ run.input.title }", "Checkout down"),
        ("${run.input.severity}", 1),
        ("  ${ run.input.tags }  ", ["eu", "sev1"]),
        ("${ run.input.ok }", True),
        ("${ {'team': steps.classify.output.team} }", {"team": "sre"}),
        ("${ {'brace': '}'}.brace }", "}"),
    ],
)
def test_a_string_that_is_one_template_renders_to_the_typed_value(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Sev${ run.input.severity }: ${ run.input.title }", "Sev1: Checkout down"),
        ("tags=${ run.input.tags }", 'tags=["eu","sev1"]'),
        ("ok=${ run.input.ok }, none=${ null }", "ok=true, none=null"),
        ("at ${ timestamp('2026-01-05T09:00:00Z') }", f"at {datetime(2026, 1, 5, 9, tzinfo=UTC).isoformat()}"),
        ("${ 1 }${ 2 }", "12"),
        ("ratio ${ 0.5 }", "ratio 0.5"),
    ],
)
def test_text_around_templates_renders_to_a_string(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_render_walks_dicts_and_lists_and_keeps_other_values() -> None:
    value = {
        "project": "ENG",
        "summary": "${ run.input.title }",
        "labels": ["sev${ run.input.severity }", "${ event.data.id }", 3, None],
        "nested": {"${ not a key template }": 2.5, "flag": False},
    }
    assert render(value, CONTEXT) == {
        "project": "ENG",
        "summary": "Checkout down",
        "labels": ["sev1", "mon:77", 3, None],
        "nested": {"${ not a key template }": 2.5, "flag": False},
    }


def test_a_failing_template_raises_the_expression_error() -> None:
    with pytest.raises(ExpressionError) as caught:
        render({"summary": "about ${ run.input.missing }"}, CONTEXT)
    assert caught.value.detail == "run.input.missing: no key 'missing'"


@pytest.mark.parametrize("text", ["${ run.input.title", "a ${ {'x': 1 }", "${ }", "${}"])
def test_malformed_templates_are_expression_errors(text: str) -> None:
    with pytest.raises(ExpressionError, match="template"):
        render(text, CONTEXT)


def test_template_expressions_lists_each_template_with_its_path() -> None:
    value = {
        "summary": "${ run.input.title }",
        "body": "Sev${ run.input.severity } on ${ event.data.id }",
        "dash-key": ["plain", "${ 1 + 1 }"],
        "count": 3,
    }
    assert template_expressions(value, "$.steps[1].with") == [
        ("$.steps[1].with.summary", "run.input.title"),
        ("$.steps[1].with.body", "run.input.severity"),
        ("$.steps[1].with.body", "event.data.id"),
        ("$.steps[1].with['dash-key'][1]", "1 + 1"),
    ]


def test_template_expressions_names_the_path_of_a_malformed_template() -> None:
    with pytest.raises(ExpressionError) as caught:
        template_expressions({"to": ["fine", "${ broken"]})
    assert caught.value.extra["path"] == "$.to[1]"
    assert "no closing" in caught.value.detail


# -- a property: values without templates pass through unchanged ---------------------------------------------------

plain_text = st.text().filter(lambda text: "${" not in text)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | plain_text
structures = st.recursive(
    scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
)


@given(structures)
def test_render_leaves_a_structure_without_templates_unchanged(value: Any) -> None:
    assert render(value, CONTEXT) == value
    assert template_expressions(value) == []
