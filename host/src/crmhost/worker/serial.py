"""One drain (or pull) per integration at a time, and no lost wake-up.

A *kick* says "there is new work for ``key``" (``push:<integration>``, ``pull:<integration>``).
The guarantee: after a kick at time *t*, a run of the work for ``key`` **starts after t**, and
at most one run per ``key`` is in progress at any moment, across all worker processes.

arq's job ids alone cannot give both. ``push:<id>`` is refused while that job is queued or
running, and a running job is "running" in arq's eyes until arq has deleted its keys, after
the job function returned. A kick that lands after the drain's last (empty) claim but before
arq freed the id is refused, and the new rows wait for a cron. A second, "follow-up" id does
not close the hole either: both jobs can be past their last claim at once, and a kick then is
refused twice.

So the jobs coordinate through a :class:`Gate` of their own, per ``key``: a generation counter
``gen`` and a lock holding the running job's token, changed only by four atomic operations
(Lua scripts on Redis with arq, plain code without ``await`` in-process, where the event loop
makes them atomic):

- ``wake``: ``gen += 1``; answers whether the lock is held.
- ``acquire``: take the lock if free and answer ``gen`` (the run's ``seen``); if it is held,
  ``gen += 1`` instead (so a job enqueued without a ``wake`` is not lost either) and answer no.
- ``settle(seen)``: if ``gen == seen`` release the lock, else keep it; answer which and ``gen``
  (a holder whose lock expired under it, see below, is told it no longer holds it).
- ``release``: release the lock unconditionally and answer ``gen``.

:func:`kick` is ``wake``, then, only if the lock was free, enqueue the job under its plain id
``<key>`` or, when arq refuses that, under ``<key>:<gen>`` (unique, never refused).
:func:`run_serially` is the job: ``acquire``; run the work; ``settle``; run again while
``settle`` answers a new generation; stop when it releases, or when the time budget is spent
(then ``release`` and :func:`kick` a continuation).

Why no kick is lost. Take a kick K whose ``wake`` made ``gen = g`` at time *t*.

1. The lock was held at ``wake`` by a run H. H has not settled yet (settling releases the lock
   atomically with its check), so H's next ``settle`` sees ``gen >= g``. Either H's ``seen`` is
   already ``>= g`` (H read it after *t*: its current run started after K), or ``settle``
   answers a new generation and H runs again, starting after *t*. If H stops on its budget or
   an error instead, it releases and kicks (``release`` answers ``gen``; a generation H did not
   run is kicked again), which is case 2 at a later time; on a ``Retry`` arq runs H's job
   again later, which starts after *t*. If H's process dies (SIGKILL), the
   lock expires (``LOCK_TTL_S``, just over the job timeout) and arq runs H's job again once its
   "in progress" mark expires (job timeout + 10 s): that run starts after *t*.
2. The lock was free at ``wake``: K enqueues a job J under ``<key>`` or, refused, under
   ``<key>:<g>`` (unique, so accepted). J starts after *t* and calls ``acquire``. If J takes
   the lock, its ``seen >= g``: its run starts after *t*. If another run H' holds it, J's
   ``acquire`` bumps ``gen`` before H' settles, so H' runs again (case 1).

Why one run at a time: a run happens only between ``acquire`` and ``settle``/``release`` of
the same token; the lock is one key set only when absent. The lock's TTL exceeds any job's
lifetime (arq cancels a job at its timeout, and the run releases in ``finally``), so it only
expires under a holder that was killed (or a loop frozen longer than the timeout).

Cost: a kick while a run holds the lock is one Lua call and no job; a kick while none does is
one job (two enqueue attempts at most).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from arq import Retry

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from crmhost.runtime import Host

__all__ = [
    "JOB_TIMEOUT_S",
    "LOCK_TTL_S",
    "SLICE_S",
    "Gate",
    "LocalGate",
    "RedisGate",
    "gate_of",
    "kick",
    "run_serially",
]

log = logging.getLogger(__name__)

#: the longest any job may run (arq's timeout for every function); arq holds a killed worker's
#: job for this + 10 s, so it bounds recovery from a SIGKILL (see crmhost.worker.registry)
JOB_TIMEOUT_S = 60.0
#: the work a serial job starts within one run; a CRM call in flight when it ends (HTTP timeout
#: 30 s) or a short rate-limit wait may still follow, so this leaves room under the timeout
SLICE_S = 20.0
#: how long a lock outlives its holder at most: just over the job timeout (a live holder is
#: cancelled by then and has released it)
LOCK_TTL_S = JOB_TIMEOUT_S + 5.0
_PREFIX = "crmhost:serial:"


class Gate(Protocol):
    """The per-key generation counter and lock (see the module docstring)."""

    async def wake(self, key: str) -> tuple[int, bool]:
        """``gen += 1``; returns the new ``gen`` and whether the lock is held."""

    async def acquire(self, key: str, token: str) -> int | None:
        """Take the lock for ``token`` and return ``gen``; if held, ``gen += 1`` and ``None``."""

    async def settle(self, key: str, token: str, seen: int) -> tuple[bool, int]:
        """Release if ``gen == seen``, else keep the lock; returns whether still held, and ``gen``."""

    async def release(self, key: str, token: str) -> int:
        """Release the lock if ``token`` holds it; returns ``gen``."""


@dataclass
class LocalGate:
    """The gate of the in-process queue: dicts, changed without ``await`` (atomic in asyncio)."""

    gen: dict[str, int] = field(default_factory=dict)
    holder: dict[str, str] = field(default_factory=dict)

    async def wake(self, key: str) -> tuple[int, bool]:
        """See :meth:`Gate.wake`."""
        self.gen[key] = self.gen.get(key, 0) + 1
        return self.gen[key], key in self.holder

    async def acquire(self, key: str, token: str) -> int | None:
        """See :meth:`Gate.acquire`."""
        if key in self.holder:
            self.gen[key] = self.gen.get(key, 0) + 1
            return None
        self.holder[key] = token
        return self.gen.get(key, 0)

    async def settle(self, key: str, token: str, seen: int) -> tuple[bool, int]:
        """See :meth:`Gate.settle`."""
        current = self.gen.get(key, 0)
        if self.holder.get(key) != token:
            return False, current
        if current == seen:
            del self.holder[key]
            return False, current
        return True, current

    async def release(self, key: str, token: str) -> int:
        """See :meth:`Gate.release`."""
        if self.holder.get(key) == token:
            del self.holder[key]
        return self.gen.get(key, 0)


# KEYS[1] = gen, KEYS[2] = lock
_WAKE = """
local g = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 86400)
return {g, redis.call('EXISTS', KEYS[2])}
"""
# ARGV[1] = token, ARGV[2] = lock TTL in ms
_ACQUIRE = """
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return tonumber(redis.call('GET', KEYS[1]) or '0')
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 86400)
return -1
"""
# ARGV[1] = token, ARGV[2] = seen, ARGV[3] = lock TTL in ms
_SETTLE = """
local g = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {0, g}
end
if g == tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return {0, g}
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, g}
"""
# ARGV[1] = token
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
"""


