"""The echo ledger's hash: the same value hashes the same however it travelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from crmhost.sync.echo import value_hash


def test_same_value_same_hash_across_representations() -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    other_zone = at.astimezone(timezone(timedelta(hours=2)))
    assert value_hash(at) == value_hash(other_zone)
    # CRMs keep milliseconds: a pushed time that comes back truncated is the same value
    assert value_hash(at) == value_hash(at.replace(microsecond=123000))
    assert value_hash(75) == value_hash(75.0)
    assert value_hash("") == value_hash(None) == value_hash("  ")
    assert value_hash({"b": 1, "a": 2}) == value_hash({"a": 2, "b": 1})


def test_different_values_differ() -> None:
    distinct = [None, 0, False, "0", "null", "a", "A", 1, 1.5, True, [], {}, ["a"]]
    hashes = {value_hash(v) for v in distinct}
    assert len(hashes) == len(distinct)
    assert len(value_hash("x")) == 64
