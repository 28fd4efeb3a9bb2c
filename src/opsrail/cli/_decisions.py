"""CLI commands for decision tables, decision policies and records, and models."""

from __future__ import annotations

import getpass
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import TypeAdapter, ValidationError

from opsrail.cli._common import JsonFlag, handled, opened
from opsrail.cli._output import emit_json, json_object, plain, progress_bar, short_time, table
from opsrail.model import InvalidInput

decisions_app = typer.Typer(help="Decision tables, decision policies and decision records.", no_args_is_help=True)
records_app = typer.Typer(help="Decision records: every decision, machine or human.", no_args_is_help=True)
policies_app = typer.Typer(
    help="Decision policies: tiers, confidence floors, approval thresholds.", no_args_is_help=True
)
models_app = typer.Typer(help="Models: train, evaluate, list.", no_args_is_help=True)
decisions_app.add_typer(records_app, name="records")
decisions_app.add_typer(policies_app, name="policies")

Actor = Annotated[str | None, typer.Option("--as", help="who is acting [default: the login name]")]


# -- tables ------------------------------------------------------------------------------------------------


@decisions_app.command("validate")
@handled
def decisions_validate(file: Path, json: JsonFlag = False) -> None:
    """Check a decision table (no database needed); errors name the file, line and field."""
    from opsrail.services import DecisionService

    table_ = DecisionService.validate_table_file(file)
    if json:
        emit_json({"valid": True, "name": table_.name, "version": table_.version, "rules": len(table_.rules)})
    else:
        typer.echo(f"{file}: valid ({table_.name} version {table_.version}, {len(table_.rules)} rules)")


@decisions_app.command("test")
@handled
def decisions_test(file: Path, json: JsonFlag = False) -> None:
    """Run a table's own test cases; exits 1 when one fails."""
    from opsrail.services import DecisionService

    table_, outcomes = DecisionService.test_table_file(file)
    failed = [o for o in outcomes if not o.passed]
    if json:
        emit_json(
            {
                "name": table_.name,
                "version": table_.version,
                "passed": len(outcomes) - len(failed),
                "failed": len(failed),
                "tests": [plain(_outcome(o)) for o in outcomes],
            }
        )
    else:
        for outcome in outcomes:
            mark = "ok  " if outcome.passed else "FAIL"
            typer.echo(f"{mark} {outcome.name}" + ("" if outcome.passed else f": {outcome.message}"))
        typer.echo(
            f"{table_.name} version {table_.version}: {len(outcomes) - len(failed)} passed, {len(failed)} failed"
        )
    if failed:
        raise typer.Exit(1)


def _outcome(outcome: Any) -> dict[str, Any]:
    return {
        "name": outcome.name,
        "passed": outcome.passed,
        "expected": outcome.expected,
        "actual": outcome.actual,
        "matched_rules": list(outcome.matched_rules),
        "message": outcome.message,
    }


@decisions_app.command("publish")
@handled
def decisions_publish(file: Path, actor: Actor = None, json: JsonFlag = False) -> None:
    """Publish a table version (its own tests must pass); `decide` steps use the latest version."""
    with opened(action="decision.publish", actor=actor) as container:
        table_ = container.decisions.publish_table(file, actor or getpass.getuser())
    if json:
        emit_json({"name": table_.name, "version": table_.version})
    else:
        typer.echo(f"published decision table {table_.name} version {table_.version}")


@decisions_app.command("list")
@handled
def decisions_list(json: JsonFlag = False) -> None:
    """Every decision by name: published tables and trained models, with their tiers."""
    with opened(action="decision.read") as container:
        items = container.decisions.catalog()
    if json:
        emit_json(plain(items))
        return
    table(
        "Decisions",
        ["name", "kind", "latest", "tier", "min confidence"],
        [
            (
                i["name"],
                i["kind"] + (f" ({i['task']})" if i.get("task") else ""),
                i["latest"],
                i["policy"]["tier"],
                i["policy"]["min_confidence"]
                if i["policy"].get("min_confidence") is not None
                else "model's"
                if i["kind"] == "model"
                else "-",  # a table's answer is the rule's, not a guess
            )
            for i in items
        ],
        empty="Publish a decision table with `opsrail decisions publish FILE`",
    )