class RedisGate:
    """The gate on arq's Redis: each operation one Lua script, so atomic across processes."""

    def __init__(self, redis: ArqRedis, lock_ttl_s: float = LOCK_TTL_S) -> None:
        self._ttl_ms = str(int(lock_ttl_s * 1000))
        self._wake = redis.register_script(_WAKE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._settle = redis.register_script(_SETTLE)
        self._release = redis.register_script(_RELEASE)

    @staticmethod
    def _keys(key: str) -> list[str]:
        return [f"{_PREFIX}{key}:gen", f"{_PREFIX}{key}:lock"]

    async def wake(self, key: str) -> tuple[int, bool]:
        """See :meth:`Gate.wake`."""
        gen, held = await self._wake(keys=self._keys(key))
        return int(gen), bool(held)

    async def acquire(self, key: str, token: str) -> int | None:
        """See :meth:`Gate.acquire`."""
        seen = int(await self._acquire(keys=self._keys(key), args=[token, self._ttl_ms]))
        return None if seen < 0 else seen

    async def settle(self, key: str, token: str, seen: int) -> tuple[bool, int]:
        """See :meth:`Gate.settle`."""
        held, gen = await self._settle(keys=self._keys(key), args=[token, seen, self._ttl_ms])
        return bool(held), int(gen)

    async def release(self, key: str, token: str) -> int:
        """See :meth:`Gate.release`."""
        return int(await self._release(keys=self._keys(key), args=[token]))


_FALLBACK = LocalGate()


def gate_of(host: Host) -> Gate:
    """The gate of ``host``'s queue (a process-local one for a queue without a gate)."""
    gate = getattr(host.job_queue(), "gate", None)
    return gate if gate is not None else _FALLBACK


async def kick(host: Host, function: str, key: str, **kwargs: Any) -> bool:
    """Make sure a run of ``function`` for ``key`` starts after now; returns whether a job was enqueued.

    No job when a run holds the lock (it runs again, having seen the new generation); else
    ``function(**kwargs)`` under the job id ``key``, or ``key:<gen>`` when arq refuses ``key``.
    """
    gen, held = await gate_of(host).wake(key)
    if held:
        return False
    queue = host.job_queue()
    if await queue.enqueue(function, job_id=key, **kwargs):
        return True
    return await queue.enqueue(function, job_id=f"{key}:{gen}", **kwargs)


#: one run of the work: given the deadline (``time.monotonic()``), its result and whether work
#: is left that it did not get to (time budget spent)
Work = Callable[[float], Awaitable[tuple[dict[str, Any], bool]]]


async def run_serially(
    ctx: dict[str, Any],
    key: str,
    work: Work,
    *,
    function: str,
    kwargs: dict[str, Any],
    budget_s: float = SLICE_S,
    on_acquire: Callable[[], Awaitable[Any]] | None = None,
) -> dict[str, Any]:
    """The body of a serial job: run ``work`` under the lock of ``key`` until no kick is unserved.

    Runs ``work`` again while kicks arrived during the last run. When the budget is spent with
    work left, or the run fails or is cancelled (the job timeout), the lock is released and a
    continuation kicked (``function(**kwargs)``) if anything is left or a kick went unserved;
    a ``Retry`` leaves that to arq, which runs this job again.

    ``on_acquire`` runs first under the lock (e.g. closing what a killed holder left open).

    Returns:
        The last run's result, with ``runs`` (how many) and ``more`` (a continuation was
        kicked); ``{"skipped": ...}`` when another run holds the lock (it will serve this job's
        kick).
    """
    host: Host = ctx["host"]
    gate = gate_of(host)
    token = f"{ctx.get('job_id')}#{ctx.get('job_try')}#{uuid.uuid4().hex[:8]}"
    seen = await gate.acquire(key, token)
    if seen is None:
        return {"skipped": f"{key} is running; it runs again for this job"}
    deadline = time.monotonic() + budget_s
    runs, more = 0, False
    result: dict[str, Any] = {}
    # ``again`` stays false on other errors: not run again at once (a bug would spin); kicks
    # that came during the run are still honoured (``gen != seen`` below)
    held, again, retrying = True, False, False
    try:
        if on_acquire is not None:
            await on_acquire()
        while True:
            result, more = await work(deadline)
            runs += 1
            if more:
                break
            held, gen = await gate.settle(key, token, seen)
            if not held:
                if gen != seen:  # the lock expired under this run (frozen past its TTL)
                    await kick(host, function, key, **kwargs)
                break
            seen = gen
            if time.monotonic() >= deadline:
                more = True
                break
        again = more
    except asyncio.CancelledError:
        again = True  # the job timeout or a shutdown: whatever was left needs a continuation
        raise
    except Retry:
        retrying = True  # arq runs this job again after the pause: it serves every kick so far
        raise
    finally:
        if held:
            gen = await asyncio.shield(gate.release(key, token))
            if not retrying and (again or gen != seen):
                await asyncio.shield(kick(host, function, key, **kwargs))
    return {**result, "runs": runs, "more": more}
