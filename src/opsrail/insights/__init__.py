"""Insights: what the runs, tasks and decisions stored so far say about the automation (pure computations).

Process maps and variants (``_mining``), conformance to the pinned playbook version (``_conformance``), outcome
drift between segments (``_drift``), automation health (``_health``), model monitoring (``_monitoring``) and runs
as an event log's cases (``_export``). The service layer reads the store and hands these functions plain values;
nothing here reads a database or a clock.
"""

from opsrail.insights._conformance import DEVIATIONS, Deviation, RunConformance, check_run, conformance
from opsrail.insights._drift import DriftSettings, Observation, drift
from opsrail.insights._export import LogEvent, log_events
from opsrail.insights._health import HealthInputs, HealthSettings, health, psi
from opsrail.insights._mining import END, START, process_map, variants
from opsrail.insights._monitoring import MonitoringSettings, monitor, wilson
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
    "LogEvent",
    "MonitoringSettings",
    "Observation",
    "RunConformance",
    "Trace",
    "TraceEvent",
    "check_run",
    "completions",
    "conformance",
    "drift",
    "health",
    "log_events",
    "monitor",
    "process_map",
    "psi",
    "readable_hours",
    "variants",
    "wilson",
]