@decisions_app.command("show")
@handled
def decisions_show(
    name: str,
    version: Annotated[int | None, typer.Option(help="default: the latest")] = None,
    json: JsonFlag = False,
) -> None:
    """Show a decision table's rules (or a model's registration)."""
    with opened(action="decision.read") as container:
        found = container.decisions.describe(name, version)
    if json:
        emit_json(plain(found))
        return
    if found["kind"] == "model":
        _print_model(found)
        return
    typer.echo(
        f"{found['name']} version {found['version']}: hit policy {found['hit_policy']}, "
        f"{len(found['rules'])} rules, {found['tests']} test cases"
    )
    if found["description"]:
        typer.echo(" ".join(found["description"].split()))
    table(
        "Inputs",
        ["name", "type", "default", "description"],
        [
            (name, i["type"], "required" if i["required"] else _literal(i["default"]), i["description"])
            for name, i in found["inputs"].items()
        ],
    )
    table(
        "Outputs",
        ["name", "type", "default", "aggregate", "description"],
        [
            (name, o["type"], _literal(o["default"]), o["aggregate"], o["description"])
            for name, o in found["outputs"].items()
        ],
    )
    priority = found["hit_policy"] == "priority"
    table(
        "Rules",
        ["id", *(["priority"] if priority else []), "when", "then"],
        [
            (
                r["id"],
                *([r["priority"]] if priority else []),
                r["when"],
                "\n".join(f"{key} = {_literal(value)}" for key, value in r["then"].items()),
            )
            for r in found["rules"]
        ],
    )


