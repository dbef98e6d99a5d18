"""The subset of SOQL the sandbox understands: enough for the plugin and simple-salesforce.

``SELECT f1, f2 FROM Object [WHERE cond AND cond ...] [ORDER BY f [ASC|DESC], ...] [LIMIT n]``
where a condition is ``field op value`` (``= != > < >= <=``) or ``field [NOT] IN (v, ...)``, and
values are quoted strings, numbers, ``TRUE``/``FALSE``/``NULL``, dates and unquoted date-time
literals (``2025-01-01T00:00:00Z``, ``...+02:00``). A field may be one relationship hop away
(``Account.Name`` on Contact: child-to-parent, through a lookup's relationship name), anywhere a
field may stand. Anything else is a ``MALFORMED_QUERY`` naming where it stopped, as Salesforce
does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["Condition", "Query", "SoqlError", "parse"]

Value = str | int | float | bool | datetime | date | None

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2}))
      | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<op>!=|<>|>=|<=|=|>|<)
      | (?P<punct>[(),])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "IN", "NOT", "ORDER", "BY", "ASC", "DESC", "LIMIT"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


class SoqlError(Exception):
    """A query the sandbox cannot run; ``code`` is Salesforce's error code."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Condition:
    """``field op value`` or ``field IN (values)``."""

    field: str
    op: str
    value: Value | tuple[Value, ...]
    #: for ``IN`` over strings: the lower-cased set, so a 200-value IN is one lookup per row
    strings: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.value, tuple) and all(isinstance(v, str) for v in self.value):
            object.__setattr__(self, "strings", frozenset(str(v).lower() for v in self.value))


