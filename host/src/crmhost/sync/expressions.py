"""Computed mapping values: formulas, conditions and aggregations, by a small grammar of our own.

Nothing here uses ``eval``: text is tokenized, parsed by recursive descent into a tree of
immutable nodes, and the tree is evaluated against a contact's canonical values. Three forms:

- formula (a template): ``{{first_name}} {{last_name}}``; a missing or ``None`` field renders
  empty and runs of whitespace collapse to one space (so a missing first name leaves no gap).
- conditional: ``lead_score >= 75 ? "Hot" : "Warm"``; comparisons ``= == != < <= > >=``,
  ``and or not``, parentheses, string, number, ``true false null`` literals, field names
  (``lead_score``, ``custom.tier``), ``+ - * /`` and the aggregate functions.
- aggregation: ``SUM(opens + clicks)``; ``SUM COUNT MIN MAX AVG`` over one or more
  comma-separated arithmetic arguments. ``opens``/``clicks`` alias ``total_opens``/
  ``total_clicks``. Inside ``SUM`` a ``None`` counts as 0; elsewhere ``None`` propagates
  through arithmetic, and ``MIN MAX AVG COUNT`` skip ``None`` arguments like SQL does.

Any bad input raises :class:`ExpressionError` with a 0-based character position; referenced
fields must be canonical contact fields or ``custom.<name>``, and number literals are at most
:data:`MAX_NUMBER` in magnitude (``AVG(<400 nines>, opens)`` overflowed every evaluation). A
type mismatch or a division by zero yields ``None``; evaluation raises nothing but
:class:`EvaluationError` (a ``ValueError``, naming the expression and why), which the push turns
into a per-record reject with that reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from crmhost.models import CONTACT_FIELDS
from crmhost.sync.expression_nodes import (
    Arith,
    Call,
    Compare,
    EvaluationError,
    Field,
    Lit,
    Logic,
    Neg,
    Not,
    Template,
    Ternary,
    Values,
)

__all__ = [
    "AGGREGATES",
    "ALIASES",
    "MAX_NUMBER",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "compile_conditional",
    "compile_expression",
]

#: shorthand names the roadmap uses in aggregations
ALIASES = {"opens": "total_opens", "clicks": "total_clicks"}
AGGREGATES = ("SUM", "COUNT", "MIN", "MAX", "AVG")
_KINDS = ("formula", "conditional", "aggregation")
#: bounds keep hostile input from exhausting the stack or the CPU
MAX_LENGTH = 2000
MAX_DEPTH = 40
#: binary operators chain left-deep, so their count bounds the tree's depth too
MAX_OPERATORS = 200
#: the largest number literal (as large as any count or amount gets, and exact in a double)
MAX_NUMBER = 10**15
_CUSTOM = "custom."
_KEYWORDS = {"and", "or", "not", "true", "false", "null"}


class ExpressionError(ValueError):
    """A bad expression: what is wrong and at which 0-based character position."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


# -------------------------------------------------------------------------------------------
# tokens


@dataclass(frozen=True)
class _Tok:
    kind: str  # num str name op end
    text: str
    pos: int
    value: Any = None


_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/()<>=!?:,])"
    r"|(?P<quote>[\"'])"
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _string(text: str, start: int) -> tuple[str, int]:
    quote, i = text[start], start + 1
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                raise ExpressionError("unknown escape in string", i)
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise ExpressionError("unterminated string", start)


def _tokenize(text: str, offset: int = 0) -> list[_Tok]:
    toks: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise ExpressionError(f"unexpected character {text[i]!r}", offset + i)
        kind = m.lastgroup or ""
        if kind == "quote":
            value, end = _string(text, i)
            toks.append(_Tok("str", text[i:end], offset + i, value))
            i = end
            continue
        if kind == "num":
            raw = m.group()
            number = float(raw)  # an overlong literal is inf here, never an error
            if not number <= MAX_NUMBER:
                shown = raw if len(raw) <= 20 else f"{raw[:17]}..."
                raise ExpressionError(f"number {shown} is larger than {MAX_NUMBER:,}", offset + i)
            toks.append(_Tok("num", raw, offset + i, int(raw) if raw.isdigit() else number))
        elif kind in ("name", "op"):
            toks.append(_Tok(kind, m.group(), offset + i))
        i = m.end()
    toks.append(_Tok("end", "", offset + len(text)))
    return toks


# -------------------------------------------------------------------------------------------
# parser


