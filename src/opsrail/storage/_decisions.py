"""Decision tables, the model registry, decision policies and decision records, on SQLite and PostgreSQL.

A decision recorded while a step of a run is executing (a ``decide`` step) is held for the transaction that saves
the step's result (``opsrail.engine.hold``): the record and the outcome it produced commit together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from opsrail.engine import hold
from opsrail.model import Conflict, NotFound
from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, decision_policies, decision_records, decision_tables, models

_RECORD_TIMES = ("created_at", "reviewed_at")


class SqlDecisionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- tables ----------------------------------------------------------------------------------------

    def publish_table(
        self, name: str, version: int, document: str, filename: str | None, by: str | None, now: datetime
    ) -> bool:
        """Store a table version; False when that version exists with other content (versions never change)."""
        with write_transaction(self.engine) as conn:
            existing = conn.execute(
                sa.select(decision_tables.c.document).where(
                    decision_tables.c.name == name, decision_tables.c.version == version
                )
            ).scalar()
            if existing is not None:
                return bool(existing == document)
            conn.execute(
                decision_tables.insert().values(
                    name=name, version=version, document=document, filename=filename, published_at=now, published_by=by
                )
            )
        return True

    def table_document(self, name: str, version: int | None = None) -> tuple[int, str] | None:
        query = sa.select(decision_tables.c.version, decision_tables.c.document).where(decision_tables.c.name == name)
        if version is not None:
            query = query.where(decision_tables.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(decision_tables.c.version.desc()).limit(1)).first()
        return (int(row[0]), str(row[1])) if row else None

    def latest_versions(self, name: str) -> tuple[int | None, int | None]:
        """The latest table version and the latest model version of a decision name, in one round trip."""
        with self.engine.connect() as conn:
            row = conn.execute(_LATEST_VERSIONS, {"name": name}).one()
        return (int(row[0]) if row[0] is not None else None, int(row[1]) if row[1] is not None else None)

    def latest_table_version(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(decision_tables.c.version)).where(decision_tables.c.name == name)
            ).scalar()
        return int(value) if value is not None else None

    def list_tables(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    decision_tables.c.name,
                    sa.func.max(decision_tables.c.version).label("latest"),
                    sa.func.count().label("versions"),
                    sa.func.max(decision_tables.c.published_at).label("published_at"),
                ).group_by(decision_tables.c.name)
            ).all()
        return [
            {"name": r[0], "kind": "table", "latest": int(r[1]), "versions": int(r[2]), "published_at": as_utc(r[3])}
            for r in rows
        ]

    # -- models ----------------------------------------------------------------------------------------

    def add_model(self, row: dict[str, Any]) -> int:
        """Register the next version of a model; returns the version."""
        with write_transaction(self.engine) as conn:
            latest = conn.execute(sa.select(sa.func.max(models.c.version)).where(models.c.name == row["name"])).scalar()
            version = int(latest or 0) + 1
            conn.execute(models.insert().values(**row, version=version))
        return version

    def model_row(self, name: str, version: int | None = None, *, with_artifact: bool = True) -> dict[str, Any] | None:
        columns = [c for c in models.c if with_artifact or c.name not in ("artifact", "cases")]
        query = sa.select(*columns).where(models.c.name == name)
        if version is not None:
            query = query.where(models.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(models.c.version.desc()).limit(1)).mappings().first()
        if row is None:
            return None
        found = _plain_keys(row)
        found["created_at"] = as_utc(found["created_at"])
        return found

    def model_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every registered version without its artifact, newest first within each name: ``name``, ``version``,
        ``task``, ``created_at``, ``created_by``, the training data's hash and source, ``metrics``, ``pruned_at`` and
        ``bytes`` (what its artifact and similar-case index take)."""
        size = sa.func.length(models.c.artifact) + sa.func.coalesce(sa.func.length(models.c.cases), 0)
        query = sa.select(
            models.c.name,
            models.c.version,
            models.c.task,
            models.c.created_at,
            models.c.created_by,
            models.c.data_sha256,
            models.c.data_source,
            models.c.metrics,
            models.c.pruned_at,
            size.label("bytes"),
        )
        if name is not None:
            query = query.where(models.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(models.c.name, models.c.version.desc())).mappings().all()
        return [
            {
                **_plain_keys(r),
                "created_at": as_utc(r["created_at"]),
                "pruned_at": as_utc(r["pruned_at"]) if r["pruned_at"] is not None else None,
                "bytes": int(r["bytes"] or 0),
            }
            for r in rows
        ]

    def prune_model_versions(self, versions: Sequence[tuple[str, int]], at: datetime, by: str | None) -> None:
        """Empty the artifact and similar-case index of these versions; their registrations stay."""
        with write_transaction(self.engine) as conn:
            for name, version in versions:
                conn.execute(
                    models.update()
                    .where(models.c.name == name, models.c.version == version, models.c.pruned_at.is_(None))
                    .values(artifact=b"", cases=None, pruned_at=at, pruned_by=by)
                )

    def latest_model_version(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(models.c.version)).where(models.c.name == name)).scalar()
        return int(value) if value is not None else None

    def list_models(self) -> list[dict[str, Any]]:
        """The latest version of each model (its metrics included) and how many versions it has."""
        latest = (
            sa.select(models.c.name, sa.func.max(models.c.version).label("latest"), sa.func.count().label("versions"))
            .group_by(models.c.name)
            .subquery()
        )
        query = (
            sa.select(
                models.c.name,
                models.c.version,
                models.c.task,
                models.c.metrics,
                models.c.created_at,
                models.c.data_source,
                latest.c.versions,
            )
            .join(latest, sa.and_(models.c.name == latest.c.name, models.c.version == latest.c.latest))
            .order_by(models.c.name)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {
                "name": r["name"],
                "kind": "model",
                "task": r["task"],
                "latest": r["version"],
                "versions": int(r["versions"]),
                "metrics": r["metrics"],
                "created_at": as_utc(r["created_at"]),
                "data_source": r["data_source"],
            }
            for r in rows
        ]

    # -- policies --------------------------------------------------------------------------------------

    def set_policy(self, name: str, policy: dict[str, Any], by: str | None, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            updated = conn.execute(
                decision_policies.update()
                .where(decision_policies.c.name == name)
                .values(policy=policy, updated_at=now, updated_by=by)
            )
            if updated.rowcount == 0:
                conn.execute(decision_policies.insert().values(name=name, policy=policy, updated_at=now, updated_by=by))

    def policies(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(_POLICIES).all()
        return {str(r[0]): dict(r[1]) for r in rows}

    # -- records ---------------------------------------------------------------------------------------

    def add_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Insert a decision record; one with the same idempotency key already there is returned instead.

        Inside a step the insert is held for the step's commit and the record is returned as it will read back; a
        record with the same key found then (the unique key refuses the insert) has the step executed again, and
        that execution, not holding, returns the existing record from here."""
        if hold(HeldDecisionRecord(dict(record))):
            return _as_read(record)
        key = record.get("idempotency_key")
        with write_transaction(self.engine) as conn:
            if key is not None:
                existing = (
                    conn.execute(sa.select(decision_records).where(decision_records.c.idempotency_key == key))
                    .mappings()
                    .first()
                )
                if existing is not None:
                    return _record(existing)
            conn.execute(decision_records.insert().values(**record))
        return self.record(record["id"])

    def record(self, record_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(decision_records).where(decision_records.c.id == record_id)).mappings().first()
        if row is None:
            raise NotFound(f"no decision record {record_id!r}", hint="list them with `opsrail decisions records list`")
        return _record(row)

    def record_for_step(self, run_id: str, step_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(decision_records)
                    .where(decision_records.c.run_id == run_id, decision_records.c.step_id == step_id)
                    .order_by(decision_records.c.created_at.desc(), decision_records.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return _record(row) if row else None

    def records(
        self,
        *,
        decision: str | None = None,
        status: str | None = None,
        run_id: str | None = None,
        source: str | None = None,
        tier: str | None = None,
        version: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        query = sa.select(decision_records)
        for column, value in (
            (decision_records.c.decision, decision),
            (decision_records.c.status, status),
            (decision_records.c.run_id, run_id),
            (decision_records.c.source, source),
            (decision_records.c.tier, tier),
            (decision_records.c.version, version),
        ):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(decision_records.c.created_at.desc(), decision_records.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_record(r) for r in rows]

    def each_record(self, columns: Sequence[str], page: int = 2000) -> Iterator[dict[str, Any]]:
        """These columns (and ``id``, ``created_at``) of every record, oldest first, read ``page`` rows at a time
        (keyset on creation time and id); values as stored."""
        selected = [decision_records.c[name] for name in dict.fromkeys(["id", "created_at", *columns])]
        after: tuple[datetime, str] | None = None
        while True:
            query = sa.select(*selected).order_by(decision_records.c.created_at, decision_records.c.id)
            if after is not None:
                at, record_id = after
                query = query.where(
                    sa.or_(
                        decision_records.c.created_at > at,
                        sa.and_(decision_records.c.created_at == at, decision_records.c.id > record_id),
                    )
                )
            with self.engine.connect() as conn:
                rows = conn.execute(query.limit(page)).mappings().all()
            for row in rows:
                yield dict(row)
            if len(rows) < page:
                return
            after = (rows[-1]["created_at"], rows[-1]["id"])

    def settled_since(self, decision: str, since: datetime | None, limit: int = 5000) -> list[dict[str, Any]]:
        """Records of a decision that a person settled (accepted, overrode, rejected) after ``since``, oldest first."""
        query = _SETTLED_SINCE[self.engine.dialect.name == "sqlite", since is not None]
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"decision": decision, "since": since, "limit": limit}).mappings().all()
        return [_record(r) for r in rows]

    def settle_record(
        self,
        record_id: str,
        *,
        status: str,
        by: str | None,
        at: datetime,
        final_outputs: dict[str, Any] | None,
        reason: str | None,
        expect: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """Record who accepted or overrode a decision; ``expect`` guards against settling it twice."""
        with write_transaction(self.engine) as conn:
            query = decision_records.update().where(decision_records.c.id == record_id)
            if expect:
                query = query.where(decision_records.c.status.in_(expect))
            result = conn.execute(
                query.values(status=status, reviewed_by=by, reviewed_at=at, final_outputs=final_outputs, reason=reason)
            )
        if result.rowcount == 0:
            current = self.record(record_id)
            settled = f" by {current['reviewed_by']}" if current.get("reviewed_by") else ""
            may_override = current["status"] in ("decided", "accepted") and status != "overridden"
            raise Conflict(
                f"decision record {record_id} is {current['status']}{settled}",
                hint="a settled decision is not settled again" + ("; override it instead" if may_override else ""),
            )
        return self.record(record_id)

    def set_outcome(self, run_id: str, outcome: dict[str, Any]) -> int:
        with write_transaction(self.engine) as conn:
            result = conn.execute(
                decision_records.update().where(decision_records.c.run_id == run_id).values(outcome=outcome)
            )
        return int(result.rowcount)


# Statements of the decide path, built once so SQLAlchemy reuses their compiled form.
_LATEST_VERSIONS = sa.select(
    sa.select(sa.func.max(decision_tables.c.version))
    .where(decision_tables.c.name == sa.bindparam("name"))
    .scalar_subquery(),
    sa.select(sa.func.max(models.c.version)).where(models.c.name == sa.bindparam("name")).scalar_subquery(),
)
_POLICIES = sa.select(decision_policies.c.name, decision_policies.c.policy)


def _settled_since(sqlite: bool, since: bool) -> sa.Select[Any]:
    named: sa.ColumnElement[Any] = decision_records.c.decision
    if sqlite:
        # Without statistics SQLite walks every record of the decision (its index leads with the name) and
        # filters the few settled ones; the unary plus keeps it on the status index, which finds just those.
        named = sa.literal_column("+decision_records.decision", sa.String)
    query = sa.select(decision_records).where(
        named == sa.bindparam("decision"),
        decision_records.c.status.in_(("accepted", "overridden", "rejected")),
        decision_records.c.reviewed_at.is_not(None),
    )
    if since:
        query = query.where(decision_records.c.reviewed_at > sa.bindparam("since"))
    return query.order_by(decision_records.c.reviewed_at, decision_records.c.id).limit(sa.bindparam("limit"))


_SETTLED_SINCE = {(sqlite, since): _settled_since(sqlite, since) for sqlite in (True, False) for since in (True, False)}


@dataclass(frozen=True, slots=True)
class HeldDecisionRecord:
    """A decision record written by :meth:`apply` inside the caller's write transaction."""

    record: dict[str, Any]

    def apply(self, conn: sa.Connection) -> None:
        conn.execute(_INSERT_RECORD, self.record)

    @staticmethod
    def apply_many(conn: sa.Connection, records: Sequence[HeldDecisionRecord]) -> None:
        conn.execute(_INSERT_RECORD, [r.record for r in records])


_INSERT_RECORD = decision_records.insert()
_JSON_COLUMNS = frozenset(c.name for c in decision_records.c if isinstance(c.type, sa.JSON))


def _as_read(record: dict[str, Any]) -> dict[str, Any]:
    """The record as ``record()`` will read it back: every column, JSON columns through JSON, times in UTC."""
    found: dict[str, Any] = dict.fromkeys((c.name for c in decision_records.c), None)
    for name, value in record.items():
        found[name] = orjson.loads(orjson.dumps(value)) if name in _JSON_COLUMNS else value
    for name in _RECORD_TIMES:
        found[name] = as_utc(found[name])
    return found


def _plain_keys(row: sa.RowMapping) -> dict[str, Any]:
    # Mapping keys are SQLAlchemy's quoted_name, a str subclass that JSON encoders such as orjson refuse.
    return {str(key): value for key, value in row.items()}


def _record(row: sa.RowMapping) -> dict[str, Any]:
    found = _plain_keys(row)
    for name in _RECORD_TIMES:
        found[name] = as_utc(found[name])
    return found
