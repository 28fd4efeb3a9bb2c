"""The decision table document: named, versioned inputs, outputs, rules and tests, validated by pydantic.

A table maps typed inputs to typed outputs through rules. Each rule has a CEL condition (``when``) over the inputs
and the output values it gives (``then``): literals, or strings holding ``${ }`` CEL templates over the inputs. The
hit policy says which matching rules count: the ``first`` in file order, the ``unique`` one (two matches are an
error), the one with the highest ``priority`` (file order breaks ties) or all of them (``collect``, each output
aggregated as ``list``, ``sum``, ``min``, ``max`` or ``count``). This schema describes single fields; the checks that
span fields (types of values and expressions, unknown names, unreachable and overlapping rules) are made by
:func:`opsrail.decisions.load_table`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsrail.decisions._types import ValueType

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="lowercase letters, digits, - and _")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", description="a CEL identifier")]
Cel = Annotated[str, Field(min_length=1, max_length=4000, description="a CEL expression")]

HitPolicy = Literal["first", "unique", "priority", "collect"]
Aggregate = Literal["list", "sum", "min", "max", "count"]

_RESERVED_WORDS = "true false null in as break const continue else for function if import let loop package namespace"
CEL_RESERVED = frozenset((*_RESERVED_WORDS.split(), "return", "var", "void", "while"))
"""Words CEL reserves, which cannot name an input."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _type_shorthand(value: Any) -> Any:
    # `severity: int` is short for `severity: {type: int}`.
    return {"type": value} if isinstance(value, str) else value


class InputSpec(Strict):
    """A declared input; without a ``default`` it is required."""

    type: ValueType
    default: Any = Field(default=None, description="the value when the input is not given; absent: required")
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _type_shorthand(value)

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class OutputSpec(Strict):
    """A declared output; its ``default`` is its value when no matched rule gives it one."""

    type: ValueType
    default: Any = Field(default=None, description="the value when no matched rule sets the output")
    aggregate: Aggregate | None = Field(default=None, description="collect only: overrides collect.aggregate")
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _type_shorthand(value)

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class Collect(Strict):
    aggregate: Aggregate = "list"


class Rule(Strict):
    id: Name
    when: Cel = Field(description="CEL condition over the inputs")
    then: dict[str, Any] = Field(default_factory=dict, description="output values: literals or ${ } templates")
    priority: int | None = Field(default=None, description="hit_policy priority only: higher wins")
    description: str | None = None


class TableTest(Strict):
    name: Annotated[str, Field(min_length=1)]
    inputs: dict[str, Any] = Field(default_factory=dict)
    expect: dict[str, Any] = Field(default_factory=dict, description="outputs to compare; others are not checked")
    expect_rules: list[str] | None = Field(default=None, description="the matched rule ids, in order")


class DecisionTable(Strict):
    name: Name
    version: int = Field(ge=1)
    description: str | None = None
    hit_policy: HitPolicy = "first"
    collect: Collect | None = Field(default=None, description="hit_policy collect only")
    inputs: dict[Identifier, InputSpec] = Field(min_length=1)
    outputs: dict[Identifier, OutputSpec] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)
    tests: list[TableTest] = Field(default_factory=list)

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def aggregate_of(self, output: str) -> Aggregate:
        """How ``collect`` combines the values of one output."""
        spec = self.outputs[output]
        if spec.aggregate is not None:
            return spec.aggregate
        return self.collect.aggregate if self.collect is not None else "list"
