"""Lead and engagement scores from email events: points per kind with exponential time decay.

The model (per tenant, in :attr:`TenantSettings.scoring`; :data:`DEFAULT_MODEL` when empty)
gives points per event kind and a half-life. Scores are kept incrementally on the contact:

- ``score_raw`` holds the unclamped sum of every event's points, each decayed to ``score_at``
  (the latest event time seen): ``sum(p_i * 2 ** -((score_at - t_i) / half_life))``. A newer
  event first decays the sum to its own time, then adds its points; a late event (older than
  ``score_at``) adds its points already decayed to ``score_at``. Both are the same sum, so the
  raw score does not depend on the order events arrive in (up to float rounding).
- ``lead_score`` is ``score_raw`` rounded and clamped to 0..100. The clamp is applied only to
  what is shown, never to the sum, so a -50 unsubscribe followed by opens adds up the same in
  any order.
- ``engagement_score`` is lifetime positive engagement: the undecayed sum of positive points,
  capped at 100 (a cap over non-negative additions is order-independent too).

The approximation: a stored ``lead_score`` is the score *as of the latest ingest of the
contact's events* (decayed to that moment, :mod:`crmhost.sync.ingest`) or of the hourly decay
pass (:mod:`crmhost.sync.decay`), whichever came last; between the two it does not move.
:func:`score_at_time` gives the decayed value at any moment for readers that need "now".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from crmhost.db.platform import ContactRow
from crmhost.models import EmailEventKind

__all__ = [
    "DEFAULT_MODEL",
    "MAX_HALF_LIFE_DAYS",
    "MAX_POINTS",
    "ScoreChange",
    "ScoringError",
    "ScoringModel",
    "apply_event",
    "clamp_score",
    "engagement_after",
    "model_from_settings",
    "reset_score",
    "score_at_time",
    "validate_model",
]

#: Bounds on a tenant's configuration: a score lives in 0..100, so larger points make no sense.
MAX_POINTS = 100
MAX_HALF_LIFE_DAYS = 3650.0


@dataclass(frozen=True)
class ScoringModel:
    """Points per event kind and the decay half-life."""

    points: dict[str, int]
    half_life_days: float

    def to_json(self) -> dict[str, Any]:
        """The stored / API shape."""
        return {"points": dict(self.points), "half_life_days": self.half_life_days}


DEFAULT_MODEL = ScoringModel(
    points={
        EmailEventKind.SENT.value: 0,
        EmailEventKind.OPENED.value: 5,
        EmailEventKind.CLICKED.value: 10,
        EmailEventKind.REPLIED.value: 20,
        EmailEventKind.BOUNCED.value: -10,
        EmailEventKind.UNSUBSCRIBED.value: -50,
    },
    half_life_days=30.0,
)


class ScoringError(ValueError):
    """A scoring configuration is invalid; ``where`` names the offending key (``points.opened``)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def validate_model(data: Any) -> ScoringModel:
    """Check a scoring configuration and merge it onto the defaults.

    ``{"points": {"opened": 3}, "half_life_days": 14}``: kinds left out keep their default
    points; ``half_life_days`` left out keeps the default.

    Raises:
        ScoringError: unknown keys or kinds, non-integer or out-of-range points, a half-life
            that is not a positive number of days up to :data:`MAX_HALF_LIFE_DAYS`.
    """
    if not isinstance(data, dict):
        raise ScoringError("the scoring model must be an object", "")
    unknown = sorted(set(data) - {"points", "half_life_days"})
    if unknown:
        raise ScoringError(f"unknown key {unknown[0]!r}; expected points, half_life_days", unknown[0])
    points = dict(DEFAULT_MODEL.points)
    given = data.get("points", {})
    if not isinstance(given, dict):
        raise ScoringError("points must be an object of event kind to integer", "points")
    for kind, value in given.items():
        if kind not in points:
            raise ScoringError(
                f"unknown event kind {kind!r}; expected one of {', '.join(DEFAULT_MODEL.points)}",
                f"points.{kind}",
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScoringError(f"points for {kind!r} must be an integer", f"points.{kind}")
        if not -MAX_POINTS <= value <= MAX_POINTS:
            raise ScoringError(
                f"points for {kind!r} must be between {-MAX_POINTS} and {MAX_POINTS}", f"points.{kind}"
            )
        points[kind] = value
    half_life = data.get("half_life_days", DEFAULT_MODEL.half_life_days)
    if isinstance(half_life, bool) or not isinstance(half_life, int | float) or not math.isfinite(half_life):
        raise ScoringError("half_life_days must be a number of days", "half_life_days")
    if not 0 < half_life <= MAX_HALF_LIFE_DAYS:
        raise ScoringError(
            f"half_life_days must be greater than 0 and at most {MAX_HALF_LIFE_DAYS:g}", "half_life_days"
        )
    return ScoringModel(points=points, half_life_days=float(half_life))


def model_from_settings(stored: dict[str, Any] | None) -> ScoringModel:
    """The tenant's model from :attr:`TenantSettings.scoring` (the default when empty)."""
    if not stored:
        return DEFAULT_MODEL
    try:
        return validate_model(msgspec.convert(stored, dict[str, Any]))
    except ScoringError:
        # only validated models are stored; a hand-edited bad row must not stop ingest
        return DEFAULT_MODEL


def clamp_score(raw: float) -> int:
    """A raw score as shown: rounded, clamped to 0..100."""
    return max(0, min(100, round(raw)))


def _decay(raw: float, seconds: float, half_life_days: float) -> float:
    return raw * math.pow(2.0, -seconds / (half_life_days * 86400.0))


def score_at_time(row: ContactRow, when: datetime, model: ScoringModel) -> int:
    """The contact's lead score decayed to ``when`` (its stored score if ``when`` is earlier)."""
    if row.score_at is None or when <= row.score_at:
        return clamp_score(row.score_raw or 0.0)
    return clamp_score(
        _decay(row.score_raw or 0.0, (when - row.score_at).total_seconds(), model.half_life_days)
    )


@dataclass(frozen=True)
class ScoreChange:
    """The scores before and after one event."""

    before: int
    after: int


def apply_event(row: ContactRow, kind: str, occurred_at: datetime, model: ScoringModel) -> ScoreChange:
    """Add one event to the contact's scoring state (``score_raw``, ``score_at``).

    Only the raw state is written here; the caller copies :func:`clamp_score` of it into
    ``lead_score`` through :func:`crmhost.sync.contacts.apply_values` so the change is
    recorded with its change time.
    """
    points = model.points.get(kind, 0)
    raw = row.score_raw or 0.0
    before = clamp_score(raw)
    if row.score_at is None or occurred_at >= row.score_at:
        if row.score_at is not None:
            raw = _decay(raw, (occurred_at - row.score_at).total_seconds(), model.half_life_days)
        raw += points
        row.score_at = occurred_at
    else:  # a late event: its points, decayed to the newest event time already counted
        raw += _decay(points, (row.score_at - occurred_at).total_seconds(), model.half_life_days)
    row.score_raw = raw
    return ScoreChange(before, clamp_score(raw))


def engagement_after(current: int | None, kind: str, model: ScoringModel) -> int:
    """Lifetime positive engagement after one more event, capped at 100."""
    return min(100, (current or 0) + max(0, model.points.get(kind, 0)))


def reset_score(row: ContactRow, lead_score: int, at: datetime) -> None:
    """The platform set ``lead_score`` itself: events count on from that value at ``at``."""
    row.score_raw = float(lead_score)
    row.score_at = at
