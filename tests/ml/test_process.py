"""Prefix encoding and the three event-log predictors: trained on a small real slice, they beat trivial baselines."""

from __future__ import annotations

import csv
import gzip
import math
import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsrail.ml._eventlog import Case, Event, read_event_log
from opsrail.ml._features import SequenceFeatures
from opsrail.ml._intercase import INTERCASE_NAMES, InterCaseFeatures, SystemState
from opsrail.ml._next_activity import NextActivityModel, train_next_activity
from opsrail.ml._prefixes import PAD, UNSEEN, PrefixEncoder, prefix_lengths
from opsrail.ml._remaining_time import RemainingTimeModel, train_remaining_time
from opsrail.ml._sla_breach import SlaBreachModel, SlaTarget, target_warnings, train_sla_breach
from opsrail.ml._types import TrainedModel

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # ../shared beside the repository
HELPDESK = DATA / "helpdesk" / "helpdesk_tax2017.csv.gz"
pytestmark = pytest.mark.skipif(not HELPDESK.exists(), reason="shared real data is not available")
DAY = 86_400.0


def case(case_id: str, steps: list[tuple[str, float]], **attributes: Any) -> Case:
    return Case(
        case_id,
        [Event(name, at, {"team": "red" if index % 2 else "blue"}) for index, (name, at) in enumerate(steps)],
        attributes,
    )


# ---------------------------------------------------------------------------------------------------- prefixes


def test_prefix_lengths() -> None:
    assert list(prefix_lengths(5)) == [1, 2, 3, 4]
    assert list(prefix_lengths(5, first=2)) == [2, 3, 4]
    assert list(prefix_lengths(1)) == []


def test_prefix_encoding_counts_window_times_and_unseen_activities() -> None:
    cases = [
        case(
            f"c{n}",
            [("a", 0.0), ("b", 3600.0), ("b", 7200.0), ("c", 10_800.0)],
            **{"case:tier": "gold" if n % 2 else "free", "case:id": f"x{n}"},
        )
        for n in range(30)
    ]
    encoder = PrefixEncoder(window=3, min_count=5).fit(cases)
    assert encoder.activities == ("b", "a", "c")
    names = encoder.feature_names
    assert {feature.key for feature in encoder.attributes} == {"case:tier", "team"}  # case:id is an identifier
    prefixes = encoder.encode(cases[:1], lambda n: prefix_lengths(n, first=2))
    assert prefixes.length.tolist() == [2, 3]
    row = dict(zip(names, prefixes.features[1], strict=True))
    assert row["prefix_length"] == 3
    assert row["elapsed_seconds"] == 7200.0
    assert row["since_previous_seconds"] == 3600.0
    assert row["repeat_run"] == 2
    assert row["count b"] == 2 and row["count a"] == 1 and row["count c"] == 0
    assert [row["activity[-1]"], row["activity[-2]"], row["activity[-3]"]] == [
        encoder.code("b"),
        encoder.code("b"),
        encoder.code("a"),
    ]
    single = encoder.encode_one([Event("never seen", 0.0)], {"case:tier": "platinum"})
    row = dict(zip(names, single[0], strict=True))
    assert row["activity[-1]"] == UNSEEN and row["activity[-2]"] == PAD
    assert row["count unseen activities"] == 1
    assert row["case:tier"] == 0.0  # an unseen value is "other"
    assert math.isnan(row["since_previous_seconds"])
    assert len(encoder.categorical) == 3 + 2 + 3  # window, categorical attributes, activities of earlier runs
    assert len(PrefixEncoder(window=3, min_count=5, sequence=None).fit(cases).categorical) == 3 + 2


