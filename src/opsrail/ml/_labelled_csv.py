"""Labelled texts from a CSV file as help desks and spreadsheets export them.

Plain or gzip (by the magic bytes); UTF-8 with or without a byte-order mark, else Windows-1252 (what spreadsheet
programs on Windows write as "CSV"), else Latin-1; the delimiter is the most frequent of ``, ; TAB |`` in the header
line. A column is found by its exact name, else by the one name that matches ignoring case and surrounding spaces.
The text may span several columns, named together with commas (``Summary,Description``, as Jira and ServiceNow
export a ticket's title and body): their cells are joined, in that order, with a line break (``TEXT_JOINER``).
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opsrail.ml._eventlog import CSV_DELIMITERS, CSV_ENCODINGS, allow_long_csv_fields

log = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """The training (or evaluation) file cannot train a classifier: missing column, no rows, a single class, …"""


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]
    encoding: str
    delimiter: str
    skipped: int
    """Rows without a label value (left out)."""


def _decoded(path: Path) -> tuple[str, str]:
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else path.open("rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise TrainingDataError(f"cannot read {path}: {exc}") from None
    for encoding in CSV_ENCODINGS:  # Latin-1, the last, reads any byte
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("Latin-1 decodes any byte")  # pragma: no cover


TEXT_JOINER = "\n"
"""What joins the cells of a text that spans several columns (training and prediction alike)."""


def text_columns(spec: str) -> list[str]:
    """The column names of a text spec: one name, or several joined with commas (``Summary,Description``)."""
    names = [name.strip() for name in spec.split(",")]
    return [name for name in names if name] or [spec]


def _column(header: list[str], name: str) -> int | None:
    if name in header:
        return header.index(name)
    loose = [i for i, h in enumerate(header) if h.strip().casefold() == name.strip().casefold()]
    return loose[0] if len(loose) == 1 else None


def _text_at(header: list[str], spec: str) -> tuple[list[int], list[str]]:
    """The indices of the text column(s), and the names not found. A column whose own name holds a comma wins."""
    whole = _column(header, spec)
    if whole is not None:
        return [whole], []
    found = [(name, _column(header, name)) for name in text_columns(spec)]
    return [at for _, at in found if at is not None], [name for name, at in found if at is None]


@dataclass(frozen=True)
class LabelledRecords:
    """The records of a labelled CSV, read lazily: ``(number, text, label)``, numbered from 2 (the header is 1);
    a missing cell reads as an empty string."""

    encoding: str
    delimiter: str
    _reader: Iterator[list[str]]
    _text_at: list[int]
    _label_at: int

    def __iter__(self) -> Iterator[tuple[int, str, str]]:
        width = max(*self._text_at, self._label_at) + 1
        single = self._text_at[0] if len(self._text_at) == 1 else None
        for number, row in enumerate(self._reader, start=2):
            if not row:
                continue  # a blank line
            if len(row) < width:
                row = row + [""] * (width - len(row))
            if single is not None:
                text = row[single]
            else:
                text = TEXT_JOINER.join(cell for cell in (row[at] for at in self._text_at) if cell.strip())
            yield number, text, row[self._label_at].strip()


def labelled_records(path: Path, *, text: str, label: str) -> LabelledRecords:
    """Open a labelled CSV (see the module docstring); a missing column is a ``TrainingDataError`` that lists the
    file's columns."""
    allow_long_csv_fields()
    content, encoding = _decoded(path)
    if encoding != CSV_ENCODINGS[0]:
        log.info("%s is not UTF-8; read as %s", path, encoding)
    first_line = content.split("\n", 1)[0]
    delimiter = max(CSV_DELIMITERS, key=first_line.count)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise TrainingDataError(f"{path} is empty: expected a header row with columns {text!r} and {label!r}")
    text_at, missing = _text_at(header, text)
    label_at = _column(header, label)
    if missing or label_at is None:
        missing += [label] if label_at is None else []
        raise TrainingDataError(
            f"{path} has no column {' or '.join(repr(m) for m in missing)}; its columns are "
            + ", ".join(repr(h) for h in header)
        )
    return LabelledRecords(encoding, delimiter, reader, text_at, label_at)


def read_labelled_texts(path: Path, *, text: str, label: str) -> LabelledTexts:
    """Texts and labels from a CSV (see the module docstring); rows with an empty label are left out and counted."""
    records = labelled_records(path, text=text, label=label)
    texts, labels, skipped = [], [], 0
    for _, body, value in records:
        if value:
            texts.append(body)
            labels.append(value)
        else:
            skipped += 1
    if not texts:
        raise TrainingDataError(f"{path} has a header but no rows with a {label!r} value")
    return LabelledTexts(texts, labels, records.encoding, records.delimiter, skipped)


def read_labelled_csv(path: Path, *, text: str, label: str) -> tuple[list[str], list[str]]:
    """Texts and labels only (see ``read_labelled_texts``)."""
    read = read_labelled_texts(path, text=text, label=label)
    return read.texts, read.labels
