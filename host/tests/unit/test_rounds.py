"""Shared look-up rounds: callers at once share a round, a failed round is run again by the rest."""

from __future__ import annotations

import asyncio

import pytest

from crmhost.rounds import KeyedLocks, SharedRounds


class Directory:
    """A slow name -> id directory that counts its calls and the ids it hands out per name."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []
        self.made: dict[str, list[int]] = {}
        self.gate = asyncio.Semaphore(0)  # each call waits for one release
        self.fail_next = False

    async def resolve(self, wanted: dict[str, str]) -> dict[str, int]:
        self.calls.append(set(wanted))
        await self.gate.acquire()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the CRM said no")
        out = {}
        for key in wanted:
            ids = self.made.setdefault(key, [])
            if not ids:
                ids.append(len(self.made) * 10)
            out[key] = ids[0]
        return out


async def test_callers_that_arrive_during_a_round_share_the_next_one() -> None:
    rounds: SharedRounds[str, str, dict[str, int]] = SharedRounds()
    directory = Directory()
    first = asyncio.create_task(rounds.run("acct", {"a": "A", "b": "B"}, directory.resolve))
    await asyncio.sleep(0)
    later = [asyncio.create_task(rounds.run("acct", {k: k}, directory.resolve)) for k in "bcdc"]
    await asyncio.sleep(0)
    directory.gate.release()
    directory.gate.release()
    results = await asyncio.gather(first, *later)
    assert directory.calls == [{"a", "b"}, {"b", "c", "d"}]
    assert all(len(ids) == 1 for ids in directory.made.values())
    assert results[1]["b"] == results[0]["b"] and results[2]["c"] == results[4]["c"]


async def test_callers_a_moment_apart_share_the_first_round_when_it_gathers() -> None:
    rounds: SharedRounds[str, str, dict[str, int]] = SharedRounds(gather_s=0.2)
    directory = Directory()
    first = asyncio.create_task(rounds.run("acct", {"a": "A"}, directory.resolve))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(rounds.run("acct", {"b": "B"}, directory.resolve))
    directory.gate.release()
    assert await asyncio.gather(first, second) == [{"a": 10, "b": 20}] * 2
    assert directory.calls == [{"a", "b"}]


async def test_scopes_do_not_wait_for_each_other() -> None:
    rounds: SharedRounds[str, str, dict[str, int]] = SharedRounds()
    slow, fast = Directory(), Directory()
    held = asyncio.create_task(rounds.run("one", {"a": "A"}, slow.resolve))
    await asyncio.sleep(0)
    fast.gate.release()
    assert await asyncio.wait_for(rounds.run("two", {"a": "A"}, fast.resolve), 5) == {"a": 10}
    slow.gate.release()
    await held


@pytest.mark.parametrize("how", ["raises", "cancelled"])
async def test_a_round_whose_runner_fails_is_run_again_by_the_others(how: str) -> None:
    rounds: SharedRounds[str, str, dict[str, int]] = SharedRounds()
    directory = Directory()
    ahead = asyncio.create_task(rounds.run("acct", {"a": "A"}, directory.resolve))
    await asyncio.sleep(0)
    runner = asyncio.create_task(rounds.run("acct", {"b": "B"}, directory.resolve))
    other = asyncio.create_task(rounds.run("acct", {"c": "C"}, directory.resolve))
    await asyncio.sleep(0)
    directory.gate.release()
    await ahead
    await asyncio.sleep(0.01)  # the runner's round ({b, c}) is waiting at the gate
    assert directory.calls[-1] == {"b", "c"}
    if how == "raises":
        directory.fail_next = True
        directory.gate.release()
        with pytest.raises(RuntimeError):
            await runner
    else:
        runner.cancel()
    directory.gate.release()
    assert (await asyncio.wait_for(other, 5))["c"] == 20  # "b" was never made
    assert directory.calls[-1] == {"c"}


async def test_keyed_locks_hold_one_writer_per_key() -> None:
    locks: KeyedLocks[str] = KeyedLocks()
    assert locks("acme") is locks("acme") and locks("acme") is not locks("globex")
    order: list[str] = []

    async def write(name: str, key: str) -> None:
        async with locks(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(write("a", "acme"), write("b", "acme"), write("c", "globex"))
    assert order.index("a-") < order.index("b+") and order.index("c+") < order.index("a-")
