"""Reading event logs (CSV and XES, plain and gzip), column guessing, timestamps, errors, and case splits."""

from __future__ import annotations

import gc
import gzip
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsrail.ml._eventlog import (
    EventLog,
    EventLogError,
    events_from_records,
    parse_timestamp,
    parse_timestamps,
    read_event_log,
)
from opsrail.ml._splits import inner_split, split_log

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # ../shared beside the repository
needs_data = pytest.mark.skipif(not DATA.exists(), reason="shared real data is not available")


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


CSV = """CaseID,ActivityID,CompleteTimestamp,case:channel,resource
b,start,2024-01-02 10:00:00,web,ann
a,start,2024-01-01 09:00:00,mail,bob
b,review,2024-01-02 09:30:00,,ann
b,close,2024-01-02 10:00:00,,cid
a,close,2024-01-03 09:00:00,,bob
"""

XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>
  <string key="meta" value="log level, ignored"/>
  <trace>
    <string key="concept:name" value="t1"/>
    <date key="REG_DATE" value="2011-10-01T00:38:44.546+02:00"/>
    <float key="AMOUNT" value="2500.5"/>
    <event>
      <string key="concept:name" value="A &amp; B"/>
      <string key="lifecycle:transition" value="complete"/>
      <date key="time:timestamp" value="2011-10-01T00:38:44.546+02:00"/>
      <int key="cost" value="7"/>
      <string key="nested" value="parent">
        <string key="child" value="ignored"/>
      </string>
    </event>
    <event>
      <string key="lifecycle:transition" value="start"/>
      <string key="concept:name" value="Review"/>
      <date key="time:timestamp" value="2011-10-01T00:30:00Z"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="t0"/>
    <event>
      <string key="concept:name" value="Review"/>
      <date key="time:timestamp" value="2011-09-30T12:00:00"/>
      <boolean key="urgent" value="true"/>
    </event>
  </trace>