def _field_name(tok: _Tok) -> str:
    """The canonical field a name token refers to; :class:`ExpressionError` if none."""
    name = ALIASES.get(tok.text, tok.text)
    if name in CONTACT_FIELDS:
        return name
    if name.startswith(_CUSTOM) and name.count(".") == 1:
        return name
    known = ", ".join((*CONTACT_FIELDS, *ALIASES))
    raise ExpressionError(f"unknown field {tok.text!r}; known: {known} or custom.<name>", tok.pos)


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0
        self.operators = 0
        self.sum_depth = 0
        self.fields: set[str] = set()
        self.calls: set[str] = set()

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _is(self, *ops: str) -> bool:
        t = self.tok
        return (t.kind == "op" and t.text in ops) or (t.kind == "name" and t.text.lower() in ops)

    def _take(self) -> _Tok:
        t = self.tok
        if t.kind != "end":
            self.i += 1
        return t

    def _expect(self, op: str, what: str) -> None:
        if not self._is(op):
            raise ExpressionError(f"expected {what}, found {self._describe()}", self.tok.pos)
        self._take()

    def _describe(self) -> str:
        return "the end" if self.tok.kind == "end" else repr(self.tok.text)

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", self.tok.pos)

    def _operator(self) -> _Tok:
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise ExpressionError(f"more than {MAX_OPERATORS} operators", self.tok.pos)
        return self._take()

    def finish(self) -> None:
        if self.tok.kind != "end":
            raise ExpressionError(f"unexpected {self._describe()}", self.tok.pos)

    def ternary(self) -> Any:
        self._enter()
        condition = self.or_expr()
        if self._is("?"):
            self._take()
            if_true = self.ternary()
            self._expect(":", "':' and the value when false")
            if_false = self.ternary()
            condition = Ternary(condition, if_true, if_false)
        self.depth -= 1
        return condition

    def or_expr(self) -> Any:
        left = self.and_expr()
        while self._is("or", "||"):
            self._operator()
            left = Logic("or", left, self.and_expr())
        return left

    def and_expr(self) -> Any:
        left = self.not_expr()
        while self._is("and", "&&"):
            self._operator()
            left = Logic("and", left, self.not_expr())
        return left

    def not_expr(self) -> Any:
        if self._is("not", "!"):
            self._take()
            self._enter()
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Any:
        left = self.additive()
        if self._is("=", "==", "!=", "<", "<=", ">", ">="):
            op = self._operator().text
            left = Compare(op, left, self.additive())
            if self._is("=", "==", "!=", "<", "<=", ">", ">="):
                raise ExpressionError("comparisons do not chain; use 'and'", self.tok.pos)
        return left

    def additive(self) -> Any:
        left = self.term()
        while self._is("+", "-"):
            op = self._operator().text
            left = Arith(op, left, self.term(), self.sum_depth > 0)
        return left

    def term(self) -> Any:
        left = self.unary()
        while self._is("*", "/"):
            op = self._operator().text
            left = Arith(op, left, self.unary(), self.sum_depth > 0)
        return left

    def unary(self) -> Any:
        if self._is("-"):
            self._take()
            self._enter()
            node = Neg(self.unary(), self.sum_depth > 0)
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Any:
        t = self.tok
        if t.kind in ("num", "str"):
            self._take()
            return Lit(t.value)
        if self._is("("):
            self._take()
            node = self.ternary()
            self._expect(")", "')'")
            return node
        if t.kind == "name":
            lowered = t.text.lower()
            if lowered in ("true", "false"):
                self._take()
                return Lit(lowered == "true")
            if lowered == "null":
                self._take()
                return Lit(None)
            if lowered in _KEYWORDS:
                raise ExpressionError(f"expected a value, found {t.text!r}", t.pos)
            if self.toks[self.i + 1].kind == "op" and self.toks[self.i + 1].text == "(":
                return self.call()
            self._take()
            name = _field_name(t)
            self.fields.add(name)
            return Field(name)
        raise ExpressionError(f"expected a value, found {self._describe()}", t.pos)

    def call(self) -> Any:
        t = self._take()
        func = t.text.upper()
        if func not in AGGREGATES:
            raise ExpressionError(f"unknown function {t.text!r}; known: {', '.join(AGGREGATES)}", t.pos)
        self._take()  # "("
        self._enter()
        self.sum_depth += func == "SUM"
        args = [self.additive()]
        while self._is(","):
            self._operator()
            args.append(self.additive())
        self.sum_depth -= func == "SUM"
        self._expect(")", f"')' closing {func}(")
        self.depth -= 1
        self.calls.add(func)
        return Call(func, tuple(args))


# -------------------------------------------------------------------------------------------
# templates

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


