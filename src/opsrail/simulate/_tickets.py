"""The packaged sample of real help-desk tickets that simulated incidents take their text from.

``data/tickets_sample.csv`` holds 300 tickets (``Document``, ``Topic_group``) stratified by topic; see
``data/SOURCE.md`` for where they come from and under which licence.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

SAMPLE = "tickets_sample.csv"
TITLE_CHARS = 96


@dataclass(frozen=True, slots=True)
class Ticket:
    """One help-desk ticket: its text and the topic its publisher labelled it with."""

    text: str
    topic: str

    @property
    def title(self) -> str:
        """The opening words of the ticket, cut at a word boundary (the sample keeps title and body together)."""
        if len(self.text) <= TITLE_CHARS:
            return self.text
        head = self.text[:TITLE_CHARS]
        cut = head.rfind(" ")
        return head[:cut] if cut > TITLE_CHARS // 2 else head


def parse_tickets(text: str) -> tuple[Ticket, ...]:
    """Tickets from CSV text with the columns ``Document`` and ``Topic_group``; blank documents are skipped."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"Document", "Topic_group"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"the ticket sample lacks the columns {sorted(missing)}")
    found = tuple(
        Ticket(" ".join(row["Document"].split()), row["Topic_group"].strip())
        for row in reader
        if row["Document"] and row["Document"].strip()
    )
    if not found:
        raise ValueError("the ticket sample holds no tickets")
    return found


@cache
def load_tickets() -> tuple[Ticket, ...]:
    """The packaged sample, read once per process."""
    text = resources.files("opsrail.simulate").joinpath("data").joinpath(SAMPLE).read_text(encoding="utf-8")
    return parse_tickets(text)
