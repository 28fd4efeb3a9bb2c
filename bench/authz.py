"""Authorization cost: how long one Cedar check takes on the paths that use it.

Three figures, medians of ``--runs``:

- ``role_check``: a route's check (principal roles and action only), as every API request makes it: after the
  first answer it is memoised per (roles, action) and policy version;
- ``task_check``: deciding a task, whose answer depends on the task's roles and requester and so goes to Cedar
  every time (entities built, the parsed policy set reused);
- ``task_check_unparsed``: the same request with the policy text parsed on every call, which is what caching the
  parsed policy set saves.

Usage: python -m bench.authz [--runs 5] [--count 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import cedarpy

from opsrail.governance import PolicySet, Principal, Resource
from opsrail.services import reference_policies


def per_call(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    text = reference_policies()
    policies = PolicySet(text)
    operator = Principal("olive", frozenset({"operator"}))
    finance = Principal("fiona", frozenset({"finance_controller"}))
    task = Resource("Task", "t1", {"roles": ["finance_controller"], "requested_by": "olive", "kind": "approval"})
    assert policies.authorize(operator, "run.start").allowed
    assert policies.authorize(finance, "task.decide", task).allowed
    unparsed = PolicySet(text)
    unparsed._policies = text  # type: ignore[assignment]  # cedarpy accepts the text and parses it per call
    assert unparsed.authorize(finance, "task.decide", task).allowed
    figures: dict[str, Callable[[], object]] = {
        "role_check": lambda: policies.authorize(operator, "run.start"),
        "task_check": lambda: policies.authorize(finance, "task.decide", task),
        "task_check_unparsed": lambda: unparsed.authorize(finance, "task.decide", task),
    }
    counts = {"role_check": args.count * 10, "task_check": args.count // 10, "task_check_unparsed": args.count // 20}
    results = {
        name: statistics.median(per_call(fn, counts[name]) for _ in range(args.runs)) for name, fn in figures.items()
    }
    for name, seconds in results.items():
        print(
            json.dumps(
                {
                    "bench": "authz",
                    "metric": f"{name}_us",
                    "value": round(seconds * 1e6, 2),
                    "runs": args.runs,
                    "cedarpy": getattr(cedarpy, "__version__", "4.12.2"),
                }
            )
        )


if __name__ == "__main__":
    main()
