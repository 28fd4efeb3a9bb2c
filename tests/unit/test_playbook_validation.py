"""Playbook validation: every problem at once, each with file:line:column and the JSON path of the field."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

import opsrail.playbooks
from opsrail.model import InvalidInput
from opsrail.playbooks import Playbook, PlaybookInvalid, dependency_order, load_playbook, validate_file
from opsrail.services._decision_policies import parse_policy

REFERENCE = Path(opsrail.playbooks.__file__).parent / "reference" / "sev1-escalation.yaml"


def problems(text: str) -> list[tuple[str, str]]:
    """(path, message) of every problem in a playbook text, which must be invalid."""
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(dedent(text), "pb.yaml")
    return [(error.path, error.message) for error in caught.value.errors]


def codes(text: str) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(dedent(text), "pb.yaml")
    return [error.code for error in caught.value.errors]


# -- valid playbooks -----------------------------------------------------------------------------------------------


def test_the_reference_playbook_is_valid() -> None:
    playbook = validate_file(REFERENCE)
    assert (playbook.id, playbook.version) == ("sev1-escalation", 6)
    kinds = [step.kind for step in playbook.steps]
    assert kinds == ["decide", "decide", "action", "approval", "wait", "notify", "notify"]
    defect = playbook.step("defect")
    assert defect.with_["summary"] == "${ run.input.title }"
    assert defect.retry is not None
    assert defect.retry.attempts == 5
    assert defect.on_failure is not None
    assert defect.on_failure.fallback == "page-oncall"
    wait = playbook.step("wait-resolution")
    assert wait.sla is not None
    assert wait.sla.calendar == "support-24x7"


def test_dependency_order_puts_needs_first_and_keeps_file_order_otherwise() -> None:
    playbook = validate_file(REFERENCE)
    assert dependency_order(playbook) == [
        "topic",
        "classify",
        "defect",
        "credit-approval",
        "wait-resolution",
        "page-oncall",
        "escalate-finance",
    ]


def test_dependency_order_of_a_diamond_written_backwards() -> None:
    playbook = load_playbook(
        dedent(
            """\
            id: diamond
            version: 1
            steps:
              - {id: d, needs: [b, c], action: core.set}
              - {id: c, needs: [a], action: core.set}
              - {id: b, needs: [a], action: core.set}
              - {id: a, action: core.set}
            """
        )
    )
    assert dependency_order(playbook) == ["a", "c", "b", "d"]


def test_dependency_order_refuses_a_cycle_in_an_unvalidated_playbook() -> None:
    playbook = Playbook.model_validate(
        {
            "id": "loop",
            "version": 1,
            "steps": [
                {"id": "a", "needs": ["b"], "action": "core.set"},
                {"id": "b", "needs": ["a"], "action": "core.set"},
            ],
        }
    )
    with pytest.raises(PlaybookInvalid, match="cycle among a, b"):
        dependency_order(playbook)


def test_on_failure_shorthand_and_aliases_load() -> None:
    playbook = load_playbook(
        dedent(
            """\
            id: aliases
            version: 1
            steps:
              - id: a
                action: core.set
                with: {x: 1}
                on_failure: continue
              - id: b
                action: core.set
                on_failure: {then: continue}
            """
        )
    )
    assert [step.on_failure.action for step in playbook.steps if step.on_failure] == ["continue", "continue"]


# -- each kind of problem, located -----------------------------------------------------------------------------------


def test_an_unknown_key_in_a_step_points_at_the_key_and_suggests_the_right_one() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            retries: {attempts: 2}
        """
    ) == [("$.steps[0].retries", "pb.yaml:6:5: unknown key 'retries' (did you mean 'retry'?)")]


def test_an_unknown_key_without_a_near_match_lists_the_allowed_keys() -> None:
    [(path, message)] = problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            retry: {attempts: 2, jitter: true}
        """
    )
    assert path == "$.steps[0].retry.jitter"
    assert message == "pb.yaml:6:26: unknown key 'jitter' (allowed: attempts, backoff, initial, max)"


def test_a_wrong_type_points_at_the_value() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            retry:
              attempts: many
        """
    ) == [
        (
            "$.steps[0].retry.attempts",
            "pb.yaml:7:17: Input should be a valid integer, unable to parse string as an integer, got 'many'",
        )
    ]