</log>
"""


def write(path: Path, text: str, *, compress: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


# ------------------------------------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("compress", [False, True])
def test_csv_guesses_columns_keeps_case_order_and_sorts_events(tmp_path: Path, compress: bool) -> None:
    log = read_event_log(write(tmp_path / ("log.csv.gz" if compress else "log.csv"), CSV, compress=compress))
    assert log.columns == {"case": "CaseID", "activity": "ActivityID", "timestamp": "CompleteTimestamp"}
    assert [case.case_id for case in log.cases] == ["b", "a"]  # first appearance, not sorted
    b = log.cases[0]
    assert [event.activity for event in b.events] == ["review", "start", "close"]  # stable sort: start before close
    assert b.events[0].timestamp == epoch(2024, 1, 2, 9, 30)
    assert b.attributes == {"case:channel": "web"}
    assert b.events[1].attributes == {"resource": "ann"}
    assert log.n_events == 5
    assert len(log) == 2


def test_csv_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    log = read_event_log(write(tmp_path / "log.data", CSV, compress=True))
    assert len(log.cases) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("case:concept:name,concept:name,time:timestamp", ("case:concept:name", "concept:name", "time:timestamp")),
        ("Case ID,Activity,Complete Timestamp", ("Case ID", "Activity", "Complete Timestamp")),
        ("case_id,activity_id,timestamp", ("case_id", "activity_id", "timestamp")),
    ],
)
def test_csv_column_names_are_guessed(tmp_path: Path, header: str, expected: tuple[str, str, str]) -> None:
    log = read_event_log(write(tmp_path / "log.csv", f"{header}\n1,x,2024-01-01T00:00:00\n"))
    assert (log.columns["case"], log.columns["activity"], log.columns["timestamp"]) == expected


def test_csv_explicit_columns_and_semicolons(tmp_path: Path) -> None:
    text = "ticket;state;updated;kind\nT1;New;01-02-2016 10:00;x\nT1;Closed;29-02-2016 11:30;y\n"
    log = read_event_log(write(tmp_path / "log.csv", text), case="ticket", activity="state", timestamp="updated")
    assert [event.activity for event in log.cases[0].events] == ["New", "Closed"]
    assert log.cases[0].events[0].timestamp == epoch(2016, 2, 1, 10)  # day-first, decided by 29-02
    assert log.cases[0].events[0].attributes == {"kind": "x"}


def test_missing_column_error_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "id,step,when\n1,a,2024-01-01\n")
    with pytest.raises(EventLogError, match=r"which column holds the case.*'id', 'step', 'when'") as caught:
        read_event_log(path)
    assert "Traceback" not in str(caught.value)
    with pytest.raises(EventLogError, match=r"no activity column 'nope'; the columns are 'id', 'step', 'when'"):
        read_event_log(path, case="id", activity="nope", timestamp="when")


def test_unreadable_timestamp_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "case,activity,timestamp\n1,a,2024-01-01 10:00\n1,b,yesterday\n")
    with pytest.raises(EventLogError, match=r"row 3, column 'timestamp'.*'yesterday'"):
        read_event_log(path)


def test_csv_events_without_a_case_activity_or_time_are_left_out_and_counted(tmp_path: Path) -> None:
    text = (
        "case,activity,timestamp\n"
        "1,a,2024-01-01 10:00\n"
        "1,b,\n"
        "1,c,NULL\n"
        "2,a, n/a \n"
        ",a,2024-01-01 11:00\n"
        "2, ,2024-01-01 11:00\n"
        "2,b,2024-01-02 09:00\n"
        "3,a,02/01/2024 08:00\n"
        "3,b,-\n"
        "3,c,2024-01-03 08:00\n"
        "4,a,2024-01-04 08:00\n"
        "4,b,2024-01-04 09:00\n"
        "4,c,2024-01-04 10:00\n"
    )
    log = read_event_log(write(tmp_path / "log.csv", text))
    assert [(case.case_id, [event.activity for event in case.events]) for case in log.cases] == [
        ("1", ["a"]),
        ("2", ["b"]),
        ("3", ["a", "c"]),
        ("4", ["a", "b", "c"]),
    ]
    assert log.cases[2].events[0].timestamp == epoch(2024, 1, 2, 8)  # the layout is chosen on the values kept
    assert log.left_out == {"timestamp": 4, "case": 1, "activity": 1}
    assert log.left_out_first == {"timestamp": "row 3", "case": "row 6", "activity": "row 7"}
    assert log.notes()[0] == "4 events without a value in 'timestamp' left out (the first: row 3)"
    assert read_event_log(write(tmp_path / "full.csv", CSV)).left_out == {}


def test_a_csv_log_that_would_lose_most_events_is_refused(tmp_path: Path) -> None:
    text = (
        "case,activity,timestamp,closed\n"
        "1,a,2024-01-01 10:00,\n1,b,2024-01-01 11:00,\n2,a,2024-01-01 12:00,2024-01-02\n"
    )
    with pytest.raises(
        EventLogError,
        match=r"2 of 3 events have no value in a column they need \(2 in 'closed', the first at row 2\).*--timestamp",
    ):
        read_event_log(write(tmp_path / "log.csv", text), timestamp="closed")
    with pytest.raises(EventLogError, match="3 of 3 events"):
        read_event_log(write(tmp_path / "log.csv", "case,activity,timestamp\n1,a,\n1,b,\n2,a,\n"))


def test_a_long_cell_is_read(tmp_path: Path) -> None:
    note = "customer wrote back " * 20_000  # 400 KB, past the csv module's default field limit
    path = write(tmp_path / "log.csv", f"case,activity,timestamp,note\n1,a,2024-01-01 10:00,{note}\n1,b,2024-01-02,x\n")
    [case] = read_event_log(path).cases
    assert case.events[0].attributes["note"] == note


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match="cannot open"):
        read_event_log(tmp_path / "missing.csv")
    with pytest.raises(EventLogError, match="cannot read"):
        read_event_log(_broken_gzip(tmp_path))
    with pytest.raises(EventLogError, match="empty"):
        read_event_log(write(tmp_path / "empty.csv", ""))
    with pytest.raises(EventLogError, match="not a readable XES"):
        read_event_log(write(tmp_path / "bad.xes", "<?xml version='1.0'?><log><trace><event></trace></log>"))
    with pytest.raises(EventLogError, match="not a readable XES"):
        read_event_log(write(tmp_path / "cut.xes.gz", XES[: XES.index("</trace>")], compress=True))


def test_csv_that_is_not_utf8_is_read_as_windows_1252_or_latin_1(tmp_path: Path) -> None:
    windows = tmp_path / "windows.csv"
    windows.write_bytes(b"Case Nr;Event;timestamp\n1;\xe9t\xe9 \x80;2024-01-01\n")
    log = read_event_log(windows)
    assert [e.activity for e in log.cases[0].events] == ["\u00e9t\u00e9 \u20ac"]
    assert log.columns == {"case": "Case Nr", "activity": "Event", "timestamp": "timestamp"}
    # 0x81 is not Windows-1252; the odd byte comes after the first block of the decompressed stream.
    rows = b"".join(b"%d,call,2024-01-01T00:00:%02d\n" % (n, n % 60) for n in range(20_000))
    late = tmp_path / "late.csv.gz"
    late.write_bytes(gzip.compress(b"case,activity,timestamp\n" + rows + b"7,\x81,2024-01-02\n"))
    log = read_event_log(late)
    assert len(log.cases) == 20_000 and log.cases[7].events[-1].activity == "\x81"


def test_reading_a_log_closes_its_file_whatever_happens(tmp_path: Path) -> None:
    """Closed, not left to the garbage collector (which warns, and in a server may come late)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        read_event_log(write(tmp_path / "log.csv", CSV))
        read_event_log(write(tmp_path / "log.csv.gz", CSV, compress=True))
        read_event_log(write(tmp_path / "log.xes.gz", XES, compress=True))
        read_event_log(write(tmp_path / "comment.xes", XES.replace("<trace>", "<!-- c --><trace>", 1)))
        for bad in (
            _broken_gzip(tmp_path),
            write(tmp_path / "cut.xes.gz", XES[: XES.index("</trace>")], compress=True),
            write(tmp_path / "empty.csv", ""),
        ):
            with pytest.raises(EventLogError):
                read_event_log(bad)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def _broken_gzip(tmp_path: Path) -> Path:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(CSV.encode())[:40])
    return path


