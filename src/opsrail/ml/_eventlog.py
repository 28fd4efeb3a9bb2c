"""Reading event logs: CSV or XES files (plain or gzip) or Parquet files into cases of time-ordered events.

This module owns the in-memory event log (``EventLog`` → ``Case`` → ``Event``), the choice of the case, activity
and timestamp columns (given, or guessed from a short list of common names), timestamp parsing (ISO 8601 with or
without offset, a few day-first and month-first layouts, epoch seconds or milliseconds; naive times are UTC), and
the errors a user sees when a file cannot be read (``EventLogError``, a ``ValueError`` with a one-line message).

Cases keep the order in which they first appear in the file; events within a case are sorted stably by timestamp.
Every other column or attribute is kept: CSV columns named ``case:…`` and XES trace attributes become case
attributes (XES trace attributes are prefixed ``case:``), everything else is an event attribute. Nothing is
filtered: a XES log with ``lifecycle:transition`` keeps its SCHEDULE/START/COMPLETE events, the transition being an
ordinary event attribute.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import html
import io
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import IO, Any

from opsrail.ml._types import Progress, no_progress

__all__ = [
    "ACTIVITY_NAMES",
    "CASE_NAMES",
    "TIMESTAMP_NAMES",
    "Case",
    "Event",
    "EventLog",
    "EventLogError",
    "events_from_records",
    "parse_timestamp",
    "parse_timestamps",
    "read_event_log",
]

CASE_NAMES = (
    "case:concept:name",
    "CaseID",
    "case_id",
    "Case ID",
    "case",
    "trace_id",
    "Case Key",
    "Case Number",
    "Case Nr",
    "Case No",
)
"""CSV column names tried, in order, when no case column is given (compared without case, spaces, ``_`` or ``-``)."""

ACTIVITY_NAMES = ("concept:name", "Activity", "ActivityID", "Activity Name", "Task", "Event Name", "Event", "Action")
"""CSV column names tried, in order, when no activity column is given."""

TIMESTAMP_NAMES = (
    "time:timestamp",
    "CompleteTimestamp",
    "Complete Timestamp",
    "timestamp",
    "EndTimestamp",
    "end_timestamp",
    "end_time",
    "time",
    "datetime",
    "date",
    "StartTimestamp",
    "start_time",
)
"""CSV column names tried, in order, when no timestamp column is given."""

XES_CASE = "case:concept:name"
XES_ACTIVITY = "concept:name"
XES_TIMESTAMP = "time:timestamp"
_CHUNK = 1 << 16
log = logging.getLogger(__name__)


class EventLogError(ValueError):
    """An event log that cannot be read: the message says which file, column or row, and why."""


@dataclass(slots=True)
class Event:
    """One event: its activity, when it happened (seconds since the epoch, UTC) and its other attributes."""

    activity: str
    timestamp: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Case:
    """One case (trace): its identifier, its events sorted by time, and its case-level attributes."""

    case_id: str
    events: list[Event]
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.events[0].timestamp if self.events else 0.0

    @property
    def end(self) -> float:
        return self.events[-1].timestamp if self.events else 0.0


@dataclass(slots=True)
class EventLog:
    """Cases in the order they first appear in the file, and the columns they were read with.

    ``columns`` maps ``case``, ``activity`` and ``timestamp`` to the column (CSV) or attribute key (XES) used.
    """

    cases: list[Case]
    columns: dict[str, str]
    format: str = "csv"
    left_out: dict[str, int] = field(default_factory=dict)
    """Events left out because a value they need is empty: how many for each column (or XES attribute)."""
    left_out_first: dict[str, str] = field(default_factory=dict)
    """Where the first event left out for each column was (``row 108``, ``trace 3, event 2``)."""

    @property
    def n_events(self) -> int:
        return sum(len(case.events) for case in self.cases)

    def notes(self) -> list[str]:
        """One sentence for each column that left events out, for a model's warnings."""
        return [
            f"{count:,} event{'s' if count != 1 else ''} without a value in {name!r} left out "
            f"(the first: {self.left_out_first[name]})"
            for name, count in self.left_out.items()
        ]

    def __len__(self) -> int:
        return len(self.cases)