@dataclass(frozen=True)
class Query:
    """A parsed query; field names as written (resolve them with :meth:`resolve`)."""

    fields: tuple[str, ...]
    sobject: str
    where: tuple[Condition, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None
    text: str = field(default="", compare=False)

    def resolve(
        self,
        names: Iterable[str],
        sobject: str,
        relations: Mapping[str, tuple[str, str, Iterable[str]]] | None = None,
    ) -> Query:
        """The query with every field name spelled as in ``names`` (SOQL is case-insensitive).

        ``relations`` maps a lower-cased relationship name to ``(its spelling, the object it
        reaches, that object's field names)``, for ``Relationship.Field`` paths.

        Raises:
            SoqlError: ``INVALID_FIELD`` naming the first unknown field or relationship.
        """
        canonical = {n.lower(): n for n in names}
        related = {
            key: (spelled, target, {n.lower(): n for n in fields})
            for key, (spelled, target, fields) in (relations or {}).items()
        }

        def fix(name: str) -> str:
            if "." in name:
                head, _, tail = name.partition(".")
                hop = related.get(head.lower())
                if hop is None or "." in tail:
                    raise SoqlError(
                        f"Didn't understand relationship '{head}' in field path. If you are attempting "
                        "to use a custom relationship, be sure to append the '__r' after the custom "
                        "relationship name.",
                        "INVALID_FIELD",
                    )
                spelled, target, fields = hop
                found = fields.get(tail.lower())
                if found is None:
                    raise SoqlError(f"No such column '{tail}' on entity '{target}'.", "INVALID_FIELD")
                return f"{spelled}.{found}"
            found = canonical.get(name.lower())
            if found is None:
                raise SoqlError(f"No such column '{name}' on entity '{sobject}'.", "INVALID_FIELD")
            return found

        return Query(
            fields=tuple(fix(f) for f in self.fields),
            sobject=sobject,
            where=tuple(Condition(fix(c.field), c.op, c.value) for c in self.where),
            order_by=tuple((fix(f), asc) for f, asc in self.order_by),
            limit=self.limit,
            text=self.text,
        )

    def paths(self) -> set[str]:
        """The ``Relationship.Field`` names the query uses anywhere (resolved queries only)."""
        used = {*self.fields, *(c.field for c in self.where), *(f for f, _ in self.order_by)}
        return {n for n in used if "." in n}

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` satisfies every condition."""
        return all(_test(record.get(c.field), c) for c in self.where)

    def sort(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``records`` in ``ORDER BY`` order (nulls first ascending, as Salesforce's default)."""
        for name, asc in reversed(self.order_by):
            records.sort(key=_sort_key(name), reverse=not asc)
        return records


def _sort_key(name: str) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    def key(record: Mapping[str, Any]) -> tuple[int, Any]:
        value = _comparable(record.get(name))
        return (0, "") if value is None else (1, value)

    return key


def _comparable(value: Any) -> Any:
    if isinstance(value, str):
        parsed = _parse_stored_datetime(value)
        return parsed if parsed is not None else value.lower()
    return value


def _parse_stored_datetime(value: str) -> datetime | None:
    # stored datetimes look like 2025-01-01T00:00:00.000+0000
    if len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value.replace("+0000", "+00:00").replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _coerce(stored: Any, literal: Value) -> tuple[Any, Any]:
    """Both sides in one comparable type, or ``(None, None)`` when they cannot compare."""
    if stored is None or literal is None:
        return stored, literal
    if isinstance(literal, datetime):
        parsed = _parse_stored_datetime(stored) if isinstance(stored, str) else None
        return (parsed, literal) if parsed is not None else (None, None)
    if isinstance(literal, date):
        try:
            return date.fromisoformat(str(stored)[:10]), literal
        except ValueError:
            return None, None
    if isinstance(literal, bool) or isinstance(stored, bool):
        return stored, literal
    if isinstance(literal, int | float) and isinstance(stored, int | float):
        return stored, literal
    if isinstance(literal, str) and isinstance(stored, str):
        return stored.lower(), literal.lower()
    return str(stored), str(literal)


def _test(stored: Any, cond: Condition) -> bool:
    if cond.op in ("IN", "NOT IN"):
        assert isinstance(cond.value, tuple)
        if cond.strings is not None:
            hit = isinstance(stored, str) and stored.lower() in cond.strings
            return hit if cond.op == "IN" else not hit
        hit = any(_equal(stored, v) for v in cond.value)
        return hit if cond.op == "IN" else not hit
    literal = cond.value
    assert not isinstance(literal, tuple)
    if cond.op == "=":
        return _equal(stored, literal)
    if cond.op == "!=":
        return not _equal(stored, literal)
    left, right = _coerce(stored, literal)
    if left is None or right is None:
        return False
    try:
        if cond.op == ">":
            return bool(left > right)
        if cond.op == "<":
            return bool(left < right)
        if cond.op == ">=":
            return bool(left >= right)
        return bool(left <= right)
    except TypeError:
        return False


def _equal(stored: Any, literal: Value) -> bool:
    if literal is None or stored is None:
        return stored is None and literal is None
    left, right = _coerce(stored, literal)
    return left is not None and bool(left == right)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise SoqlError(f"unexpected character at position {pos}: {text[pos : pos + 20]!r}")
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            pos = match.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "name" and tok[1].upper() == word:
            self.i += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise self.error(f"expecting '{word}'")

    def error(self, what: str) -> SoqlError:
        tok = self.peek()
        where = (
            f"unexpected token: '{tok[1]}' at position {tok[2]}"
            if tok
            else f"unexpected end of query at position {len(self.text.rstrip())}"
        )
        return SoqlError(f"{what}: {where}")

    def name(self) -> str:
        tok = self.peek()
        if tok is None or tok[0] != "name" or tok[1].upper() in _KEYWORDS:
            raise self.error("expecting a field or object name")
        self.i += 1
        return tok[1]

    def punct(self, char: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "punct" and tok[1] == char:
            self.i += 1
            return True
        return False

    def value(self) -> Value:
        tok = self.peek()
        if tok is None:
            raise self.error("expecting a value")
        kind, text, _ = tok
        self.i += 1
        if kind == "string":
            return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "datetime":
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        if kind == "date":
            return date.fromisoformat(text)
        if kind == "name" and text.upper() in ("TRUE", "FALSE"):
            return text.upper() == "TRUE"
        if kind == "name" and text.upper() == "NULL":
            return None
        self.i -= 1
        raise self.error("expecting a value")

    def condition(self) -> Condition:
        name = self.name()
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            if not self.punct("("):
                raise self.error("expecting '('")
            values = [self.value()]
            while self.punct(","):
                values.append(self.value())
            if not self.punct(")"):
                raise self.error("expecting ')'")
            return Condition(name, "NOT IN" if negated else "IN", tuple(values))
        if negated:
            raise self.error("expecting 'IN'")
        tok = self.peek()
        if tok is None or tok[0] != "op":
            raise self.error("expecting an operator")
        self.i += 1
        op = "!=" if tok[1] == "<>" else tok[1]
        return Condition(name, op, self.value())

    def query(self) -> Query:
        self.expect_keyword("SELECT")
        fields = [self.name()]
        while self.punct(","):
            fields.append(self.name())
        self.expect_keyword("FROM")
        sobject = self.name()
        where: list[Condition] = []
        if self.keyword("WHERE"):
            where.append(self.condition())
            while self.keyword("AND"):
                where.append(self.condition())
            tok = self.peek()
            if tok is not None and tok[1].upper() == "OR":
                raise SoqlError("OR is not supported by the sandbox's SOQL subset")
        order: list[tuple[str, bool]] = []
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                name = self.name()
                asc = not self.keyword("DESC")
                if asc:
                    self.keyword("ASC")
                order.append((name, asc))
                if not self.punct(","):
                    break
        limit = None
        if self.keyword("LIMIT"):
            tok = self.peek()
            if tok is None or tok[0] != "number" or not tok[1].isdigit():
                raise self.error("expecting a non-negative integer after LIMIT")
            self.i += 1
            limit = int(tok[1])
        if self.peek() is not None:
            raise self.error("unexpected text after the query")
        return Query(tuple(fields), sobject, tuple(where), tuple(order), limit, self.text)


def parse(text: str) -> Query:
    """Parse ``text``; raises :class:`SoqlError` saying where the query went wrong."""
    if not text or not text.strip():
        raise SoqlError("the query is empty")
    return _Parser(text).query()
