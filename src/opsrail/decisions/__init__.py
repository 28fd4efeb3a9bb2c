"""Decisions: versioned decision tables (CEL conditions, hit policies): validation, evaluation and tests (pure)."""

from opsrail.decisions._evaluate import (
    AmbiguousMatch,
    CompiledTable,
    NoRuleMatched,
    RuleFailed,
    TableResult,
    compile_table,
)
from opsrail.decisions._overrides import override_problems
from opsrail.decisions._schema import Collect, DecisionTable, InputSpec, OutputSpec, Rule, TableTest
from opsrail.decisions._testing import TableTestOutcome, run_table_tests
from opsrail.decisions._types import VALUE_TYPES
from opsrail.decisions._validate import TableInvalid, load_table, load_table_file, validate_table_file

__all__ = [
    "VALUE_TYPES",
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
    "compile_table",
    "load_table",
    "load_table_file",
    "override_problems",
    "run_table_tests",
    "validate_table_file",
]