def test_only_the_most_frequent_activities_get_a_count_column() -> None:
    steps = [("a", 0.0), ("a", 60.0), ("b", 120.0), ("c", 180.0), ("d", 240.0), ("a", 300.0)]
    cases = [case(f"c{n}", steps) for n in range(10)]
    capped = PrefixEncoder(window=2, min_count=5, max_counted=2).fit(cases)
    full = PrefixEncoder(window=2, min_count=5).fit(cases)
    assert capped.n_counted == 2 and full.n_counted == 4
    assert len(capped.feature_names) == len(full.feature_names) - 2
    names = capped.feature_names
    assert "count c" not in names and "count d" not in names
    row = dict(zip(names, capped.encode_one([*cases[0].events, Event("never seen", 400.0)], {})[0], strict=True))
    assert row["count a"] == 3 and row["count b"] == 1
    assert row["count other or unseen activities"] == 3  # c, d and the unseen one
    assert row["distinct_activities"] == 5  # the cap does not merge activities here
    assert row["activity[-2]"] == capped.code("a")  # the window keeps every activity's own code
    # An encoder pickled before the cap (no ``counted``) counts every activity, as it did then.
    old = pickle.loads(pickle.dumps(full))
    del old.__dict__["counted"]
    assert old.n_counted == 4
    assert np.array_equal(old.encode(cases).features, full.encode(cases).features, equal_nan=True)


def test_sequence_features_runs_recency_gaps_bigrams_and_day() -> None:
    steps = [("a", 0.0), ("b", 3600.0), ("b", 7200.0), ("b", 9000.0), ("c", 2 * DAY + 60.0), ("c", 2 * DAY + 120.0)]
    cases = [case(f"c{n}", steps) for n in range(10)]
    encoder = PrefixEncoder(window=2, sequence=SequenceFeatures(runs=2, recency=3, gaps=4, bigrams=4)).fit(cases)
    names = encoder.feature_names
    assert encoder.sequence is not None and encoder.sequence.width == len(names) - encoder._sequence_at
    prefixes = encoder.encode(cases[:1], lambda n: range(n, n + 1))
    row = dict(zip(names, prefixes.features[0], strict=True))
    assert row["run seconds"] == 60.0 and row["run mean gap seconds"] == 60.0 and row["runs"] == 3
    assert row["run[-2] activity"] == encoder.code("b") and row["run[-2] length"] == 3
    assert row["run[-2] seconds"] == 5400.0
    assert row["run[-3] activity"] == encoder.code("a") and row["run[-3] length"] == 1
    assert row["events since a"] == 5 and row["seconds since a"] == 2 * DAY + 120.0
    assert row["events since c"] == 0 and row["seconds since c"] == 0.0
    assert row["gap[-3] seconds"] == 1800.0 and row["gap[-4] seconds"] == 3600.0
    assert row["count b → b"] == 2 and row["count a → b"] == 1 and row["count c → c"] == 1
    assert row["events on the last event's day"] == 2
    assert row["seconds since the previous day's last event"] == 2 * DAY + 120.0 - 9000.0
    first = dict(zip(names, encoder.encode_one([Event("zzz", 50.0)], {})[0], strict=True))
    assert first["runs"] == 1 and first["run[-2] activity"] == PAD and math.isnan(first["run mean gap seconds"])
    assert math.isnan(first["events since a"]) and first["count b → b"] == 0
    run_column = names.index("run[-2] activity")
    assert run_column in encoder.categorical and encoder.describe(run_column, float(encoder.code("b"))) == "b"


def test_intercase_features_count_the_system_state_at_the_last_event() -> None:
    cases = [
        case("a", [("x", 0.0), ("y", 3600.0), ("z", 2 * DAY)]),
        case("b", [("x", 600.0), ("y", 1200.0)]),
        case("c", [("y", 1800.0), ("x", 9 * DAY)]),
    ]
    state = SystemState(cases)
    row = dict(zip(INTERCASE_NAMES, state.features(np.array([3600.0]), ["y"])[0], strict=True))
    # at 1 h: a (y), b ended at 20 min, c (y) are the cases; b ended before, so a and c are open, both at y
    assert row["open_cases"] == 2 and row["open_cases_same_activity"] == 2
    assert row["events_last_hour"] == 4 and row["events_last_day"] == 5 and row["cases_started_last_day"] == 3
    assert row["recent_median_duration_seconds"] == 600.0
    at_end = dict(zip(INTERCASE_NAMES, state.features(np.array([1200.0]), ["y"])[0], strict=True))
    assert at_end["open_cases"] == 2  # b's last event is at this moment: b still counts as open, c not started
    late = dict(zip(INTERCASE_NAMES, state.features(np.array([9 * DAY]), ["x"])[0], strict=True))
    assert late["open_cases"] == 1 and late["events_last_week"] == 1 and late["cases_started_last_week"] == 0
    assert late["recent_median_duration_seconds"] == 600.0 + (2 * DAY - 600.0) / 2


