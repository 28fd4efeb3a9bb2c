"""Every document that the code, the docs or the README point a reader to exists: an error's hint naming a missing
page sends the user nowhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(r"\bdocs/[A-Za-z0-9_./-]*\.md\b")
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def test_docs_paths_named_in_code_and_docs_exist() -> None:
    sources = [*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("docs").rglob("*.md"), ROOT / "README.md"]
    missing = [
        f"{source.relative_to(ROOT)}: {name}"
        for source in sources
        for name in PATH.findall(source.read_text(encoding="utf-8"))
        if not (ROOT / name).is_file()
    ]
    assert not missing, missing


def test_relative_markdown_links_resolve() -> None:
    pages = [*ROOT.joinpath("docs").rglob("*.md"), ROOT / "README.md", ROOT / "CHANGELOG.md"]
    broken = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in target and not (page.parent / target).resolve().is_file()
    ]
    assert not broken, broken
