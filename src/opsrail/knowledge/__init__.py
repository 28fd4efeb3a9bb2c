"""Knowledge for operations decisions: approved runbooks and policies, similar past cases, and case summaries.

``load_markdown_folder`` turns a folder of Markdown runbooks and policies into one ``Document`` per heading
section; past cases become documents with ``kind="case"`` and ``source="case:<id>"``. ``KnowledgeIndex`` finds the
sections and cases closest to a question (sparse BM25, local, picklable). A ``Summarizer`` writes a case summary
that cites those hits: ``ExtractiveSummarizer`` deterministically, ``OpenAICompatibleSummarizer`` through any
OpenAI-compatible Chat Completions endpoint, falling back to the extractive one when the provider is down.
``reference_folder()`` (also ``REFERENCE_DIR``) is a small sample knowledge folder shipped with Opsrail.
"""

from __future__ import annotations

from pathlib import Path

from opsrail.knowledge._documents import Document, load_markdown_folder
from opsrail.knowledge._openai import OpenAICompatibleSummarizer, SummaryProviderError
from opsrail.knowledge._retrieval import Hit, KnowledgeIndex
from opsrail.knowledge._summaries import ExtractiveSummarizer, Summarizer, Summary, SummaryRequest
from opsrail.knowledge._text import tokenize

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def reference_folder() -> Path:
    """The sample knowledge folder shipped with Opsrail: runbooks/ and policies/ as Markdown."""
    return REFERENCE_DIR


__all__ = [
    "REFERENCE_DIR",
    "Document",
    "ExtractiveSummarizer",
    "Hit",
    "KnowledgeIndex",
    "OpenAICompatibleSummarizer",
    "Summarizer",
    "Summary",
    "SummaryProviderError",
    "SummaryRequest",
    "load_markdown_folder",
    "reference_folder",
    "tokenize",
]