def _template(text: str, fields: set[str]) -> Template:
    parts: list[Any] = []
    i = 0
    for m in _PLACEHOLDER.finditer(text):
        literal = text[i : m.start()]
        if "{{" in literal or "}}" in literal:
            bad = literal.find("{{") if "{{" in literal else literal.find("}}")
            raise ExpressionError("unbalanced '{{' or '}}'", i + bad)
        parts.append(literal)
        inner = m.group(1)
        if "{{" in inner:
            raise ExpressionError("'{{' not closed with '}}' before the next '{{'", m.start())
        toks = _tokenize(inner, m.start(1))
        if toks[0].kind == "end":
            raise ExpressionError("empty placeholder: put a field name between '{{' and '}}'", m.start())
        if toks[0].kind != "name" or toks[1].kind != "end":
            culprit = toks[1] if toks[0].kind == "name" else toks[0]
            raise ExpressionError("a placeholder holds one field name, like {{first_name}}", culprit.pos)
        name = _field_name(toks[0])
        fields.add(name)
        parts.append(Field(name))
        i = m.end()
    rest = text[i:]
    for marker in ("{{", "}}"):
        if marker in rest:
            raise ExpressionError("unbalanced '{{' or '}}'", i + rest.find(marker))
    parts.append(rest)
    return Template(tuple(p for p in parts if p != ""))


# -------------------------------------------------------------------------------------------
# public


@dataclass(frozen=True)
class Expression:
    """A compiled expression.

    Attributes:
        type: ``formula``, ``conditional`` or ``aggregation``.
        text: the source text.
        fields: the canonical fields it reads (aliases resolved).
    """

    type: str
    text: str
    fields: frozenset[str]
    _root: Any

    def evaluate(self, values: Values) -> Any:
        """The value for a contact's canonical ``values`` (``custom.x`` keys or a ``custom`` dict).

        Raises:
            EvaluationError: the only error: this contact's values give no value (a number out
                of range); the message names the expression.
        """
        try:
            return self._root.eval(values)
        except EvaluationError as exc:
            raise EvaluationError(f"{self.type} {self._shown()}: {exc}") from None
        except (ArithmeticError, ValueError, TypeError, LookupError, RecursionError) as exc:
            # a bound above was missed: still a reject of this record, never a stuck push
            raise EvaluationError(f"{self.type} {self._shown()}: {type(exc).__name__}: {exc}") from None

    def _shown(self) -> str:
        return repr(self.text if len(self.text) <= 80 else self.text[:77] + "...")


def compile_expression(type: str, text: str) -> Expression:
    """Parse ``text`` as a mapping expression of ``type``.

    Args:
        type: ``formula``, ``conditional`` or ``aggregation`` (a ``MappingType`` value).
        text: the expression.

    Returns:
        The compiled expression.

    Raises:
        ExpressionError: the text is not a valid expression of that type; ``position`` is the
            0-based character where the problem is.
    """
    kind = str(type)
    if kind not in _KINDS:
        raise ExpressionError(f"unknown expression type {kind!r}; known: {', '.join(_KINDS)}", 0)
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"the {kind} is empty", 0)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH)
    if kind == "formula":
        fields: set[str] = set()
        root: Any = _template(text, fields)
        return Expression(kind, text, frozenset(fields), root)
    parser = _Parser(_tokenize(text))
    root = parser.ternary()
    parser.finish()
    if kind == "conditional" and not isinstance(root, Ternary):
        raise ExpressionError(
            "a conditional reads 'condition ? value_if_true : value_if_false'", len(text.rstrip())
        )
    if kind == "aggregation" and not parser.calls:
        raise ExpressionError(f"an aggregation needs one of {', '.join(AGGREGATES)}(...)", 0)
    return Expression(kind, text, frozenset(parser.fields), root)


def compile_conditional(condition: str, value_if_true: Any, value_if_false: Any) -> str:
    """The roadmap's structured conditional as expression text (validated).

    ``condition="lead_score >= 75", value_if_true="Hot", value_if_false="Warm"`` gives
    ``(lead_score >= 75) ? "Hot" : "Warm"``.

    Raises:
        ExpressionError: the condition is invalid (position within ``condition``), or a value is
            not a string, number, boolean or null (position 0).
    """
    if not isinstance(condition, str) or not condition.strip():
        raise ExpressionError("the condition is empty", 0)
    parser = _Parser(_tokenize(condition))
    parser.ternary()
    parser.finish()
    for value in (value_if_true, value_if_false):
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ExpressionError("values must be a string, number, boolean or null", 0)
    text = f"({condition}) ? {_literal(value_if_true)} : {_literal(value_if_false)}"
    compile_expression("conditional", text)
    return text


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{escaped}"'
    if not math.isfinite(value):
        raise ExpressionError("numbers must be finite", 0)
    return repr(value)
