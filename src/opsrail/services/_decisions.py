"""Use cases of the decision layer: publish and evaluate decision tables, train and serve models, route each
decision by its tier and confidence, and keep a decision record of every decision, machine or human.

A ``decide`` step in a playbook names a decision table or a model. The service evaluates it, finds similar
cases and approved knowledge, records the decision, and answers the engine with the outputs (the decision acts)
or a :class:`~opsrail.engine.ReviewNeeded` (a person must confirm it first: low confidence, an approval tier,
or an advisory tier). When that person decides the task, the record is settled with who accepted or overrode it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from opsrail.decisions import (
    CompiledTable,
    DecisionTable,
    compile_table,
    load_table,
    override_problems,
    run_table_tests,
)
from opsrail.engine import CallContext, OperationFailed, ReviewNeeded
from opsrail.governance import redact
from opsrail.knowledge import (
    Document,
    ExtractiveSummarizer,
    Hit,
    KnowledgeIndex,
    Summarizer,
    SummaryRequest,
    load_markdown_folder,
)
from opsrail.ml import TEXT_JOINER, Prediction, PredictsMany, Progress, TrainedModel, no_progress
from opsrail.model import Clock, Conflict, FieldError, IdFactory, InvalidInput, NotFound, OpsrailError
from opsrail.services._audit import Auditor, not_audited
from opsrail.services._automation import AutomationService
from opsrail.services._decision_policies import DEFAULT_POLICY, DecisionPolicy, load_policies, parse_policy, route
from opsrail.services._model_training import TASKS, case_documents, file_error, train
from opsrail.services._override_checks import model_override_problems, override_hint
from opsrail.services._record_check import CHECKED_COLUMNS, audited_decisions, check_records, inputs_digest

log = logging.getLogger("opsrail.decisions")

_SIMILAR_CASES = 5
CATALOG_FRESH_S = 1.0
"""How long a process trusts what it read of the decision catalog and of the settled cases (seconds)."""
_KNOWLEDGE_HITS = 3


class DecisionStore(Protocol):
    def publish_table(
        self, name: str, version: int, document: str, filename: str | None, by: str | None, now: Any
    ) -> bool: ...

    def table_document(self, name: str, version: int | None = None) -> tuple[int, str] | None: ...

    def latest_table_version(self, name: str) -> int | None: ...

    def latest_versions(self, name: str) -> tuple[int | None, int | None]: ...

    def list_tables(self) -> list[dict[str, Any]]: ...

    def add_model(self, row: dict[str, Any]) -> int: ...

    def model_row(
        self, name: str, version: int | None = None, *, with_artifact: bool = True
    ) -> dict[str, Any] | None: ...

    def latest_model_version(self, name: str) -> int | None: ...

    def model_versions(self, name: str | None = None) -> list[dict[str, Any]]: ...

    def prune_model_versions(self, versions: Sequence[tuple[str, int]], at: Any, by: str | None) -> None: ...

    def list_models(self) -> list[dict[str, Any]]: ...

    def set_policy(self, name: str, policy: dict[str, Any], by: str | None, now: Any) -> None: ...

    def policies(self) -> dict[str, dict[str, Any]]: ...

    def add_record(self, record: dict[str, Any]) -> dict[str, Any]: ...

    def record(self, record_id: str) -> dict[str, Any]: ...

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
    ) -> list[dict[str, Any]]: ...

    def settled_since(self, decision: str, since: Any, limit: int = 5000) -> list[dict[str, Any]]: ...

    def each_record(self, columns: Sequence[str]) -> Iterator[dict[str, Any]]: ...

    def settle_record(
        self,
        record_id: str,
        *,
        status: str,
        by: str | None,
        at: Any,
        final_outputs: dict[str, Any] | None,
        reason: str | None,
        expect: tuple[str, ...] | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Evaluation:
    """What a table or model answered, before routing."""

    source: str  # "table" or "model"
    name: str
    version: int
    outputs: dict[str, Any]
    matched_rules: list[str]
    confidence: float
    accepted: bool
    explanation: list[dict[str, Any]]
    query_text: str
    text_keys: tuple[str, ...] = ()  # the inputs a text model read its text from ("text" or its training columns)


class DecisionService:
    def __init__(
        self,
        store: DecisionStore,
        automation: AutomationService,
        clock: Clock,
        ids: IdFactory,
        *,
        knowledge_dir: Path | None = None,
        summarizer: Summarizer | None = None,
        redact_fields: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.automation = automation
        self.clock = clock
        self.ids = ids
        self.knowledge_dir = knowledge_dir
        self.summarizer: Summarizer = summarizer or ExtractiveSummarizer()
        self.redact_fields = tuple(redact_fields)
        self._tables: dict[tuple[str, int], CompiledTable] = {}
        self._models: dict[tuple[str, int], tuple[TrainedModel, KnowledgeIndex | None]] = {}
        self._knowledge: KnowledgeIndex | None = None
        # Past decisions people settled, per decision name: (index, the latest review time it holds).
        self._past: dict[str, tuple[KnowledgeIndex, Any]] = {}
        self._lock = threading.Lock()
        # What was last read of the catalog (latest versions per name, the policies) and when the settled cases
        # were last looked for, each with the monotonic time it is trusted until. Writes through this service
        # forget them at once; other processes' writes are seen within CATALOG_FRESH_S.
        self._versions_read: dict[str, tuple[float, tuple[int | None, int | None]]] = {}
        self._policies_read: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._past_checked: dict[str, float] = {}
        self.audit: Auditor = not_audited
        # Told when governance needs people's attention (a demotion): ``alert(kind, subject, details)``.
        self.alerts: list[Callable[[str, str, dict[str, Any]], None]] = []
        automation.review_observers.append(self._task_settled)
        automation.value_checks.append(self._check_review_value)

    # -- tables ----------------------------------------------------------------------------------------

    @staticmethod
    def validate_table_file(path: Path) -> DecisionTable:
        return load_table(_read(path), str(path))

    @staticmethod
    def test_table_file(path: Path) -> tuple[DecisionTable, list[Any]]:
        table = load_table(_read(path), str(path))
        return table, list(run_table_tests(table))

    def describe(self, name: str, version: int | None = None) -> dict[str, Any]:
        """A table's rules, or a model's registration, by decision name."""
        if self.store.table_document(name, version) is not None:
            table, document = self.table(name, version)
            return {
                "kind": "table",
                "name": table.name,
                "version": table.version,
                "description": table.description,
                "hit_policy": table.hit_policy,
                "inputs": {
                    name: {
                        "type": spec.type,
                        "required": spec.required,
                        "default": spec.default,
                        "description": spec.description,
                    }
                    for name, spec in table.inputs.items()
                },
                "outputs": {
                    name: {
                        "type": spec.type,
                        "default": spec.default if spec.has_default else None,
                        "aggregate": spec.aggregate
                        or (table.collect.aggregate if table.collect and table.hit_policy == "collect" else None),
                        "description": spec.description,
                    }
                    for name, spec in table.outputs.items()
                },
                "rules": [
                    {"id": r.id, "when": r.when, "then": dict(r.then), "priority": r.priority} for r in table.rules
                ],
                "tests": len(table.tests),
                "document": document,
                "policy": self.policy(name).model_dump(mode="json"),
            }
        try:
            info = self.model_info(name, version)
        except NotFound as missing:
            if version is not None and self.store.table_document(name, None) is not None:
                raise NotFound(
                    f"decision table {name!r} has no version {version}", hint=f"`opsrail decisions show {name}`"
                ) from None
            if version is not None and self.store.latest_model_version(name) is not None:
                raise missing from None  # the model exists, not in that version
            raise NotFound(
                f"no decision table or model named {name!r}", hint="`opsrail decisions list` names them"
            ) from None
        return {"kind": "model", **info, "policy": self.policy(name).model_dump(mode="json")}

    def publish_table(self, path: Path, by: str | None = None) -> DecisionTable:
        document = _read(path)
        return self.publish_table_text(document, str(path), by)

    def publish_table_text(self, document: str, source: str, by: str | None = None) -> DecisionTable:
        table = load_table(document, source)
        failing = [o for o in run_table_tests(table) if not o.passed]
        if failing:
            raise InvalidInput(
                f"{source}: {len(failing)} of the table's own tests fail",
                hint="run `opsrail decisions test FILE` to see them; a table is published only when its tests pass",
            )
        if self.store.latest_model_version(table.name) is not None:
            raise Conflict(f"a model is named {table.name!r} already", hint="decision names are shared: pick another")
        if not self.store.publish_table(table.name, table.version, document, source, by, self.clock.now()):
            raise Conflict(
                f"{table.name} version {table.version} is published already with other content",
                hint="published versions never change: raise `version` in the file",
            )
        self._forget_catalog()
        self.audit(by, "decision_table.published", f"{table.name}@{table.version}", {"source": source})
        return table

    def table(self, name: str, version: int | None = None) -> tuple[DecisionTable, str]:
        found = self.store.table_document(name, version)
        if found is None:
            raise NotFound(f"no decision table {name!r}" + (f" version {version}" if version else ""))
        return load_table(found[1], f"{name}@{found[0]}"), found[1]

    def _compiled(self, name: str, version: int | None) -> CompiledTable | None:
        # Published versions never change, so a compiled version is cached for good; only the number of the
        # latest version is read each time, so a newly published version answers at once.
        wanted = version or self.store.latest_table_version(name)
        if wanted is None:
            return None
        key = (name, wanted)
        compiled = self._tables.get(key)
        if compiled is None:
            found = self.store.table_document(name, wanted)
            if found is None:
                return None
            compiled = compile_table(load_table(found[1], f"{name}@{found[0]}"))
            self._tables[key] = compiled
        return compiled

    def catalog(self) -> list[dict[str, Any]]:
        """Every decision by name: published tables and registered models, with their latest versions."""
        policies = self.store.policies()
        found = self.store.list_tables() + self.store.list_models()
        for item in found:
            item["policy"] = policies.get(item["name"], DEFAULT_POLICY.model_dump(mode="json"))
        return sorted(found, key=lambda item: item["name"])

    # -- models ----------------------------------------------------------------------------------------

    def train_model(
        self,
        task: str,
        data: Path,
        options: Mapping[str, Any],
        *,
        name: str | None = None,
        by: str | None = None,
        progress: Progress = no_progress,
    ) -> dict[str, Any]:
        if task not in TASKS:
            raise InvalidInput(f"unknown model task {task!r}", hint=f"one of: {', '.join(TASKS)}")
        if not data.is_file():
            raise NotFound(f"no such file: {data}", hint="give the path of a CSV or XES file (gzip allowed)")
        name = name or task
        if self.store.table_document(name) is not None:
            raise Conflict(f"a decision table is named {name!r} already", hint="decision names are shared")
        model = train(task, data, options, progress)
        artifact = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        cases = case_documents(task, data, model)
        index = KnowledgeIndex.build(cases) if cases else None
        version = self.store.add_model(
            {
                "name": name,
                "task": task,
                "artifact": artifact,
                "artifact_sha256": hashlib.sha256(artifact).hexdigest(),
                "cases": pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL) if index is not None else None,
                "data_sha256": _file_sha256(data),
                "data_source": str(data),
                "columns": dict(model.columns),
                "params": _jsonable(dict(model.params)),
                "metrics": _jsonable(dict(model.metrics)),
                "thresholds": _jsonable(dict(model.thresholds)),
                "created_at": self.clock.now(),
                "created_by": by,
            }
        )
        self._forget_catalog()
        info = self.model_info(name, version)
        self.audit(
            by,
            "model.registered",
            f"{name}@{version}",
            {"task": task, "data_sha256": info["data_sha256"], "artifact_sha256": info["artifact_sha256"]},
        )
        return info

    def model_info(self, name: str, version: int | None = None) -> dict[str, Any]:
        row = self.store.model_row(name, version, with_artifact=False)
        if row is None:
            raise NotFound(f"no model {name!r}" + (f" version {version}" if version else ""))
        return row

    def model_versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of a model, newest first, with its headline figures (held-out or inner-validation
        accuracy, MAE or AUC), whether it was pruned and the bytes it holds."""
        versions = self.store.model_versions(name)
        if not versions:
            raise NotFound(f"no model {name!r}", hint="`opsrail models list` shows the registered models")
        for row in versions:
            metrics = row.pop("metrics") or {}
            row["figures"] = {k: metrics[k] for k in _HEADLINE_FIGURES if isinstance(metrics.get(k), int | float)}
        return versions

    def prune_models(
        self,
        *,
        keep: int | None = None,
        before: datetime | None = None,
        name: str | None = None,
        by: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Drop the artifact and similar-case index (which holds the training texts) of every version but the
        ``keep`` newest of each model (or of ``name``), and of every version registered ``before`` a time but the
        newest (the retention policy ``model_versions``). The registrations stay for the decision records that name
        them. Returns what was (or, with ``dry_run``, would be) pruned and the bytes it held."""
        if keep is None and before is None:
            raise InvalidInput(
                "say which versions to prune", hint="keep the N newest, or prune those older than a time"
            )
        if keep is not None and keep < 1:
            raise InvalidInput(f"keep must be at least 1, not {keep}", hint="the latest version always answers")
        versions = self.store.model_versions(name)
        if name is not None and not versions:
            raise NotFound(f"no model {name!r}", hint="`opsrail models list` shows the registered models")
        rank: dict[str, int] = {}
        doomed = []
        for row in versions:  # newest first within each name
            rank[row["name"]] = rank.get(row["name"], 0) + 1
            surplus = keep is not None and rank[row["name"]] > keep
            old = before is not None and rank[row["name"]] > 1 and row["created_at"] < before
            if (surplus or old) and row["pruned_at"] is None:
                doomed.append(row)
        if doomed and not dry_run:
            self.store.prune_model_versions([(r["name"], r["version"]) for r in doomed], self.clock.now(), by)
            with self._lock:
                for r in doomed:
                    self._models.pop((r["name"], r["version"]), None)
            for r in doomed:
                rule: dict[str, Any] = {"keep": keep} if keep is not None else {}
                if before is not None:
                    rule["before"] = before.isoformat()
                self.audit(by, "model.pruned", f"{r['name']}@{r['version']}", {"bytes": r["bytes"], **rule})
        return {
            "keep": keep,
            **({"before": before.isoformat()} if before is not None else {}),
            "dry_run": dry_run,
            "pruned": [{k: r[k] for k in ("name", "version", "task", "created_at", "bytes")} for r in doomed],
            "bytes": sum(r["bytes"] for r in doomed),
        }

    def evaluate_model(
        self, name: str, data: Path, *, version: int | None = None, progress: Progress = no_progress
    ) -> dict[str, Any]:
        if not data.is_file():
            raise NotFound(f"no such file: {data}")
        model, _, found_version = self._model(name, version)
        try:
            figures = model.evaluate(data, progress=progress)
        except ValueError as exc:
            raise file_error(data, exc) from None
        return {"model": name, "version": found_version, "task": model.task, **figures}

    def _model(self, name: str, version: int | None) -> tuple[TrainedModel, KnowledgeIndex | None, int]:
        found = version or self.store.latest_model_version(name)
        if found is None:
            raise NotFound(f"no model {name!r}", hint="train one with `opsrail models train`")
        key = (name, found)
        with self._lock:
            cached = self._models.get(key)
        if cached is None:
            row = self.store.model_row(name, found)
            if row is None:
                raise NotFound(f"no model {name!r} version {found}")
            if row.get("pruned_at") is not None:
                raise Conflict(
                    f"model {name} version {found} was pruned on {row['pruned_at']:%Y-%m-%d}: only its registration "
                    "is kept",
                    hint=f"`opsrail models show {name} --version {found}` shows it; use a version that is kept",
                )
            artifact = bytes(row["artifact"])
            if hashlib.sha256(artifact).hexdigest() != row["artifact_sha256"]:
                # Only artifacts whose hash matches what was registered are unpickled.
                raise OpsrailError(f"model {name} version {found}: the stored artifact does not match its hash")
            model = pickle.loads(artifact)  # noqa: S301 - our own artifact, verified against its registered hash
            index = pickle.loads(bytes(row["cases"])) if row["cases"] else None  # noqa: S301 - same row
            cached = (model, index)
            with self._lock:
                self._models[key] = cached
        return cached[0], cached[1], found

    # -- policies --------------------------------------------------------------------------------------

    def apply_policies(self, path: Path, by: str | None = None) -> dict[str, DecisionPolicy]:
        return self.apply_policies_text(_read(path), str(path), by)

    def apply_policies_text(self, text: str, source: str, by: str | None = None) -> dict[str, DecisionPolicy]:
        """Set the policies of the decisions a policy document names (the others keep theirs)."""
        policies = load_policies(text, source)
        for name, policy in policies.items():
            self.store.set_policy(name, policy.model_dump(mode="json"), by, self.clock.now())
            self._forget_catalog()
            self.audit(by, "decision_policy.set", name, policy.model_dump(mode="json"))
        return policies

    def policy(self, name: str) -> DecisionPolicy:
        stored = self._policies().get(name)
        return parse_policy(stored) if stored else DEFAULT_POLICY

    def _policies(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        read = self._policies_read
        if read is None or read[0] < now:
            read = self._policies_read = (now + CATALOG_FRESH_S, self.store.policies())
        return read[1]

    def _latest_versions(self, name: str) -> tuple[int | None, int | None]:
        now = time.monotonic()
        read = self._versions_read.get(name)
        if read is None or read[0] < now:
            read = self._versions_read[name] = (now + CATALOG_FRESH_S, self.store.latest_versions(name))
        return read[1]

    def _forget_catalog(self) -> None:
        self._versions_read.clear()
        self._policies_read = None

    # -- evaluating --------------------------------------------------------------------------------------

    def evaluate(self, name: str, inputs: dict[str, Any], *, version: int | None = None) -> Evaluation:
        """Evaluate a table or model by name (tables first), without recording anything."""
        table_version, model_version = self._latest_versions(name)
        if table_version is not None:
            compiled = self._compiled(name, version or table_version)
            if compiled is None:
                raise NotFound(f"no decision table {name!r} version {version}")
            try:
                result = compiled.evaluate(inputs)
            except ValueError as exc:
                raise InvalidInput(f"decision {name}: {exc}") from None
            return Evaluation(
                source="table",
                name=name,
                version=result.version,
                outputs=dict(result.outputs),
                matched_rules=list(result.matched_rules),
                confidence=1.0,
                accepted=True,
                explanation=[{"rule": line} for line in _lines(result.explanation)],
                query_text=_as_text(inputs),
            )
        if model_version is None:
            raise NotFound(
                f"no decision table or model named {name!r}",
                hint="publish a table with `opsrail decisions publish` or train a model with `opsrail models train`",
            )
        model, _, found = self._model(name, version or model_version)
        reads_text = getattr(model, "text_keys", None)  # text models say which inputs hold the text
        text_keys: tuple[str, ...] = tuple(reads_text(inputs)) if reads_text is not None else ()
        try:
            prediction = model.predict(inputs)
        except (KeyError, ValueError, TypeError) as exc:
            raise _cannot_score(name, exc) from None
        return _model_evaluation(name, found, prediction, inputs, text_keys)

    def evaluate_many(
        self, name: str, inputs: Sequence[dict[str, Any]], *, version: int | None = None
    ) -> list[Evaluation]:
        """Evaluate many inputs with one version, without recording or explaining anything: a model that scores
        many at once (the event-log models) does so in one call; a table or another model answers one at a time."""
        table_version, model_version = self._latest_versions(name)
        if table_version is not None or model_version is None:
            return [self.evaluate(name, one, version=version) for one in inputs]
        model, _, found = self._model(name, version or model_version)
        if not isinstance(model, PredictsMany):
            return [self.evaluate(name, one, version=found) for one in inputs]
        try:
            predictions = model.predict_many(inputs)
        except (KeyError, ValueError, TypeError) as exc:
            raise _cannot_score(name, exc) from None
        return [
            _model_evaluation(name, found, prediction, one) for prediction, one in zip(predictions, inputs, strict=True)
        ]

    def decide(
        self,
        name: str,
        inputs: dict[str, Any],
        *,
        run_id: str | None = None,
        step_id: str | None = None,
        idempotency_key: str | None = None,
        version: int | None = None,
    ) -> tuple[dict[str, Any], Evaluation, tuple[str, ...], int, str]:
        """Evaluate, route and record one decision; returns the record and how it was routed."""
        evaluation = self.evaluate(name, inputs, version=version)
        policy = self.policy(name)
        route_taken, roles, count, why = route(
            policy, evaluation.outputs, inputs, evaluation.confidence, evaluation.accepted
        )
        similar = self.similar(name, evaluation.query_text, evaluation.source, evaluation.version)
        # What is stored, and what a summary provider is sent, has personal and payment data masked; the
        # decision itself was made on the inputs as they came.
        kept_inputs = redact(inputs, self.redact_fields)
        summary = None
        if route_taken != "acted":
            summary = self._summary(name, kept_inputs, evaluation, similar)
        record = self.store.add_record(
            {
                "id": self.ids.new("dec"),
                "idempotency_key": idempotency_key,
                "decision": name,
                "source": evaluation.source,
                "version": evaluation.version,
                "run_id": run_id,
                "step_id": step_id,
                "created_at": self.clock.now(),
                "inputs": _jsonable(kept_inputs),
                "outputs": _jsonable(evaluation.outputs),
                "matched_rules": evaluation.matched_rules,
                "confidence": evaluation.confidence,
                "explanation": _jsonable([*evaluation.explanation, {"route": why}]),
                "tier": policy.tier,
                "route": route_taken,
                "similar": [_hit_dict(h) for h in similar],
                "summary": summary,
                "status": "decided" if route_taken == "acted" else "pending",
            }
        )
        self.audit(
            None,
            "decision.made",
            record["id"],
            {
                "decision": name,
                "source": record["source"],
                "version": record["version"],
                "run": run_id,
                "step": step_id,
                "idempotency_key": idempotency_key,
                "outputs": record["outputs"],
                "confidence": record["confidence"],
                "route": route_taken,
                "inputs_sha256": inputs_digest(record["inputs"]),
            },
        )
        return record, evaluation, roles, count, why

    def evaluate_and_record(self, name: str, inputs: dict[str, Any], *, version: int | None = None) -> dict[str, Any]:
        """Evaluate a decision outside any run (the API and CLI); the record says where it would be routed."""
        record, *_ = self.decide(name, inputs, version=version)
        return record

    async def decide_step(self, name: str, params: dict[str, Any], call: CallContext) -> Any:
        """The engine's decider: a ``decide`` step's answer (outputs, or a review for a person)."""
        try:
            record, evaluation, roles, count, why = await asyncio.to_thread(
                self.decide,
                name,
                params,
                run_id=call.run_id,
                step_id=call.step_id,
                idempotency_key=f"{call.idempotency_key}:{call.attempt}",
            )
        except (NotFound, Conflict) as exc:
            raise OperationFailed(exc.detail, retryable=False) from None
        except InvalidInput as exc:
            raise OperationFailed(exc.detail, retryable=False) from None
        outputs = {**record["outputs"], "decision_record": record["id"]}
        if record["route"] == "acted":
            return outputs
        kind = "approval" if record["route"] == "approval" else "review"
        policy = self.policy(name)
        verb = {"review": "Review", "approval": "Approve", "advisory": "Decide"}[record["route"]]
        return ReviewNeeded(
            recommendation=outputs,
            roles=roles,
            count=count,
            title=f"{verb} {name}: {_headline(evaluation)}",
            context={
                "decision_record": record["id"],
                "decision": name,
                "recommendation": record["outputs"],
                "confidence": record["confidence"],
                "why": why,
                "explanation": record["explanation"],
                "similar": record["similar"],
                "summary": record["summary"],
            },
            kind=kind,
            due_in=policy.review.due,
        )

    # -- similar cases and knowledge ---------------------------------------------------------------------

    def similar(self, name: str, text: str, source: str, version: int | None = None) -> list[Hit]:
        """Past cases like this one (those a text model was trained on) and matching knowledge sections."""
        hits: list[Hit] = []
        past = self._past_decisions(name)
        if past is not None:
            hits.extend(past.search(text, k=_SIMILAR_CASES))
        if source == "model":
            _, cases, _ = self._model(name, version)
            if cases is not None:
                hits.extend(cases.search(text, k=_SIMILAR_CASES))
        knowledge = self.knowledge()
        if knowledge is not None:
            hits.extend(knowledge.search(text, k=_KNOWLEDGE_HITS))
        return hits

    def _past_decisions(self, name: str) -> KnowledgeIndex | None:
        """An index of this decision's past cases that a person settled, kept up to date incrementally."""
        now = time.monotonic()
        with self._lock:
            index, since = self._past.get(name, (None, None))
            if self._past_checked.get(name, 0.0) > now:
                return index
            self._past_checked[name] = now + CATALOG_FRESH_S
        fresh = self.store.settled_since(name, since)
        if fresh:
            documents = [_past_case(record) for record in fresh]
            if index is None:
                index = KnowledgeIndex.build(documents)
            else:
                index.add(documents)
            with self._lock:
                self._past[name] = (index, fresh[-1]["reviewed_at"])
        return index

    def knowledge(self) -> KnowledgeIndex | None:
        if self._knowledge is None and self.knowledge_dir is not None and self.knowledge_dir.is_dir():
            documents: Sequence[Document] = load_markdown_folder(self.knowledge_dir)
            self._knowledge = KnowledgeIndex.build(documents)
        return self._knowledge

    def search_knowledge(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        index = self.knowledge()
        return [_hit_dict(h) for h in index.search(query, k=k)] if index is not None else []

    def _summary(
        self, name: str, inputs: dict[str, Any], evaluation: Evaluation, similar: Sequence[Hit]
    ) -> dict[str, Any]:
        facts = {
            "decision": name,
            "recommendation": _headline(evaluation),
            "confidence": round(evaluation.confidence, 3),
            **{
                k: v
                for k, v in inputs.items()
                if isinstance(v, (str, int, float, bool)) and k not in ("text", *evaluation.text_keys)
            },
        }
        keys = evaluation.text_keys or ("text",)
        texts = [_joined(inputs, keys)] if any(isinstance(inputs.get(key), str) for key in keys) else []
        texts.extend(h.snippet for h in similar)
        request = SummaryRequest(
            title=f"{name}: {_headline(evaluation)}", facts=facts, texts=texts, citations=list(similar)
        )
        summary = self.summarizer.summarize(request)
        return {
            "text": summary.text,
            "citations": list(summary.citations),
            "provider": summary.provider,
            "model": summary.model,
            "prompt": summary.prompt,
            "answer": summary.answer,
        }

    # -- records -----------------------------------------------------------------------------------------

    def records(self, **filters: Any) -> list[dict[str, Any]]:
        return self.store.records(**{k: v for k, v in filters.items() if v is not None})

    def verify_records(self, entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Every record compared with its audit entries (``entries``: the audit log, oldest first); see
        ``opsrail.services._record_check``."""
        audited = audited_decisions(entries)
        fields = self.redact_fields

        def normal(value: Any) -> Any:  # as the audit log stores a detail: plain JSON, masked
            return redact(orjson.loads(orjson.dumps(value, default=str)), fields)

        return check_records(self.store.each_record(CHECKED_COLUMNS), audited, normal)

    def record(self, record_id: str) -> dict[str, Any]:
        record = self.store.record(record_id)
        if record["run_id"] and record["outcome"] is None:
            try:
                run = self.automation.show(record["run_id"])
            except NotFound:
                return record
            record["outcome"] = {
                "run_status": run["status"],
                "finished_at": run["finished_at"],
                "run_error": run["error"],
            }
        return record

    def override(self, record_id: str, value: dict[str, Any], reason: str, by: str) -> dict[str, Any]:
        """Replace a decision's answer: through its open review task if it has one, else on the record."""
        if not reason.strip():
            raise InvalidInput("an override needs a reason", hint="add --reason '…'")
        record = self.store.record(record_id)
        self.check_override(record, value)
        if record["status"] == "pending" and record["run_id"]:
            task = self._open_task_for(record)
            if task is not None:
                self.automation.decide(task["id"], approve=False, by=by, comment=reason, value=value)
                return self.store.record(record_id)
        self._past_checked.clear()
        settled = self.store.settle_record(
            record_id,
            status="overridden",
            by=by,
            at=self.clock.now(),
            final_outputs=value,
            reason=reason,
            expect=("decided", "accepted", "pending"),
        )
        self.audit(by, "decision.overridden", record_id, {"value": value, "reason": reason})
        self._demote_if_overridden_too_often(settled["decision"])
        return settled

    def check_override(self, record: Mapping[str, Any], value: Mapping[str, Any], *, at: str = "$.value") -> None:
        """Refuse a person's answer that the decision could not have given: no output at all, an output it does not
        have, or a value of the wrong type (a table's declared types; a model's label or value)."""
        # A form or a review task shows the whole recommendation; what it carries besides the answer comes back.
        echoed = set(record.get("outputs") or {}) if record["source"] == "model" else set()
        given = {k: v for k, v in value.items() if k != "decision_record"}
        if not given:
            raise InvalidInput("an override gives at least one output", errors=[FieldError(at, "empty")])
        if record["source"] == "table":
            compiled = self._compiled(record["decision"], record["version"])
            problems = override_problems(compiled.table, given, at=at) if compiled is not None else []
        else:
            info = self.store.model_row(record["decision"], record["version"], with_artifact=False)
            problems = model_override_problems(info["task"] if info else "", given, at, echoed)
        if problems:
            raise InvalidInput(
                f"not an answer {record['decision']} could give", errors=problems, hint=override_hint(record)
            )

    def _check_review_value(self, task: Mapping[str, Any], value: Mapping[str, Any]) -> None:
        record_id = task["context"].get("decision_record")
        if record_id:
            self.check_override(self.store.record(record_id), value)

    def override_rate(self, name: str, window: int) -> tuple[float, int]:
        """The share of the last ``window`` settled decisions of ``name`` that a person overrode, and how many."""
        settled = [r for r in self.store.records(decision=name, limit=window * 4) if r["status"] != "pending"][:window]
        if not settled:
            return 0.0, 0
        return sum(r["status"] == "overridden" for r in settled) / len(settled), len(settled)

    def _demote_if_overridden_too_often(self, name: str) -> None:
        policy = self.policy(name)
        if policy.tier != "autonomous":
            return
        rate, seen = self.override_rate(name, policy.demotion.window)
        if seen < policy.demotion.window or rate <= policy.demotion.override_rate:
            return
        reason = (
            f"{rate:.0%} of the last {seen} decisions were overridden (bound {policy.demotion.override_rate:.0%}); "
            f"demoted at {self.clock.now().isoformat()}"
        )
        demoted = policy.model_copy(update={"tier": "approval", "demoted": reason})
        self.store.set_policy(name, demoted.model_dump(mode="json"), "opsrail", self.clock.now())
        self._forget_catalog()
        self.audit(None, "decision_policy.demoted", name, {"override_rate": rate, "window": seen, "reason": reason})
        log.warning("decision %s demoted to approval: %s", name, reason, extra={"decision": name})
        for alert in self.alerts:
            try:
                alert("decision.demoted", name, {"override_rate": rate, "window": seen, "reason": reason})
            except Exception:  # an alert that cannot be raised must not undo the demotion; it is logged
                log.exception("the demotion alert for %s could not be raised", name)

    def _open_task_for(self, record: dict[str, Any]) -> dict[str, Any] | None:
        for task in self.automation.tasks(limit=10_000):
            if task["context"].get("decision_record") == record["id"]:
                return task
        return None

    def _task_settled(
        self, task: dict[str, Any], approved: bool, by: str, comment: str | None, value: dict[str, Any] | None
    ) -> None:
        record_id = task["context"].get("decision_record")
        if not record_id:
            return
        record = self.store.record(record_id)
        if value is not None:
            status, final = "overridden", value
        elif approved:
            status, final = "accepted", record["outputs"]
        else:
            status, final = "rejected", None
        self._past_checked.clear()
        self.store.settle_record(
            record_id,
            status=status,
            by=by,
            at=self.clock.now(),
            final_outputs=final,
            reason=comment,
            expect=("pending",),
        )
        self.audit(by, f"decision.{status}", record_id, {"value": final, "reason": comment, "task": task["id"]})
        if status == "overridden":
            self._demote_if_overridden_too_often(record["decision"])


def _past_case(record: dict[str, Any]) -> Document:
    """A settled decision as a past case: its inputs as text, what a person said the answer was, and who."""
    inputs = record["inputs"] or {}
    text = str(inputs.get("text") or _as_text(inputs))
    answer = record["final_outputs"] if record["final_outputs"] is not None else record["outputs"]
    shown = ", ".join(f"{k}={v}" for k, v in (answer or {}).items() if k not in ("probabilities", "decision_record"))
    return Document(
        id=record["id"],
        kind="decision",
        title=f"{record['status']} by {record['reviewed_by']}: {shown or 'no answer'}"[:200],
        text=text,
        source=f"decision:{record['id']}",
        metadata={
            "status": record["status"],
            "answer": _jsonable(answer),
            "recommended": _jsonable(record["outputs"]),
            "reviewed_by": record["reviewed_by"],
            "reason": record["reason"],
        },
    )


_HEADLINE_FIGURES = ("accuracy", "macro_f1", "mae_days", "auc", "n")
"""The figures ``model_versions`` shows of each version, where its metrics have them."""


def _prediction_outputs(prediction: Prediction) -> dict[str, Any]:
    outputs: dict[str, Any] = {"confidence": round(float(prediction.confidence), 6)}
    if prediction.label is not None:
        outputs["label"] = prediction.label
    if prediction.value is not None:
        outputs["value"] = float(prediction.value)
    if prediction.probabilities:
        outputs["probabilities"] = {k: round(float(v), 6) for k, v in prediction.probabilities.items()}
    return outputs


def _headline(evaluation: Evaluation) -> str:
    outputs = evaluation.outputs
    if "label" in outputs:
        return f"{outputs['label']} ({evaluation.confidence:.0%})"
    shown = ", ".join(f"{k}={v}" for k, v in outputs.items() if k not in ("probabilities", "confidence"))
    return shown[:120] or "no outputs"


def _hit_dict(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id,
        "kind": hit.kind,
        "title": hit.title,
        "source": hit.source,
        "score": round(float(hit.score), 4),
        "snippet": hit.snippet,
        "metadata": _jsonable(dict(hit.metadata)),
    }


def _cannot_score(name: str, exc: Exception) -> InvalidInput:
    return InvalidInput(
        f"model {name} cannot score these inputs: {exc}",
        hint='a text classifier takes {"text": …}; an event-log model {"events": [{"activity", "timestamp"}]}',
    )


def _model_evaluation(
    name: str, version: int, prediction: Prediction, inputs: Mapping[str, Any], text_keys: tuple[str, ...] = ()
) -> Evaluation:
    return Evaluation(
        source="model",
        name=name,
        version=version,
        outputs=_prediction_outputs(prediction),
        matched_rules=[],
        confidence=float(prediction.confidence),
        accepted=bool(prediction.accepted),
        explanation=[dict(item) for item in prediction.explanation],
        query_text=_joined(inputs, text_keys) if text_keys else _as_text(inputs),
        text_keys=text_keys,
    )


def _joined(inputs: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The text a text model read: its input, or its inputs joined as the training columns were."""
    return TEXT_JOINER.join(str(inputs[key]) for key in keys if isinstance(inputs.get(key), str))


def _as_text(inputs: Mapping[str, Any]) -> str:
    return " ".join(f"{k} {v}" for k, v in inputs.items() if isinstance(v, (str, int, float)))


def _lines(explanation: Any) -> list[str]:
    if isinstance(explanation, str):
        return [line for line in explanation.splitlines() if line.strip()]
    if isinstance(explanation, (list, tuple)):
        return [str(x) for x in explanation]
    return [str(explanation)]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _jsonable(item())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path) -> str:
    if not path.is_file():
        raise NotFound(f"no such file: {path}", hint="give the path of a YAML file")
    return path.read_text(encoding="utf-8")
