"""The runs as an event log file: which events a run gives, the three formats written and read back, and the
export of a real store (SQLite and PostgreSQL) that the model trainers read without column options."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsrail.insights import Trace, TraceEvent, log_events
from opsrail.ml import EventLogError, format_of, read_event_log, writing_event_log
from opsrail.ml._eventlog_writer import _NOT_XML
from opsrail.model import InvalidInput, NotFound
from opsrail.wiring import Container
from tests.insights.test_insights_store import RUNS_PER_REGION, run_credits
from tests.support import FakeClock, drain

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_a_run_gives_one_event_a_step_end_with_the_start_of_its_attempt() -> None:
    trace = Trace(
        run_id="run-1",
        playbook_id="onboard",
        version=2,
        status="succeeded",
        created_at=T0,
        finished_at=at(30),
        events=(
            TraceEvent("provision", "step.ready", at(0)),
            TraceEvent("provision", "step.failed", at(2), "worker"),
            TraceEvent("provision", "step.retried", at(5), "olive"),
            TraceEvent("provision", "step.ready", at(5)),
            TraceEvent("provision", "step.succeeded", at(6), "worker"),
            TraceEvent("notify", "step.ready", at(6)),
            TraceEvent("notify", "step.skipped", at(6)),
            TraceEvent("approve", "step.ready", at(6)),
            TraceEvent("approve", "task.opened", at(7)),
            TraceEvent("approve", "step.succeeded", at(20), "fiona"),
            TraceEvent(None, "run.paused", at(21), "olive"),
            TraceEvent("book", "step.succeeded", at(25)),  # its start was purged
        ),
    )
    events = log_events(trace)
    assert [(e.activity, e.outcome, e.attempt) for e in events] == [
        ("provision (failed)", "failed", 1),
        ("provision", "succeeded", 2),
        ("approve", "succeeded", 1),
        ("book", "succeeded", 1),
    ]
    assert [(e.start, e.end) for e in events] == [(at(0), at(2)), (at(5), at(6)), (at(6), at(20)), (None, at(25))]
    assert [e.resource for e in events] == ["worker", "worker", "fiona", None]


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("runs.csv", None, ("csv", False)),
        ("runs.CSV.GZ", None, ("csv", True)),
        ("runs.xes.gz", None, ("xes", True)),
        ("runs.parquet", None, ("parquet", False)),
        ("runs.txt", "csv", ("csv", False)),
        ("runs.log.gz", "xes", ("xes", True)),
    ],
)
def test_the_format_comes_from_the_name_or_is_given(name: str, given: str | None, expected: tuple[str, bool]) -> None:
    assert format_of(Path(name), given) == expected


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("runs.txt", None, "cannot tell the format from 'runs.txt'"),
        ("runs.parquet.gz", None, "compressed inside"),
        ("runs.gz", "parquet", "compressed inside"),
        ("runs.csv", "json", "unknown format 'json'"),
    ],
)
def test_a_name_without_a_format_is_refused(name: str, given: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_of(Path(name), given)


CASE_COLUMNS: dict[str, Any] = {"playbook": "string", "version": "int", "started": "date", "region": "string"}
EVENT_COLUMNS: dict[str, Any] = {"org:resource": "string", "attempt": "int", "cost": "float", "manual": "boolean"}
AWKWARD = 'Ops & "Finance" <EU>\x07 ünïcode'


def write_sample(path: Path, fmt: str, zipped: bool) -> None:
    with writing_event_log(path, fmt, zipped=zipped, case_columns=CASE_COLUMNS, event_columns=EVENT_COLUMNS) as writer:
        writer.case(
            "run-b",
            {"playbook": "credit", "version": 3, "started": at(0), "region": AWKWARD},
            [
                {"concept:name": "assess", "time:timestamp": at(1), "org:resource": "worker", "attempt": 1},
                {"concept:name": "approve", "time:timestamp": at(9), "org:resource": "fiona", "cost": 2.5},
            ],
        )
        writer.case(
            "run-a",
            {"playbook": "credit", "version": 3, "started": at(2), "region": None},
            [{"concept:name": "assess", "time:timestamp": at(3), "manual": True}],
        )


@pytest.mark.parametrize(
    ("name", "fmt", "zipped"),
    [
        ("log.csv", "csv", False),
        ("log.csv.gz", "csv", True),
        ("log.xes", "xes", False),
        ("log.xes.gz", "xes", True),
        ("log.parquet", "parquet", False),
    ],
)
def test_each_format_reads_back_with_the_default_columns(tmp_path: Path, name: str, fmt: str, zipped: bool) -> None:
    path = tmp_path / name
    write_sample(path, fmt, zipped)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") is zipped
    log = read_event_log(path)
    assert log.columns == {"case": "case:concept:name", "activity": "concept:name", "timestamp": "time:timestamp"}
    assert [case.case_id for case in log.cases] == ["run-b", "run-a"]  # the order written, not sorted
    first, second = log.cases
    assert [e.activity for e in first.events] == ["assess", "approve"]
    assert [e.timestamp for e in first.events] == [at(1).timestamp(), at(9).timestamp()]
    assert first.attributes["case:playbook"] == "credit"
    assert str(first.attributes["case:version"]) == "3"
    # XML cannot hold the bell character; everything else survives every format.
    expected = AWKWARD.replace("\x07", "") if fmt == "xes" else AWKWARD
    assert first.attributes["case:region"] == expected
    assert "case:region" not in second.attributes  # None is left out
    assert first.events[0].attributes["org:resource"] == "worker"
    assert float(first.events[1].attributes["cost"]) == 2.5
    assert str(second.events[0].attributes["manual"]).lower() == "true"
    if fmt == "parquet":
        frame = pl.read_parquet(path)
        assert frame.schema["time:timestamp"] == pl.Datetime("ms", "UTC")
        assert frame.schema["case:version"] == pl.Int64 and frame.height == 3
    if fmt == "xes":
        text = (gzip.decompress(path.read_bytes()) if zipped else path.read_bytes()).decode()
        assert '<int key="version" value="3"/>' in text and '<boolean key="manual" value="true"/>' in text
        assert "&amp;" in text and "&lt;EU&gt;" in text


def test_a_failed_export_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("the previous export\n")

    def interrupted() -> None:
        with writing_event_log(path, "csv", zipped=False, case_columns={}, event_columns={}) as writer:
            writer.case("run-1", {}, [{"concept:name": "a", "time:timestamp": at(0)}])
            raise RuntimeError("store went away")

    with pytest.raises(RuntimeError, match="store went away"):
        interrupted()
    assert path.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_a_broken_parquet_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(EventLogError, match="cannot read as Parquet"):
        read_event_log(path)
    frame = pl.DataFrame({"case": ["a"], "activity": ["x"], "when": [None]}, schema_overrides={"when": pl.String})
    frame.write_parquet(path)
    with pytest.raises(EventLogError, match=r"1 of 1 events .* \(1 in 'when', the first at row 1\)"):
        read_event_log(path, timestamp="when")
    with pytest.raises(EventLogError, match="cannot tell which column holds the timestamp"):
        read_event_log(path)


def test_a_parquet_log_from_elsewhere_reads_naive_and_epoch_times(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pl.DataFrame(
        {
            "Case ID": ["c1", "c1", "c2"],
            "Activity": ["open", "close", "open"],
            "timestamp": [datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 10), datetime(2026, 1, 2, 9)],
            "amount": [10, 10, 20],
        }
    ).write_parquet(path)
    log = read_event_log(path)
    assert [len(c.events) for c in log.cases] == [2, 1]
    assert log.cases[0].events[1].timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC).timestamp()
    assert log.cases[1].events[0].attributes == {"amount": 20}
    pl.DataFrame({"case": ["c1"], "activity": ["open"], "ts": [1_767_258_000_000]}).write_parquet(path)
    assert read_event_log(path, timestamp="ts").cases[0].events[0].timestamp == 1_767_258_000.0
    pl.DataFrame(
        {
            "case": ["c1", "c1", None, "c2", "c2", "c2", "c3", "c3", "c3", "c3"],
            "activity": ["open", None, "open", "open", "close", "review", "open", "review", "close", "close"],
            "ts": [
                *("2026-01-01 09:00", "2026-01-01 10:00", "2026-01-01 11:00", "NaN", " ", "2026-01-02 09:00"),
                *("2026-01-03 09:00", "2026-01-03 10:00", "2026-01-03 11:00", "2026-01-03 12:00"),
            ],
        }
    ).write_parquet(path)
    log = read_event_log(path, timestamp="ts")
    assert [(c.case_id, len(c.events)) for c in log.cases] == [("c1", 1), ("c2", 1), ("c3", 4)]
    assert log.cases[1].events[0].activity == "review"
    assert log.left_out == {"activity": 1, "case": 1, "ts": 2}
    assert log.left_out_first == {"activity": "row 2", "case": "row 3", "ts": "row 4"}


# -- a real store ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["runs.csv.gz", "runs.xes", "runs.parquet"])
def test_the_store_exports_every_run_as_a_case(
    container: Container, clock: FakeClock, tmp_path: Path, name: str
) -> None:
    run_credits(container, clock, tmp_path)
    path = tmp_path / name
    written = container.insights.export_log(path, None, None)
    runs = 2 * RUNS_PER_REGION
    assert (written["runs"], written["events"], written["runs_without_step_ends"]) == (runs, 3 * runs, 0)
    assert written["bytes"] == path.stat().st_size > 0
    log = read_event_log(path)
    assert len(log.cases) == runs and log.n_events == 3 * runs
    process = container.insights.process("credit-check", None, None)
    found: dict[tuple[str, ...], int] = {}
    for case in log.cases:
        key = tuple(e.activity for e in case.events)
        found[key] = found.get(key, 0) + 1
    assert found == {tuple(v["activities"]): v["runs"] for v in process["variants"]["top"]}
    rejected = [c for c in log.cases if c.events[1].activity == "approve (failed)"]
    assert len(rejected) == 21
    by_region = {"EU": 0, "US": 0}
    for case in rejected:
        by_region[case.attributes["case:region"]] += 1
        assert case.attributes["case:account"].startswith(case.attributes["case:region"].lower())
        assert case.events[1].attributes["org:resource"] == "fiona"
        assert case.events[1].attributes["outcome"] == "failed"
    assert by_region == {"EU": 18, "US": 3}  # the account's segment, as drift reads it
    starts = [c.start for c in log.cases]
    assert starts == sorted(starts)  # oldest run first
    approve = log.cases[0].events[1]
    waited = at(0).fromisoformat(str(approve.attributes["start_timestamp"]))
    assert approve.timestamp - waited.timestamp() >= 3600  # decided an hour or more after the task opened


def test_the_export_filters_and_refuses_what_it_cannot_write(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    run_credits(container, clock, tmp_path)
    path = tmp_path / "credit.csv"
    assert container.insights.export_log(path, None, None, playbook_id="credit-check")["runs"] == 60
    with pytest.raises(InvalidInput, match="exists") as exists:
        container.insights.export_log(path, None, None)
    assert exists.value.hint == "pass --force to replace it"
    assert container.insights.export_log(path, None, None, overwrite=True)["runs"] == 60
    later = clock.now() + timedelta(days=1)
    assert container.insights.export_log(path, later, None, overwrite=True)["runs"] == 0
    assert path.read_text().count("\n") == 1  # the header alone
    with pytest.raises(NotFound, match="no playbook 'credit-chek'"):
        container.insights.export_log(tmp_path / "x.csv", None, None, playbook_id="credit-chek")
    with pytest.raises(InvalidInput, match="cannot tell the format"):
        container.insights.export_log(tmp_path / "x.txt", None, None)
    with pytest.raises(InvalidInput, match="no folder"):
        container.insights.export_log(tmp_path / "missing" / "x.csv", None, None)
    with pytest.raises(InvalidInput, match="is a folder"):
        container.insights.export_log(tmp_path, None, None, fmt="csv")
    assert not list(tmp_path.glob("*.part"))


def test_a_run_without_a_step_end_is_counted_not_written(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    run_credits(container, clock, tmp_path)
    container.automation.start("credit-check", {"account_id": "eu-1", "amount": 5}, actor="carol")  # never ticked
    written = container.insights.export_log(tmp_path / "runs.xes.gz", None, None)
    assert (written["runs"], written["runs_without_step_ends"], written["open_runs_left_out"]) == (60, 0, 1)
    everything = container.insights.export_log(tmp_path / "all.xes.gz", None, None, include_open=True)
    assert (everything["runs"], everything["runs_without_step_ends"], everything["open_runs_left_out"]) == (60, 1, 0)


def test_open_runs_are_left_out_unless_asked_for(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    run_credits(container, clock, tmp_path)
    container.automation.start("credit-check", {"account_id": "us-1", "amount": 5}, actor="carol")
    drain(container)  # assessed, now waiting for its approval
    finished = container.insights.export_log(tmp_path / "done.csv", None, None)
    assert (finished["runs"], finished["open_runs_left_out"]) == (60, 1)
    both = container.insights.export_log(tmp_path / "all.csv", None, None, include_open=True)
    assert both["runs"] == 61
    [open_case] = [c for c in read_event_log(tmp_path / "all.csv").cases if "case:outcome:finished" not in c.attributes]
    assert open_case.attributes["case:outcome:status"] == "running"
    assert [e.activity for e in open_case.events] == ["assess"]


def test_outcome_attributes_are_never_features(tmp_path: Path) -> None:
    from opsrail.ml._prefixes import PrefixEncoder

    path = tmp_path / "log.csv"
    with writing_event_log(
        path,
        "csv",
        zipped=False,
        case_columns={"outcome:status": "string", "region": "string"},
        event_columns={"outcome:late": "string", "step": "string"},
    ) as writer:
        for n in range(40):
            status = ("failed", "succeeded")[n % 2]
            events = [
                {"concept:name": "a", "time:timestamp": at(n), "step": "a", "outcome:late": status},
                {"concept:name": "b", "time:timestamp": at(n + 1), "step": "b", "outcome:late": status},
            ]
            writer.case(f"run-{n}", {"outcome:status": status, "region": ("EU", "US")[n % 2]}, events)
    encoder = PrefixEncoder().fit(read_event_log(path).cases)
    assert sorted(f.key for f in encoder.attributes) == ["case:region", "step"]


TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=12)
NAME = TEXT.filter(lambda text: _NOT_XML.sub("", text).strip() != "")
"""Case ids and activity names: a reader leaves out an event whose case or activity is blank."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cases=st.lists(
        st.tuples(NAME, TEXT, st.lists(NAME, min_size=1, max_size=3)), min_size=1, max_size=4, unique_by=lambda c: c[0]
    ),
    fmt=st.sampled_from(["csv", "xes", "parquet"]),
)
def test_any_text_survives_the_round_trip(tmp_path: Path, cases: list[tuple[str, str, list[str]]], fmt: str) -> None:
    """Case ids, attributes and activity names of any text (quotes, commas, newlines, markup, other scripts) read
    back as written, but for the characters XML 1.0 cannot hold."""
    path = tmp_path / f"any.{fmt}"
    with writing_event_log(path, fmt, zipped=False, case_columns={"note": "string"}, event_columns={}) as writer:
        for case_id, note, activities in cases:
            events = [{"concept:name": name, "time:timestamp": at(i)} for i, name in enumerate(activities)]
            writer.case(case_id, {"note": note}, events)

    def kept(value: str) -> str:
        return _NOT_XML.sub("", value) if fmt == "xes" else value

    log = read_event_log(path)
    assert [c.case_id for c in log.cases] == [kept(c[0]) for c in cases]
    for case, (_, note, activities) in zip(log.cases, cases, strict=True):
        assert case.attributes.get("case:note", "") == kept(note)
        assert [e.activity for e in case.events] == [kept(a) for a in activities]
