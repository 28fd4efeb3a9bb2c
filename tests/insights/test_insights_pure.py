"""The insight computations on hand-made traces and observations: deviations, variants, tests and thresholds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from opsrail.insights import (
    END,
    START,
    DriftSettings,
    HealthInputs,
    Observation,
    Trace,
    TraceEvent,
    check_run,
    conformance,
    drift,
    health,
    process_map,
    psi,
    variants,
)
from opsrail.playbooks import load_playbook

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

PLAYBOOK = load_playbook(
    """
id: onboard
version: 2
steps:
  - id: provision
    action: core.set
    on_failure: {fallback: ticket}
  - id: welcome
    needs: [provision]
    action: core.set
  - id: ticket
    action: core.log
""",
    "onboard.yaml",
)


def trace(*events: tuple[str | None, str], status: str = "succeeded", run: str = "run-1") -> Trace:
    """A trace whose events are a minute apart."""
    return Trace(
        run_id=run,
        playbook_id="onboard",
        version=2,
        status=status,
        created_at=T0,
        finished_at=T0 + timedelta(minutes=len(events) + 1) if status != "running" else None,
        events=tuple(
            TraceEvent(step, activity, T0 + timedelta(minutes=i + 1)) for i, (step, activity) in enumerate(events)
        ),
    )


HAPPY = (
    ("provision", "step.ready"),
    ("provision", "step.succeeded"),
    ("welcome", "step.ready"),
    ("welcome", "step.succeeded"),
)


def kinds(checked: Trace) -> list[tuple[str, str]]:
    return [(d.kind, d.step) for d in check_run(checked, PLAYBOOK).deviations]


def test_a_run_that_follows_its_version_conforms() -> None:
    assert kinds(trace(*HAPPY)) == []
    # A fallback activated by its step's failure is the version's own path.
    fallback = (
        ("provision", "step.ready"),
        ("provision", "step.failed"),
        ("ticket", "step.activated"),
        ("ticket", "step.ready"),
        ("ticket", "step.succeeded"),
        ("welcome", "step.skipped"),
    )
    assert kinds(trace(*fallback)) == []


def test_each_kind_of_deviation_is_found() -> None:
    early = (("welcome", "step.ready"), ("provision", "step.ready"), ("provision", "step.succeeded"))
    assert ("order", "welcome") in kinds(trace(*early, ("welcome", "step.succeeded")))
    assert kinds(trace(*HAPPY, ("audit", "step.succeeded"))) == [("unknown_step", "audit")]
    assert kinds(trace(*HAPPY, ("ticket", "step.ready"), ("ticket", "step.succeeded"))) == [
        ("handler_without_cause", "ticket")
    ]
    assert kinds(trace(*HAPPY, ("welcome", "step.succeeded"))) == [("repeated", "welcome")]
    assert kinds(trace(*HAPPY[:2])) == [("missing", "welcome")]
    # A run still in flight has no missing steps yet.
    assert kinds(trace(*HAPPY[:2], status="running")) == []


def test_events_before_a_migration_belong_to_the_version_the_run_came_from() -> None:
    old = (("legacy", "step.ready"), ("legacy", "step.succeeded"), (None, "run.migrated"))
    checked = check_run(trace(*old, *HAPPY), PLAYBOOK)
    assert checked.deviations == [] and checked.interventions == {"run.migrated": 1}


def test_conformance_per_version_counts_runs_deviations_and_the_main_variant() -> None:
    runs = [trace(*HAPPY, run=f"ok-{n}") for n in range(3)] + [trace(*HAPPY[:2], run="short")]
    [report] = conformance(runs, lambda pid, version: PLAYBOOK if (pid, version) == ("onboard", 2) else None)
    assert report["runs"] == 4 and report["conformant"] == 3 and report["fitness"] == 0.75
    assert report["deviations"]["missing"]["example"] == {
        "run": "short",
        "step": "welcome",
        "detail": "the run succeeded without this step ending",
    }
    assert report["main_variant"] == ["provision", "welcome"] and report["main_variant_share"] == 0.75
    [unknown] = conformance(runs, lambda pid, version: None)
    assert unknown == {"playbook": "onboard", "version": 2, "runs": 4, "unchecked": 4}


def test_variants_and_the_directly_follows_map() -> None:
    failed = (("provision", "step.ready"), ("provision", "step.failed"))
    runs = [trace(*HAPPY, run=f"a{n}") for n in range(3)] + [trace(*failed, status="failed", run="b")]
    found = variants(runs, top=1)
    assert found["runs"] == 4 and found["variants"] == 2 and found["other_runs"] == 1
    assert found["top"][0]["activities"] == ["provision", "welcome"] and found["top"][0]["share"] == 0.75
    assert found["top"][0]["example_run"] == "a2"
    graph = process_map(runs)
    edges = {(e["from"], e["to"]): (e["count"], e["median_minutes"]) for e in graph["edges"]}
    assert edges[START, "provision"] == (3, 2.0) and edges["provision", "welcome"] == (3, 2.0)
    assert edges[START, "provision (failed)"] == (1, 2.0) and edges["provision (failed)", END] == (1, 1.0)
    nodes = {n["activity"]: (n["count"], n["median_minutes"]) for n in graph["nodes"]}
    assert nodes == {"provision": (3, 1.0), "welcome": (3, 1.0), "provision (failed)": (1, 1.0)}


def _observations(rates: dict[str, float], n: int, seed: int) -> list[Observation]:
    rng = random.Random(seed)
    return [
        Observation("task", "credit/approve", segment, "rejected" if rng.random() < rate else "approved", rng.random())
        for segment, rate in rates.items()
        for _ in range(n)
    ]


def test_drift_reports_no_finding_where_segments_behave_alike() -> None:
    # Five regions drawn from one distribution, twenty times over: chance differences are not findings.
    for seed in range(20):
        report = drift(_observations(dict.fromkeys(("EU", "US", "APAC", "LATAM", "MEA"), 0.3), 60, seed))
        assert report["findings"] == [], report["findings"]
        assert report["settings"]["tests"] == 10


def test_drift_finds_the_one_segment_that_differs_and_needs_enough_of_it() -> None:
    report = drift(_observations({"EU": 0.6, "US": 0.3, "APAC": 0.3, "LATAM": 0.3}, 80, 1))
    [finding] = [f for f in report["findings"] if f["measure"] == "share"]
    assert finding["segment"] == "EU" and finding["against"] == "the rest" and finding["outcome"] == "rejected"
    assert finding["effect"] > 0.2 and finding["p_corrected"] < 0.01
    # A segment with too few observations to be measured is left out of the others' pool as well: the EU's few,
    # mostly rejected, do not make the US look lenient against "the rest".
    few = _observations({"US": 0.1, "APAC": 0.1}, 60, 3) + _observations({"EU": 0.95}, 12, 3)
    report = drift(few)
    assert report["findings"] == [] and {c["against"] for c in report["comparisons"]} == {"US"}
    # The same difference on too few observations is compared with nothing.
    small = drift(_observations({"EU": 0.6, "US": 0.3}, 10, 1))
    assert small["comparisons"] == [] and small["findings"] == []
    # Medians 1.5 times apart but seconds apart are no finding either.
    quick = [Observation("run", "p", s, "ok", h) for s, h in (("EU", 6 / 3600), ("US", 4 / 3600)) for _ in range(50)]
    [timing] = drift(quick)["comparisons"]
    assert timing["effect"] == 1.5 and timing["p_corrected"] < 0.01 and not timing["finding"]
    assert drift(quick, DriftSettings(min_gap_minutes=0.0))["findings"]
    # A significant difference smaller than what matters is reported but not a finding.
    many = drift(_observations({"EU": 0.33, "US": 0.30}, 20_000, 2), DriftSettings(min_difference=0.1))
    [comparison] = [c for c in many["comparisons"] if c["measure"] == "share"]
    assert comparison["p_corrected"] < 0.01 and not comparison["finding"]


def test_psi_and_health_findings() -> None:
    rng = random.Random(0)
    same = [rng.betavariate(8, 2) for _ in range(400)]
    assert psi(same[:200], same[200:]) < 0.1
    lower = [rng.betavariate(3, 3) for _ in range(200)]
    assert psi(same[:200], lower) > 0.5
    inputs = HealthInputs(
        tables=[
            {
                "name": "credit-tier",
                "version": 3,
                "rules": ["small", "large", "never"],
                "records": 40,
                "hits": {"small": 30, "large": 10},
            }
        ],
        decisions=[
            {"name": "credit-tier", "source": "table", "records": 40, "settled": {"accepted": 20, "overridden": 10}},
            {
                # Overridden 1 time in 10 at first, then 5 in 10: the rules stopped fitting.
                "name": "discount-band",
                "source": "table",
                "records": 60,
                "settled": {"accepted": 42, "overridden": 18},
                "against": [i % 10 == 0 for i in range(30)] + [i % 2 == 0 for i in range(30)],
            },
            {
                "name": "incident-topic",
                "source": "model",
                "records": 400,
                "settled": {},
                "confidences": same[:200] + lower,
            },
        ],
        catalog=["credit-tier", "incident-topic", "old-router"],
        versions=[{"playbook": "onboard", "active_version": 3, "in_flight": {2: 4, 3: 9}}],
        unresolved=[
            {"playbook": "onboard", "version": 3, "warnings": [{"field": "$.steps[1].decide", "message": "x"}]}
        ],
        steps=[
            {
                "playbook": "onboard",
                "version": 3,
                "step": "provision",
                "succeeded": 5,
                "failed": 5,
                "skipped": 0,
                "retries": 8,
                "activated": 0,
                "runs": 10,
                "handler": False,
                "kind": "action",
            },
            {
                "playbook": "onboard",
                "version": 3,
                "step": "wait",
                "succeeded": 12,
                "failed": 0,
                "skipped": 0,
                "retries": 0,
                "activated": 0,
                "runs": 12,
                "handler": False,
                "kind": "wait",
                "sla_met": 8,
                "sla_breached": 4,
            },
            {
                "playbook": "onboard",
                "version": 3,
                "step": "ticket",
                "succeeded": 5,
                "failed": 0,
                "skipped": 0,
                "retries": 0,
                "activated": 5,
                "runs": 10,
                "handler": True,
                "kind": "action",
            },
        ],
    )
    found = {(f["kind"], f["subject"]) for f in health(inputs)["findings"]}
    assert found == {
        ("rule_never_matched", "credit-tier@3 rule never"),
        ("decision_overridden", "credit-tier"),
        ("confidence_shift", "incident-topic"),
        ("runs_on_old_versions", "onboard@2"),
        ("unresolved_reference", "onboard@3 $.steps[1].decide"),
        ("decision_unused", "old-router"),
        ("step_failing", "onboard@3 step provision"),
        ("step_retried", "onboard@3 step provision"),
        ("fallback_used", "onboard@3 step ticket"),
        ("sla_breached", "onboard@3 step wait"),
        ("overrides_rising", "discount-band"),
        ("decision_overridden", "discount-band"),
    }
    assert health(inputs)["findings"][0]["severity"] == "warning"
    # The same overrides spread evenly over time are no rise.
    inputs.decisions[1]["against"] = [i % 10 in (0, 3, 6) for i in range(60)]
    assert "overrides_rising" not in {f["kind"] for f in health(inputs)["findings"]}


@pytest.mark.parametrize("bad", [{"min_n": 1}, {"alpha": 0.0}, {"min_difference": 1.0}, {"min_ratio": 0.5}])
def test_drift_settings_are_checked(bad: dict[str, float]) -> None:
    from opsrail.model import InvalidInput
    from opsrail.services._insights import InsightService

    service = InsightService.__new__(InsightService)
    with pytest.raises(InvalidInput):
        service.drift("region", None, None, DriftSettings(**bad))  # type: ignore[arg-type]


def test_loading_the_services_does_not_load_scipy_stats() -> None:
    """Every CLI command loads the services; scipy.stats would add over half a second to each."""
    import subprocess
    import sys

    code = "import sys, opsrail.services, opsrail.insights; print('scipy.stats' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def test_variants_in_the_playbook_s_order_fold_parallel_steps_that_ended_in_another_order() -> None:
    playbook = load_playbook(
        "id: fan\nversion: 1\nsteps:\n  - id: a\n    action: core.set\n  - id: b\n    action: core.set\n",
        "fan.yaml",
    )
    place = {step.id: i for i, step in enumerate(playbook.steps)}
    ab = trace(("a", "step.succeeded"), ("b", "step.succeeded"), run="ab")
    ba = trace(("b", "step.succeeded"), ("a", "step.failed"), run="ba")
    bab = trace(("b", "step.succeeded"), ("a", "step.succeeded"), run="bab")
    assert variants([ab, ba, bab])["variants"] == 3
    folded = variants([ab, ba, bab], rank=lambda _, step: place[step])
    assert folded["variants"] == 2
    assert [v["activities"] for v in folded["top"]] == [["a", "b"], ["a (failed)", "b"]]


def test_outcomes_are_compared_within_an_approval_rule_when_a_point_has_several() -> None:
    def tasks(segment: str, rule: str, n: int, rejected: int) -> list[Observation]:
        return [
            Observation("task", "credit/approve", segment, "rejected" if i < rejected else "approved", None, rule)
            for i in range(n)
        ]

    # The EU's credits go to the strict rule far more often; within each rule both regions reject alike (half under
    # the strict rule, a tenth under the lenient one). The plain shares differ by 24 points; within the rules, none.
    alike = tasks("EU", "strict", 160, 80) + tasks("US", "strict", 40, 20)
    alike += tasks("EU", "lenient", 40, 4) + tasks("US", "lenient", 160, 16)
    [comparison] = drift(alike)["comparisons"]
    assert (comparison["value"], comparison["rest_value"]) == (0.42, 0.18)
    assert comparison["test"] == "cmh" and comparison["strata"] == 2 and comparison["effect"] == 0.0
    assert comparison["p"] == 1.0 and not comparison["finding"]
    # Plain, the same observations would have been a finding.
    plain = [Observation(o.kind, o.point, o.segment, o.outcome) for o in alike]
    [finding] = drift(plain)["findings"]
    assert finding["test"] == "fisher" and finding["effect"] == 0.24
    # An EU that rejects more under both rules is found, with the difference within the rules as the effect.
    stricter = tasks("EU", "strict", 100, 80) + tasks("US", "strict", 100, 50)
    stricter += tasks("EU", "lenient", 100, 40) + tasks("US", "lenient", 100, 10)
    [found] = drift(stricter)["findings"]
    assert found["test"] == "cmh" and found["outcome"] in ("rejected", "approved") and abs(found["effect"]) == 0.3
