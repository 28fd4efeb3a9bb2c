"""`opsrail dev fakes` serves every vendor fake on one port; the settings it prints make every connector healthy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from typer.testing import CliRunner

from opsrail.cli import app as cli
from opsrail.cli._connectors import fakes_app
from opsrail.settings import Settings
from opsrail.wiring import build


def test_the_printed_settings_point_every_connector_at_a_healthy_fake(
    serve: Callable[[FastAPI], str], tmp_path: Path
) -> None:
    url = serve(fakes_app())
    port = int(url.rsplit(":", 1)[1])
    printed = CliRunner().invoke(cli, ["dev", "fakes", "--port", str(port), "--print-settings"])
    assert printed.exit_code == 0, printed.output
    settings = json.loads(printed.stdout)
    assert set(settings) == {"jira", "slack", "stripe", "servicenow", "erpnext"}
    container = build(Settings(home=tmp_path, connectors=settings), migrate=True)
    health = {h["name"]: h for h in asyncio.run(container.connectors.check())}
    container.close()
    assert {name: h["ok"] for name, h in health.items()} == {
        "ledger": True,
        "jira": True,
        "slack": True,
        "stripe": True,
        "servicenow": True,
        "erpnext": True,
    }, health
