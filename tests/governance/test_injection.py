"""Injection: YAML is loaded safely everywhere, CEL cannot call out of its sandbox, and file arguments cannot
escape their folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrail.decisions import load_table
from opsrail.governance import load_cases
from opsrail.knowledge import load_markdown_folder
from opsrail.model import InvalidInput, NotFound, json_schema
from opsrail.playbooks import Expression, ExpressionError, load_playbook
from opsrail.services import load_policies


def payload(marker: Path) -> str:
    return f"!!python/object/apply:os.system ['touch {marker}']"


@pytest.mark.parametrize(
    "loader",
    [
        lambda text: load_playbook(text, "p.yaml"),
        lambda text: load_table(text, "t.yaml"),
        lambda text: load_cases(text, "c.yaml"),
        lambda text: load_policies(text, "d.yaml"),
    ],
    ids=["playbook", "decision-table", "policy-cases", "decision-policies"],
)
def test_yaml_tags_that_build_python_objects_are_refused(loader: object, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    documents = [
        f"id: x\nversion: 1\nsteps: {payload(marker)}\n",
        f"cases: {payload(marker)}\n",
        f"!!python/object/new:os.system ['touch {marker}']\n",
    ]
    for text in documents:
        with pytest.raises(InvalidInput):
            loader(text)  # type: ignore[operator]
    assert not marker.exists()


@pytest.mark.parametrize(
    "source",
    [
        "open('/etc/passwd') == ''",
        "system('touch /tmp/opsrail-pwned')",
        "run.input.x.__class__ == ''",
        "getattr(run, '__dict__') == {}",
        "import('os')",
    ],
)
def test_cel_has_no_way_out(source: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(source).evaluate({"run": {"input": {"x": 1}}})
    assert not Path("/tmp/opsrail-pwned").exists()


def test_a_decision_table_refuses_functions_outside_its_subset() -> None:
    table = """
name: t
version: 1
inputs: {x: string}
outputs: {y: string}
rules:
  - id: r
    when: "open(x) == ''"
    then: {y: a}
"""
    with pytest.raises(InvalidInput) as caught:
        load_table(table, "t.yaml")
    assert any("open" in e.message for e in caught.value.errors)


def test_knowledge_files_outside_the_folder_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nthe root password is hunter2\n")
    folder = tmp_path / "knowledge"
    (folder / "runbooks").mkdir(parents=True)
    (folder / "runbooks" / "vpn.md").write_text("# VPN\n\nRestart the tunnel.\n")
    (folder / "runbooks" / "leak.md").symlink_to(outside)
    (folder / "linked").symlink_to(tmp_path, target_is_directory=True)
    texts = " ".join(d.text for d in load_markdown_folder(folder))
    assert "Restart the tunnel" in texts
    assert "hunter2" not in texts


@pytest.mark.parametrize("name", ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "incident/../../x"])
def test_schema_names_are_names_not_paths(name: str) -> None:
    with pytest.raises(NotFound):
        json_schema(name)
