"""Playbooks: the versioned YAML documents the engine runs, their schema and validation (pure)."""

from opsrail.playbooks._cel import compile_cel
from opsrail.playbooks._expressions import Expression, ExpressionError, context_for, render, template_expressions
from opsrail.playbooks._schema import (
    KIND_KEYS,
    Approval,
    ApprovalRule,
    Call,
    Notify,
    OnFailure,
    Playbook,
    Retry,
    Sla,
    Step,
    StepKind,
    Trigger,
    Wait,
)
from opsrail.playbooks._validate import PlaybookInvalid, dependency_order, load_playbook, validate_file

__all__ = [
    "KIND_KEYS",
    "Approval",
    "ApprovalRule",
    "Call",
    "Expression",
    "ExpressionError",
    "Notify",
    "OnFailure",
    "Playbook",
    "PlaybookInvalid",
    "Retry",
    "Sla",
    "Step",
    "StepKind",
    "Trigger",
    "Wait",
    "compile_cel",
    "context_for",
    "dependency_order",
    "load_playbook",
    "render",
    "template_expressions",
    "validate_file",
]