def _only(length: int) -> Callable[[int], range]:
    return lambda n: range(length, length + 1)


def test_intercase_features_do_not_look_ahead() -> None:
    """A feature computed at t must not change when every event after t is removed from the log."""
    rng = np.random.default_rng(3)
    names = ["a", "b", "c", "d"]
    cases = []
    for number in range(300):
        start = float(rng.uniform(0, 60 * DAY))
        stamps = start + np.cumsum(np.round(rng.exponential(0.5 * DAY, size=int(rng.integers(1, 8)))))
        stamps[0] = start
        cases.append(case(f"c{number}", [(names[int(rng.integers(4))], float(t)) for t in stamps]))
    encoder = PrefixEncoder(intercase=InterCaseFeatures()).fit(cases)
    full = encoder.encode(cases)
    columns = slice(full.features.shape[1] - len(INTERCASE_NAMES), None)
    assert np.isfinite(full.features[:, columns]).any()
    for row in rng.choice(len(full), size=25, replace=False):
        moment = cases[int(full.case_index[row])].events[int(full.length[row]) - 1].timestamp
        cut = [Case(one.case_id, [e for e in one.events if e.timestamp <= moment], {}) for one in cases]
        unfinished = {one.case_id for one in cases if one.end > moment}
        kept = [one for one in cut if one.events]
        where = next(i for i, one in enumerate(kept) if one.case_id == cases[int(full.case_index[row])].case_id)
        again = encoder.encode(
            [kept[where]], _only(int(full.length[row])), state=SystemState(kept, unfinished=unfinished)
        )
        np.testing.assert_array_equal(again.features[0, columns], full.features[row, columns])
    # one open case scored alone: the caller's context, training medians for the rest
    single = encoder.encode_one([Event("a", 0.0)], {}, {"open_cases": 42})
    values = dict(zip(INTERCASE_NAMES, single[0, columns], strict=True))
    assert values["open_cases"] == 42
    assert encoder.intercase is not None
    assert values["events_last_day"] == encoder.intercase.defaults[INTERCASE_NAMES.index("events_last_day")]
    assert encoder.feature_set == "base+sequence+intercase"


def test_date_attributes_are_not_features() -> None:
    cases = [
        case(
            f"c{n}",
            [("a", 0.0), ("b", 1.0)],
            **{"case:enddate": f"2020-01-{n % 28 + 1:02d}T10:00:00", "case:amount": str(n * 10)},
        )
        for n in range(60)
    ]
    encoder = PrefixEncoder().fit(cases)
    kinds = {feature.key: feature.kind for feature in encoder.attributes}
    assert kinds == {"case:amount": "numeric", "team": "categorical"}


# -------------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def slice_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 1,200 cases of the Helpdesk log of Tax et al., in a new file with other column names."""
    log = read_event_log(HELPDESK)
    path = tmp_path_factory.mktemp("slice") / "tickets.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ticket", "step", "at"])
        for one in log.cases[:1200]:
            for event in one.events:
                writer.writerow([one.case_id, f"step {event.activity}", f"{event.timestamp:.0f}"])
    return path


@pytest.fixture(scope="module")
def next_activity(slice_path: Path) -> NextActivityModel:
    return train_next_activity(slice_path, case="ticket", activity="step", timestamp="at")


@pytest.fixture(scope="module")
def remaining(slice_path: Path) -> RemainingTimeModel:
    return train_remaining_time(slice_path, case="ticket", activity="step", timestamp="at")


@pytest.fixture(scope="module")
def breach(slice_path: Path) -> SlaBreachModel:
    return train_sla_breach(slice_path, case="ticket", activity="step", timestamp="at", target_seconds=4 * DAY)


