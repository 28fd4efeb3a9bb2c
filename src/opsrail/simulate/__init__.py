"""Simulation: a seeded stream of SaaS operations events sent over the HTTP API, and simulated people who decide
the tasks it causes after realistic delays (``opsrail simulate``).

``World`` and ``Behaviour`` are pure (the world's events and the people's answers follow from the seed);
``simulate`` talks to a running server over HTTP only.
"""

from opsrail.simulate._runner import Decision, Report, simulate
from opsrail.simulate._tickets import Ticket, load_tickets, parse_tickets
from opsrail.simulate._world import (
    DRIFT_KNOBS,
    SEGMENT_VALUES,
    STORIES,
    Behaviour,
    Drift,
    SimAccount,
    Verdict,
    World,
    is_credit_task,
    parse_drift,
    parse_duration,
    parse_rate,
    task_input,
    task_segment,
)

# The simulated people `opsrail simulate` puts in the directory: name -> role. Each gets an API token of that name,
# so the API principal that decides a task is the person in the directory.
PEOPLE: dict[str, str] = {
    "sim-fiona": "finance_controller",
    "sim-abe": "approver",
    "sim-lena": "legal",
    "sim-olive": "operator",
}

__all__ = [
    "DRIFT_KNOBS",
    "PEOPLE",
    "SEGMENT_VALUES",
    "STORIES",
    "Behaviour",
    "Decision",
    "Drift",
    "Report",
    "SimAccount",
    "Ticket",
    "Verdict",
    "World",
    "is_credit_task",
    "load_tickets",
    "parse_drift",
    "parse_duration",
    "parse_rate",
    "parse_tickets",
    "simulate",
    "task_input",
    "task_segment",
]
