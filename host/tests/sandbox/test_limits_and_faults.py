from __future__ import annotations

import httpx
import pytest

from crmhost.sandbox import Fault, FaultInjector, FaultSwitches, RateTier, ServerRateLimiter, Window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rolling_window_is_exact() -> None:
    clock = FakeClock()
    tier = RateTier(name="t", buckets={"default": (Window(limit=3, seconds=10, policy="TEN"),)})
    limiter = ServerRateLimiter({"t": tier}, real="t", clock=clock)
    for step in (0.0, 1.0, 2.0):
        clock.now = 1000 + step
        assert limiter.check().allowed
    clock.now = 1009.5
    refused = limiter.check()
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)
    assert refused.window is not None and refused.window.policy == "TEN"
    clock.now = 1010.0  # the first request has aged out: exactly one more fits
    decision = limiter.check()
    assert decision.allowed and decision.remaining == 0
    assert not limiter.check().allowed


def test_exclusive_bucket_does_not_count_towards_default() -> None:
    clock = FakeClock()
    tier = RateTier(
        name="t",
        buckets={"default": (Window(limit=1, seconds=10),), "search": (Window(limit=2, seconds=1),)},
        exclusive=frozenset({"search"}),
    )
    limiter = ServerRateLimiter({"t": tier}, real="t", clock=clock)
    assert limiter.check("search").allowed
    assert limiter.check("search").allowed
    assert not limiter.check("search").allowed
    assert limiter.check().allowed
    assert not limiter.check().allowed
    assert limiter.set_tier("off") == "off"
    assert all(limiter.check().allowed for _ in range(100))
    with pytest.raises(ValueError, match="unknown rate-limit tier 'gold'"):
        limiter.set_tier("gold")


def test_fault_draws_are_deterministic_and_respect_shares() -> None:
    switches = FaultSwitches(rate_limit_share=0.3, server_error_share=0.2, seed=7)
    first = FaultInjector(switches)
    second = FaultInjector(switches)
    draws = [first.draw() for _ in range(1000)]
    assert draws == [second.draw() for _ in range(1000)]
    assert 200 < draws.count(Fault.RATE_LIMIT) < 400
    assert 100 < draws.count(Fault.SERVER_ERROR) < 300
    assert Fault.TIMEOUT not in draws


def test_fault_switches_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="rate_limit_share must be between 0 and 1"):
        FaultSwitches(rate_limit_share=1.5)
    with pytest.raises(ValueError, match="more than 1"):
        FaultSwitches(rate_limit_share=0.6, timeout_share=0.6)


def test_server_rate_limit_answers_429_and_headers(client: httpx.Client, bearer: dict[str, str]) -> None:
    client.post("/_sandbox/seed/notes", json=[{"text": "x"}])
    answers = [client.get("/notes/1", headers=bearer) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[0].headers["x-toy-max"] == "5"
    assert [a.headers["x-toy-remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert int(answers[5].headers["retry-after"]) >= 1
    # the search bucket is exclusive: it still has room although the default window is spent
    assert client.post("/notes/search", headers=bearer).status_code == 200
    stats = client.get("/_sandbox/stats").json()
    assert stats["rate_limited"] == 1
    # which endpoint ran into which window: what a client reads to find its pacing's gap
    assert stats["rate_limited_by"] == [
        {"endpoint": "GET /notes/{note_id}", "limit": "MINUTELY: 5 per 60 s", "count": 1}
    ]


def test_rate_limit_tiers_switch(client: httpx.Client, bearer: dict[str, str]) -> None:
    client.post("/_sandbox/seed/notes", json=[{"text": "x"}])
    assert client.put("/_sandbox/rate-limits", json={"tier": "off"}).json()["tier"] == "off"
    assert all(client.get("/notes/1", headers=bearer).status_code == 200 for _ in range(20))
    client.put("/_sandbox/rate-limits", json={"tier": "tiny"})
    assert [client.get("/notes/1", headers=bearer).status_code for _ in range(2)] == [200, 429]
    assert client.put("/_sandbox/rate-limits", json={"tier": "real"}).json()["tier"] == "real"
    bad = client.put("/_sandbox/rate-limits", json={"tier": "platinum"})
    assert bad.status_code == 400
    assert "platinum" in bad.json()["error"]


def test_injected_faults(client: httpx.Client, bearer: dict[str, str]) -> None:
    client.post("/_sandbox/seed/notes", json=[{"text": "x"}])
    client.put("/_sandbox/rate-limits", json={"tier": "off"})
    assert client.post("/_sandbox/faults", json={"rate_limit_share": 1.0}).status_code == 200
    assert client.get("/notes/1", headers=bearer).status_code == 429
    assert [(r["limit"], r["count"]) for r in client.get("/_sandbox/stats").json()["rate_limited_by"]] == [
        ("injected", 1)
    ]
    client.post(
        "/_sandbox/faults", json={"rate_limit_share": 0, "server_error_share": 1, "server_error_status": 502}
    )
    assert client.get("/notes/1", headers=bearer).status_code == 502
    client.post("/_sandbox/faults", json={"server_error_share": 0, "timeout_share": 1, "timeout_hold_s": 3})
    with pytest.raises(httpx.ReadTimeout):
        client.get("/notes/1", headers=bearer, timeout=0.3)
    client.post("/_sandbox/faults", json={"timeout_share": 0, "revoked_tokens": True})
    assert client.get("/notes/1", headers=bearer).status_code == 401
    client.post("/_sandbox/reset")
    assert client.get("/notes/1", headers=bearer).status_code == 200
    bad = client.post("/_sandbox/faults", json={"timeout_share": 2})
    assert bad.status_code == 400
    assert "timeout_share" in bad.json()["error"]
    assert client.post("/_sandbox/faults", json={"typo_share": 0.1}).status_code == 400