def test_two_kinds_in_one_step_point_at_the_step() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
          - id: b
            action: core.set
            notify: {channel: core.log, message: hi}
        """
    ) == [
        (
            "$.steps[1]",
            "pb.yaml:6:5: a step has exactly one of action, decide, approval, wait, notify, call;"
            " found ['action', 'notify']",
        )
    ]


def test_a_missing_key_points_at_the_enclosing_mapping() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - action: core.set
        """
    ) == [("$.steps[0].id", "pb.yaml:4:5: missing required key 'id'")]


def test_errors_under_aliased_fields_use_the_yaml_spelling() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            with: [not, a, map]
            on_failure: {then: sometimes}
        """
    ) == [
        ("$.steps[0].with", "pb.yaml:6:11: Input should be a valid dictionary"),
        ("$.steps[0].on_failure.then", "pb.yaml:7:24: Input should be 'fail' or 'continue', got 'sometimes'"),
    ]


def test_an_unknown_need_is_reported_at_the_entry_with_a_suggestion() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: classify
            decide: router
          - id: defect
            needs: [classifi]
            action: core.set
        """
    ) == [("$.steps[1].needs[0]", "pb.yaml:7:13: no step 'classifi' in this playbook (did you mean 'classify'?)")]


def test_a_step_that_needs_itself() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            needs: [a]
            action: core.set
        """
    ) == [("$.steps[0].needs[0]", "pb.yaml:5:13: a step cannot need itself")]


def test_a_cycle_is_reported_once_with_its_steps() -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(
            dedent(
                """\
                id: x
                version: 1
                steps:
                  - id: a
                    needs: [b]
                    action: core.set
                  - id: b
                    needs: [a]
                    action: core.set
                """
            ),
            "pb.yaml",
        )
    [error] = caught.value.errors
    assert (error.path, error.message, error.code) == (
        "$.steps[0].needs[0]",
        "pb.yaml:5:13: the needs form a cycle: a -> b -> a",
        "cycle",
    )
    assert caught.value.extra["cycles"] == [["a", "b", "a"]]


def test_a_longer_cycle_reads_from_its_first_step_in_the_file() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - {id: start, action: core.set}
          - {id: c, needs: [b], action: core.set}
          - {id: a, needs: [start, c], action: core.set}
          - {id: b, needs: [a], action: core.set}
        """
    ) == [("$.steps[1].needs[0]", "pb.yaml:5:21: the needs form a cycle: c -> b -> a -> c")]


def test_bad_cel_syntax_in_when_is_reported_at_its_line() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: classify
            decide: router
          - id: credit
            needs: [classify]
            when: "steps.classify.output.credit_exposure >"
            approval: {roles: [finance_controller]}
        """
    ) == [
        (
            "$.steps[1].when",
            "pb.yaml:8:11: not a valid CEL expression: steps.classify.output.credit_exposure >:"
            " syntax error at column 40: mismatched input '<EOF>'",
        )
    ]


def test_a_template_in_a_cel_field_gets_a_hint() -> None:
    [(path, message)] = problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            when: "${ run.input.go }"
            action: core.set
        """
    )
    assert path == "$.steps[0].when"
    assert message.startswith("pb.yaml:5:11: not a valid CEL expression: ${ run.input.go }: syntax error at column 1")
    assert message.endswith("(this field is CEL already: write the expression without ${ })")


def test_bad_templates_in_with_are_reported_per_string() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: defect
            action: jira.create_issue
            with:
              project: ENG
              summary: "${ run.input. }"
              labels: ["ok", "${ run.input.team"]
        """
    ) == [
        (
            "$.steps[0].with.summary",
            "pb.yaml:8:16: not a valid CEL expression in ${ }: run.input.:"
            " syntax error at column 11: no viable alternative at input '.'",
        ),
        (
            "$.steps[0].with.labels[1]",
            "pb.yaml:9:22: not a valid template: ${ run.input.team: unterminated template: `${` has no closing `}`",
        ),
    ]


def test_expressions_in_every_field_are_checked() -> None:
    paths = [
        path
        for path, _ in problems(
            """\
            id: x
            version: 1
            trigger:
              events: [com.example.thing.created]
              when: "event.data.severity =="
              input: {title: "${ event.data. }"}
            steps:
              - id: a
                action: core.set
                done_when: "result.ok &&"
                outputs: {total: "result.total +"}
              - id: w
                wait: {event: com.example.thing.done, correlate: "event.id ==", timeout: PT1H}
              - id: n
                notify: {channel: core.log, message: "hi ${ run. }"}
              - id: c
                call: {playbook: child, input: {k: "${ ) }"}}
            """
        )
    ]
    assert paths == [
        "$.trigger.when",
        "$.trigger.input.title",
        "$.steps[0].done_when",
        "$.steps[0].outputs.total",
        "$.steps[1].wait.correlate",
        "$.steps[2].notify.message",
        "$.steps[3].call.input.k",
    ]


def test_a_duplicate_step_id_points_at_the_second_one() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
          - id: a
            action: core.set
        """
    ) == [("$.steps[1].id", "pb.yaml:6:9: step id 'a' is used twice (first at line 4)")]


