"""The tree a parsed mapping expression becomes, and how each node evaluates.

Every node is a frozen dataclass with ``eval(values)``. A type mismatch, an ordering against
``None`` or a division by zero gives ``None`` or ``False``. A number past :data:`MAX_RESULT`
(``1e300 * 1e300`` of two custom fields) is :class:`EvaluationError`, the one error
evaluation raises: the record cannot be mapped and is rejected with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "MAX_RESULT",
    "Arith",
    "Call",
    "Compare",
    "EvaluationError",
    "Field",
    "Lit",
    "Logic",
    "Neg",
    "Not",
    "Template",
    "Ternary",
    "Values",
]

CUSTOM = "custom."
#: the largest magnitude a computed number may have (a CRM number field holds a double at most)
MAX_RESULT = 1e300


class EvaluationError(ValueError):
    """An expression cannot be evaluated for this contact (a number out of range); why."""


def _bounded(number: Any) -> Any:
    """``number`` when within :data:`MAX_RESULT`; raises :class:`EvaluationError` otherwise."""
    if _is_number(number) and not -MAX_RESULT <= number <= MAX_RESULT:  # NaN fails both too
        raise EvaluationError(f"a computed number is out of range (magnitude above {MAX_RESULT:g})")
    return number


Values = Mapping[str, Any]


def _lookup(values: Values, name: str) -> Any:
    if name in values:
        return values[name]
    if name.startswith(CUSTOM):
        custom = values.get("custom")
        if isinstance(custom, Mapping):
            return custom.get(name[len(CUSTOM) :])
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tidy(number: float) -> int | float:
    return int(number) if isinstance(number, float) and number.is_integer() else number


@dataclass(frozen=True)
class Lit:
    """A literal value."""

    value: Any

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        return self.value


@dataclass(frozen=True)
class Field:
    """A field of the contact (``None`` when it has no value)."""

    name: str

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        return _lookup(values, self.name)


@dataclass(frozen=True)
class Not:
    """Logical negation (truthiness)."""

    operand: Any

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        return not self.operand.eval(values)


@dataclass(frozen=True)
class Neg:
    """Unary minus; in ``SUM`` a ``None`` operand counts as 0."""

    operand: Any
    sum_context: bool = False

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        value = self.operand.eval(values)
        if value is None and self.sum_context:
            return 0
        return _bounded(-value) if _is_number(value) else None


@dataclass(frozen=True)
class Logic:
    """``and`` / ``or`` over truthiness, short-circuit."""

    op: str  # and | or
    left: Any
    right: Any

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        left = bool(self.left.eval(values))
        if self.op == "and":
            return left and bool(self.right.eval(values))
        return left or bool(self.right.eval(values))


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Operands made comparable (ISO text against datetimes, numbers with numbers), or None."""
    if isinstance(a, datetime) and isinstance(b, str):
        try:
            b = datetime.fromisoformat(b.replace("Z", "+00:00"))
        except ValueError:
            return None
        if a.tzinfo is not None and b.tzinfo is None:
            b = b.replace(tzinfo=UTC)  # ISO text without an offset means UTC, as our times are
    elif isinstance(b, datetime) and isinstance(a, str):
        swapped = _comparable(b, a)
        return None if swapped is None else (swapped[1], swapped[0])
    if isinstance(a, datetime) and isinstance(b, datetime):
        if (a.tzinfo is None) != (b.tzinfo is None):
            return None
        return a, b
    if _is_number(a) and _is_number(b):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, bool) and isinstance(b, bool):
        return a, b
    return None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


@dataclass(frozen=True)
class Compare:
    """A comparison; ordering against ``None`` or another type is false."""

    op: str
    left: Any
    right: Any

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        a, b = self.left.eval(values), self.right.eval(values)
        pair = _comparable(a, b)
        if self.op in ("=", "=="):
            return a is None and b is None if pair is None else pair[0] == pair[1]
        if self.op == "!=":
            return not (a is None and b is None) if pair is None else pair[0] != pair[1]
        # ordering with null or mismatched types is false, never an error
        return False if pair is None else _ORDER[self.op](*pair)


@dataclass(frozen=True)
class Arith:
    """``+ - * /`` over numbers (``+`` also joins strings)."""

    op: str
    left: Any
    right: Any
    sum_context: bool = False  # inside SUM(...): None counts as 0

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        a, b = self.left.eval(values), self.right.eval(values)
        if self.sum_context:
            a = 0 if a is None else a
            b = 0 if b is None else b
        if self.op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if not (_is_number(a) and _is_number(b)):
            return None
        if self.op == "+":
            return _bounded(a + b)
        if self.op == "-":
            return _bounded(a - b)
        if self.op == "*":
            return _bounded(a * b)
        return None if b == 0 else _bounded(_tidy(a / b))


@dataclass(frozen=True)
class Call:
    """An aggregate function over its arguments."""

    func: str
    args: tuple[Any, ...]

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        got = [a.eval(values) for a in self.args]
        if self.func == "COUNT":
            return sum(1 for v in got if v is not None)
        if self.func == "SUM":
            numbers = [0 if v is None else v for v in got]
            return _bounded(sum(numbers)) if all(_is_number(v) for v in numbers) else None
        present = [v for v in got if v is not None]
        if not present or not all(_is_number(v) for v in present):
            return None
        if self.func == "MIN":
            return min(present)
        if self.func == "MAX":
            return max(present)
        return _bounded(_tidy(_bounded(sum(present)) / len(present)))


@dataclass(frozen=True)
class Ternary:
    """``condition ? if_true : if_false``."""

    condition: Any
    if_true: Any
    if_false: Any

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        return self.if_true.eval(values) if self.condition.eval(values) else self.if_false.eval(values)


@dataclass(frozen=True)
class Template:
    """A formula template: text and fields, whitespace collapsed."""

    parts: tuple[Any, ...]  # str or Field

    def eval(self, values: Values) -> Any:
        """The node's value for a contact's ``values``."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = part.eval(values)
                out.append("" if value is None else _render(value))
        return " ".join("".join(out).split())


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
