"""Knowledge documents and the Markdown folder loader.

Owns the ``Document`` record every retrievable thing becomes (a runbook section, a policy clause, a past case) and
``load_markdown_folder``, which turns a folder of Markdown files into one document per heading section with a
stable id and a source link (``relative/path.md#anchor``) that a reviewer can open.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_KIND = "runbook"

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Document:
    """One retrievable unit of knowledge.

    ``kind`` says what it is ("case", "runbook", "policy", …) so a search can ask for one kind only. ``source`` is
    what a summary cites: ``relative/path.md#anchor`` for a Markdown section, ``case:<id>`` for a past case.
    ``metadata`` carries anything else the caller wants back on a hit (labels, owners, dates); it must be
    picklable because a built index is.
    """

    id: str
    kind: str
    title: str
    text: str
    source: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def slugify(heading: str) -> str:
    """The anchor GitHub and most Markdown viewers give a heading, so cited links open at the right place."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _kind_from_folder(relative: Path) -> str:
    # A file directly in the root has no folder to speak for it; the top-level folder (e.g. "policies/") does.
    if len(relative.parts) < 2:
        return DEFAULT_KIND
    name = relative.parts[0].lower()
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _split_front_matter(raw: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER.match(raw)
    if not match:
        return {}, raw
    try:
        loaded = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        # A broken header should not hide the runbook below it; the text still gets indexed.
        return {}, raw[match.end() :]
    return (dict(loaded) if isinstance(loaded, dict) else {}), raw[match.end() :]


def _sections(body: str) -> list[tuple[list[tuple[int, str]], str]]:
    """(heading path, section text) pairs; headings inside fenced code blocks are text, not structure."""
    out: list[tuple[list[tuple[int, str]], str]] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fence: str | None = None
    for line in body.splitlines():
        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            lines.append(line)
            continue
        heading = None if fence else _HEADING.match(line)
        if heading is None:
            lines.append(line)
            continue
        out.append((list(path), "\n".join(lines).strip()))
        level = len(heading.group(1))
        path = [entry for entry in path if entry[0] < level]
        path.append((level, heading.group(2).strip()))
        lines = []
    out.append((list(path), "\n".join(lines).strip()))
    return out


def load_markdown_file(file: Path, root: Path, *, kind_from_front_matter: bool = True) -> list[Document]:
    """The sections of one Markdown file under ``root``, one document each (empty sections are skipped)."""
    relative = file.relative_to(root)
    rel = relative.as_posix()
    front, body = _split_front_matter(file.read_text(encoding="utf-8"))
    kind = _kind_from_folder(relative)
    if kind_from_front_matter and isinstance(front.get("kind"), str) and front["kind"].strip():
        kind = front["kind"].strip().lower()
    doc_title = str(front.get("title") or "").strip()
    extra = {key: value for key, value in front.items() if key not in {"kind", "title"}}
    seen: dict[str, int] = {}
    documents: list[Document] = []
    for path, text in _sections(body):
        if path:
            base = slugify(path[-1][1])
            # Repeated headings get -1, -2, … like GitHub does, so every anchor stays unique and clickable.
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchor = base if count == 0 else f"{base}-{count}"
        else:
            anchor = ""
        if not text:
            continue
        titles = [heading for _, heading in path]
        if doc_title and (not titles or titles[0] != doc_title):
            titles.insert(0, doc_title)
        title = " > ".join(titles) or file.stem.replace("-", " ").replace("_", " ")
        source = f"{rel}#{anchor}" if anchor else rel
        metadata = {**extra, "path": rel, "anchor": anchor, "level": path[-1][0] if path else 0}
        documents.append(Document(id=source, kind=kind, title=title, text=text, source=source, metadata=metadata))
    return documents


def load_markdown_folder(path: Path, *, kind_from_front_matter: bool = True) -> list[Document]:
    """Every ``*.md`` under ``path`` (recursively, in path order), split into one document per heading section.

    The kind comes from a ``kind:`` key in the file's YAML front matter (when ``kind_from_front_matter``), else from
    its top-level folder name made singular ("policies/" gives "policy"), else ``"runbook"``. Other front matter
    keys (owner, reviewed, tags, …) land in each section's metadata, with ``path``, ``anchor`` and ``level``.
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"knowledge folder not found: {root}")
    documents: list[Document] = []
    inside = root.resolve()
    for file in sorted(root.rglob("*.md")):
        # A symbolic link may point anywhere; only what really lies inside the folder is approved knowledge.
        if file.is_file() and file.resolve().is_relative_to(inside):
            documents.extend(load_markdown_file(file, root, kind_from_front_matter=kind_from_front_matter))
    return documents