# ------------------------------------------------------------------------------------------------ timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2011-10-01T00:38:44.546+02:00", epoch(2011, 9, 30, 22, 38, 44) + 0.546),
        ("2012-04-03 16:55:38", epoch(2012, 4, 3, 16, 55, 38)),
        ("2012-04-03T16:55:38Z", epoch(2012, 4, 3, 16, 55, 38)),
        ("2011-12-06 13:41:31.788000+01:00", epoch(2011, 12, 6, 12, 41, 31) + 0.788),
        ("2012-04-03T16:55:38-05:00", epoch(2012, 4, 3, 21, 55, 38)),
        ("1333472138", 1333472138.0),
        ("1333472138000", 1333472138.0),
        ("29-02-2016 01:23", epoch(2016, 2, 29, 1, 23)),
        ("2012-04-03 16:55:38,250", epoch(2012, 4, 3, 16, 55, 38) + 0.25),
        ("2012/04/03 16:55:38.250000", epoch(2012, 4, 3, 16, 55, 38) + 0.25),
        ("03.04.2012 16:55:38.5", epoch(2012, 4, 3, 16, 55, 38) + 0.5),
        ("03-Apr-2012 16:55:38", epoch(2012, 4, 3, 16, 55, 38)),
        ("03-APR-12 16:55:38", epoch(2012, 4, 3, 16, 55, 38)),
        ("3 April 2012 16:55", epoch(2012, 4, 3, 16, 55)),
        ("Apr 3, 2012 4:55:38 PM", epoch(2012, 4, 3, 16, 55, 38)),
        ("03 Apr 2012", epoch(2012, 4, 3)),
        ("2012-04-03 16:55:38 UTC", epoch(2012, 4, 3, 16, 55, 38)),  # as SQL consoles print times
        ("2012-04-03 16:55:38.250 gmt", epoch(2012, 4, 3, 16, 55, 38) + 0.25),
        ("03/04/2012 16:55 UTC", epoch(2012, 4, 3, 16, 55)),
    ],
)
def test_parse_timestamp(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected)


def test_parse_timestamp_rejects_other_values() -> None:
    assert parse_timestamp(datetime(2024, 1, 1)) == epoch(2024, 1, 1)  # naive: UTC
    for bad in ("soon", True, None):
        with pytest.raises(ValueError, match="not a timestamp"):
            parse_timestamp(bad)


