"""Reading CEL conditions as data: a parse tree for the common subset, its static types, and fast Python closures.

The CEL binding compiles and runs expressions but does not expose their syntax tree, and calling it once per rule
costs microseconds. So this module parses expressions itself: :func:`parse` returns a tree of small frozen nodes for
literals, input names, lists, ``!``, unary ``-``, ``&&``, ``||``, comparisons, ``in``, arithmetic, ``? :``, field
selection, indexing and function or method calls, or ``None`` for anything it does not read (raw, bytes or
triple-quoted strings, for instance). Only text CEL has already compiled is parsed, so the parser can be lenient.

:func:`infer_type` gives a tree's CEL type from the declared input types, or ``None`` when it cannot tell, and raises
:class:`TypeProblem` for an operation CEL rejects for those types. :func:`translate` builds a Python closure over the
coerced input values for a well-typed condition in the subset (comparisons of ints, doubles, strings and bools,
``in`` a list of literals, ``size()``, ``startsWith``/``endsWith``/``contains``, ``!``, ``&&``, ``||``); it returns
``None`` for anything else, which then runs through CEL. The closures follow what the CEL binding does, including
its quirks: an int compared with a double is converted to a double first, and ``size()`` of a string counts UTF-8
bytes. No text is ever handed to Python's ``eval``, ``exec`` or ``compile``: closures are built from the tree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Values = dict[str, Any]
Predicate = Callable[[Values], Any]

# -- nodes ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any
    kind: str  # int, uint, double, string, bytes, bool, null


@dataclass(frozen=True, slots=True)
class Ident:
    name: str


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit:
    entries: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Ternary:
    condition: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    target: Node | None
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Select:
    target: Node
    field: str


@dataclass(frozen=True, slots=True)
class Index:
    target: Node
    index: Node


Node = Lit | Ident | ListLit | MapLit | Unary | Binary | Ternary | Call | Select | Index

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")

# -- tokens ---------------------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    """Text this parser does not read; the expression is left to CEL alone."""


_PUNCTUATION: tuple[str, ...] = ("||", "&&", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "%")
_PUNCTUATION += ("(", ")", "[", "]", "{", "}", ",", ".", "?", ":")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?", "a": "\a"}
_ESCAPES |= {"b": "\b", "f": "\f", "v": "\v"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, number, string, punct, end
    text: str
    value: Any = None


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char in " \t\r\n":
            index += 1
        elif char.isascii() and (char.isalpha() or char == "_"):
            end = index + 1
            while end < size and text[end].isascii() and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[index:end]
            if end < size and text[end] in "'\"" and word.lower() in ("r", "b", "br", "rb"):
                raise _Unsupported("raw or bytes string")
            found.append(_Token("name", word))
            index = end
        elif char.isdigit() or (char == "." and index + 1 < size and text[index + 1].isdigit()):
            index = _number(text, index, found)
        elif char in "'\"":
            index = _string(text, index, found)
        else:
            for punct in _PUNCTUATION:
                if text.startswith(punct, index):
                    found.append(_Token("punct", punct))
                    index += len(punct)
                    break
            else:
                raise _Unsupported(f"character {char!r}")
    found.append(_Token("end", ""))
    return found


def _number(text: str, index: int, found: list[_Token]) -> int:
    size = len(text)
    if text.startswith(("0x", "0X"), index):
        end = index + 2
        while end < size and text[end] in "0123456789abcdefABCDEF":
            end += 1
        if end < size and text[end] in "uU":
            raise _Unsupported("uint literal")
        found.append(_Token("number", text[index:end], Lit(int(text[index + 2 : end], 16), "int")))
        return end
    end = index
    while end < size and text[end].isdigit():
        end += 1
    is_double = False
    if end < size and text[end] == "." and end + 1 < size and text[end + 1].isdigit():
        is_double = True
        end += 1
        while end < size and text[end].isdigit():
            end += 1
    if end < size and text[end] in "eE":
        is_double = True
        end += 1
        if end < size and text[end] in "+-":
            end += 1
        while end < size and text[end].isdigit():
            end += 1
    if end < size and text[end] in "uU":
        raise _Unsupported("uint literal")
    literal = text[index:end]
    value = Lit(float(literal), "double") if is_double else Lit(int(literal), "int")
    found.append(_Token("number", literal, value))
    return end


def _string(text: str, index: int, found: list[_Token]) -> int:
    quote = text[index]
    if text.startswith(quote * 3, index):
        raise _Unsupported("triple-quoted string")
    chars: list[str] = []
    end = index + 1
    while True:
        if end >= len(text) or text[end] in "\r\n":
            raise _Unsupported("unterminated string")
        char = text[end]
        if char == quote:
            break
        if char == "\\":
            escape = text[end + 1 : end + 2]
            if escape in _ESCAPES:
                chars.append(_ESCAPES[escape])
                end += 2
            elif escape in ("u", "x", "U"):
                width = {"u": 4, "x": 2, "U": 8}[escape]
                digits = text[end + 2 : end + 2 + width]
                if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise _Unsupported("bad escape")
                chars.append(chr(int(digits, 16)))
                end += 2 + width
            else:
                raise _Unsupported("octal or unknown escape")
        else:
            chars.append(char)
            end += 1
    found.append(_Token("string", text[index : end + 1], Lit("".join(chars), "string")))
    return end + 1


# -- parsing --------------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self, text: str) -> bool:
        token = self.tokens[self.at]
        return token.kind == "punct" and token.text == text

    def take(self, text: str) -> bool:
        if self.peek(text):
            self.at += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise _Unsupported(f"expected {text!r}")

    def expression(self) -> Node:
        condition = self.binary(0)
        if self.take("?"):
            then = self.binary(0)
            self.expect(":")
            return Ternary(condition, then, self.expression())
        return condition

    _LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), (*COMPARISONS, "in"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            token = self.tokens[self.at]
            if token.text in self._LEVELS[level] and token.kind in ("punct", "name"):
                self.at += 1
                left = Binary(token.text, left, self.binary(level + 1))
            else:
                return left

    def unary(self) -> Node:
        if self.take("!"):
            return Unary("!", self.unary())
        if self.take("-"):
            operand = self.unary()
            if isinstance(operand, Lit) and operand.kind in ("int", "double"):
                return Lit(-operand.value, operand.kind)
            return Unary("-", operand)
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.take("."):
                token = self.tokens[self.at]
                if token.kind != "name":
                    raise _Unsupported("field name expected")
                self.at += 1
                is_call = self.take("(")
                node = Call(token.text, node, self.arguments(")")) if is_call else Select(node, token.text)
            elif self.take("["):
                index = self.expression()
                self.expect("]")
                node = Index(node, index)
            else:
                return node

    def arguments(self, close: str) -> tuple[Node, ...]:
        items: list[Node] = []
        while not self.take(close):
            items.append(self.expression())
            if not self.take(","):
                self.expect(close)
                break
        return tuple(items)

    def primary(self) -> Node:
        token = self.tokens[self.at]
        self.at += 1
        if token.kind in ("number", "string"):
            literal: Lit = token.value
            return literal
        if token.kind == "name":
            if token.text in ("true", "false"):
                return Lit(token.text == "true", "bool")
            if token.text == "null":
                return Lit(None, "null")
            if self.take("("):
                return Call(token.text, None, self.arguments(")"))
            return Ident(token.text)
        if token.kind == "punct":
            if token.text == "(":
                inner = self.expression()
                self.expect(")")
                return inner
            if token.text == "[":
                return ListLit(self.arguments("]"))
            if token.text == "{":
                entries: list[tuple[Node, Node]] = []
                while not self.take("}"):
                    key = self.expression()
                    self.expect(":")
                    entries.append((key, self.expression()))
                    if not self.take(","):
                        self.expect("}")
                        break
                return MapLit(tuple(entries))
        raise _Unsupported(f"unexpected {token.text!r}")


def parse(source: str) -> Node | None:
    """The tree of a CEL expression, or ``None`` if it uses syntax this module does not read."""
    try:
        parser = _Parser(_tokens(source))
        node = parser.expression()
        if parser.tokens[parser.at].kind != "end":
            return None
        return node
    except (_Unsupported, RecursionError, IndexError):
        return None


def unparse(node: Node) -> str:
    """CEL text for a tree (fully parenthesised where precedence matters); used in messages and tests."""
    if isinstance(node, Lit):
        if node.kind == "string":
            return '"' + str(node.value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if node.kind == "bool":
            return "true" if node.value else "false"
        if node.kind == "null":
            return "null"
        return repr(node.value)
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, ListLit):
        return "[" + ", ".join(unparse(item) for item in node.items) + "]"
    if isinstance(node, MapLit):
        return "{" + ", ".join(f"{unparse(k)}: {unparse(v)}" for k, v in node.entries) + "}"
    if isinstance(node, Unary):
        return f"{node.op}({unparse(node.operand)})"
    if isinstance(node, Binary):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Ternary):
        return f"({unparse(node.condition)} ? {unparse(node.then)} : {unparse(node.otherwise)})"
    if isinstance(node, Call):
        args = ", ".join(unparse(arg) for arg in node.args)
        return f"{unparse(node.target)}.{node.name}({args})" if node.target is not None else f"{node.name}({args})"
    if isinstance(node, Select):
        return f"{unparse(node.target)}.{node.field}"
    return f"{unparse(node.target)}[{unparse(node.index)}]"


def identifiers(node: Node) -> set[str]:
    """The free names a tree reads (macro variables such as the ``x`` in ``l.exists(x, ...)`` included)."""
    found: set[str] = set()
    stack: list[Node] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Ident):
            found.add(item.name)
        elif isinstance(item, ListLit):
            stack.extend(item.items)
        elif isinstance(item, MapLit):
            for key, value in item.entries:
                stack.extend((key, value))
        elif isinstance(item, Unary):
            stack.append(item.operand)
        elif isinstance(item, Binary):
            stack.extend((item.left, item.right))
        elif isinstance(item, Ternary):
            stack.extend((item.condition, item.then, item.otherwise))
        elif isinstance(item, Call):
            stack.extend(item.args)
            if item.target is not None:
                stack.append(item.target)
        elif isinstance(item, Select):
            stack.append(item.target)
        elif isinstance(item, Index):
            stack.extend((item.target, item.index))
    return found


# -- static types ---------------------------------------------------------------------------------------------------


class TypeProblem(Exception):
    """An operation CEL rejects, or a comparison that can never be true, for the declared input types."""


_NUMERIC = frozenset({"int", "double"})
_ORDERED = frozenset({"int", "double", "string", "timestamp", "duration", "bool", "uint"})
_ARITHMETIC: dict[tuple[str, str, str], str] = {
    **{(op, t, t): t for op in "+-*/%" for t in ("int", "uint")},
    **{(op, "double", "double"): "double" for op in "+-*/"},
    ("+", "string", "string"): "string",
    ("+", "list", "list"): "list",
    ("+", "bytes", "bytes"): "bytes",
    ("+", "duration", "duration"): "duration",
    ("-", "duration", "duration"): "duration",
    ("+", "timestamp", "duration"): "timestamp",
    ("+", "duration", "timestamp"): "timestamp",
    ("-", "timestamp", "duration"): "timestamp",
    ("-", "timestamp", "timestamp"): "duration",
}
_STRING_METHODS = frozenset({"startsWith", "endsWith", "contains", "matches"})
_CONVERSIONS = {"int": "int", "double": "double", "string": "string", "bool": "bool", "duration": "duration"}
_CONVERSIONS |= {"timestamp": "timestamp", "uint": "uint"}


def _a(kind: str | None) -> str:
    return f"{'an' if str(kind)[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {kind}"


def _same_kind(left: str, right: str) -> bool:
    return left == right or (left in _NUMERIC and right in _NUMERIC) or "null" in (left, right)


def infer_type(node: Node, types: Mapping[str, str]) -> str | None:
    """The CEL type of ``node`` given input ``types``, ``None`` when unknown; :class:`TypeProblem` when wrong."""
    if isinstance(node, Lit):
        return node.kind
    if isinstance(node, Ident):
        return types.get(node.name)
    if isinstance(node, ListLit):
        for item in node.items:
            infer_type(item, types)
        return "list"
    if isinstance(node, MapLit):
        for key, value in node.entries:
            infer_type(key, types)
            infer_type(value, types)
        return "map"
    if isinstance(node, Unary):
        operand = infer_type(node.operand, types)
        wanted = ("bool",) if node.op == "!" else ("int", "double", "duration")
        if operand is not None and operand not in wanted:
            raise TypeProblem(f"{node.op} does not apply to {_a(operand)} ({unparse(node.operand)})")
        return "bool" if node.op == "!" else operand
    if isinstance(node, Binary):
        return _binary_type(node, types)
    if isinstance(node, Ternary):
        condition = infer_type(node.condition, types)
        if condition not in (None, "bool"):
            raise TypeProblem(f"the condition of ? : is {_a(condition)}, not a bool")
        then, otherwise = infer_type(node.then, types), infer_type(node.otherwise, types)
        return then if then == otherwise else None
    if isinstance(node, Call):
        return _call_type(node, types)
    if isinstance(node, Select | Index):
        infer_type(node.target, types)
        if isinstance(node, Index):
            infer_type(node.index, types)
        return None
    return None


def _binary_type(node: Binary, types: Mapping[str, str]) -> str | None:
    left, right = infer_type(node.left, types), infer_type(node.right, types)
    op = node.op
    if op in ("&&", "||"):
        for side, kind in ((node.left, left), (node.right, right)):
            if kind is not None and kind != "bool":
                raise TypeProblem(f"{op} needs bools on both sides; {unparse(side)} is {_a(kind)}")
        return "bool"
    if op in ("==", "!="):
        if left is not None and right is not None and not _same_kind(left, right):
            verdict = "never equal" if op == "==" else "always different"
            raise TypeProblem(f"compares {_a(left)} with {_a(right)}: they are {verdict}")
        return "bool"
    if op in COMPARISONS:
        if left is not None and right is not None and (left not in _ORDERED or not _same_kind(left, right)):
            raise TypeProblem(f"{op} does not compare {_a(left)} with {_a(right)}")
        return "bool"
    if op == "in":
        if right is not None and right not in ("list", "map"):
            raise TypeProblem(f"`in` needs a list or a map on its right, got {_a(right)}")
        if left is not None and isinstance(node.right, ListLit) and node.right.items:
            kinds = [infer_type(item, types) for item in node.right.items]
            if all(kind is not None and not _same_kind(left, kind) for kind in kinds):
                raise TypeProblem(f"{_a(left)} is never in a list of {', '.join(sorted({str(k) for k in kinds}))}")
        return "bool"
    if left is None or right is None:
        return None
    result = _ARITHMETIC.get((op, left, right))
    if result is None:
        raise TypeProblem(f"{op} is not defined for {_a(left)} and {_a(right)} (convert with int() or double())")
    return result


def _call_type(node: Call, types: Mapping[str, str]) -> str | None:
    args = [infer_type(arg, types) for arg in node.args]
    target = infer_type(node.target, types) if node.target is not None else None
    if node.name == "size":
        subject = target if node.target is not None else (args[0] if len(args) == 1 else None)
        if subject is not None and subject not in ("string", "list", "map", "bytes"):
            raise TypeProblem(f"size() does not apply to {_a(subject)}")
        return "int"
    if node.name in _STRING_METHODS and node.target is not None:
        for kind in (target, *args):
            if kind is not None and kind != "string":
                raise TypeProblem(f"{node.name}() works on strings, got {_a(kind)}")
        return "bool"
    if node.target is None and node.name in _CONVERSIONS and len(args) == 1:
        return _CONVERSIONS[node.name]
    if node.name in ("has", "exists", "all", "exists_one"):
        return "bool"
    return None


# -- closures -------------------------------------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_FAST_TYPES = frozenset({"int", "double", "string", "bool"})


@dataclass(frozen=True, slots=True)
class _Typed:
    build: Callable[[], Predicate]
    kind: str
    name: str | None = None  # set when the operand is an input read as is
    literal: Lit | None = None


def translate(node: Node, types: Mapping[str, str]) -> Predicate | None:
    """A closure computing ``node`` over coerced input values the way CEL does, or ``None`` outside the subset."""
    try:
        typed = _typed(node, types)
    except _Unsupported:
        return None
    return typed.build() if typed.kind == "bool" else None


def translate_value(node: Node, types: Mapping[str, str]) -> Predicate | None:
    """Like :func:`translate` for a value of any translated type, as in a ``${ }`` template."""
    try:
        return _typed(node, types).build()
    except _Unsupported:
        return None


def _typed(node: Node, types: Mapping[str, str]) -> _Typed:
    if isinstance(node, Lit):
        if node.kind not in _FAST_TYPES:
            raise _Unsupported(node.kind)
        value = node.value
        return _Typed(lambda: lambda values: value, node.kind, literal=node)
    if isinstance(node, Ident):
        kind = types.get(node.name)
        if kind not in _FAST_TYPES:
            raise _Unsupported("input type")
        name = node.name
        return _Typed(lambda: _reader(name), kind, name=name)
    if isinstance(node, Unary) and node.op == "!":
        inner = _typed(node.operand, types)
        if inner.kind != "bool":
            raise _Unsupported("! of a non-bool")
        return _Typed(lambda: _negation(inner.build()), "bool")
    if isinstance(node, Binary):
        if node.op in ("&&", "||"):
            left, right = _typed(node.left, types), _typed(node.right, types)
            if left.kind != "bool" or right.kind != "bool":
                raise _Unsupported("logic on non-bools")
            join = _conjunction if node.op == "&&" else _disjunction
            return _Typed(lambda: join(left.build(), right.build()), "bool")
        if node.op in COMPARISONS:
            return _comparison(node, types)
        if node.op == "in" and isinstance(node.right, ListLit):
            return _membership(node, types)
        if node.op in _DOUBLE_ARITHMETIC:
            return _arithmetic(node, types)
    if isinstance(node, Call):
        return _call(node, types)
    raise _Unsupported(type(node).__name__)


_DOUBLE_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _arithmetic(node: Binary, types: Mapping[str, str]) -> _Typed:
    # Only doubles: their +, - and * are IEEE 754 in CEL as in Python, while int arithmetic checks for overflow and
    # division differs (CEL gives infinity for x / 0.0), so those stay with CEL.
    left, right = _typed(node.left, types), _typed(node.right, types)
    if left.kind != "double" or right.kind != "double":
        raise _Unsupported("arithmetic on non-doubles")
    apply = _DOUBLE_ARITHMETIC[node.op]

    def build() -> Predicate:
        one, two = left.build(), right.build()
        return lambda values: apply(one(values), two(values))

    return _Typed(build, "double")


def _reader(name: str) -> Predicate:
    return lambda values: values[name]


def _negation(inner: Predicate) -> Predicate:
    return lambda values: not inner(values)


def _conjunction(left: Predicate, right: Predicate) -> Predicate:
    return lambda values: left(values) and right(values)


def _disjunction(left: Predicate, right: Predicate) -> Predicate:
    return lambda values: left(values) or right(values)


def _comparison(node: Binary, types: Mapping[str, str]) -> _Typed:
    left, right = _typed(node.left, types), _typed(node.right, types)
    op = node.op
    numeric = left.kind in _NUMERIC and right.kind in _NUMERIC
    if not numeric and left.kind != right.kind:
        raise _Unsupported("mixed types")
    if left.kind == "bool" and op not in ("==", "!="):
        raise _Unsupported("ordering bools")
    # CEL compares an int with a double as doubles: convert the int side (a literal once, an input per call).
    to_float = numeric and left.kind != right.kind
    if left.literal is not None and right.literal is None:
        left, right, op = right, left, _MIRROR[op]
    if right.literal is not None:
        literal = right.literal.value
        if to_float and right.kind == "int":
            literal = float(literal)
        float_left = to_float and left.kind == "int"
        if left.name is not None:
            name = left.name
            return _Typed(lambda: _input_against(name, op, literal, float_left), "bool")
        operand = left
        return _Typed(lambda: _value_against(operand.build(), op, literal, float_left), "bool")
    compare = _OPERATORS[op]
    first, second = left, right

    def build() -> Predicate:
        one, two = first.build(), second.build()
        if to_float:
            return lambda values: compare(float(one(values)), float(two(values)))
        return lambda values: compare(one(values), two(values))

    return _Typed(build, "bool")


def _input_against(name: str, op: str, literal: Any, to_float: bool) -> Predicate:
    # One closure per operator, so a comparison costs a dict read and a compare, not an operator-function call.
    if to_float:
        compare = _OPERATORS[op]
        return lambda values: compare(float(values[name]), literal)
    if op == "==":
        return lambda values: values[name] == literal
    if op == "!=":
        return lambda values: values[name] != literal
    if op == "<":
        return lambda values: values[name] < literal
    if op == "<=":
        return lambda values: values[name] <= literal
    if op == ">":
        return lambda values: values[name] > literal
    return lambda values: values[name] >= literal


def _value_against(operand: Predicate, op: str, literal: Any, to_float: bool) -> Predicate:
    compare = _OPERATORS[op]
    if to_float:
        return lambda values: compare(float(operand(values)), literal)
    return lambda values: compare(operand(values), literal)


def _membership(node: Binary, types: Mapping[str, str]) -> _Typed:
    assert isinstance(node.right, ListLit)
    subject = _typed(node.left, types)
    exact: set[Any] = set()
    as_float: set[float] = set()
    for item in node.right.items:
        if not isinstance(item, Lit) or item.kind not in _FAST_TYPES:
            raise _Unsupported("list item")
        if subject.kind in _NUMERIC and item.kind in _NUMERIC:
            # Equality between an int and a double is equality of doubles in CEL.
            if subject.kind == item.kind:
                exact.add(item.value)
            else:
                as_float.add(float(item.value))
        elif subject.kind == item.kind:
            exact.add(item.value)
        # Items of another type never equal the subject (CEL's heterogeneous equality is false).
    members, float_members = frozenset(exact), frozenset(as_float)

    def build() -> Predicate:
        read = subject.build()
        if float_members and members:
            return lambda values: (value := read(values)) in members or float(value) in float_members
        if float_members:
            return lambda values: float(read(values)) in float_members
        if subject.name is not None:
            name = subject.name
            return lambda values: values[name] in members
        return lambda values: read(values) in members

    return _Typed(build, "bool")


def _call(node: Call, types: Mapping[str, str]) -> _Typed:
    if node.name == "size":
        subject_node = node.target if node.target is not None else (node.args[0] if len(node.args) == 1 else None)
        if subject_node is None or (node.target is not None and node.args):
            raise _Unsupported("size arity")
        subject = _typed(subject_node, types)
        if subject.kind != "string":
            raise _Unsupported("size of a non-string")
        read = subject.build
        # The binding's size() of a string counts UTF-8 bytes, not code points.
        return _Typed(lambda: _byte_size(read()), "int")
    if node.name in ("startsWith", "endsWith", "contains") and node.target is not None and len(node.args) == 1:
        target, argument = _typed(node.target, types), _typed(node.args[0], types)
        if target.kind != "string" or argument.kind != "string":
            raise _Unsupported("string method on a non-string")
        method = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}[node.name]
        return _Typed(lambda: _string_test(method, target.build(), argument.build()), "bool")
    raise _Unsupported(f"function {node.name}")


def _byte_size(read: Predicate) -> Predicate:
    return lambda values: len(read(values).encode())


def _string_test(method: Callable[[str, str], bool], target: Predicate, argument: Predicate) -> Predicate:
    return lambda values: method(target(values), argument(values))