_MISSING_TIMES = frozenset({"", "null", "none", "nan", "nat", "n/a", "na", "-"})
"""Timestamp cells that mean "no value", compared without case or surrounding spaces: such events are left out."""


def is_missing_time(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _MISSING_TIMES)


class _LeftOut:
    """Counts the events a reader leaves out for want of a value, and refuses a log that would lose most of them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def add(self, column: str, where: str) -> None:
        self.counts[column] = self.counts.get(column, 0) + 1
        self.first.setdefault(column, where)

    def check(self, kept: int) -> None:
        """Refuse the log when the events left out are as many as those kept: the column is likely the wrong one."""
        lost = sum(self.counts.values())
        if lost and lost >= kept:
            where = "; ".join(
                f"{count:,} in {column!r}, the first at {self.first[column]}" for column, count in self.counts.items()
            )
            raise EventLogError(
                f"{self.path}: {lost:,} of {lost + kept:,} events have no value in a column they need ({where}); are "
                "these the right columns? Name them with --case, --activity and --timestamp"
            )

    def into(self, log: EventLog) -> EventLog:
        log.left_out = dict(self.counts)
        log.left_out_first = dict(self.first)
        return log


# --------------------------------------------------------------------------------------------------------- times

_NUMBER = re.compile(r"^[+-]?\d+(\.\d*)?$")
_DATES = ("%d-%m-%Y", "%m-%d-%Y", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d")
"""Numeric date layouts, day-first before month-first (a column that reads both ways is taken as day-first)."""
_NAMED_MONTH_DATES = ("%d-%b-%Y", "%d-%b-%y", "%d %b %Y", "%b %d %Y", "%b %d, %Y", "%d %B %Y", "%B %d, %Y")
"""Dates with the month's English name or abbreviation, in any letter case (``03-APR-12``, ``Apr 3, 2012``)."""
_FORMATS = (
    *(f"{date} %H:%M:%S.%f" for date in _DATES),
    *(f"{date} {time}" for date in _DATES for time in ("%H:%M:%S", "%H:%M")),
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%d %H:%M:%S.%f%z",
    *(f"{date} {time}" for date in _NAMED_MONTH_DATES for time in ("%H:%M:%S.%f", "%H:%M:%S", "%H:%M")),
    *(f"{date} {time}" for date in _NAMED_MONTH_DATES for time in ("%I:%M:%S %p", "%I:%M %p")),
    *_DATES,
    *_NAMED_MONTH_DATES,
)
"""Layouts tried after ISO 8601 and epoch numbers; for a column the first layout that reads every value wins."""


_UTC_SUFFIX = re.compile(r"\s+(?:UTC|GMT|UT)$", re.IGNORECASE)
"""A zone written after the time (``2012-04-03 16:55:38 UTC``, as SQL consoles and warehouses print times): naive
times are UTC already, so it is dropped."""


def _plain(text: str) -> str:
    return _UTC_SUFFIX.sub("", text.strip())


def _seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(text: str) -> float | None:
    try:
        return _seconds(datetime.fromisoformat(text))
    except ValueError:
        pass
    if _NUMBER.match(text):
        return _epoch(float(text))
    return None


# Epoch numbers outside 1900-2286 are not times a log or a case holds (1e30 would pass as a float and poison every
# gap the features compute); milliseconds are told from seconds by size, as below.
_EPOCH_RANGE = (-2_208_988_800.0, 1e10)


def _epoch(number: float) -> float:
    seconds = number / 1000.0 if abs(number) > 1e11 else number
    if not _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]:  # also refuses NaN
        raise ValueError(f"epoch time {number!r} is outside the years 1900-2286")
    return seconds


def _with_format(text: str, layout: str) -> float | None:
    try:
        return _seconds(datetime.strptime(text, layout))  # naive times are UTC by definition
    except ValueError:
        return None


