"""Mapping expressions: the three forms, their values, errors with positions, hostile input."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from typing import Any

import pytest

from crmhost.sync.expressions import (
    MAX_NUMBER,
    EvaluationError,
    ExpressionError,
    compile_conditional,
    compile_expression,
)

CONTACT: dict[str, Any] = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": None,
    "lead_score": 80,
    "total_opens": 7,
    "total_clicks": None,
    "unsubscribed": False,
    "last_email_opened": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    "custom.tier": "gold",
}


def value(kind: str, text: str, values: dict[str, Any] | None = None) -> Any:
    return compile_expression(kind, text).evaluate(CONTACT if values is None else values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{first_name}} {{last_name}}", "Ada Lovelace"),
        ("{{ first_name }}   {{company}}  {{last_name}}", "Ada Lovelace"),  # missing: no gap left
        ("Dear {{first_name}}!", "Dear Ada!"),
        ("{{custom.tier}}/{{lead_score}}/{{unsubscribed}}", "gold/80/false"),
        ("{{company}}", ""),
        ("no placeholders", "no placeholders"),
    ],
)
def test_formula(text: str, expected: str) -> None:
    assert value("formula", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('lead_score >= 75 ? "Hot" : "Warm"', "Hot"),
        ("lead_score < 75 ? 'Hot' : 'Warm'", "Warm"),
        ('lead_score = 80 and not unsubscribed ? "yes" : "no"', "yes"),
        ('lead_score == 81 or custom.tier != "gold" ? 1 : 2', 2),
        ('(company = null) ? "none" : company', "none"),
        ('total_clicks > 0 ? "clicked" : "not"', "not"),  # None is never > 0, and never raises
        ('last_email_opened >= "2024-01-01" ? true : false', True),
        ('lead_score > 90 ? "A" : lead_score > 70 ? "B" : "C"', "B"),
        ("lead_score >= 75 ? lead_score * 2 - 10 : 0", 150),
        ('custom.missing = null && lead_score / 0 = null ? "ok" : "bad"', "ok"),
    ],
)
def test_conditional(text: str, expected: Any) -> None:
    assert value("conditional", text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SUM(opens + clicks)", 7),  # clicks is None: counts as 0 in SUM
        ("SUM(total_opens, total_clicks, lead_score)", 87),
        ("COUNT(opens, clicks, lead_score)", 2),
        ("MIN(opens, lead_score)", 7),
        ("MAX(opens, clicks, lead_score)", 80),
        ("AVG(opens, lead_score)", 43.5),
        ("AVG(clicks)", None),
        ("sum(opens * 2) + 1", 15),
    ],
)
def test_aggregation(text: str, expected: Any) -> None:
    assert value("aggregation", text) == expected


def test_fields_resolve_aliases() -> None:
    assert compile_expression("aggregation", "SUM(opens + clicks)").fields == {"total_opens", "total_clicks"}
    assert compile_expression("formula", "{{custom.tier}} {{email}}").fields == {"custom.tier", "email"}


def test_custom_values_as_a_nested_dict() -> None:
    assert value("formula", "{{custom.tier}}", {"custom": {"tier": "silver"}}) == "silver"


def test_structured_conditional_compiles_to_the_same_form() -> None:
    text = compile_conditional("lead_score >= 75", 'Say "hot"\n', None)
    assert value("conditional", text) == 'Say "hot"\n'
    assert value("conditional", text, {"lead_score": 10}) is None
    with pytest.raises(ExpressionError) as err:
        compile_conditional("lead_score >= ", "Hot", "Warm")
    assert err.value.position == 14
    with pytest.raises(ExpressionError):
        compile_conditional("lead_score > 1", ["a"], "b")


@pytest.mark.parametrize(
    ("kind", "text", "position", "words"),
    [
        ("formula", "{{first_name} {{last_name}}", 0, "not closed"),
        ("formula", "Hi {{ nickname }}", 6, "unknown field 'nickname'"),
        ("formula", "Hi {{}}", 3, "empty placeholder"),
        ("formula", "{{first_name last_name}}", 13, "one field name"),
        ("formula", "tail }}", 5, "unbalanced"),
        ("conditional", 'lead_score >= 75 ? "Hot"', 24, "':'"),
        ("conditional", "lead_score >= 75", 16, "condition ? value_if_true"),
        ("conditional", 'lead_score >> 75 ? "a" : "b"', 12, "expected a value"),
        ("conditional", 'lead_score >= 75 ? "Hot : "Warm"', 31, "unterminated string"),
        ("conditional", "lead_score # 3 ? 1 : 2", 11, "unexpected character '#'"),
        ("conditional", 'x.y.z ? "a" : "b"', 0, "unknown field"),
        ("conditional", "1 < 2 < 3 ? 1 : 2", 6, "do not chain"),
        ("conditional", '"a\\q" ? 1 : 2', 2, "escape"),
        ("aggregation", "SUM(opens + )", 12, "expected a value"),
        ("aggregation", "MEDIAN(opens)", 0, "unknown function 'MEDIAN'"),
        ("aggregation", "opens + clicks", 0, "needs one of SUM"),
        ("aggregation", "SUM(opens", 9, "')' closing SUM("),
        ("aggregation", "", 0, "empty"),
        ("direct", "x", 0, "unknown expression type"),
    ],
)
def test_errors_say_what_and_where(kind: str, text: str, position: int, words: str) -> None:
    with pytest.raises(ExpressionError) as err:
        compile_expression(kind, text)
    assert err.value.position == position, err.value
    assert words in err.value.message
    assert f"position {position}" in str(err.value)


def test_deep_nesting_and_length_are_bounded() -> None:
    with pytest.raises(ExpressionError, match="nested deeper"):
        compile_expression("conditional", "(" * 300 + "1" + ")" * 300 + " ? 1 : 2")
    with pytest.raises(ExpressionError, match="nested deeper"):
        compile_expression("conditional", "not " * 100 + "true ? 1 : 2")
    with pytest.raises(ExpressionError, match="more than 200 operators"):
        compile_expression("aggregation", "SUM(" + "1+" * 900 + "1)")
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression("formula", "x" * 5000)


_ALPHABET = string.printable + "{{}}()??::\"'éλ"
_PIECES = [
    "lead_score",
    "opens",
    "custom.x",
    "SUM(",
    "AVG(",
    "(",
    ")",
    "?",
    ":",
    ">=",
    "=",
    " and ",
    " not ",
    "+",
    "/",
    '"s"',
    "'",
    "1.5",
    "null",
    "{{",
    "}}",
    "first_name",
    ",",
]


@pytest.mark.parametrize("kind", ["formula", "conditional", "aggregation"])
def test_random_garbage_only_ever_raises_expression_error(kind: str) -> None:
    rng = random.Random(5)  # fixed seed: a failure reproduces
    values = [CONTACT, {}, {"lead_score": "x", "total_opens": True, "custom": 3}]
    for n in range(3000):
        if n % 2:
            text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))
        else:
            text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12)))
        try:
            compiled = compile_expression(kind, text)
        except ExpressionError as exc:
            assert 0 <= exc.position <= len(text), (text, exc)
            continue
        for vals in values:
            compiled.evaluate(vals)  # evaluation of anything that compiled never raises


@pytest.mark.parametrize(
    ("kind", "text", "position"),
    [
        ("aggregation", "AVG(" + "9" * 400 + ", opens)", 4),
        ("aggregation", "SUM(opens * 1e999)", 12),
        ("conditional", f"lead_score > {MAX_NUMBER + 1} ? 1 : 2", 13),
        ("aggregation", "MAX(opens, 1000000000000000.5)", 11),
    ],
)
def test_number_literals_are_bounded_when_saved(kind: str, text: str, position: int) -> None:
    """Issue 11 item 5: these saved, then overflowed every push of every contact."""
    with pytest.raises(ExpressionError) as raised:
        compile_expression(kind, text)
    assert raised.value.position == position and "larger than" in raised.value.message
    assert value("aggregation", f"SUM(opens, {MAX_NUMBER})") == MAX_NUMBER + 7


@pytest.mark.parametrize(
    "text",
    [
        "SUM(custom.big * custom.big)",
        "AVG(custom.big * custom.big, opens)",
        "SUM(custom.big * custom.big / 7)",
        "AVG(custom.huge, custom.huge)",
        "MAX(custom.huge / 3, 1)",
        "SUM(-(custom.big * custom.big))",
    ],
)
def test_out_of_range_values_are_one_typed_error_naming_the_expression(text: str) -> None:
    """Contact values can still overflow; that is an EvaluationError (a per-record reject)."""
    expression = compile_expression("aggregation", text)
    contact = {**CONTACT, "custom.big": 1e200, "custom.huge": 10**400}
    with pytest.raises(EvaluationError) as raised:
        expression.evaluate(contact)
    assert text[:20] in str(raised.value)
    assert isinstance(raised.value, ValueError)  # what the push rejects a record for
    assert expression.evaluate({**CONTACT, "custom.big": 3, "custom.huge": 9}) is not None