def test_epoch_numbers_outside_real_years_are_refused(tmp_path: Path) -> None:
    assert parse_timestamp(1333472138000) == parse_timestamp(1333472138) == epoch(2012, 4, 3, 16, 55, 38)
    for bad in (1e30, float("nan"), float("inf"), -5e9, "99999999999999999"):
        with pytest.raises(ValueError, match="outside the years 1900-2286"):
            parse_timestamp(bad)
    path = write(tmp_path / "log.csv", "case,activity,timestamp\n1,a,1333472138\n1,b,1e30\n")
    with pytest.raises(EventLogError, match=r"row 3, column 'timestamp'"):
        read_event_log(path)
    with pytest.raises(EventLogError, match="event 1: cannot read timestamp 1e"):
        events_from_records([{"activity": "a", "timestamp": 1e30}], {})


def test_one_layout_per_column_settles_day_and_month() -> None:
    us = parse_timestamps(["03/05/2016 10:00", "12/31/2016 10:00"])
    assert us[0] == epoch(2016, 3, 5, 10)
    european = parse_timestamps(["03/05/2016 10:00", "31/12/2016 10:00"])
    assert european[0] == epoch(2016, 5, 3, 10)


# ------------------------------------------------------------------------------------------------------- XES


@pytest.mark.parametrize("compress", [False, True])
def test_xes_reads_traces_attributes_and_lifecycle(tmp_path: Path, compress: bool) -> None:
    log = read_event_log(write(tmp_path / ("log.xes.gz" if compress else "log.xes"), XES, compress=compress))
    assert log.format == "xes"
    assert log.columns == {"case": "case:concept:name", "activity": "concept:name", "timestamp": "time:timestamp"}
    assert [case.case_id for case in log.cases] == ["t1", "t0"]
    t1 = log.cases[0]
    assert t1.attributes == {"case:REG_DATE": "2011-10-01T00:38:44.546+02:00", "case:AMOUNT": 2500.5}
    assert [event.activity for event in t1.events] == ["A & B", "Review"]
    assert t1.events[0].attributes == {"lifecycle:transition": "complete", "cost": 7, "nested": "parent"}
    assert t1.events[1].attributes == {"lifecycle:transition": "start"}
    assert t1.events[0].timestamp == epoch(2011, 9, 30, 22, 38, 44) + 0.546
    assert t1.events[1].timestamp == epoch(2011, 10, 1, 0, 30)
    assert log.cases[1].events[0].attributes == {"urgent": True}
    assert log.cases[1].events[0].timestamp == epoch(2011, 9, 30, 12)


def test_xes_with_comments_reads_the_same_through_the_general_parser(tmp_path: Path) -> None:
    plain = read_event_log(write(tmp_path / "a.xes", XES))
    odd = XES.replace("<event>", "<!-- an event --><event>", 1).replace(
        '<string key="concept:name" value="t0"/>', "<string value='t0' key='concept:name'/>"
    )
    other = read_event_log(write(tmp_path / "b.xes", odd))
    assert other.cases == plain.cases


@pytest.mark.parametrize("odd", [False, True], ids=["scanner", "general parser"])
def test_xes_events_without_a_time_or_a_name_are_left_out_and_counted(tmp_path: Path, odd: bool) -> None:
    text = XES.replace('<date key="time:timestamp" value="2011-10-01T00:30:00Z"/>', "")
    if odd:
        text = text.replace("<event>", "<!-- comment --><event>", 1)
    log = read_event_log(write(tmp_path / "log.xes", text))
    assert [[event.activity for event in case.events] for case in log.cases] == [["A & B"], ["Review"]]
    assert log.left_out == {"time:timestamp": 1}
    assert log.notes() == ["1 event without a value in 'time:timestamp' left out (the first: trace 1, event 2)"]
    # a trace whose every event goes is no case, and the traces keep their numbers in what is reported
    text = XES.replace(
        '<string key="concept:name" value="Review"/>\n      <date key="time:timestamp" value="2011-09-30',
        '<string key="concept:name" value=" "/>\n      <date key="time:timestamp" value="2011-09-30',
    )
    log = read_event_log(write(tmp_path / "log.xes", text.replace("<trace>", "<trace></trace><trace>", 1)))
    assert [case.case_id for case in log.cases] == ["trace 1", "t1"]  # an empty trace stays, as before
    assert log.left_out == {"concept:name": 1}
    assert log.left_out_first == {"concept:name": "trace 3, event 1"}