OPEN = {
    "events": [
        {"activity": "step 1", "timestamp": "2012-04-03T16:55:38+02:00"},
        {"activity": "step 8", "timestamp": 1333472200},
    ]
}
UNSEEN_PREFIX = {
    "events": [{"activity": "step 1", "timestamp": 1333472138}, {"activity": "brand new step", "timestamp": 1333482138}]
}


def test_next_activity_beats_the_majority_and_matches_the_last_activity_baseline(
    next_activity: NextActivityModel,
) -> None:
    metrics = next_activity.metrics
    assert metrics["n"] > 500
    assert metrics["accuracy"] >= metrics["baseline_accuracy"]
    assert metrics["accuracy"] > 0.65
    assert 0.0 < metrics["macro_f1"] <= 1.0
    assert metrics["inner"]["n"] > 0
    assert next_activity.params["feature_set"] in ("base", "base+sequence", "base+sequence+intercase")
    assert set(next_activity.params["inner_accuracy_by_feature_set"]) == {
        "base",
        "base+sequence",
        "base+sequence+intercase",
    }
    assert next_activity.predict({**OPEN, "context": {"open_cases": 3}}).label in next_activity.classes
    assert next_activity.columns == {"case": "ticket", "activity": "step", "timestamp": "at"}
    assert set(next_activity.thresholds) == set(next_activity.classes)
    assert isinstance(next_activity, TrainedModel)


def test_next_activity_predicts_open_prefixes_even_with_unseen_activities(next_activity: NextActivityModel) -> None:
    answer = next_activity.predict(OPEN)
    assert answer.label in next_activity.classes
    assert 0.0 < answer.confidence <= 1.0
    assert sum(answer.probabilities.values()) == pytest.approx(1.0, abs=0.05)
    assert answer.explanation and {"feature", "weight"} <= set(answer.explanation[0])
    unseen = next_activity.predict(UNSEEN_PREFIX)
    assert unseen.label in next_activity.classes
    with pytest.raises(ValueError, match="events"):
        next_activity.predict({"events": []})


def test_remaining_time_beats_the_training_median(remaining: RemainingTimeModel) -> None:
    metrics = remaining.metrics
    assert metrics["mae_days"] < metrics["median_baseline_mae_days"]
    answer = remaining.predict(OPEN)
    assert answer.label is None and answer.value is not None and answer.value >= 0.0
    assert 0.0 <= answer.confidence <= 1.0
    assert remaining.predict(UNSEEN_PREFIX).value is not None
    assert remaining.thresholds == {}


def test_sla_breach_ranks_better_than_chance(breach: SlaBreachModel) -> None:
    metrics = breach.metrics
    assert metrics["auc"] > 0.55
    assert 0.0 <= metrics["recall_at_precision_0.9"] <= 1.0
    assert metrics["excluded_already_breached"] > 0
    answer = breach.predict(OPEN)
    assert answer.label in ("breach", "ok")
    assert answer.value is not None and 0.0 <= answer.value <= 1.0
    assert answer.confidence == pytest.approx(answer.value if answer.label == "breach" else 1 - answer.value, abs=1e-6)
    late = {"events": [{"activity": "step 1", "timestamp": 0}, {"activity": "brand new step", "timestamp": 10 * DAY}]}
    assert breach.predict(late).label == "breach"
    assert set(breach.thresholds) == {"breach", "ok"}


@pytest.mark.parametrize("which", ["next_activity", "remaining", "breach"])
def test_pickle_round_trip_and_evaluate(which: str, request: pytest.FixtureRequest, slice_path: Path) -> None:
    model = request.getfixturevalue(which)
    again = pickle.loads(pickle.dumps(model))
    assert again.predict(OPEN) == model.predict(OPEN)
    assert again.params == model.params and again.columns == model.columns
    figures = again.evaluate(slice_path)
    assert figures["n"] > 0
    assert figures["cases"] == 1200


