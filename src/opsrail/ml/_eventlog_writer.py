"""Writing event logs: CSV (plain or gzip), XES (plain or gzip) or Parquet, one case at a time.

The layout is the one process-mining tools read without settings (pm4py's column names, IEEE 1849 XES) and the one
``read_event_log`` reads by default, so an exported log trains a model with no column options:

* CSV and Parquet: one row an event; ``case:concept:name`` (the case), ``case:<name>`` for each case attribute,
  ``concept:name`` (the activity), ``time:timestamp`` and the event attributes;
* XES: a trace a case, its attributes typed (``string``, ``int``, ``float``, ``boolean``, ``date``).

Values are ``str``, ``int``, ``float``, ``bool``, timezone-aware ``datetime`` or ``None`` (left out). The file is
written beside its destination under a temporary name and moved into place when complete, so a failed export
leaves no half-written log; Parquet buffers the rows in column chunks and writes at the end.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast
from xml.sax.saxutils import quoteattr

__all__ = ["FORMATS", "ColumnType", "EventLogWriter", "format_of", "writing_event_log"]

FORMATS = ("csv", "xes", "parquet")
ColumnType = Literal["string", "int", "float", "boolean", "date"]
_PARQUET_CHUNK = 50_000


def format_of(path: Path, given: str | None = None) -> tuple[str, bool]:
    """The format (``csv``, ``xes``, ``parquet``) and whether to gzip: ``given``, else from the file's suffixes."""
    name = path.name.lower()
    zipped = name.endswith(".gz")
    stem = name.removesuffix(".gz")
    if given is not None:
        if given not in FORMATS:
            raise ValueError(f"unknown format {given!r}; use one of {', '.join(FORMATS)}")
        if given == "parquet" and zipped:
            raise ValueError("a Parquet file is compressed inside; name it without .gz")
        return given, zipped
    for fmt in FORMATS:
        if stem.endswith(f".{fmt}"):
            if fmt == "parquet" and zipped:
                raise ValueError("a Parquet file is compressed inside; name it without .gz")
            return fmt, zipped
    raise ValueError(f"cannot tell the format from {path.name!r}; end it in .csv, .csv.gz, .xes, .xes.gz or .parquet")


class EventLogWriter(Protocol):
    def case(self, case_id: str, attributes: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> None:
        """Append one case: its attributes (the declared case columns) and its events, each with ``concept:name``,
        ``time:timestamp`` and the declared event columns."""
        ...


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _CsvWriter:
    def __init__(self, stream: IO[str], case_columns: Sequence[str], event_columns: Sequence[str]) -> None:
        self.case_columns = list(case_columns)
        self.event_columns = ["concept:name", "time:timestamp", *event_columns]
        # CRLF, as RFC 4180 has it: the writer then quotes a value holding a lone \r as well as one holding \n.
        self.writer = csv.writer(stream, lineterminator="\r\n")
        self.writer.writerow(["case:concept:name", *(f"case:{c}" for c in case_columns), *self.event_columns])

    def case(self, case_id: str, attributes: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> None:
        head = [case_id, *(_text(attributes.get(c)) for c in self.case_columns)]
        self.writer.writerows([*head, *(_text(event.get(c)) for c in self.event_columns)] for event in events)


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold (control characters, lone surrogates): dropped from values."""

_XES_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1849-2016" xes.features="" xmlns="http://www.xes-standard.org/">
  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
  <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
  <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
  <extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>
  <global scope="trace">
    <string key="concept:name" value="__INVALID__"/>
  </global>
  <global scope="event">
    <string key="concept:name" value="__INVALID__"/>
    <date key="time:timestamp" value="1970-01-01T00:00:00.000+00:00"/>
  </global>
  <classifier name="Activity" keys="concept:name"/>
"""


class _XesWriter:
    def __init__(
        self,
        stream: IO[str],
        case_columns: Mapping[str, ColumnType],
        event_columns: Mapping[str, ColumnType],
    ) -> None:
        self.stream = stream
        self.case_columns = dict(case_columns)
        self.event_columns = {"concept:name": "string", "time:timestamp": "date", **event_columns}
        stream.write(_XES_HEAD)

    @staticmethod
    def _attribute(key: str, kind: ColumnType, value: Any) -> str:
        text = _NOT_XML.sub("", _text(value))
        return f"<{kind} key={quoteattr(key)} value={quoteattr(text)}/>"

    def case(self, case_id: str, attributes: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> None:
        parts = ["  <trace>\n    ", self._attribute("concept:name", "string", case_id)]
        for key, kind in self.case_columns.items():
            value = attributes.get(key)
            if value is not None:
                parts += ["\n    ", self._attribute(key, kind, value)]
        for event in events:
            parts.append("\n    <event>")
            for key, kind in self.event_columns.items():
                value = event.get(key)
                if value is not None:
                    parts += ["\n      ", self._attribute(key, kind, value)]
            parts.append("\n    </event>")
        parts.append("\n  </trace>\n")
        self.stream.write("".join(parts))

    def close(self) -> None:
        self.stream.write("</log>\n")


class _ParquetWriter:
    def __init__(self, case_columns: Mapping[str, ColumnType], event_columns: Mapping[str, ColumnType]) -> None:
        import polars as pl  # loaded only when writing Parquet

        kinds = {
            "string": pl.String(),
            "int": pl.Int64(),
            "float": pl.Float64(),
            "boolean": pl.Boolean(),
            "date": pl.Datetime("ms", "UTC"),
        }
        self.case_columns = list(case_columns)
        self.event_columns = ["concept:name", "time:timestamp", *event_columns]
        self.schema = {
            "case:concept:name": kinds["string"],
            **{f"case:{name}": kinds[kind] for name, kind in case_columns.items()},
            "concept:name": kinds["string"],
            "time:timestamp": kinds["date"],
            **{name: kinds[kind] for name, kind in event_columns.items()},
        }
        self.names = list(self.schema)
        self.rows: list[list[Any]] = []
        self.frames: list[Any] = []

    def case(self, case_id: str, attributes: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> None:
        head = [case_id, *(attributes.get(c) for c in self.case_columns)]
        self.rows.extend([*head, *(event.get(c) for c in self.event_columns)] for event in events)
        if len(self.rows) >= _PARQUET_CHUNK:
            self._flush()

    def _flush(self) -> None:
        import polars as pl

        if self.rows:
            self.frames.append(pl.DataFrame(self.rows, schema=self.schema, orient="row"))
            self.rows = []

    def write(self, path: Path) -> None:
        import polars as pl

        self._flush()
        frame = pl.concat(self.frames) if self.frames else pl.DataFrame(schema=self.schema)
        frame.write_parquet(path, compression="zstd")


@contextmanager
def writing_event_log(
    path: Path,
    fmt: str,
    *,
    zipped: bool,
    case_columns: Mapping[str, ColumnType],
    event_columns: Mapping[str, ColumnType],
) -> Iterator[EventLogWriter]:
    """A writer for ``path``; the file appears (replacing any) only when the block ends without an error."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    partial = Path(temporary)
    try:
        if fmt == "parquet":
            parquet = _ParquetWriter(case_columns, event_columns)
            yield parquet
            parquet.write(partial)
        else:
            with partial.open("wb") as raw:
                binary = cast(
                    IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if zipped else raw
                )
                text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
                try:
                    if fmt == "csv":
                        yield _CsvWriter(text, list(case_columns), list(event_columns))
                    else:
                        xes = _XesWriter(text, case_columns, event_columns)
                        yield xes
                        xes.close()
                finally:
                    text.close()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
