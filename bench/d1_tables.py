"""D1: evaluations per second of a 50-rule decision table on one core, fast path against CEL per rule.

The table routes incidents on six inputs (topic, region, severity, arr, seats, premium) with mixed comparisons:
48 rules, one per topic and region, each with a threshold on arr or seats, then two catch-all rules; the typical
match is deep in the list. The figure is measured for hit policy ``first`` and again for ``collect`` (every rule
tried, a double output summed). The peer is the same compiled table with every condition and template run
through the CEL binding, one call per rule (``compile_table(table, fast=False)``), on the same inputs in the same
run; both must give identical results. Usage: python -m bench.d1_tables [--runs 5] [--count 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from opsrail.decisions import CompiledTable, compile_table, load_table

TOPICS = ["Access", "Hardware", "Billing", "Network", "Storage", "Database", "Email", "Security"]
REGIONS = ["eu", "us", "uk", "apac", "latam", "mea"]


def table_text(policy: str) -> str:
    lines = [
        "name: d1-router",
        "version: 1",
        f"hit_policy: {policy}",
        *(["collect: {aggregate: list}"] if policy == "collect" else []),
        "inputs:",
        "  topic: string",
        "  region: string",
        "  severity: int",
        "  arr: double",
        "  seats: {type: int, default: 1}",
        "  premium: {type: bool, default: false}",
        "outputs:",
        "  team: string",
        "  exposure: {type: double, default: 0.0" + (", aggregate: sum}" if policy == "collect" else "}"),
        "rules:",
    ]
    for t, topic in enumerate(TOPICS):
        for r, region in enumerate(REGIONS):
            threshold = 10_000 * (1 + (t + r) % 5)
            if (t + r) % 3 == 0:
                when = f"topic == '{topic}' && region == '{region}' && arr >= {threshold}.0 && severity <= 2"
            elif (t + r) % 3 == 1:
                when = f"topic == '{topic}' && region in ['{region}'] && seats > {10 * (r + 1)} && !premium"
            else:
                when = f"topic == '{topic}' && region.startsWith('{region}') && (severity == 1 || arr > {threshold}.0)"
            lines += [
                f"  - id: r{t}-{r}",
                f'    when: "{when}"',
                f'    then: {{team: {topic.lower()}-{region}, exposure: "${{ arr * 0.0{1 + r % 5} }}"}}',
            ]
    lines += [
        "  - id: sev1-premium",
        '    when: "severity == 1 && premium && size(topic) > 0"',
        '    then: {team: major-incident, exposure: "${ arr * 0.05 }"}',
        "  - id: default",
        '    when: "true"',
        "    then: {team: service-desk}",
    ]
    return "\n".join(lines) + "\n"


def random_inputs(count: int, seed: int = 7) -> list[dict[str, Any]]:
    chooser = random.Random(seed)
    return [
        {
            "topic": chooser.choice(TOPICS),
            "region": chooser.choice(REGIONS),
            "severity": chooser.randint(1, 4),
            "arr": float(chooser.randint(0, 60_000)),
            "seats": chooser.randint(1, 80),
            "premium": chooser.random() < 0.3,
        }
        for _ in range(count)
    ]


def rate(table: CompiledTable, inputs: list[dict[str, Any]]) -> float:
    evaluate = table.evaluate
    start = time.perf_counter()
    for item in inputs:
        evaluate(item)
    return len(inputs) / (time.perf_counter() - start)


def measure(policy: str, runs: int, count: int) -> dict[str, Any]:
    table = load_table(table_text(policy), f"d1-{policy}.yaml")
    fast, peer = compile_table(table), compile_table(table, fast=False)
    inputs = random_inputs(count)
    for item in inputs[:2000]:
        one, two = fast.evaluate(item), peer.evaluate(item)
        if (one.outputs, one.matched_rules) != (two.outputs, two.matched_rules):
            raise RuntimeError(f"fast path and CEL disagree on {item}: {one} != {two}")
    positions = {rule.id: position + 1 for position, rule in enumerate(table.rules)}
    depth = statistics.mean(positions[fast.evaluate(item).matched_rules[-1]] for item in inputs[:2000])
    ours, theirs = [], []
    for _ in range(runs):
        ours.append(rate(fast, inputs))
        theirs.append(rate(peer, inputs[: max(1000, count // 10)]))
    value, peer_value = statistics.median(ours), statistics.median(theirs)
    return {
        "bench": "D1",
        "metric": "evaluations_per_s",
        "hit_policy": policy,
        "value": round(value),
        "peer": "CEL-per-rule",
        "peer_value": round(peer_value),
        "ratio": round(value / peer_value, 1),
        "target": 20000,
        "rules": len(table.rules),
        "fast_rules": len(fast.fast_rules),
        "mean_position_of_last_match": round(depth, 1),
        "runs": runs,
        "count": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=20000, help="evaluations per measurement")
    args = parser.parse_args()
    for policy in ("first", "collect"):
        print(json.dumps(measure(policy, args.runs, args.count)))


if __name__ == "__main__":
    main()