def _literal(value: Any) -> str:
    """A value as the table file would spell it: strings bare, the rest as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


@decisions_app.command("evaluate")
@handled
def decisions_evaluate(
    name: str,
    input: Annotated[str, typer.Option("--input", help="the inputs as a JSON object")],
    version: Annotated[int | None, typer.Option()] = None,
    json: JsonFlag = False,
) -> None:
    """Evaluate a table or model by name and record the decision."""
    inputs = json_object(input, "--input")
    with opened(action="decision.evaluate") as container:
        record = container.decisions.evaluate_and_record(name, inputs, version=version)
    if json:
        emit_json(plain(record))
    else:
        typer.echo(
            f"{record['id']}: {orjson.dumps(record['outputs']).decode()} "
            f"(confidence {record['confidence']:.2f}, route {record['route']})"
        )


@decisions_app.command("knowledge")
@handled
def decisions_knowledge(
    query: Annotated[str, typer.Argument(help="words to look for, e.g. a ticket's text")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="how many passages")] = 5,
    json: JsonFlag = False,
) -> None:
    """Search the approved runbooks and policies (OPSRAIL_KNOWLEDGE_DIR) as reviews and summaries cite them."""
    if not query.strip():
        raise InvalidInput("give some words to search for", hint='e.g. opsrail decisions knowledge "SAML SSO fails"')
    with opened(action="knowledge.read") as container:
        hits = container.decisions.search_knowledge(query, k)
    if json:
        emit_json({"items": plain(hits)})
        return
    table(
        "Knowledge",
        ["score", "title", "source", "snippet"],
        [(f"{h['score']:.2f}", h["title"], h["source"], h["snippet"][:80]) for h in hits],
    )


# -- policies ----------------------------------------------------------------------------------------------


@policies_app.command("apply")
@handled
def policies_apply(file: Path, actor: Actor = None, json: JsonFlag = False) -> None:
    """Set the policies of the decisions a policy file names."""
    with opened(action="decision.publish", actor=actor) as container:
        applied = container.decisions.apply_policies(file, actor or getpass.getuser())
    if json:
        emit_json({name: p.model_dump(mode="json") for name, p in applied.items()})
    else:
        typer.echo(f"applied policies for {', '.join(sorted(applied))}")


@policies_app.command("list")
@handled
def policies_list(json: JsonFlag = False) -> None:
    """Decision policies in force."""
    with opened(action="decision.read") as container:
        items = container.decisions.store.policies()
    if json:
        emit_json(plain(items))
        return
    table(
        "Decision policies",
        ["decision", "tier", "min confidence", "reviewers", "approval rules", "demoted"],
        [
            (
                n,
                p["tier"],
                p.get("min_confidence"),
                ", ".join(p["review"]["roles"]),
                len(p.get("approval") or []),
                p.get("demoted") or "",
            )
            for n, p in sorted(items.items())
        ],
        empty="Set them with `opsrail decisions policies apply FILE`",
    )


# -- records -----------------------------------------------------------------------------------------------


_STATUSES = ("decided", "pending", "accepted", "overridden", "rejected")
_TIERS = ("autonomous", "approval", "advisory")


@records_app.command("list")
@handled
def records_list(
    decision: Annotated[str | None, typer.Option(help="only this decision")] = None,
    status: Annotated[str | None, typer.Option(help="decided, pending, accepted, overridden or rejected")] = None,
    run: Annotated[str | None, typer.Option(help="only this run's decisions")] = None,
    tier: Annotated[str | None, typer.Option()] = None,
    version: Annotated[int | None, typer.Option(help="only this table or model version")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    json: JsonFlag = False,
) -> None:
    """Decision records, newest first."""
    for option, given, allowed in (("--status", status, _STATUSES), ("--tier", tier, _TIERS)):
        if given is not None and given not in allowed:
            raise InvalidInput(f"{option} {given!r} is not one of {', '.join(allowed)}")
    with opened(action="decision_record.read") as container:
        items = container.decisions.records(
            decision=decision, status=status, run_id=run, tier=tier, version=version, limit=limit
        )
    if json:
        emit_json(plain(items))
        return
    table(
        "Decision records",
        # The version goes with the decision's name and the reviewer with the status: seven columns fit better.
        ["id", "decision", "outputs", "confidence", "route", "status", "created"],
        [
            (
                r["id"],
                f"{r['decision']}@{r['version']}",
                orjson.dumps({k: v for k, v in r["outputs"].items() if k != "probabilities"}).decode()[:60],
                f"{r['confidence']:.2f}" if r["confidence"] is not None else "",
                r["route"],
                r["status"] + (f" by {r['reviewed_by']}" if r["reviewed_by"] else ""),
                short_time(r["created_at"]),
            )
            for r in items
        ],
        empty="No record matches these filters"
        if any((decision, status, run, tier, version))
        else "Records appear when a table or model decides",
        optional=("created", "route"),
    )


@records_app.command("show")
@handled
def records_show(record_id: str, json: JsonFlag = False) -> None:
    """One decision record in full: inputs, versions, outputs, rules, confidence, explanation, route, review."""
    with opened(action="decision_record.read") as container:
        record = container.decisions.record(record_id)
    if json:
        emit_json(plain(record))
        return
    for key in (
        "id",
        "decision",
        "source",
        "version",
        "run_id",
        "step_id",
        "created_at",
        "tier",
        "route",
        "status",
        "confidence",
        "reviewed_by",
        "reviewed_at",
        "reason",
    ):
        typer.echo(f"{key:>13}: {record[key]}")
    for key in ("inputs", "outputs", "matched_rules", "explanation", "final_outputs", "outcome"):
        typer.echo(f"{key:>13}: {orjson.dumps(plain(record[key])).decode()}")
    for hit in record["similar"]:
        typer.echo(f"      similar: [{hit['kind']}] {hit['score']:.2f} {hit['title']} ({hit['source']})")
    if record["summary"]:
        typer.echo(f"      summary: {record['summary']['text']}")


@records_app.command("verify")
@handled
def records_verify(json: JsonFlag = False) -> None:
    """Check every decision record against the audit log (whose own chain is checked too): exits 1 and names the
    records whose decision or settlement differs from what was audited, was settled without an entry, or is gone."""
    from opsrail.services import with_chain  # the services load with the container, not with `--help`

    with opened(action="audit.read") as container:
        chain = container.audit.verify()
        report = with_chain(container.decisions.verify_records(container.audit.export()), chain.as_dict())
    if json:
        emit_json(plain(report))
    else:
        if chain.ok:
            typer.echo(f"audit chain verified: {chain.checked} entries, up to entry {chain.last_seq or 0}")
        else:
            typer.secho(f"audit chain broken at entry {chain.first_bad_seq}: {chain.problem}", fg=typer.colors.RED)
        typer.echo(f"{report['checked']} decision record(s) checked against {report['audited']} audited decision(s)")
        for item in report["problems"][:_SHOWN_PROBLEMS]:
            typer.secho(f"  {_problem_line(item)}", fg=typer.colors.RED)
        left = sum(report["problems_by_kind"].values()) - min(len(report["problems"]), _SHOWN_PROBLEMS)
        if left > 0:
            typer.echo(f"  … and {left} more (--json lists {len(report['problems'])})")
    if not report["ok"]:
        raise typer.Exit(1)


_SHOWN_PROBLEMS = 20


def _problem_line(item: dict[str, Any]) -> str:
    record = item["record"]
    if item["kind"] in ("not_audited", "missing"):
        return f"{record}: {item['detail']}"
    recorded = orjson.dumps(plain(item["recorded"])).decode()
    audited = orjson.dumps(plain(item["audited"])).decode()
    where = f"audit entry {item['entry']}" if item.get("entry") else "the audit log (no settlement entry)"
    return f"{record}: {item['field']} is {recorded} in the record, {audited} in {where}"


@decisions_app.command("override")
@handled
def decisions_override(
    record_id: str,
    value: Annotated[str, typer.Option(help="the right answer, as a JSON object")],
    reason: Annotated[str, typer.Option(help="why the decision was wrong (required)")],
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Override a decision; a pending one's review task is settled with your answer."""
    answer = json_object(value, "--value")
    with opened(action="decision_record.override", actor=actor) as container:
        record = container.decisions.override(record_id, answer, reason, actor or getpass.getuser())
    if json:
        emit_json(plain(record))
    else:
        typer.echo(f"{record['id']}: {record['status']} by {record['reviewed_by']}")


