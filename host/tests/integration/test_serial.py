"""One run per key at a time and no lost wake-up (crmhost.worker.serial), on arq and in-process.

A probe job stands in for a drain: it records each run's start, and the test holds it at the
places where a kick used to be lost (the end of a run, after its last claim; and after the run,
while arq still counts the job as running) and kicks meanwhile. Every wait is for a condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from arq import func
from arq.worker import Function, Worker

from crmhost.plugins import Plugins
from crmhost.runtime import Host, open_host
from crmhost.security.tokens import generate_key_spec
from crmhost.settings import Settings
from crmhost.worker.codec import deserialize, serialize
from crmhost.worker.queue import ArqQueue, InProcessQueue, create_queue
from crmhost.worker.registry import FUNCTIONS
from crmhost.worker.serial import LocalGate, RedisGate, kick, run_serially
from crmhost.worker.settings import redis_settings_for

pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")

KEY = "probe:1"


@dataclass
class Probe:
    """What the probe jobs did, and where the test holds them."""

    runs: list[str] = field(default_factory=list)  # job id per run start
    active: int = 0
    max_active: int = 0
    #: run number -> event the run waits for at its end
    hold_run: dict[int, asyncio.Event] = field(default_factory=dict)
    #: job id -> event the job waits for after run_serially returned (arq still "running" it)
    hold_job: dict[str, asyncio.Event] = field(default_factory=dict)
    reached: list[str] = field(default_factory=list)  # "run:<n>" / "job:<id>" when held there


PROBE = Probe()


async def serial_probe(ctx: dict[str, Any]) -> dict[str, Any]:
    async def work(_deadline: float) -> tuple[dict[str, Any], bool]:
        n = len(PROBE.runs)
        PROBE.runs.append(ctx["job_id"])
        PROBE.active += 1
        PROBE.max_active = max(PROBE.max_active, PROBE.active)
        try:
            if n in PROBE.hold_run:
                PROBE.reached.append(f"run:{n}")
                await PROBE.hold_run[n].wait()
        finally:
            PROBE.active -= 1
        return {"run": n}, False

    out = await run_serially(ctx, KEY, work, function="serial_probe", kwargs={})
    hold = PROBE.hold_job.get(ctx["job_id"])
    if hold is not None:
        PROBE.reached.append(f"job:{ctx['job_id']}")
        await hold.wait()
    return out


FUNCTIONS_WITH_PROBE: list[Function] = [*FUNCTIONS, func(serial_probe, max_tries=1, keep_result=0)]


async def _until(what: str, check: Callable[[], bool]) -> None:
    for _ in range(400):  # up to 20 s on a loaded machine
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}; runs {PROBE.runs}, held at {PROBE.reached}")


@pytest.fixture(name="host", params=["in-process", "arq"])
async def fx_host(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Host]:
    global PROBE
    PROBE = Probe()
    redis_url = request.getfixturevalue("redis_db_url") if request.param == "arq" else None
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'crmhost.db'}",
        redis_url=redis_url,
        encryption_keys=generate_key_spec("A"),
    )
    async with open_host(settings, plugins=Plugins(), with_queue=False, migrate=True) as host:
        host.queue = await create_queue(host, FUNCTIONS_WITH_PROBE)
        if redis_url is None:
            yield host
            return
        worker = Worker(
            functions=FUNCTIONS_WITH_PROBE,
            redis_settings=redis_settings_for(redis_url),
            job_serializer=serialize,
            job_deserializer=deserialize,
            ctx={"host": host},
            poll_delay=0.02,
            handle_signals=False,
        )
        task = asyncio.create_task(worker.async_run())
        try:
            yield host
        finally:
            for event in [*PROBE.hold_run.values(), *PROBE.hold_job.values()]:
                event.set()
            await _until("the worker's jobs ended", lambda: all(t.done() for t in worker.tasks.values()))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await worker.close()


async def _settle(host: Host) -> None:
    """Let every probe job end (in-process: wait for the tasks; arq: for the lock to go)."""
    await host.job_queue().drain()
    await _until("no probe run is active", lambda: PROBE.active == 0)


async def test_a_kick_while_the_job_is_ending_starts_a_new_run(host: Host) -> None:
    # the job ran and found nothing more, but has not ended (arq still refuses its job id):
    # the old lost wake-up. Then the follow-up job ends the same way and is kicked again.
    PROBE.hold_job = {KEY: asyncio.Event(), f"{KEY}:2": asyncio.Event()}
    assert await kick(host, "serial_probe", KEY)
    await _until("the first job is ending", lambda: f"job:{KEY}" in PROBE.reached)
    assert PROBE.runs == [KEY]

    assert await kick(host, "serial_probe", KEY)  # refused as KEY, enqueued as KEY:2
    await _until("a run after the second kick", lambda: len(PROBE.runs) == 2)
    await _until("the follow-up is ending", lambda: f"job:{KEY}:2" in PROBE.reached)

    # both jobs are past their last run and still "running": a third kick must still run
    assert await kick(host, "serial_probe", KEY)
    await _until("a run after the third kick", lambda: len(PROBE.runs) == 3)
    assert PROBE.runs == [KEY, f"{KEY}:2", f"{KEY}:3"]
    for event in PROBE.hold_job.values():
        event.set()
    await _settle(host)
    assert PROBE.max_active == 1


async def test_a_kick_at_the_end_of_a_run_makes_it_run_again(host: Host) -> None:
    # the run made its last (empty) claim and is about to finish when new work is kicked
    PROBE.hold_run = {0: asyncio.Event()}
    assert await kick(host, "serial_probe", KEY)
    await _until("the first run is at its end", lambda: "run:0" in PROBE.reached)
    assert not await kick(host, "serial_probe", KEY)  # no second job: the holder runs again
    assert not await kick(host, "serial_probe", KEY)  # two kicks, one more run
    PROBE.hold_run[0].set()
    await _until("a second run", lambda: len(PROBE.runs) == 2)
    await _settle(host)
    assert PROBE.runs == [KEY, KEY]
    assert PROBE.max_active == 1


async def test_a_job_enqueued_directly_during_a_run_is_served_by_that_run(host: Host) -> None:
    # a caller that enqueues by hand (no kick) while a run holds the lock: the job steps aside
    # and the holder runs again for it; never two runs at once
    PROBE.hold_run = {0: asyncio.Event()}
    assert await kick(host, "serial_probe", KEY)
    await _until("the first run is held", lambda: "run:0" in PROBE.reached)
    assert await host.job_queue().enqueue("serial_probe", job_id="by-hand")
    for _ in range(400):  # it found the lock held and bumped the generation for the holder
        if await _gen(host) >= 2:
            break
        await asyncio.sleep(0.05)
    assert await _gen(host) >= 2
    PROBE.hold_run[0].set()
    await _until("a second run", lambda: len(PROBE.runs) == 2)
    await _settle(host)
    assert PROBE.runs == [KEY, KEY]
    assert PROBE.max_active == 1


async def _gen(host: Host) -> int:
    queue = host.job_queue()
    if isinstance(queue, InProcessQueue):
        assert isinstance(queue.gate, LocalGate)
        return queue.gate.gen.get(KEY, 0)
    assert isinstance(queue, ArqQueue)
    return int(await queue.pool.get(f"crmhost:serial:{KEY}:gen") or 0)


@pytest.mark.redis
async def test_a_killed_holders_lock_expires(redis_db_url: str) -> None:
    from arq import create_pool

    pool = await create_pool(redis_settings_for(redis_db_url))
    try:
        gate = RedisGate(pool, lock_ttl_s=0.3)
        assert await gate.acquire(KEY, "dead") == 0
        assert await gate.acquire(KEY, "other") is None  # held: bumps gen for the holder
        assert await gate.wake(KEY) == (2, True)
        for _ in range(100):  # the holder never releases (SIGKILL): the lock expires
            seen = await gate.acquire(KEY, "other")
            if seen is not None:
                break
            await asyncio.sleep(0.05)
        assert seen is not None and seen >= 2
        assert await gate.settle(KEY, "dead", 0) == (False, seen)  # the dead token holds nothing
        assert await gate.settle(KEY, "other", seen) == (False, seen)  # released
        assert await gate.wake(KEY) == (seen + 1, False)
    finally:
        await pool.aclose()


async def test_the_local_gate_matches_the_redis_one() -> None:
    gate = LocalGate()
    assert await gate.acquire(KEY, "a") == 0
    assert await gate.acquire(KEY, "b") is None
    assert await gate.wake(KEY) == (2, True)
    assert await gate.settle(KEY, "a", 0) == (True, 2)  # kicked meanwhile: keep the lock, run again
    assert await gate.settle(KEY, "a", 2) == (False, 2)
    assert await gate.settle(KEY, "a", 2) == (False, 2)  # no longer held
    assert await gate.wake(KEY) == (3, False)
    assert await gate.acquire(KEY, "b") == 3
    assert await gate.release(KEY, "b") == 3
    assert await gate.acquire(KEY, "c") == 3


@pytest.mark.parametrize("host", ["in-process"], indirect=True)
async def test_closing_the_in_process_queue_leaves_no_continuation_behind(host: Host) -> None:
    # a run cancelled by the shutdown kicks its continuation; a closing queue refuses it
    PROBE.hold_run = {0: asyncio.Event(), 1: asyncio.Event()}
    queue = host.job_queue()
    assert isinstance(queue, InProcessQueue)
    assert await kick(host, "serial_probe", KEY)
    await _until("the run is held", lambda: "run:0" in PROBE.reached)
    await queue.close()
    await asyncio.sleep(0.1)  # a continuation, had one been started, would be running now
    assert queue._tasks == {} and PROBE.runs == [KEY]
    assert isinstance(queue.gate, LocalGate) and queue.gate.holder == {}
