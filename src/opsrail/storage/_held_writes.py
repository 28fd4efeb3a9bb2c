"""Applying the writes that steps held back (``opsrail.engine.hold``) inside the transaction saving their results.

Every held write but an audit entry is an object with ``apply(conn)``, made by the store it belongs to (a ledger
change, a decision record); a kind may also offer ``apply_many(conn, writes)`` to write many in a few statements.
Audit entries are kept apart and appended last, all at once: the chain's tail is read once, under the lock that
orders appenders, and the whole batch is linked from it.

Refusals are what a concurrent writer can cause: a primary or unique key taken meanwhile (``IntegrityError``) or a
record changed since it was read (``Conflict``). Anything else (the database is gone, the disk is full) fails the
transaction as any other error would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import sqlalchemy as sa

from opsrail.model import Conflict
from opsrail.storage._audit import HeldAuditEntry, append_entries

StepKey = tuple[str, str]
"""(run id, step id)."""


class HeldWrite(Protocol):
    def apply(self, conn: sa.Connection) -> object: ...


class HeldWriteRefused(Exception):
    """A held write could not be applied; the transaction is to be rolled back (and tried step by step)."""


def apply_held(conn: sa.Connection, held: Mapping[StepKey, Sequence[object]], *, isolate: bool) -> set[StepKey]:
    """Apply every step's held writes; returns the steps whose writes were refused and undone.

    Without ``isolate`` the first refusal raises :class:`HeldWriteRefused` (cheapest when nothing conflicts, the
    usual case); with it, each step's writes run in a savepoint, so a refused step is undone alone and its audit
    entries are dropped with it.
    """
    entries: list[HeldAuditEntry] = []
    refused: set[StepKey] = set()
    if not isolate:
        writes = [item for items in held.values() for item in items if not isinstance(item, HeldAuditEntry)]
        try:
            _apply(conn, writes)
        except (Conflict, sa.exc.IntegrityError) as exc:
            raise HeldWriteRefused(str(exc)) from exc
        entries = [item for items in held.values() for item in items if isinstance(item, HeldAuditEntry)]
    else:
        for key, items in held.items():
            writes = [item for item in items if not isinstance(item, HeldAuditEntry)]
            if writes:
                savepoint = conn.begin_nested()
                try:
                    _apply(conn, writes)
                except (Conflict, sa.exc.IntegrityError):
                    savepoint.rollback()
                    refused.add(key)
                    continue
                savepoint.commit()
            entries += [item for item in items if isinstance(item, HeldAuditEntry)]
    if entries:
        append_entries(conn, entries)
    return refused


def _apply(conn: sa.Connection, writes: Sequence[object]) -> None:
    """Apply writes of one kind together where the kind can (``apply_many``: a few multi-row statements)."""
    by_kind: dict[type, list[object]] = {}
    for write in writes:
        by_kind.setdefault(type(write), []).append(write)
    for kind, items in by_kind.items():
        many = getattr(kind, "apply_many", None)
        if many is not None:
            many(conn, items)
            continue
        for item in items:
            apply = getattr(item, "apply", None)
            if apply is None:
                raise TypeError(f"a held write this store cannot apply: {kind.__name__}")
            apply(conn)
