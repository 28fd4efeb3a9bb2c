"""The console's server-side drawings: step graphs and KPI charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from opsrail.web._charts import line_chart
from opsrail.web._graph import GAP_X, NODE_W, PAD, Node, dag_svg, layout
from opsrail.web._records import default_period


def test_a_step_sits_one_column_right_of_its_deepest_need() -> None:
    nodes = [
        Node("a", "decide", ()),
        Node("b", "action", ("a",)),
        Node("c", "action", ("a",)),
        Node("d", "approval", ("b", "c")),
        Node("e", "notify", ("a", "d")),
    ]
    placed, width, _ = layout(nodes)
    column = {p.node.id: (p.x - PAD) // (NODE_W + GAP_X) for p in placed}
    assert column == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    assert width == PAD * 2 + 4 * (NODE_W + GAP_X) - GAP_X


def test_the_graph_escapes_names_and_colours_states() -> None:
    svg = dag_svg([Node("<x>", "action", ()), Node("y", "approval", ("<x>",))], {"<x>": "succeeded"})
    assert "&lt;x&gt;" in svg and "<x>" not in svg
    assert 'class="node state-succeeded"' in svg and 'class="node state-pending"' in svg
    assert svg.count('class="edge"') == 1


def test_a_chart_draws_one_line_per_series_and_breaks_at_gaps() -> None:
    svg = line_chart(["a", "b", "c", "d"], {"all": [1.0, 2.0, None, 4.0], "EU": [0.5, 0.5, 0.5, 0.5]}, "hours")
    assert svg.count("<polyline") == 2  # "all" has one segment of two points, "EU" one of four
    assert svg.count("<circle") == 7
    assert line_chart(["a"], {"all": [None]}, "hours") == '<p class="empty">nothing measured in this period</p>'


def test_the_kpi_period_reaches_back_to_the_first_run() -> None:
    now = datetime.now(UTC)
    assert default_period(now - timedelta(minutes=3)) == "15m"
    assert default_period(now - timedelta(minutes=40)) == "1h"
    assert default_period(now - timedelta(days=3)) == "7d"
    assert default_period(None) == "30d"


def test_a_playbook_graph_shows_each_step_s_kind_without_a_state() -> None:
    svg = dag_svg([Node("route", "decide", ()), Node("file", "action", ("route",))], None)
    assert ">decide</text>" in svg and ">action</text>" in svg and " · " not in svg
    assert "<title>route: decide</title>" in svg


def test_a_process_map_places_steps_by_their_place_in_the_runs_and_loops_back_edges_above() -> None:
    from opsrail.insights import Trace, TraceEvent, process_map
    from opsrail.web._process_map import LOOPS, NODE_H, PAD, process_map_svg

    start = datetime(2026, 3, 2, tzinfo=UTC)

    def run(run_id: str, *steps: tuple[str, str]) -> Trace:
        events = tuple(
            TraceEvent(step, f"step.{end}", start + timedelta(minutes=i)) for i, (step, end) in enumerate(steps)
        )
        return Trace(run_id, "p", 1, "succeeded", start, start + timedelta(hours=1), events)

    graph = process_map(
        [run("a", ("check", "succeeded"), ("push", "succeeded")), run("b", ("push", "failed"), ("check", "succeeded"))]
    )
    assert process_map_svg({"nodes": [], "edges": []}) == ""
    svg = process_map_svg(graph)
    assert svg.startswith('<svg class="dag pmap"') and svg.count('class="node') == 5  # start, end and three steps
    assert 'class="node state-failed"><title>push (failed): 1 times in 1 run(s)' in svg
    # The failed push and check share a column (check ends first in one run, second in the other): the edge between
    # them loops through the band above the first row; an edge to a later column is a plain curve.
    flows = {
        re.search(r"<title>(.*?):", flow).group(1): flow  # type: ignore[union-attr]
        for flow in re.findall(r'<g class="flow">.*?</g>', svg)
    }
    loop = re.search(r'd="M (\d+) (\d+) C (\d+) (\d+),', flows["push (failed) → check"])
    assert loop is not None and int(loop.group(2)) >= PAD + LOOPS and int(loop.group(4)) == PAD + 4
    ahead = re.search(r'd="M (\d+) (\d+) C (\d+) (\d+),', flows["check → push"])
    assert ahead is not None and int(ahead.group(4)) == int(ahead.group(2)) == PAD + LOOPS + NODE_H // 2
    assert set(flows) == {
        "▶ start → check",
        "▶ start → push (failed)",
        "check → push",
        "push (failed) → check",
        "push → ■ end",
        "check → ■ end",
    }


def test_the_insights_page_reuses_its_reports_for_twenty_seconds(monkeypatch: Any) -> None:
    from opsrail.web import _insights

    made: list[tuple[str, ...]] = []

    def view(
        viewer: Any, window: str, by: str, playbook: str | None, order: str, risk: str | None = None
    ) -> dict[str, Any]:
        made.append((window, by, str(playbook), order, str(risk)))
        return {"n": len(made)}

    monkeypatch.setattr(_insights, "_view", view)
    monkeypatch.setattr(_insights, "_cache", {})
    clock = [1000.0]
    monkeypatch.setattr("opsrail.web._insights.time.monotonic", lambda: clock[0])
    viewer = SimpleNamespace(container=object())
    first = _insights._cached_view(viewer, "30d", "region", None, "ended")  # type: ignore[arg-type]
    assert _insights._cached_view(viewer, "30d", "region", None, "ended") == first  # type: ignore[arg-type]
    assert _insights._cached_view(viewer, "30d", "tier", None, "ended") != first  # type: ignore[arg-type]
    scored = _insights._cached_view(viewer, "30d", "region", None, "ended", "run-sla")  # type: ignore[arg-type]
    assert scored != first and made[-1][-1] == "run-sla"  # scoring open runs is its own choice
    clock[0] += 21
    assert _insights._cached_view(viewer, "30d", "region", None, "ended") != first  # type: ignore[arg-type]
    assert len(made) == 4