def test_a_duplicate_yaml_key_is_an_error_though_yaml_loaders_keep_the_last() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            action: core.log
        """
    ) == [("$.steps[0].action", "pb.yaml:6:5: key 'action' is given twice in this mapping (first at line 5)")]


def test_a_yaml_syntax_error_names_its_line() -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(
            "id: x\nversion: 1\nsteps:\n  - id: a\n    with: {project: ENG\n    action: core.set\n", "pb.yaml"
        )
    assert caught.value.detail == "pb.yaml is not valid YAML"
    [error] = caught.value.errors
    assert error.code == "yaml_syntax"
    assert error.message.startswith("pb.yaml:6:11: ")
    assert "while parsing a flow mapping at line 5" in error.message


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("id: x\nversion: 1\ntitle: a\x00b\n", "pb.yaml:3:9: "),
        ("[" * 5000, "pb.yaml:1:1: the document is nested too deeply"),
    ],
)
def test_unreadable_yaml_is_located(text: str, start: str) -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(text, "pb.yaml")
    [error] = caught.value.errors
    assert error.message.startswith(start)
    assert error.code == "yaml_syntax"


def test_a_recursive_alias_is_refused() -> None:
    assert codes("id: x\nversion: 1\nsteps: &s\n  - *s\n") == ["yaml_recursion"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "pb.yaml:1:1: a playbook is a mapping with id, version and steps, not an empty document"),
        ("- a\n- b\n", "pb.yaml:1:1: a playbook is a mapping with id, version and steps, not a list"),
    ],
)
def test_a_document_that_is_not_a_mapping(text: str, message: str) -> None:
    assert problems(text) == [("$", message)]


# -- handlers ------------------------------------------------------------------------------------------------------


def test_handlers_must_exist() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            on_failure: {fallback: page}
          - id: b
            approval: {roles: [legal], timeout: P1D, on_timeout: escalate}
        """
    ) == [
        ("$.steps[0].on_failure.fallback", "pb.yaml:6:28: no step 'page' in this playbook"),
        ("$.steps[1].approval.on_timeout", "pb.yaml:8:58: no step 'escalate' in this playbook"),
    ]


def test_a_handler_has_no_needs_and_no_step_waits_for_it() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            on_failure: {compensate: undo}
          - id: undo
            needs: [a]
            action: core.set
          - id: after
            needs: [undo]
            action: core.set
        """
    ) == [
        ("$.steps[1].needs", "pb.yaml:8:12: 'undo' is a handler that runs only when 'a' fails, so it has no needs"),
        (
            "$.steps[2].needs[0]",
            "pb.yaml:11:13: 'undo' is a handler that runs only when 'a' fails, so no step can wait for it;"
            " need 'a' instead",
        ),
    ]


def test_handler_conflicts() -> None:
    assert codes(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            on_failure: {fallback: a}
          - id: b
            action: core.set
            on_failure: {fallback: h, compensate: h}
          - id: h
            notify: {channel: core.log, message: hi}
            on_failure: continue
        """
    ) == ["handler_self", "conflict", "handler_on_failure"]


# -- durations -----------------------------------------------------------------------------------------------------


