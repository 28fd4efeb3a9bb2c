"""psycopg is the optional ``postgres`` extra: without it Opsrail imports and runs on SQLite, and a PostgreSQL URL
says what to install instead of failing with a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["psycopg"] = None  # as if the extra were not installed: any import of it fails
    from datetime import UTC, datetime
    from pathlib import Path

    import opsrail.cli._app  # every command imports this
    from opsrail.engine import Log, RunState, StepState
    from opsrail.ingest import Arrival, normalise
    from opsrail.settings import Settings
    from opsrail.storage import SqlEventStore, SqlRunStore
    from opsrail.wiring import RandomIds, build

    home = Path(sys.argv[1])
    container = build(Settings(home=home, database_url=f"sqlite:///{home / 'opsrail.db'}"), migrate=True)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    event = {"specversion": "1.0", "id": "e1", "source": "test/suite", "type": "com.example.thing"}
    receipts = SqlEventStore(container.engine).append([Arrival(normalise(event), at, "api")])
    store = SqlRunStore(container.engine, RandomIds())
    run = RunState(id="r1", playbook_id="p", version=1, status="running", input={}, steps={"a": StepState(id="a")},
                   created_at=at)
    store.create_runs([(run, [])])
    loaded, version = store.load_runs(["r1"])["r1"]
    loaded.steps["a"].status, loaded.steps["a"].changed = "succeeded", True
    assert store.save_runs([(loaded, version, [Log("r1", "a", "step_succeeded", at, {})])]) == set()
    assert store.load_run("r1")[0].steps["a"].status == "succeeded"
    container.close()
    print(receipts[0].status)
    """
)


def test_opsrail_runs_on_sqlite_without_psycopg(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "accepted"


def test_a_postgresql_url_without_psycopg_says_what_to_install(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None
        sys.argv = ["opsrail", "runs", "list"]
        from opsrail.cli import main
        main()
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "OPSRAIL_HOME": str(tmp_path),
        "OPSRAIL_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert done.returncode == 6, done.stderr[-2000:]  # Unavailable's exit code
    assert "PostgreSQL needs the psycopg driver" in done.stderr
    assert "pip install 'opsrail[postgres]'" in done.stderr
    assert "Traceback" not in done.stderr