def parse_timestamp(value: object) -> float:
    """Seconds since the epoch (UTC) from an ISO 8601 string, a common date layout, a datetime or an epoch number.

    Naive times are taken as UTC. Epoch numbers above 1e11 are read as milliseconds. Raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, datetime):
        return _seconds(value)
    if isinstance(value, int | float):
        return _epoch(float(value))
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = _plain(value)
    seconds = _iso(text)
    if seconds is not None:
        return seconds
    for layout in _FORMATS:
        seconds = _with_format(text, layout)
        if seconds is not None:
            return seconds
    raise ValueError(f"not a timestamp: {value!r}")


def parse_timestamps(values: Sequence[str], *, row: Callable[[int], str] = str) -> list[float]:
    """Parse a whole column: ISO 8601 and epoch numbers first, then one layout that reads every other value.

    Choosing one layout for the column settles day-first versus month-first: ``03/05/2016`` is read the way the
    rest of the column needs (day-first when nothing decides). ``row(i)`` names value ``i`` in error messages.
    """
    values = [_plain(value) for value in values]
    out: list[float] = [0.0] * len(values)
    pending: list[int] = []
    for index, raw in enumerate(values):
        try:
            seconds = _iso(raw)
        except ValueError as exc:
            raise EventLogError(f"{row(index)}: {exc}") from None
        if seconds is None:
            pending.append(index)
        else:
            out[index] = seconds
    if not pending:
        return out
    distinct = sorted({values[index].strip() for index in pending})
    chosen: str | None = None
    for layout in _FORMATS:
        if all(_with_format(text, layout) is not None for text in distinct):
            chosen = layout
            break
    for index in pending:
        text = values[index].strip()
        if not text:
            raise EventLogError(f"{row(index)}: empty timestamp")
        seconds = _with_format(text, chosen) if chosen else None
        if seconds is None:
            for layout in _FORMATS:
                seconds = _with_format(text, layout)
                if seconds is not None:
                    break
        if seconds is None:
            raise EventLogError(f"{row(index)}: cannot read timestamp {text!r} (expected ISO 8601 or a date layout)")
        out[index] = seconds
    return out


# ---------------------------------------------------------------------------------------------------- opening


class _Counted(io.RawIOBase):
    """A readable file that remembers how many bytes were read, to report progress on compressed input."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        data = self._raw.read(len(view))
        view[: len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class _GzipOver(gzip.GzipFile):
    """A gzip stream over another stream that closes that stream too (``GzipFile`` leaves a given one open)."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__(fileobj=inner, mode="rb")
        self._inner = inner

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


def _open(path: Path) -> tuple[IO[bytes], _Counted, int, bool]:
    """Binary stream over the decompressed content, its byte counter, the file size and whether it is XES."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise EventLogError(f"{path}: cannot open: {exc.strerror or exc}") from None
    size = path.stat().st_size
    head = raw.read(2)
    raw.seek(0)
    counted = _Counted(raw)
    buffered: IO[bytes] = io.BufferedReader(counted, _CHUNK)
    stream: IO[bytes] = buffered
    if head == b"\x1f\x8b":
        stream = _GzipOver(buffered)  # type: ignore[assignment]
    try:
        start = stream.peek(512)[:512] if hasattr(stream, "peek") else b""
    except (OSError, EOFError) as exc:
        stream.close()
        raise EventLogError(f"{path}: cannot read: {exc}") from None
    text = start.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    name = path.name.lower()
    is_xes = text.startswith((b"<?xml", b"<log")) or name.endswith((".xes", ".xes.gz"))
    return stream, counted, size, is_xes


def read_event_log(
    path: Path | str,
    *,
    case: str | None = None,
    activity: str | None = None,
    timestamp: str | None = None,
    progress: Progress = no_progress,
) -> EventLog:
    """Read a CSV or XES event log (optionally gzip-compressed) or a Parquet one (detected from the content).

    XES defaults: the trace's ``concept:name`` (``case:concept:name``), the event's ``concept:name`` and
    ``time:timestamp``. CSV: the given columns, or the first match in ``CASE_NAMES``/``ACTIVITY_NAMES``/
    ``TIMESTAMP_NAMES``. An event without a case, an activity or a time (an empty cell, or a time written ``null``,
    ``NaN``, ``N/A``, ``-``…) is left out and counted in ``EventLog.left_out``; a log that would lose as many events
    as it keeps is refused. Raises ``EventLogError`` for an unreadable file, a missing column or an unreadable time.
    """
    path = Path(path)
    if _is_parquet(path):
        return _read_parquet(path, case, activity, timestamp, progress)
    for encoding in CSV_ENCODINGS:
        stream, counted, size, is_xes = _open(path)
        try:
            if is_xes:
                return _read_xes(path, stream, counted, size, case, activity, timestamp, progress)
            return _read_csv(path, stream, counted, size, case, activity, timestamp, progress, encoding)
        except _NotDecodable as exc:
            if encoding == CSV_ENCODINGS[-1]:  # pragma: no cover - Latin-1 decodes any byte
                raise EventLogError(f"{path}: {exc}") from None
            log.info("%s: %s; reading it again as %s", path, exc, CSV_ENCODINGS[CSV_ENCODINGS.index(encoding) + 1])
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise EventLogError(f"{path}: cannot read: {exc}") from None
        finally:
            stream.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _finish(cases: Iterable[Case]) -> list[Case]:
    out = list(cases)
    for one in out:
        one.events.sort(key=attrgetter("timestamp"))
    return out


# -------------------------------------------------------------------------------------------------------- CSV


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _pick(header: Sequence[str], given: str | None, candidates: Sequence[str], role: str, path: Path) -> int:
    listing = ", ".join(repr(name) for name in header)
    if given is not None:
        if given in header:
            return header.index(given)
        squashed = [_squash(name) for name in header]
        if _squash(given) in squashed:
            return squashed.index(_squash(given))
        raise EventLogError(f"{path}: no {role} column {given!r}; the columns are {listing}")
    squashed = [_squash(name) for name in header]
    for candidate in candidates:
        if _squash(candidate) in squashed:
            return squashed.index(_squash(candidate))
    raise EventLogError(
        f"{path}: cannot tell which column holds the {role}; tried {', '.join(candidates)}; "
        f"the columns are {listing}; name it with --{role}"
    )


CSV_DELIMITERS = (",", ";", "\t", "|")
"""The delimiter of a CSV is the most frequent of these in its header line."""

CSV_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
"""A CSV is read as UTF-8 (with or without a byte-order mark), else as Windows-1252 (what spreadsheet programs on
Windows save), else as Latin-1, which decodes any byte. A file that is not UTF-8 is read again from the start."""


class _NotDecodable(EventLogError):
    """The CSV is not text in the encoding tried."""


def _text_lines(stream: IO[bytes], encoding: str = CSV_ENCODINGS[0]) -> Iterator[str]:
    wrapper = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        yield from wrapper
    except UnicodeDecodeError as exc:
        raise _NotDecodable(f"not {exc.encoding} text ({exc.reason} at byte {exc.start})") from None
    finally:
        with contextlib.suppress(ValueError):  # the stream may already be closed
            wrapper.detach()


def allow_long_csv_fields() -> None:
    """Lift the csv module's field limit (128 KiB by default): ticket bodies and notes can be longer."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def _read_csv(
    path: Path,
    stream: IO[bytes],
    counted: _Counted,
    size: int,
    case: str | None,
    activity: str | None,
    timestamp: str | None,
    progress: Progress,
    encoding: str = CSV_ENCODINGS[0],
) -> EventLog:
    lines = _text_lines(stream, encoding)
    try:
        first = next(lines)
    except StopIteration:
        raise EventLogError(f"{path}: empty file") from None
    delimiter = max(CSV_DELIMITERS, key=first.count)
    allow_long_csv_fields()
    reader = csv.reader(_chain(first, lines), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    case_at = _pick(header, case, CASE_NAMES, "case", path)
    activity_at = _pick(header, activity, ACTIVITY_NAMES, "activity", path)
    time_at = _pick(header, timestamp, TIMESTAMP_NAMES, "timestamp", path)
    used = {case_at, activity_at, time_at}
    extra = [(index, name, name.startswith("case:")) for index, name in enumerate(header) if index not in used]
    width = len(header)
    by_id: dict[str, Case] = {}
    stamps: list[str] = []
    events: list[Event] = []
    rows: list[int] = []
    left_out = _LeftOut(path)
    number = 1
    try:
        for number, record in enumerate(reader, start=2):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) < width:
                record = record + [""] * (width - len(record))
            case_id = record[case_at]
            empty = _empty_column(record, case_at, activity_at, time_at)
            if empty is not None:
                left_out.add(header[empty], f"row {number}")
                continue
            found = by_id.get(case_id)
            if found is None:
                found = by_id[case_id] = Case(case_id, [], {})
            attributes: dict[str, Any] = {}
            for index, name, is_case in extra:
                value = record[index]
                if value == "":
                    continue
                if is_case:
                    found.attributes.setdefault(name, value)
                else:
                    attributes[name] = value
            event = Event(record[activity_at], 0.0, attributes)
            found.events.append(event)
            events.append(event)
            stamps.append(record[time_at])
            rows.append(number)
            if number % 50_000 == 0:
                progress("read", min(counted.count / max(size, 1), 1.0) * 0.9)
    except csv.Error as exc:
        raise EventLogError(f"{path}: row {number}: {exc}") from None
    left_out.check(len(events))
    if not events:
        raise EventLogError(f"{path}: no events (only a header)")
    times = parse_timestamps(stamps, row=lambda index: f"{path}: row {rows[index]}, column {header[time_at]!r}")
    for event, seconds in zip(events, times, strict=True):
        event.timestamp = seconds
    progress("read", 1.0)
    columns = {"case": header[case_at], "activity": header[activity_at], "timestamp": header[time_at]}
    return left_out.into(EventLog(_finish(by_id.values()), columns, "csv"))


def _empty_column(record: Sequence[str], case_at: int, activity_at: int, time_at: int) -> int | None:
    """The first of the case, activity and time columns that has no value in this row, if any."""
    if not record[case_at].strip():
        return case_at
    if not record[activity_at].strip():
        return activity_at
    if is_missing_time(record[time_at]):
        return time_at
    return None


# ---------------------------------------------------------------------------------------------------- Parquet


def _is_parquet(path: Path) -> bool:
    try:
        with path.open("rb") as raw:
            return raw.read(4) == b"PAR1"
    except OSError:
        return False  # the usual opening reports it


def _read_parquet(
    path: Path, case: str | None, activity: str | None, timestamp: str | None, progress: Progress
) -> EventLog:
    """A Parquet log laid out like a CSV one (a row an event); its timestamp column may be a datetime (naive is UTC),
    an epoch number or text."""
    import polars as pl  # loaded only for Parquet files

    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise EventLogError(f"{path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from None
    header = list(frame.columns)
    case_at = _pick(header, case, CASE_NAMES, "case", path)
    activity_at = _pick(header, activity, ACTIVITY_NAMES, "activity", path)
    time_at = _pick(header, timestamp, TIMESTAMP_NAMES, "timestamp", path)
    if frame.height == 0:
        raise EventLogError(f"{path}: no events (no rows)")
    left_out = _LeftOut(path)
    rows_kept = pl.Series("kept", [True] * frame.height)
    for at in (case_at, activity_at, time_at):
        column = frame.get_column(header[at])
        if column.dtype == pl.String:
            missing = column.is_null() | column.str.strip_chars().str.to_lowercase().is_in(
                sorted(_MISSING_TIMES) if at == time_at else [""]
            )
        else:
            missing = column.is_null()
        missing = missing & rows_kept
        for row in missing.arg_true().to_list():
            left_out.add(header[at], f"row {row + 1}")
        rows_kept = rows_kept & ~missing
    left_out.check(int(rows_kept.sum()))
    if not rows_kept.all():
        frame = frame.filter(rows_kept)
    stamp = frame.get_column(header[time_at])
    if isinstance(stamp.dtype, pl.Datetime):
        if stamp.dtype.time_zone is None:
            stamp = stamp.dt.replace_time_zone("UTC")
        times = (stamp.dt.epoch("us").cast(pl.Float64) / 1e6).to_list()
    elif stamp.dtype.is_numeric():
        try:
            times = [_epoch(float(value)) for value in stamp.to_list()]
        except ValueError as exc:
            raise EventLogError(f"{path}: column {header[time_at]!r}: {exc}") from None
    else:
        texts = stamp.cast(pl.String).to_list()
        times = parse_timestamps(texts, row=lambda index: f"{path}: row {index + 1}, column {header[time_at]!r}")
    progress("read", 0.5)
    cases_at = frame.get_column(header[case_at]).cast(pl.String).to_list()
    activities = frame.get_column(header[activity_at]).cast(pl.String).to_list()
    used = {case_at, activity_at, time_at}
    extra = [
        (name, name.startswith("case:"), frame.get_column(name).to_list())
        for index, name in enumerate(header)
        if index not in used
    ]
    by_id: dict[str, Case] = {}
    for row in range(frame.height):
        case_id = cases_at[row]
        found = by_id.get(case_id)
        if found is None:
            found = by_id[case_id] = Case(case_id, [], {})
        attributes: dict[str, Any] = {}
        for name, is_case, values in extra:
            value = values[row]
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.replace(tzinfo=UTC).isoformat() if value.tzinfo is None else value.isoformat()
            if is_case:
                found.attributes.setdefault(name, value)
            else:
                attributes[name] = value
        found.events.append(Event(activities[row], times[row], attributes))
    progress("read", 1.0)
    columns = {"case": header[case_at], "activity": header[activity_at], "timestamp": header[time_at]}
    return left_out.into(EventLog(_finish(by_id.values()), columns, "parquet"))


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


# -------------------------------------------------------------------------------------------------------- XES


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _typed(kind: str, value: str | None) -> Any:
    if value is None:
        return None
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return value.strip().lower() == "true"
    return value


def _attributes(element: Any) -> dict[str, Any]:
    """Direct attribute children of a trace or event, typed; nested attributes are ignored."""
    out: dict[str, Any] = {}
    for child in element.iterchildren():
        tag = child.tag
        if not isinstance(tag, str):
            continue
        kind = _local(tag)
        if kind == "event" or kind in _SKIPPED:
            continue
        key = child.get("key")
        value = child.get("value")
        if key is not None and value is not None:
            out[key] = _typed(kind, value)
    return out


_TOKEN = re.compile(
    r'<(?:(/?)(event|trace)\s*>|/([\w:.-]+)\s*>|([\w:.-]+)\s+key="([^"]*)"(?:\s+value="([^"]*)")?\s*(/?)>)'
)
"""XES tags as common tools write them: trace/event boundaries, closing tags, ``key``/``value`` attributes."""
_ENCODING = re.compile(r'encoding\s*=\s*["\']([\w.-]+)["\']')
_BLOCK = 1 << 24


class _Unusual(Exception):
    """The fast XES scanner met something it does not read exactly (comments, CDATA, odd attribute order)."""


class _XesBuilder:
    """Collects traces and events from either XES reader and turns them into cases."""

    def __init__(self, path: Path, case: str | None, activity: str | None, timestamp: str | None) -> None:
        self.path = path
        self.given_case = case
        self.case_key = case or XES_CASE
        self.trace_key = self.case_key[5:] if self.case_key.startswith("case:") else self.case_key
        self.activity_key = activity or XES_ACTIVITY
        self.time_key = timestamp or XES_TIMESTAMP
        self.cases: list[Case] = []
        self.pending: list[Event] = []
        self.stamps: list[str] = []
        self.where: list[tuple[int, int]] = []
        self.left_out = _LeftOut(path)
        self.traces = 0  # traces closed so far, kept or not
        self.seen = 0  # events of the current trace, kept or not

    def event(self, attributes: dict[str, Any]) -> None:
        self.seen += 1
        name = attributes.pop(self.activity_key, None)
        stamp = attributes.pop(self.time_key, None)
        if name is None or not str(name).strip() or is_missing_time(stamp):
            missing = self.activity_key if name is None or not str(name).strip() else self.time_key
            self.left_out.add(missing, f"trace {self.traces + 1}, event {self.seen}")
            return
        self.pending.append(Event(str(name), 0.0, attributes))
        self.stamps.append(str(stamp))
        self.where.append((self.traces + 1, self.seen))

    def trace(self, attributes: dict[str, Any]) -> None:
        self.traces += 1
        number = self.traces
        case_id = attributes.pop(self.trace_key, None)
        if case_id is None:
            if self.given_case is not None:
                raise EventLogError(f"{self.path}: trace {number}: no {self.trace_key!r} attribute")
            case_id = f"trace {number}"
        if self.pending or not self.seen:  # a trace whose every event was left out is no case
            case = Case(str(case_id), self.pending, {f"case:{key}": value for key, value in attributes.items()})
            self.cases.append(case)
        self.pending = []
        self.seen = 0

    def log(self) -> EventLog:
        self.left_out.check(len(self.stamps))
        if not self.cases:
            raise EventLogError(f"{self.path}: no traces found (is this a XES event log?)")
        where = self.where
        times = parse_timestamps(
            self.stamps,
            row=lambda index: f"{self.path}: trace {where[index][0]}, event {where[index][1]}, {self.time_key!r}",
        )
        position = 0
        for one in self.cases:
            for event in one.events:
                event.timestamp = times[position]
                position += 1
        columns = {"case": self.case_key, "activity": self.activity_key, "timestamp": self.time_key}
        return self.left_out.into(EventLog(_finish(_merge(self.cases)), columns, "xes"))


def _read_xes(
    path: Path,
    stream: IO[bytes],
    counted: _Counted,
    size: int,
    case: str | None,
    activity: str | None,
    timestamp: str | None,
    progress: Progress,
) -> EventLog:
    try:
        builder = _XesBuilder(path, case, activity, timestamp)
        _scan_xes(stream, counted, size, builder, progress)
    except _Unusual:
        stream.close()
        stream, counted, size, _ = _open(path)
        builder = _XesBuilder(path, case, activity, timestamp)
        _parse_xes(path, stream, counted, size, builder, progress)
    finally:
        stream.close()
    log = builder.log()
    progress("read", 1.0)
    return log


def _scan_xes(stream: IO[bytes], counted: _Counted, size: int, builder: _XesBuilder, progress: Progress) -> None:
    """Fast path: a regular-expression scan of well-formed XES as common tools write it.

    Every ``<`` after the first trace must start a tag the scanner reads; otherwise (comments, CDATA, processing
    instructions, attributes in another order, a non-UTF-8 encoding) it raises ``_Unusual`` and the caller parses
    the file with lxml instead. Nested attributes (children of an attribute) are skipped, as in the lxml path.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    buffer = ""
    started = False
    depth = 0
    where = 0  # 0 outside traces, 1 in a trace, 2 in an event
    trace: dict[str, Any] = {}
    event: dict[str, Any] = {}
    while True:
        block = stream.read(_BLOCK)
        final = not block
        try:
            buffer += decoder.decode(block, final)
        except UnicodeDecodeError:
            raise _Unusual from None
        if not started:
            first = buffer.find("<trace")
            if first < 0 and not final:
                continue
            head = buffer[: max(first, 0)]
            declared = _ENCODING.search(head[:200])
            if "<!DOCTYPE" in head or (declared and declared.group(1).lower().replace("_", "-") not in _UTF8):
                raise _Unusual
            if first < 0:
                return
            buffer = buffer[first:]
            started = True
        cut = len(buffer) if final else buffer.rfind("</trace>")
        if cut < 0:
            continue
        if not final:
            cut += len("</trace>")
        part, buffer = buffer[:cut], buffer[cut:]
        tokens = _TOKEN.findall(part)
        if len(tokens) != part.count("<"):
            raise _Unusual
        for closing, boundary, closed, kind, key, value, empty in tokens:
            if boundary:
                if depth:
                    raise _Unusual
                if boundary == "event":
                    if closing:
                        if where != 2:
                            raise _Unusual
                        builder.event(event)
                        where = 1
                    else:
                        if where != 1:
                            raise _Unusual
                        event = {}
                        where = 2
                elif closing:
                    if where != 1:
                        raise _Unusual
                    builder.trace(trace)
                    where = 0
                else:
                    if where != 0:
                        raise _Unusual
                    trace = {}
                    where = 1
            elif closed:
                if depth:
                    depth -= 1
            elif depth:
                if not empty:
                    depth += 1
            else:
                if not empty:
                    depth = 1
                if kind in _SKIPPED or not where:
                    continue
                if "&" in key or "&" in value:
                    key, value = html.unescape(key), html.unescape(value)
                (event if where == 2 else trace)[key] = value if kind == "string" else _typed(kind, value)
        progress("read", min(counted.count / max(size, 1), 1.0) * 0.9)
        if final:
            if where or depth:
                raise _Unusual  # truncated: let the general parser report where
            return


_UTF8 = ("utf-8", "utf8", "us-ascii", "ascii")
_SKIPPED = ("list", "container", "values")


def _parse_xes(
    path: Path, stream: IO[bytes], counted: _Counted, size: int, builder: _XesBuilder, progress: Progress
) -> None:
    """General path: lxml ``iterparse`` (no network, no entity expansion); nested attributes are skipped."""
    from lxml import etree

    parser = etree.iterparse(
        stream,
        events=("end",),
        tag=("{*}event", "{*}trace"),
        huge_tree=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
    )
    try:
        for _, element in parser:
            if _local(element.tag) == "event":
                parent = element.getparent()
                if parent is None or _local(parent.tag) != "trace":
                    continue
                builder.event(_attributes(element))
                element.clear()
                continue
            builder.trace(_attributes(element))
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
            if builder.traces % 2000 == 0:
                progress("read", min(counted.count / max(size, 1), 1.0) * 0.9)
    except etree.XMLSyntaxError as exc:
        raise EventLogError(f"{path}: not a readable XES file: {exc}") from None


def _merge(cases: list[Case]) -> list[Case]:
    """Traces that share an identifier form one case (first appearance keeps its place)."""
    by_id: dict[str, Case] = {}
    for one in cases:
        found = by_id.get(one.case_id)
        if found is None:
            by_id[one.case_id] = one
        else:
            found.events.extend(one.events)
            for key, value in one.attributes.items():
                found.attributes.setdefault(key, value)
    return list(by_id.values())


# ------------------------------------------------------------------------------------------------- one prefix


def events_from_records(records: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> list[Event]:
    """Events of one open case from JSON-like records ``{"activity", "timestamp", …attributes}``, sorted by time.

    The activity and timestamp may also be given under the model's column names (``columns``). Raises
    ``EventLogError`` for a record without an activity or with an unreadable timestamp.
    """
    activity_keys = ("activity", columns.get("activity", "activity"))
    time_keys = ("timestamp", columns.get("timestamp", "timestamp"))
    skip = {*activity_keys, *time_keys}
    events: list[Event] = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            raise EventLogError(f"event {number}: expected an object, got {type(record).__name__}")
        name = next((record[key] for key in activity_keys if record.get(key) is not None), None)
        if name is None:
            raise EventLogError(f"event {number}: no activity")
        stamp = next((record[key] for key in time_keys if record.get(key) is not None), None)
        if stamp is None:
            raise EventLogError(f"event {number}: no timestamp")
        try:
            seconds = parse_timestamp(stamp)
        except ValueError:
            raise EventLogError(f"event {number}: cannot read timestamp {stamp!r}") from None
        attributes = {key: value for key, value in record.items() if key not in skip and value is not None}
        events.append(Event(str(name), seconds, attributes))
    events.sort(key=attrgetter("timestamp"))
    return events