def test_durations_must_be_positive_and_retry_initial_at_most_max() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            action: core.set
            timeout: PT0S
            retry: {initial: PT10M, max: PT1M}
          - id: w
            wait: {duration: -PT5M}
            sla: {target: PT0S}
        """
    ) == [
        ("$.steps[0].timeout", "pb.yaml:6:14: a duration must be longer than zero"),
        ("$.steps[0].retry.initial", "pb.yaml:7:22: retry.initial is longer than retry.max"),
        ("$.steps[1].wait.duration", "pb.yaml:9:22: a duration must be longer than zero"),
        ("$.steps[1].sla.target", "pb.yaml:10:19: a duration must be longer than zero"),
    ]


def test_correlate_needs_an_event() -> None:
    assert problems(
        """\
        id: x
        version: 1
        steps:
          - id: w
            wait: {duration: PT5M, correlate: "true"}
        """
    ) == [("$.steps[0].wait", "pb.yaml:5:11: correlate and timeout belong to a wait for an event")]


# -- every problem at once -----------------------------------------------------------------------------------------


def test_several_problems_are_reported_at_once_in_file_order() -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(
            dedent(
                """\
                id: x
                version: 1
                version: 2
                steps:
                  - id: a
                    action: core.set
                    colour: red
                  - id: b
                    needs: [a, zz]
                    action: core.set
                    when: "steps.a.output >"
                  - id: c
                    action: core.set
                    retry: {attempts: 0}
                    with: {x: "${ run. }"}
                  - id: a
                    action: core.set
                """
            ),
            "pb.yaml",
        )
    found = [(error.message.split(": ")[0], error.code) for error in caught.value.errors]
    assert found == [
        ("pb.yaml:3:1", "duplicate_key"),
        ("pb.yaml:7:5", "unknown_key"),
        ("pb.yaml:9:16", "unknown_step"),
        ("pb.yaml:11:11", "cel_syntax"),
        ("pb.yaml:14:23", "greater_than_equal"),
        ("pb.yaml:15:15", "cel_syntax"),
        ("pb.yaml:16:9", "duplicate_id"),
    ]
    assert caught.value.detail == "pb.yaml is not a valid playbook: 7 problems"
    assert caught.value.hint is not None


# -- files ---------------------------------------------------------------------------------------------------------


def test_validate_file_names_the_file_in_every_message(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: x\nversion: 0\nsteps:\n  - {id: a, action: core.set}\n", encoding="utf-8")
    with pytest.raises(PlaybookInvalid) as caught:
        validate_file(path)
    [error] = caught.value.errors
    assert error.message.startswith(f"{path}:2:10: ")


def test_validate_file_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + REFERENCE.read_bytes())
    assert validate_file(path).id == "sev1-escalation"


@pytest.mark.parametrize("name", ["missing.yaml", "."])
def test_an_unreadable_file_is_invalid_input_with_a_hint(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_file(tmp_path / name)
    assert not isinstance(caught.value, PlaybookInvalid)
    assert caught.value.hint == "give the path of a playbook YAML file"


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: café\n".encode("latin-1"))
    with pytest.raises(InvalidInput, match="not UTF-8"):
        validate_file(path)


def test_playbook_invalid_is_invalid_input() -> None:
    assert issubclass(PlaybookInvalid, InvalidInput)
    assert PlaybookInvalid.exit_code == 2


def test_an_approval_for_a_role_nobody_can_hold_is_refused() -> None:
    found = problems(
        """\
        id: x
        version: 1
        steps:
          - id: a
            approval:
              roles: [finance_controler]
              escalate_after: PT1H
              escalate_to: [legal, cfo]
        """
    )
    assert [path for path, _ in found] == ["$.steps[0].approval.roles[0]", "$.steps[0].approval.escalate_to[1]"]
    assert "pb.yaml:6:" in found[0][1] and "unknown role 'finance_controler'" in found[0][1]
    assert "the roles are admin, operator, approver, finance_controller" in found[0][1]


def test_a_version_published_before_the_role_check_still_loads_from_the_store() -> None:
    text = "id: x\nversion: 1\nsteps:\n  - id: a\n    approval: {roles: [sre]}\n"
    with pytest.raises(PlaybookInvalid):
        load_playbook(text, "pb.yaml")
    assert load_playbook(text, "pb.yaml", published=True).steps[0].approval.roles == ["sre"]  # type: ignore[union-attr]
    assert parse_policy({"tier": "autonomous", "review": {"roles": ["sre"]}}).review.roles == ["sre"]


def test_an_event_type_in_opsrail_s_namespace_must_name_a_canonical_kind() -> None:
    text = """\
        id: x
        version: 1
        trigger:
          events: [com.opsrail.incidnet.opened, com.opsrail.incident.opened, com.opsrail.order, acme.thing.done]
        steps:
          - id: a
            wait: {event: com.opsrail.paymnet.received, timeout: PT1H}
        """
    found = problems(text)
    assert [path for path, _ in found] == ["$.trigger.events[0]", "$.trigger.events[2]", "$.steps[0].wait.event"]
    assert "pb.yaml:4:12:" in found[0][1] and "did you mean com.opsrail.incident.opened?" in found[0][1]
    assert "has no verb" in found[1][1]
    assert "names no canonical kind" in found[2][1] and "kinds: account," in found[2][1]
    # A version published before this check still loads from the store: its runs go on.
    assert load_playbook(dedent(text), "pb.yaml", published=True).trigger is not None