@pytest.mark.parametrize("which", ["next_activity", "remaining", "breach"])
def test_many_open_cases_at_once_answer_as_one_at_a_time(which: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(which)
    past_target = {  # open for five days: past the breach model's target of four
        "events": [{"activity": "step 1", "timestamp": 1333472138}, {"activity": "step 8", "timestamp": 1333904138}]
    }
    inputs = [OPEN, UNSEEN_PREFIX, {**OPEN, "context": {"open_cases": 3}}, {"events": OPEN["events"][:1]}, past_target]
    one_by_one = [model.predict(one) for one in inputs]
    assert all(answer.explanation for answer in one_by_one)
    assert model.predict_many(inputs) == [replace(answer, explanation=()) for answer in one_by_one]
    assert model.predict_many([]) == []
    if which == "breach":
        assert one_by_one[-1].value == 1.0


def test_sla_target_from_a_deadline_or_a_flag() -> None:
    one = case("c", [("a", 0.0), ("b", 5 * DAY)], **{"case:due": "1970-01-03T00:00:00", "case:made_sla": "false"})
    assert SlaTarget(seconds=4 * DAY).label(one) == (True, 4 * DAY)
    assert SlaTarget(column="due").label(one) == (True, 2 * DAY)
    assert SlaTarget(column="!made_sla").label(one) == (True, math.inf)
    assert SlaTarget(column="made_sla").label(one) == (False, math.inf)
    assert SlaTarget(column="missing").label(one) is None


def test_fallback_to_the_median_when_nothing_is_learnable(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "activity", "timestamp"])
        for number in range(300):
            start = 1_600_000_000 + number * 3600
            for step in range(3):
                writer.writerow([number, "x", start + step * 3600 + float(rng.exponential(3 * DAY)) * (step == 2)])
    model = train_remaining_time(path)
    assert model.metrics["mae_days"] <= model.metrics["median_baseline_mae_days"] * 1.05
    assert isinstance(model.params["fallback"], bool)


def _synthetic_log(
    path: Path, rng: np.random.Generator, cases: int, steps: int, activity: Callable[[int, int], str]
) -> Path:
    """A CSV log of ``cases`` cases of ``steps`` events an hour apart on average, ``activity(case, step)`` each."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "activity", "timestamp"])
        for number in range(cases):
            at = 1_600_000_000.0 + number * 3600
            for step in range(steps):
                at += float(rng.exponential(3600))
                writer.writerow([number, activity(number, step), f"{at:.0f}"])
    return path


def test_next_activity_answers_only_the_most_frequent_activities_of_a_fine_grained_log(
    slice_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each class costs a tree per round: a log of a thousand activities must not train for hours."""
    monkeypatch.setattr("opsrail.ml._next_activity.MAX_CLASSES", 4)
    model = train_next_activity(slice_path, case="ticket", activity="step", timestamp="at")
    counts = model.params["classes"]
    assert model.params["fallback"] is False
    assert len(model.classes) == counts["answered"] == 4 < counts["next_activities"]
    assert counts["prefixes_left_out"] > 0 and 0.0 < counts["share_left_out"] < 0.2
    assert model.predict(OPEN).label in model.classes
    assert model.metrics["accuracy"] > 0.65  # prefixes followed by a left-out activity count as wrong


