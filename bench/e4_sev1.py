"""E4: Sev1 escalation end to end. Sev1 incidents are sent over HTTP to ``opsrail up`` (its worker inside); each
starts a run that routes the incident with the reference decision table, then does five things at once: opens a
provisional credit memo and a delivery project in the built-in ledger, files a Jira defect, a ServiceNow incident
and a Slack message on the local fakes (``opsrail dev fakes``, another process, real HTTP); then the run is done.

Figures: completed runs per second when a burst of ``--burst`` incidents is sent as fast as possible, and the
latency from the event's receipt to the run's end (p50/p99) when incidents arrive at half that rate.
The first line also gives the CPU time the server and the fakes spent per run during the bursts.
Usage: python -m bench.e4_sev1 [--burst 300] [--runs 3] [--workers N] [--ledger-only] [--breakdown] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

import opsrail.decisions
from bench._servers import ROOT, _wait, free_port, median
from opsrail.settings import Settings
from opsrail.wiring import build

PLAYBOOK = """
id: sev1-e4
version: 1
trigger:
  events: [com.opsrail.incident.opened]
  when: "event.data.severity == 1"
steps:
  - id: classify
    decide: incident-router
    with: {severity: "${ run.input.severity }", topic: "Access", premium_support: true, arr: 120000.0}
  - id: credit
    needs: [classify]
    action: ledger.create_credit_memo
    with: {account_id: "${ run.input.account_id }", amount: "${ steps.classify.output.credit_exposure }",
           currency: EUR, reason: "Sev1 ${ run.input.id }", incident_id: "${ run.input.id }"}
  - id: project
    needs: [classify]
    action: ledger.create_project
    with: {account_id: "${ run.input.account_id }", name: "Sev1 ${ run.input.id } follow-up"}
  - id: defect
    needs: [classify]
    action: jira.create_issue
    with: {project: ENG, summary: "Sev1 ${ run.input.id }", labels: ["team-${ steps.classify.output.team }"]}
  - id: itsm
    needs: [classify]
    action: servicenow.create_incident
    with: {short_description: "Sev1 ${ run.input.id }", urgency: 1, impact: 1}
  - id: chat
    needs: [classify]
    action: slack.post_message
    with: {channel: C0OPS, text: "Sev1 ${ run.input.id } routed to ${ steps.classify.output.team }"}
"""


def event(n: int, tag: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{tag}-{n}",
        "source": "monitoring/bench",
        "type": "com.opsrail.incident.opened",
        "data": {"id": f"{tag}:INC-{n}", "title": f"Checkout down {n}", "severity": 1, "account_id": f"acct-{n % 50}"},
    }


async def send(url: str, token: str, events: list[dict[str, Any]], rate: float | None) -> None:
    """POST each event on one of 32 keep-alive connections, at ``rate`` a second or as fast as they are answered.

    Requests are written as bytes on plain asyncio streams: an HTTP client library spent several milliseconds of CPU
    a request, more than the server spends on it, so on a small machine the sender, not the server, set the pace.
    """
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/cloudevents+json\r\nContent-Length: "
    ).encode()
    requests = [head + b"%d\r\n\r\n" % len(body) + body for body in (json.dumps(e).encode() for e in events)]
    pending = iter(enumerate(requests))
    start = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i, request in pending:
                if rate:
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                writer.write(request)
                status, body, keep_alive = await _response(reader)
                assert status in (200, 202), body.decode(errors="replace")
                if not keep_alive:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(min(32, len(requests)))))


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection stays open) of one HTTP/1.1 response."""
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


def finished(engine: sa.Engine, tag: str, count: int, timeout: float) -> list[tuple[float, float]]:
    """(received, finished) times of the runs started by this batch, once all are done."""
    query = sa.text(
        "SELECT e.received_at, r.finished_at, r.status FROM runs r JOIN events e ON e.event_id = r.trigger_event_id "
        "WHERE e.event_id LIKE :tag"
    )
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = conn.execute(query, {"tag": f"{tag}-%"}).all()
        done = [r for r in rows if r.finished_at is not None]
        if len(done) >= count or time.monotonic() > deadline:
            bad = [r.status for r in done if r.status != "succeeded"]
            assert not bad, f"runs did not succeed: {bad[:5]}"
            assert len(done) == count, f"only {len(done)} of {count} runs finished"
            return [(_ts(r.received_at), _ts(r.finished_at)) for r in done]
        time.sleep(0.2)


