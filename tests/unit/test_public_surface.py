"""Each package's public face is its ``__all__``; this pins it so a change to it is a deliberate one."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "opsrail.api": {"create_app"},
    "opsrail.cli": {"app", "main"},
    "opsrail.services": {
        "AutomationService",
        "AutomationStore",
        "DecisionPolicy",
        "DecisionService",
        "DecisionStore",
        "Evaluation",
        "describe",
        "load_policies",
        "not_audited",
        "RETAINED_KINDS",
        "ROLES",
        "ApiToken",
        "AuditService",
        "AuditStore",
        "Auditor",
        "BatchOutcome",
        "DeadLetterStore",
        "EventQuery",
        "EventStore",
        "GroupCommitter",
        "Health",
        "IngestionService",
        "ItemResult",
        "ParsedBatch",
        "RetentionService",
        "RetentionStore",
        "TokenService",
        "TokenStore",
        "assemble_batch",
        "hash_token",
    },
    "opsrail.decisions": {
        "AmbiguousMatch",
        "Collect",
        "CompiledTable",
        "DecisionTable",
        "InputSpec",
        "NoRuleMatched",
        "OutputSpec",
        "Rule",
        "RuleFailed",
        "TableInvalid",
        "TableResult",
        "TableTest",
        "TableTestOutcome",
        "VALUE_TYPES",
        "compile_table",
        "load_table",
        "load_table_file",
        "run_table_tests",
        "validate_table_file",
    },
    "opsrail.knowledge": {
        "Document",
        "ExtractiveSummarizer",
        "Hit",
        "KnowledgeIndex",
        "OpenAICompatibleSummarizer",
        "REFERENCE_DIR",
        "Summarizer",
        "Summary",
        "SummaryProviderError",
        "SummaryRequest",
        "load_markdown_folder",
        "reference_folder",
        "tokenize",
    },
    "opsrail.ml": {
        "EventLog",
        "EventLogError",
        "NextActivityModel",
        "Prediction",
        "Progress",
        "RemainingTimeModel",
        "SlaBreachModel",
        "TextClassifier",
        "TrainedModel",
        "TrainingDataError",
        "fit_text_classifier",
        "no_progress",
        "read_event_log",
        "train_next_activity",
        "train_remaining_time",
        "train_sla_breach",
        "train_text_classifier",
    },
    "opsrail.governance": {
        "GENESIS",
        "REDACTED",
        "AuditEntry",
        "ChainReport",
        "canonical",
        "entry_hash",
        "redact",
        "redact_text",
        "verify_chain",
    },
    "opsrail.ingest": {
        "Arrival",
        "BatchItem",
        "DeadLetter",
        "NormalisedEvent",
        "Receipt",
        "SourceMapper",
        "StoredEvent",
        "builtin_mappers",
        "check_single_media_type",
        "decode_json",
        "field_errors",
        "media_type",
        "normalise",
        "nul_errors",
        "refuse_nul",
        "rfc3339",
        "split_batch",
    },
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_exports_are_pinned(module: str) -> None:
    assert set(importlib.import_module(module).__all__) == SURFACE[module]


@pytest.mark.parametrize(
    "module",
    [
        "opsrail.model",
        "opsrail.storage",
        "opsrail.ingest",
        "opsrail.services",
        "opsrail.engine",
        "opsrail.playbooks",
        "opsrail.decisions",
        "opsrail.knowledge",
        "opsrail.ml",
    ],
)
def test_every_export_exists(module: str) -> None:
    loaded = importlib.import_module(module)
    missing = [name for name in loaded.__all__ if not hasattr(loaded, name)]
    assert missing == []