def test_next_activity_falls_back_to_the_follower_table_when_that_answers_better(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve activities, each always followed by the same one; a model allowed two classes cannot keep up."""
    monkeypatch.setattr("opsrail.ml._next_activity.MAX_CLASSES", 2)
    rng = np.random.default_rng(4)
    firsts = rng.integers(0, 12, size=400)
    path = _synthetic_log(tmp_path / "chains.csv", rng, 400, 4, lambda case, step: f"a{(firsts[case] + step) % 12}")
    model = train_next_activity(path)
    assert model.params["fallback"] is True and model.follower_precision is not None
    assert model.metrics["accuracy"] == model.metrics["baseline_accuracy"] == 1.0
    answer = model.predict({"events": [{"activity": "a3", "timestamp": 1_600_000_000}]})
    assert (answer.label, answer.confidence, answer.accepted) == ("a4", 1.0, True)
    assert model.predict({"events": [{"activity": "never seen", "timestamp": 1_600_000_000}]}).confidence == 1.0
    restored = pickle.loads(pickle.dumps(model))
    assert restored.predict({"events": [{"activity": "a11", "timestamp": 1_600_000_000}]}).label == "a0"
    many = [{"events": [{"activity": f"a{n}", "timestamp": 1_600_000_000}]} for n in (3, 11)]
    assert [answer.label for answer in restored.predict_many(many)] == ["a4", "a0"]
    assert restored.predict_many(many)[0] == replace(restored.predict(many[0]), explanation=())
    assert restored.evaluate(path)["accuracy"] == 1.0


def test_next_activity_that_learns_nothing_beyond_the_follower_table_is_that_table(tmp_path: Path) -> None:
    """Next steps drawn at random: the trees fit, and cannot beat answering the most frequent follower."""
    rng = np.random.default_rng(8)
    path = _synthetic_log(tmp_path / "noise.csv", rng, 500, 5, lambda _c, _s: "call" if rng.random() < 0.7 else "mail")
    model = train_next_activity(path)
    assert model.params["fallback"] is True
    assert model.params["inner_model_accuracy"] <= model.params["inner_follower_accuracy"]
    assert set(model.params["inner_accuracy_by_feature_set"]) == {"base", "base+sequence", "base+sequence+intercase"}
    assert model.metrics["accuracy"] == model.metrics["baseline_accuracy"]


def test_kfold_figures_are_fold_means_and_held_out_counts_add_up(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = _synthetic_log(tmp_path / "log.csv", rng, 120, 4, lambda _c, _s: "abcd"[int(rng.integers(4))])
    model = train_sla_breach(path, target_seconds=4 * 3600, split="kfold")
    metrics, folds = model.metrics, model.metrics["folds"]
    assert len(folds) == 5 and metrics["split"].startswith("5-fold cross-validation")
    for key in ("n", "test_cases", "cases_with_target", "excluded_already_breached"):
        assert metrics[key] == sum(fold[key] for fold in folds), key
    assert metrics["test_cases"] == 120 and metrics["excluded_already_breached"] > 0
    assert metrics["train_cases"] == pytest.approx(np.mean([fold["train_cases"] for fold in folds]))
    assert metrics["auc"] == pytest.approx(np.mean([fold["auc"] for fold in folds]), abs=1e-6)


def test_a_target_almost_every_case_breaches_is_warned_about(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = _synthetic_log(tmp_path / "log.csv", rng, 400, 4, lambda _c, _s: "abcd"[int(rng.integers(4))])
    model = train_sla_breach(path, target_seconds=0.6 * 3600)
    share = model.params["training_positive_share"]
    assert share > 0.95
    [warning] = [w for w in model.metrics["warnings"] if "training prefixes" in w]
    assert f"{share:.1%} of the training prefixes breach the target" in warning
    assert f"the median case lasts {model.params['median_case_days']:.2f} days" in warning


def test_a_usable_target_has_no_warning(breach: SlaBreachModel) -> None:
    assert "warnings" not in breach.metrics


def test_held_out_figures_without_both_outcomes_are_called_undefined() -> None:
    params = {"training_positive_share": 0.6, "target": "case duration above 259200 s (3.00 days)"}
    [warning] = target_warnings(params, {"n": 976, "positive_share": 1.0, "auc": None})
    assert warning.startswith("every held-out prefix would breach the target, so AUC and recall are undefined")
    assert target_warnings(params, {"n": 976, "positive_share": 0.4, "auc": 0.71}) == []


def test_events_without_a_time_are_left_out_and_named_in_the_warnings(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = _synthetic_log(tmp_path / "log.csv", rng, 400, 4, lambda _c, _s: "abcd"[int(rng.integers(4))])
    lines = path.read_text().splitlines()
    for row in (10, 20, 30, 40, 50):  # file rows 11, 21 …: their timestamps emptied
        lines[row] = lines[row].rsplit(",", 1)[0] + ","
    path.write_text("\n".join(lines) + "\n")
    model = train_sla_breach(path, target_seconds=0.6 * 3600)
    assert model.metrics["events_left_out"] == 5
    left, target = model.metrics["warnings"]  # both the reader's note and the target's warning are kept
    assert left == "5 events without a value in 'timestamp' left out (the first: row 11)"
    assert "of the training prefixes breach the target" in target
    figures = model.evaluate(path)
    assert figures["events_left_out"] == 5 and figures["warnings"] == [left]