def breakdown(engine: sa.Engine, tag: str) -> dict[str, dict[str, float]]:
    """Where the latency of the runs started by this batch went: p50 and p99 (ms) of each stage, from the times the
    store keeps (event received, run created, each step started and finished, run finished)."""
    query = sa.text(
        "SELECT r.id AS run_id, e.received_at, r.created_at, r.finished_at, s.step_id, s.started_at, "
        "s.finished_at AS step_finished FROM runs r JOIN events e ON e.event_id = r.trigger_event_id "
        "JOIN run_steps s ON s.run_id = r.id WHERE e.event_id LIKE :tag"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"tag": f"{tag}-%"}).all()
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = runs.setdefault(
            row.run_id,
            {
                "received": _ts(row.received_at),
                "created": _ts(row.created_at),
                "end": _ts(row.finished_at),
                "steps": {},
            },
        )
        run["steps"][row.step_id] = (_ts(row.started_at), _ts(row.step_finished))
    stages: dict[str, list[float]] = {}
    for run in runs.values():
        first = run["steps"].pop("classify")
        starts = [start for start, _ in run["steps"].values()]
        ends = [end for _, end in run["steps"].values()]
        for name, seconds in (
            ("event_to_run", run["created"] - run["received"]),
            ("run_to_first_step", first[0] - run["created"]),
            ("first_step", first[1] - first[0]),
            ("to_last_action_start", max(starts) - first[1]),
            ("actions", max(ends) - min(starts)),
            ("last_action_to_run_end", run["end"] - max(ends)),
            ("total", run["end"] - run["received"]),
        ):
            stages.setdefault(name, []).append(seconds)
    out = {}
    for name, values in stages.items():
        values.sort()
        out[name] = {
            "p50": round(statistics.median(values) * 1000, 1),
            "p99": round(values[int(0.99 * (len(values) - 1))] * 1000, 1),
        }
    return out


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process and its live children (``--workers``) have used so far (Linux)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _ts(value: Any) -> float:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ledger-only", action="store_true", help="the five actions on the ledger (no fakes)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (`opsrail up --workers`)")
    parser.add_argument("--breakdown", action="store_true", help="also print where the half-load latency went")
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy during the bursts (raw)")
    args = parser.parse_args()
    fakes_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="opsrail-e4-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
        settings_json = subprocess.run(
            [sys.executable, "-m", "opsrail", "dev", "fakes", "--port", str(fakes_port), "--print-settings"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**env, "OPSRAIL_HOME": home},
        ).stdout
        connectors = json.loads(settings_json)
        env.update(OPSRAIL_HOME=home, OPSRAIL_LOG_LEVEL="warning", OPSRAIL_CONNECTORS=settings_json.strip())
        container = build(Settings(home=Path(home), connectors=connectors), migrate=True)
        _, token = container.tokens.create("operator", "bench")
        reference = Path(opsrail.decisions.__file__).parent / "reference" / "incident-router.yaml"
        container.decisions.publish_table(reference, "bench")
        text = PLAYBOOK
        if args.ledger_only:
            for vendor in ("jira.create_issue", "servicenow.create_incident", "slack.post_message"):
                text = text.replace(f"action: {vendor}", "action: core.set")
        (Path(home) / "pb.yaml").write_text(text)
        container.automation.publish(Path(home) / "pb.yaml", "bench")
        engine = container.engine
        fakes = subprocess.Popen(
            [sys.executable, "-m", "opsrail", "dev", "fakes", "--port", str(fakes_port)],
            env=env,
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "opsrail", "up", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            cwd=ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url, server, "/readyz")
            _wait(f"http://127.0.0.1:{fakes_port}", fakes, "/jira/rest/api/3/myself")
            asyncio.run(send(url, token, [event(n, "warm") for n in range(20)], None))
            finished(engine, "warm", 20, 120)
            profile = None
            if args.profile:
                # Samples only the thread holding the GIL: where the server's Python time goes during the bursts.
                spy = [
                    # The one beside this interpreter (a venv's, when it is not on PATH), else the one on PATH.
                    str(Path(sys.executable).with_name("py-spy"))
                    if Path(sys.executable).with_name("py-spy").exists()
                    else "py-spy",
                    "record",
                    "--pid",
                    str(server.pid),
                    "--gil",
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--subprocesses",
                ]
                profile = subprocess.Popen(
                    [*spy, "--format", "raw", "-o", args.profile],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
            throughputs = []
            bench_cpu = time.process_time()
            cpu_before = {name: _cpu_seconds(proc.pid) for name, proc in (("server", server), ("fakes", fakes))}
            for r in range(args.runs):
                tag = f"burst{r}"
                asyncio.run(send(url, token, [event(n, tag) for n in range(args.burst)], None))
                times = finished(engine, tag, args.burst, 600)
                throughputs.append(args.burst / (max(f for _, f in times) - min(s for s, _ in times)))
            cpu_ms = {
                name: round((_cpu_seconds(proc.pid) - cpu_before[name]) * 1000 / (args.burst * args.runs), 2)
                for name, proc in (("server", server), ("fakes", fakes))
            }
            cpu_ms["bench"] = round((time.process_time() - bench_cpu) * 1000 / (args.burst * args.runs), 2)
            if profile:
                profile.send_signal(2)
                profile.wait(30)
            rate = median(throughputs) / 2
            count = max(50, int(rate * 20))
            asyncio.run(send(url, token, [event(n, "steady") for n in range(count)], rate))
            steady = finished(engine, "steady", count, 600)
            latencies = sorted(f - s for s, f in steady)
            print(
                json.dumps(
                    {
                        "bench": "E4",
                        "metric": "runs_per_s",
                        "value": round(median(throughputs), 1),
                        "burst": args.burst,
                        "runs": args.runs,
                        "store": "sqlite",
                        "cpu_ms_per_run": cpu_ms,
                    }
                )
            )
            print(
                json.dumps(
                    {
                        "bench": "E4",
                        "metric": "latency_ms_at_half_load",
                        "offered_rps": round(rate, 1),
                        "runs": count,
                        "p50": round(statistics.median(latencies) * 1000, 1),
                        "p99": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
                    }
                )
            )
            if args.breakdown:
                print(
                    json.dumps({"bench": "E4", "metric": "latency_breakdown_ms", "stages": breakdown(engine, "steady")})
                )
        finally:
            server.terminate()
            fakes.terminate()
            server.wait(10)
            fakes.wait(10)
            container.close()


if __name__ == "__main__":
    main()
