"""The console's server-side drawings: step graphs and KPI charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