# -- models ------------------------------------------------------------------------------------------------

_DURATION = TypeAdapter(timedelta)


def _target(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    if re.fullmatch(r"[-+]?P[-+0-9WDTHMS.,]+", value.strip(), flags=re.IGNORECASE):
        try:
            seconds = _DURATION.validate_python(value.strip()).total_seconds()
        except ValidationError:
            raise InvalidInput(f"--target {value!r} is not an ISO 8601 duration", hint="e.g. PT8H or P2D") from None
        if seconds <= 0:
            raise InvalidInput("--target must be a positive duration")
        return {"target_seconds": seconds}
    return {"target_column": value}


_SPLITS = ("tax2017", "temporal", "kfold")


@models_app.command("train")
@handled
def models_train(
    task: Annotated[str, typer.Argument(help="text-classifier, next-activity, remaining-time or sla-breach")],
    data: Annotated[Path | None, typer.Option("--data", help="CSV of labelled texts (gzip allowed)")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="event log: CSV or XES (gzip allowed), or Parquet")] = None,
    text: Annotated[
        str | None,
        typer.Option(help="text column (text-classifier); several joined with commas, e.g. Summary,Description"),
    ] = None,
    label: Annotated[str | None, typer.Option(help="label column (text-classifier)")] = None,
    case: Annotated[str | None, typer.Option(help="case id column [XES: case:concept:name]")] = None,
    activity: Annotated[str | None, typer.Option(help="activity column [XES: concept:name]")] = None,
    timestamp: Annotated[str | None, typer.Option(help="timestamp column [XES: time:timestamp]")] = None,
    split: Annotated[str, typer.Option(help="tax2017, temporal or kfold")] = "tax2017",
    target: Annotated[
        str | None, typer.Option(help="sla-breach: a resolution-time target (PT8H) or a column holding one")
    ] = None,
    target_precision: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.95,
    name: Annotated[str | None, typer.Option(help="the decision name steps use [default: the task]")] = None,
    seed: int = 0,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Train, evaluate and register a new version of a model."""
    source = data or log
    if source is None or (data is not None and log is not None):
        raise InvalidInput("give the training file with --data (texts) or --log (event logs)")
    if split not in _SPLITS:
        raise InvalidInput(f"--split {split!r} is not one of {', '.join(_SPLITS)}")
    if name is not None and not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", name):
        raise InvalidInput(f"--name {name!r}: use lowercase letters, digits, - and _ (starting with a letter)")
    options: dict[str, Any] = {
        "text": text,
        "label": label,
        "case": case,
        "activity": activity,
        "timestamp": timestamp,
        "split": split,
        "seed": seed,
        "target_precision": target_precision,
        **_target(target),
    }
    with opened(action="decision.publish", actor=actor) as container, progress_bar(not json) as progress:
        info = container.decisions.train_model(
            task, source, options, name=name, by=actor or getpass.getuser(), progress=progress
        )
    if json:
        emit_json(plain(info))
    else:
        _print_model(info)


@models_app.command("evaluate")
@handled
def models_evaluate(
    model: str,
    data: Annotated[Path, typer.Option("--data", help="a file with the columns the model was trained on")],
    version: Annotated[int | None, typer.Option(help="default: the latest")] = None,
    json: JsonFlag = False,
) -> None:
    """Score a file with a registered model."""
    with opened(action="decision.read") as container, progress_bar(not json) as progress:
        figures = container.decisions.evaluate_model(model, data, version=version, progress=progress)
    if json:
        emit_json(plain(figures))
        return
    for key, value in figures.items():
        if not isinstance(value, (dict, list)):
            typer.echo(f"{key:>28}: {value}")
    for warning in figures.get("warnings", []):
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW)


@models_app.command("list")
@handled
def models_list(json: JsonFlag = False) -> None:
    """Registered models, latest version of each."""
    with opened(action="decision.read") as container:
        items = container.decisions.store.list_models()
    if json:
        emit_json(plain(items))
        return
    table(
        "Models",
        ["name", "task", "latest", "versions", "trained", "data"],
        [
            (m["name"], m["task"], m["latest"], m["versions"], short_time(m["created_at"]), m["data_source"])
            for m in items
        ],
        empty="Train one with `opsrail models train TASK …`",
    )


_SHORT = {"accuracy": "acc", "macro_f1": "F1", "mae_days": "MAE d", "auc": "AUC"}


@models_app.command("versions")
@handled
def models_versions(name: str, json: JsonFlag = False) -> None:
    """Every version of a model, newest first: when, from which data, its figures, and whether it was pruned."""
    with opened(action="decision.read") as container:
        versions = container.decisions.model_versions(name)
    if json:
        emit_json(plain(versions))
        return
    table(
        f"Versions of {name}",
        ["version", "trained", "by", "data", "figures", "size", "pruned"],
        [
            (
                v["version"],
                short_time(v["created_at"]),
                v["created_by"] or "",
                f"{v['data_source']} ({v['data_sha256'][:8]})",
                " ".join(f"{_SHORT.get(k, k)} {val:.4g}" for k, val in v["figures"].items()),
                f"{v['bytes'] / 1e6:.1f} MB",
                short_time(v["pruned_at"]) if v["pruned_at"] else "",
            )
            for v in versions
        ],
    )


@models_app.command("prune")
@handled
def models_prune(
    keep: Annotated[int, typer.Option(min=1, help="versions to keep of each model, newest first")] = 3,
    name: Annotated[str | None, typer.Option(help="only this model")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be pruned; change nothing")] = False,
    actor: Actor = None,
    json: JsonFlag = False,
) -> None:
    """Drop the artifacts of old model versions (the registrations stay, for the records that name them)."""
    with opened(action="decision.publish", actor=actor) as container:
        result = container.decisions.prune_models(keep=keep, name=name, by=actor or getpass.getuser(), dry_run=dry_run)
    if json:
        emit_json(plain(result))
        return
    verb = "would prune" if dry_run else "pruned"
    for item in result["pruned"]:
        typer.echo(f"{verb} {item['name']} version {item['version']} ({item['bytes'] / 1e6:.1f} MB)")
    typer.echo(
        f"{verb} {len(result['pruned'])} version(s), {result['bytes'] / 1e6:.1f} MB; "
        f"the {keep} newest of each model are kept"
    )


@models_app.command("show")
@handled
def models_show(name: str, version: Annotated[int | None, typer.Option()] = None, json: JsonFlag = False) -> None:
    """A model's registration: data hash, parameters, metrics, thresholds."""
    with opened(action="decision.read") as container:
        info = container.decisions.model_info(name, version)
    if json:
        emit_json(plain(info))
    else:
        _print_model(info)


def _print_model(info: dict[str, Any]) -> None:
    typer.echo(f"{info['name']} version {info['version']} ({info['task']})")
    if info.get("pruned_at"):
        typer.secho(
            f"  pruned {short_time(info['pruned_at'])} by {info.get('pruned_by') or '?'}: registration only, it no "
            "longer answers",
            fg=typer.colors.YELLOW,
        )
    typer.echo(f"  data {info['data_source']} sha256 {info['data_sha256'][:16]}…")
    typer.echo(f"  columns {orjson.dumps(info['columns']).decode()}")
    for key, value in (info.get("metrics") or {}).items():
        if not isinstance(value, (dict, list)):
            typer.echo(f"  {key}: {value}")
    for warning in (info.get("metrics") or {}).get("warnings", []):
        typer.secho(f"  warning: {warning}", fg=typer.colors.YELLOW)
    if info.get("thresholds"):
        shown = ", ".join(f"{k} {v:.2f}" for k, v in info["thresholds"].items() if isinstance(v, (int, float)))
        typer.echo(f"  thresholds: {shown}")
