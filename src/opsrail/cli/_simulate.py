"""`opsrail simulate`: a seeded stream of SaaS operations events sent to a running server over its HTTP API, with
simulated people deciding the tasks the playbooks open.

The people (``opsrail.simulate.PEOPLE``: sim-fiona the finance controller, sim-abe the approver, sim-lena from
legal, sim-olive the operator) are put in the user directory of the local store, each with an API token of their
own name that expires shortly after the simulation and is revoked at its end. That needs the store the server uses
to be reachable from here; without it the simulation runs without people (say so with ``--no-humans``).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from opsrail.cli._common import JsonFlag, opened
from opsrail.cli._output import emit_json, fail, table
from opsrail.model import OpsrailError, Unauthenticated

if TYPE_CHECKING:
    from opsrail.simulate import Report
    from opsrail.wiring import Container

FEED_TOKEN_NAME = "sim-feed"  # noqa: S105 (a token's name, not a secret)
PROGRESS_EVERY_S = 5.0
DRAIN_S = 30.0


def provision_people(
    container: Container, *, expires_at: datetime | None, actor: str
) -> tuple[dict[str, str], list[str]]:
    """Put the simulated people in the directory and give each an API token named after them.

    Returns role -> token secret, and the ids of the tokens (to revoke them afterwards).
    """
    from opsrail.simulate import PEOPLE

    secrets: dict[str, str] = {}
    token_ids: list[str] = []
    for name, role in PEOPLE.items():
        container.directory.put_user(name, [role], actor)
        record, secret = container.tokens.create(role, name, expires_at, None, actor)
        secrets[role] = secret
        token_ids.append(record.id)
    return secrets, token_ids


@contextmanager
def _local_store(actor: str) -> Iterator[Container]:
    """The local store, with the caller allowed to manage users and tokens (raises when either fails)."""
    with opened(action="user.manage", actor=actor) as container:
        container.authorization.check(container.directory.local(actor), "token.manage")
        yield container


def _why(exc: Exception) -> str:
    if isinstance(exc, OpsrailError):
        return exc.detail
    if isinstance(exc, ValidationError):
        return "invalid OPSRAIL_* settings"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _prepare(
    *, need_feed: bool, humans: bool, expires_at: datetime, actor: str
) -> tuple[str | None, dict[str, str], list[str], str | None]:
    """Tokens from the local store: (feed token or None, role -> person's token, token ids, why people are off)."""
    from opsrail.wiring import DatabaseError

    try:
        with _local_store(actor) as container:
            feed: str | None = None
            ids: list[str] = []
            if need_feed:
                record, feed = container.tokens.create("service", FEED_TOKEN_NAME, expires_at, None, actor)
                ids.append(record.id)
            people: dict[str, str] = {}
            if humans:
                people, person_ids = provision_people(container, expires_at=expires_at, actor=actor)
                ids.extend(person_ids)
            return feed, people, ids, None
    except (OpsrailError, DatabaseError, ValidationError) as exc:
        return None, {}, [], _why(exc)


def _revoke(token_ids: list[str], actor: str) -> None:
    if not token_ids:
        return
    from opsrail.wiring import DatabaseError

    try:
        with _local_store(actor) as container:
            for token_id in token_ids:
                try:
                    container.tokens.revoke(token_id, actor)
                except OpsrailError:
                    continue
    except (OpsrailError, DatabaseError, ValidationError) as exc:
        fail(f"could not revoke the simulation's tokens: {_why(exc)}", "they expire on their own within the hour")


def _progress_line(report: Report) -> str:
    clock = f"/{report.duration_s:.0f}s" if report.phase == "sending" else ", people finishing their tasks"
    return (
        f"[{report.elapsed_s:5.0f}s{clock}] sent {report.total_sent} "
        f"(accepted {report.accepted}, duplicates {report.duplicates}, errors {report.errors}) · "
        f"tasks approved {report.approved}, rejected {report.rejected}, refused {report.refused}"
    )


def _summary(report: Report, people: dict[str, str], note: str | None) -> None:
    table(
        "Events sent",
        ["type", "sent"],
        [*[[t, n] for t, n in sorted(report.sent.items())], ["total", report.total_sent]],
    )
    typer.echo(
        f"accepted {report.accepted}, duplicates {report.duplicates}, errors {report.errors} "
        f"in {report.elapsed_s:.1f}s (seed {report.seed}{', drift ' + report.drift if report.drift else ''})"
    )
    for sample in report.error_samples:
        typer.echo(f"  {sample}")
    if report.duplicates and not report.accepted:
        typer.echo("every event was a duplicate: the same --seed sends the same events; pick another seed for new ones")
    if people:
        from opsrail.simulate import PEOPLE

        by_role = report.by_role()
        names = {role: name for name, role in PEOPLE.items()}
        table(
            "Tasks decided by simulated people",
            ["person", "role", "approved", "rejected"],
            [
                [
                    names.get(role, ""),
                    role,
                    by_role.get(role, {}).get("approved", 0),
                    by_role.get(role, {}).get("rejected", 0),
                ]
                for role in people
            ],
        )
        typer.echo(
            f"refused {report.refused} (not theirs or already decided), errors {report.task_errors}, "
            f"still undecided at the end {report.abandoned}"
        )
    elif note:
        typer.echo(f"no simulated people: {note}")


def simulate_command(
    url: Annotated[str, typer.Option(help="the API's base URL")] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="OPSRAIL_TOKEN",
            show_default=False,
            help="API token to send events with (service or operator role) [default: $OPSRAIL_TOKEN, else a "
            "temporary service token from the local store]",
        ),
    ] = None,
    rate: Annotated[str, typer.Option(help="events per second: 20/s, 5, or 300/m")] = "20/s",
    duration: Annotated[str, typer.Option(help="how long to send: 90s, 10m, 1h or PT10M")] = "10m",
    seed: Annotated[int, typer.Option(help="the same seed sends the same events, with the same ids")] = 7,
    drift: Annotated[
        str | None,
        typer.Option(
            help="make one segment behave differently, e.g. region=EU:credit_reject=0.6 "
            "(knobs: credit_reject, reject, sev1_rate, credit_scale, delay_scale)"
        ),
    ] = None,
    humans: Annotated[
        bool, typer.Option("--humans/--no-humans", help="simulated people decide the tasks playbooks open")
    ] = True,
    json: JsonFlag = False,
) -> None:
    """Send a realistic, seeded stream of SaaS operations events to a running server, while simulated people decide
    its tasks. Exits 1 when the server refused some events."""
    from opsrail.simulate import parse_drift, parse_duration, parse_rate, simulate

    rate_per_s = parse_rate(rate)
    duration_s = parse_duration(duration)
    parsed_drift = parse_drift(drift) if drift else None
    actor = getpass.getuser()
    feed: str | None = None
    people: dict[str, str] = {}
    token_ids: list[str] = []
    note: str | None = None
    if humans or not token:
        expires_at = datetime.now().astimezone() + timedelta(seconds=duration_s + DRAIN_S + 600)
        feed, people, token_ids, note = _prepare(need_feed=not token, humans=humans, expires_at=expires_at, actor=actor)
    sender = token or feed
    if sender is None:
        raise Unauthenticated(
            "no API token to send events with" + (f" (the local store: {note})" if note else ""),
            hint="give --token or set OPSRAIL_TOKEN; create one with `opsrail tokens create --role service`",
        )
    if humans and not people and note and not json:
        typer.echo(
            f"note: no simulated people: {note}; they need the server's store (OPSRAIL_HOME or OPSRAIL_DATABASE_URL), "
            "--no-humans silences this",
            err=True,
        )
    latest: list[Report] = []

    def progress(report: Report) -> None:
        if not latest:
            latest.append(report)
        if not json and report.elapsed_s > 0:
            typer.echo(_progress_line(report), err=True)

    try:
        report = asyncio.run(
            simulate(
                url,
                sender,
                rate=rate_per_s,
                duration_s=duration_s,
                seed=seed,
                drift=parsed_drift,
                humans=people,
                progress=progress,
                progress_every_s=PROGRESS_EVERY_S,
                drain_s=DRAIN_S,
            )
        )
    except KeyboardInterrupt:
        if latest:
            _finish(latest[0], people, note, json)
        raise typer.Exit(130) from None
    finally:
        _revoke(token_ids, actor)
    _finish(report, people, note, json)
    if report.errors:
        raise typer.Exit(1)


def _finish(report: Report, people: dict[str, str], note: str | None, json: bool) -> None:
    if json:
        from opsrail.simulate import PEOPLE

        body: dict[str, Any] = report.as_dict()
        body["people"] = {name: role for name, role in PEOPLE.items() if role in people}
        if note and not people:
            body["people_note"] = note
        emit_json(body)
    else:
        sys.stderr.flush()
        _summary(report, people, note)
