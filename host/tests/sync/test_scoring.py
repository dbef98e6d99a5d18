"""The scoring model: decay, clamping, order independence, configuration checks."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from crmhost.db.platform import ContactRow
from crmhost.sync.scoring import (
    DEFAULT_MODEL,
    ScoringError,
    apply_event,
    clamp_score,
    engagement_after,
    model_from_settings,
    score_at_time,
    validate_model,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _row() -> ContactRow:
    return ContactRow(email="a@x.io", score_raw=0.0, score_at=None)


def test_half_life_halves_points() -> None:
    row = _row()
    apply_event(row, "replied", T0, DEFAULT_MODEL)  # 20
    change = apply_event(row, "sent", T0 + timedelta(days=30), DEFAULT_MODEL)  # 0 points, 30 days on
    assert math.isclose(row.score_raw, 10.0)
    assert (change.before, change.after) == (20, 10)
    assert row.score_at == T0 + timedelta(days=30)
    assert score_at_time(row, T0 + timedelta(days=60), DEFAULT_MODEL) == 5
    assert score_at_time(row, T0, DEFAULT_MODEL) == 10  # never "un-decays"


def test_any_arrival_order_gives_the_same_raw_score() -> None:
    events = [
        ("opened", T0),
        ("clicked", T0 + timedelta(days=3)),
        ("unsubscribed", T0 + timedelta(days=4)),
        ("replied", T0 + timedelta(days=10)),
        ("bounced", T0 - timedelta(days=20)),
    ]
    results = set()
    for order in itertools.permutations(events):
        row = _row()
        for kind, at in order:
            apply_event(row, kind, at, DEFAULT_MODEL)
        assert row.score_at == T0 + timedelta(days=10)
        results.add(round(row.score_raw, 9))
    assert len(results) == 1


def test_clamp_only_on_what_is_shown() -> None:
    row = _row()
    apply_event(row, "unsubscribed", T0, DEFAULT_MODEL)  # -50
    assert clamp_score(row.score_raw) == 0
    for n in range(12):
        apply_event(row, "replied", T0, DEFAULT_MODEL)  # +20 each, same instant
        assert clamp_score(row.score_raw) == max(0, min(100, -50 + 20 * (n + 1)))
    assert engagement_after(95, "clicked", DEFAULT_MODEL) == 100
    assert engagement_after(10, "unsubscribed", DEFAULT_MODEL) == 10  # negatives do not lower it


def test_validate_model_merges_and_names_the_key() -> None:
    model = validate_model({"points": {"opened": 3}, "half_life_days": 7})
    assert model.points["opened"] == 3 and model.points["clicked"] == 10 and model.half_life_days == 7.0
    assert model_from_settings(model.to_json()) == model
    assert model_from_settings({}) == DEFAULT_MODEL
    bad = [
        ({"points": {"forwarded": 1}}, "points.forwarded"),
        ({"points": {"opened": 1.5}}, "points.opened"),
        ({"points": {"opened": True}}, "points.opened"),
        ({"points": {"opened": 101}}, "points.opened"),
        ({"points": []}, "points"),
        ({"half_life_days": 0}, "half_life_days"),
        ({"half_life_days": "30"}, "half_life_days"),
        ({"half_life_days": 100_000}, "half_life_days"),
        ({"decay": 1}, "decay"),
    ]
    for data, where in bad:
        with pytest.raises(ScoringError) as info:
            validate_model(data)
        assert info.value.where == where, data
