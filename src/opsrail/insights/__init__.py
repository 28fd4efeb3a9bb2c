"""Insights: what the runs, tasks and decisions stored so far say about the automation (pure computations).

Process maps and variants (``_mining``), conformance to the pinned playbook version (``_conformance``), outcome
drift between segments (``_drift``) and automation health (``_health``). The service layer reads the store and
hands these functions plain values; nothing here reads a database or a clock.
"""

from opsrail.insights._conformance import DEVIATIONS, Deviation, RunConformance, check_run, conformance
from opsrail.insights._drift import DriftSettings, Observation, drift
from opsrail.insights._health import HealthInputs, HealthSettings, health, psi
from opsrail.insights._mining import END, START, process_map, variants
from opsrail.insights._stats import readable_hours
from opsrail.insights._traces import Trace, TraceEvent, completions

__all__ = [
    "DEVIATIONS",
    "END",
    "START",
    "Deviation",
    "DriftSettings",
    "HealthInputs",
    "HealthSettings",
    "Observation",
    "RunConformance",
    "Trace",
    "TraceEvent",
    "check_run",
    "completions",
    "conformance",
    "drift",
    "health",
    "process_map",
    "psi",
    "readable_hours",
    "variants",
]
