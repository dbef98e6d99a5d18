"""Look-ups that writes running at once share, in rounds that run one at a time per scope.

A plugin that finds or creates records by name (the company of a contact) is called with
several batches at once: the host keeps more than one CRM call in flight per integration. Each
batch looking up and creating its own new names would create a name twice when two batches
carry it, and pay a look-up and a create call per batch. :class:`SharedRounds` makes the
batches of one scope (a CRM account) wait in line: a batch that arrives while a round runs joins
the next round, and the first of that round's batches to get its turn runs it for all of them.
The first batch to find the scope idle holds its round open a moment (``gather_s``), so that
batches sent together share one round.
A plugin's ``resolve`` should take what it already knows from its cache first, so that a round
whose names an earlier round resolved costs no call.

Per event loop: a lock and a future belong to the loop they were made in, and a test suite or
a worker may run more than one loop in a process. Two processes may still resolve the same new
name at the same moment; the plugins say which record wins then.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["KeyedLocks", "SharedRounds"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Round(Generic[K, V, R]):
    wanted: dict[K, V] = field(default_factory=dict)
    done: asyncio.Future[R] = field(default_factory=_future)


@dataclass
class _Line(Generic[K, V, R]):
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next: _Round[K, V, R] | None = None


class KeyedLocks(Generic[K]):
    """One :class:`asyncio.Lock` per key and event loop: one writer at a time per name or account.

    For find-or-create work that does not batch (one call per record): the writer that waited
    looks again before it creates.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, key: K) -> asyncio.Lock:
        """The lock of ``key`` in the running loop."""
        return self._locks.setdefault(asyncio.get_running_loop(), {}).setdefault(key, asyncio.Lock())


class SharedRounds(Generic[K, V, R]):
    """Rounds of ``resolve`` calls, each for the merged ``wanted`` of the callers that joined it."""

    def __init__(self, gather_s: float = 0.0) -> None:
        """``gather_s``: how long the first caller of an idle scope waits for others to join.

        Batches sent at the same moment reach their look-up a few milliseconds apart (each waits
        for its rate limiter and its own work first); without the wait the first one would run
        a round alone and the rest would share the next.
        """
        self._gather_s = gather_s
        self._lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Line[K, V, R]]] = (
            weakref.WeakKeyDictionary()
        )

    async def run(
        self, scope: Hashable, wanted: Mapping[K, V], resolve: Callable[[dict[K, V]], Awaitable[R]]
    ) -> R:
        """What ``resolve`` answered for a round holding ``wanted`` (and maybe others' keys).

        The result is the whole round's: the caller picks its own keys from it. A round whose
        runner raised or was cancelled is run again by each of its other callers, for their own
        keys, so an error reaches only the batch whose call met it.
        """
        line = self._lines.setdefault(asyncio.get_running_loop(), {}).setdefault(scope, _Line())
        while True:
            idle = line.next is None and not line.lock.locked()
            joined = line.next = line.next or _Round()
            joined.wanted.update(wanted)
            async with line.lock:
                if line.next is joined:
                    if idle:
                        await asyncio.sleep(self._gather_s)  # others join while this one holds the lock
                    line.next = None
                    try:
                        joined.done.set_result(await resolve(joined.wanted))
                    except BaseException:
                        joined.done.cancel()
                        raise
            if not joined.done.cancelled():
                return joined.done.result()