def test_a_xes_log_that_would_lose_most_events_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match=r"3 of 3 events .* \(3 in 'when', the first at trace 1, event 1\)"):
        read_event_log(write(tmp_path / "log.xes", XES), timestamp="when")


def test_events_from_records_accepts_iso_epoch_and_column_names() -> None:
    events = events_from_records(
        [
            {"ActivityID": "8", "CompleteTimestamp": 1333472200, "team": "x"},
            {"activity": "1", "timestamp": "2012-04-03T16:55:38+00:00"},
        ],
        {"activity": "ActivityID", "timestamp": "CompleteTimestamp"},
    )
    assert [event.activity for event in events] == ["1", "8"]
    assert events[1].attributes == {"team": "x"}
    with pytest.raises(EventLogError, match="event 1: cannot read timestamp"):
        events_from_records([{"activity": "a", "timestamp": "later"}], {})


# ---------------------------------------------------------------------------------------------------- splits


def _log(starts: list[int]) -> EventLog:
    from opsrail.ml._eventlog import Case, Event

    cases = [Case(f"c{index}", [Event("a", float(start))]) for index, start in enumerate(starts)]
    return EventLog(cases, {"case": "c", "activity": "a", "timestamp": "t"})


def test_tax2017_keeps_file_order_and_holds_out_the_last_third() -> None:
    log = _log([50, 10, 40, 20, 30, 0, 60])
    (split,) = split_log(log, "tax2017")
    assert [case.case_id for case in split.train] == ["c0", "c1", "c2", "c3", "c4"]  # 7 - round(7/3) = 5
    assert [case.case_id for case in split.test] == ["c5", "c6"]


def test_temporal_orders_by_start_and_kfold_covers_every_case_once() -> None:
    log = _log([50, 10, 40, 20, 30, 0, 60])
    (split,) = split_log(log, "temporal")
    assert [case.case_id for case in split.train] == ["c5", "c1", "c3", "c4", "c2"]
    assert [case.case_id for case in split.test] == ["c0", "c6"]
    folds = split_log(_log(list(range(23))), "kfold")
    assert len(folds) == 5
    held = sorted(case.case_id for fold in folds for case in fold.test)
    assert held == sorted(f"c{index}" for index in range(23))
    assert all(not {c.case_id for c in fold.train} & {c.case_id for c in fold.test} for fold in folds)
    with pytest.raises(ValueError, match="unknown split"):
        split_log(log, "random")


def test_inner_split_takes_the_latest_training_cases() -> None:
    log = _log([50, 10, 40, 20, 30, 0, 60, 70, 80, 90])
    fit, valid = inner_split(log.cases, "temporal")
    assert [case.case_id for case in valid] == ["c8", "c9"]
    assert len(fit) == 8


@needs_data
def test_real_logs_read_with_their_published_counts() -> None:
    tax = read_event_log(DATA / "helpdesk" / "helpdesk_tax2017.csv.gz")
    assert (len(tax.cases), tax.n_events) == (3804, 13710)
    (split,) = split_log(tax, "tax2017")
    assert (len(split.train), len(split.test)) == (2536, 1268)
    permits = read_event_log(DATA / "wabo_receipt_env_permit" / "env_permit.xes.gz")
    receipt = read_event_log(DATA / "wabo_receipt_env_permit" / "receipt.csv.gz")
    assert (len(permits.cases), permits.n_events) == (len(receipt.cases), receipt.n_events) == (1434, 8577)
    assert {case.case_id for case in permits.cases} == {case.case_id for case in receipt.cases}


@needs_data
@pytest.mark.slow
def test_bpi2012_xes_reads_every_event() -> None:
    log = read_event_log(DATA / "bpi2012" / "BPI_Challenge_2012.xes.gz")
    assert (len(log.cases), log.n_events) == (13087, 262200)
    assert log.cases[0].case_id == "173688"
    assert log.cases[0].attributes["case:AMOUNT_REQ"] == "20000"
    assert {event.attributes.get("lifecycle:transition") for case in log.cases for event in case.events} == {
        "COMPLETE",
        "START",
        "SCHEDULE",
    }
