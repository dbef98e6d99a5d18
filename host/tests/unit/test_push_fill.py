"""When a drain claims a partial batch and when it waits for it to fill (``fill_plan``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmhost.sync.push import BACKFILL_FILL_WAIT_S, FILL_WAIT_S, fill_plan

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _ago(*seconds: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


def test_nothing_due_is_none_and_full_claims_go_at_once() -> None:
    assert fill_plan([], 100, 400, NOW) is None
    assert fill_plan(_ago(*[0.0] * 400), 100, 400, NOW) == (0.0, 400)
    # whole batches only while more are arriving: the 50 left over fill meanwhile
    assert fill_plan(_ago(*[0.0] * 250), 100, 400, NOW) == (0.0, 200)


def test_a_lone_change_goes_at_once() -> None:
    assert fill_plan(_ago(0.0), 100, 400, NOW) == (0.0, 400)
    assert fill_plan(_ago(0.0, 0.5), 1000, 1000, NOW) == (0.0, 1000)


def test_a_burst_waits_for_its_batch_but_never_past_the_oldest_rows_limit() -> None:
    burst = _ago(*[i / 100 for i in range(60)])  # 60 rows in the last 0.6 s: 100/s
    wait, limit = fill_plan(burst, 100, 400, NOW) or (0.0, 0)
    assert wait > 0 and limit == 0
    # the same rows once the oldest has waited FILL_WAIT_S: sent as they are
    late = [at - timedelta(seconds=FILL_WAIT_S) for at in burst]
    assert fill_plan(late, 100, 400, NOW) == (0.0, 400)


def test_a_trickle_that_cannot_fill_the_batch_in_time_goes_at_once() -> None:
    # 5 rows a second would take 19 s to fill a batch of 100
    trickle = _ago(0.1, 0.3, 0.5, 0.7, 0.9)
    assert fill_plan(trickle, 100, 400, NOW) == (0.0, 400)


def test_a_backfills_fan_out_waits_for_a_full_claim_however_slowly_it_comes() -> None:
    # another CRM's first backfill: a page's rows came 3 s ago and nothing since, so the rate
    # of the last second is nil; its next page is on its way
    page = _ago(*[3.0] * 40)
    wait, limit = fill_plan(page, 100, 400, NOW, backfill=True) or (0.0, 0)
    assert wait > 0 and limit == 0
    assert fill_plan(page, 100, 400, NOW) == (0.0, 400)  # any other rows would go now
    # a whole claim, not a batch: fewer claims, fewer batches that mix known and new records
    wait, limit = fill_plan(_ago(*[3.0] * 120), 100, 400, NOW, backfill=True) or (0.0, 0)
    assert wait > 0 and limit == 0
    assert fill_plan(_ago(*[3.0] * 400), 100, 400, NOW, backfill=True) == (0.0, 400)
    # never past the oldest row's limit
    late = _ago(*[BACKFILL_FILL_WAIT_S] * 40)
    assert fill_plan(late, 100, 400, NOW, backfill=True) == (0.0, 400)
