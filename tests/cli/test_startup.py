"""Every `opsrail` command pays for what the CLI imports: the web stack and SciPy load only where they are used."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_cli_does_not_load_the_web_stack_or_scipy() -> None:
    probe = (
        "import json, sys, opsrail.cli._app; "
        "print(json.dumps(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'scipy') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
