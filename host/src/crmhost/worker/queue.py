"""Enqueueing jobs: the one module that uses arq's enqueue API.

:func:`create_queue` gives the host an :class:`ArqQueue` when Redis is configured and an
:class:`InProcessQueue` otherwise. Both run the same job functions from
:mod:`crmhost.worker.registry` with the same ``ctx`` keys, de-duplicate by ``job_id`` and retry
on arq's ``Retry``, so the embedded default behaves like production with no services at all.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import traceback
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from arq import Retry, create_pool, func
from arq.connections import ArqRedis
from arq.cron import CronJob
from arq.logs import default_log_config
from arq.worker import Function
from arq.worker import run_worker as arq_run_worker

from crmhost.errors import ConfigurationError
from crmhost.settings import load_settings
from crmhost.worker.codec import deserialize, serialize
from crmhost.worker.registry import CRON_JOBS, by_name
from crmhost.worker.serial import LocalGate, RedisGate
from crmhost.worker.settings import WorkerSettings, redis_settings_for

if TYPE_CHECKING:
    from crmhost.runtime import Host, JobQueue

__all__ = ["FAILURES_KEPT", "ArqQueue", "InProcessQueue", "UnknownJob", "create_queue", "run_worker"]

log = logging.getLogger(__name__)

#: failed jobs an :class:`InProcessQueue` keeps for a look (tests, a debugger); each is logged
FAILURES_KEPT = 100


class UnknownJob(KeyError):
    """A job was enqueued under a name no job function has."""

    def __str__(self) -> str:
        return f"no job function named {self.args[0]!r} is registered"


class ArqQueue:
    """Jobs in Redis for ``crmhost worker`` processes (msgpack payloads, never pickle).

    arq refuses a ``job_id`` while that job is queued, running, or its result is kept
    (``WorkerSettings.keep_result``). ``gate`` serialises pushes and pulls per integration
    across worker processes (:mod:`crmhost.worker.serial`).
    """

    def __init__(self, pool: ArqRedis, functions: list[Function] | None = None) -> None:
        self.pool = pool
        self._names = set(by_name(functions))
        self.gate = RedisGate(pool)

    @classmethod
    async def connect(cls, url: str, functions: list[Function] | None = None) -> ArqQueue:
        """A queue on the Redis at ``url``."""
        pool = await create_pool(
            redis_settings_for(url), job_serializer=serialize, job_deserializer=deserialize
        )
        return cls(pool, functions)

    async def enqueue(
        self, function: str, *, job_id: str | None = None, defer_s: float = 0.0, **kwargs: Any
    ) -> bool:
        """Put ``function(**kwargs)`` in Redis; false when ``job_id`` is taken."""
        if function not in self._names:
            raise UnknownJob(function)
        job = await self.pool.enqueue_job(function, _job_id=job_id, _defer_by=defer_s or None, **kwargs)
        return job is not None

    async def drain(self) -> None:
        """Nothing to wait for here: the workers run the jobs."""

    async def close(self) -> None:
        """Close the Redis connection."""
        await self.pool.aclose()


@dataclass
class _Job:
    function: Function
    job_id: str
    kwargs: dict[str, Any]
    enqueue_time: datetime


class InProcessQueue:
    """The same job functions as asyncio tasks of this process (no Redis configured).

    Like arq: a ``job_id`` is refused while that job is queued or running, ``Retry(defer=...)``
    runs the job again after the delay up to its ``max_tries``, and other failures are logged.
    Unlike arq, jobs do not survive a restart, and a finished job's id is free at once.
    ``gate`` serialises pushes and pulls per integration (:mod:`crmhost.worker.serial`).
    """

    def __init__(self, host: Host, functions: list[Function] | None = None) -> None:
        self.host = host
        self.gate = LocalGate()
        self._functions = by_name(functions)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._counter = 0
        # the latest failures only, and without their frames' locals (a failed push's batch): an
        # embedded server up for months with a CRM refusing it kept every one, tracebacks and all
        self.failures: deque[tuple[str, str, BaseException]] = deque(maxlen=FAILURES_KEPT)
        self._cron_task: asyncio.Task[None] | None = None
        self._closing = False
        # as many jobs at once as an arq worker runs (max_jobs): unbounded, 200 tenants' initial
        # syncs started together, starved each other past the job timeout and failed
        self._slots = asyncio.Semaphore(WorkerSettings.max_jobs)

    async def enqueue(
        self, function: str, *, job_id: str | None = None, defer_s: float = 0.0, **kwargs: Any
    ) -> bool:
        """Start ``function(ctx, **kwargs)`` as a task; false when ``job_id`` is taken or closing."""
        fn = self._functions.get(function)
        if fn is None:
            raise UnknownJob(function)
        if self._closing:
            return False  # e.g. a cancelled drain kicking its continuation: nothing would run it
        if job_id is None:
            self._counter += 1
            job_id = f"inproc:{self._counter}"
        if job_id in self._tasks:
            return False
        job = _Job(fn, job_id, kwargs, datetime.now(UTC))
        self._tasks[job_id] = asyncio.create_task(self._run(job, defer_s), name=f"job {function} {job_id}")
        return True

    async def _run(self, job: _Job, defer_s: float) -> None:
        try:
            tries = job.function.max_tries or WorkerSettings.max_tries
            for job_try in range(1, tries + 1):
                if defer_s > 0:
                    await asyncio.sleep(defer_s)
                ctx = {
                    "host": self.host,
                    "job_id": job.job_id,
                    "job_try": job_try,
                    "enqueue_time": job.enqueue_time,
                }
                try:
                    timeout = job.function.timeout_s or WorkerSettings.job_timeout
                    async with self._slots:  # the timeout counts from the start, not the wait
                        await asyncio.wait_for(job.function.coroutine(ctx, **job.kwargs), timeout)
                    return
                except Retry as retry:
                    defer_s = (retry.defer_score or 0) / 1000
                    log.info(
                        "job %s %s: retry %d after %.1f s", job.function.name, job.job_id, job_try, defer_s
                    )
                    error: BaseException = retry
                except Exception as exc:
                    self._failed(job, exc)
                    return
            self._failed(job, RuntimeError(f"max {tries} tries exceeded ({error!r})"))
        finally:
            self._tasks.pop(job.job_id, None)

    def _failed(self, job: _Job, exc: BaseException) -> None:
        log.error("job %s %s failed: %s: %s", job.function.name, job.job_id, type(exc).__name__, exc)
        _clear_locals(exc)
        self.failures.append((job.function.name, job.job_id, exc))

    def start_cron(self, cron_jobs: list[CronJob]) -> None:
        """Run ``cron_jobs`` on their schedules inside this process (what arq's worker does).

        Only the embedded server does this; with Redis, ``crmhost worker`` runs the crons. Each
        firing is an ordinary job with a per-firing job id, so a slow run is not doubled.
        """
        for cron_job in cron_jobs:
            self._functions[cron_job.name] = func(
                cron_job.coroutine,
                name=cron_job.name,
                max_tries=cron_job.max_tries or 1,
                timeout=cron_job.timeout_s,
            )
        self._cron_task = asyncio.create_task(self._cron_loop(cron_jobs), name="in-process cron")

    async def _cron_loop(self, cron_jobs: list[CronJob]) -> None:
        now = datetime.now(UTC)
        due: dict[str, datetime] = {}
        for cron_job in cron_jobs:
            if cron_job.run_at_startup:
                await self.enqueue(cron_job.name, job_id=f"{cron_job.name}:startup")
            cron_job.calculate_next(now)
            assert cron_job.next_run is not None
            due[cron_job.name] = cron_job.next_run
        while True:
            name = min(due, key=due.__getitem__)
            await asyncio.sleep(max(0.0, (due[name] - datetime.now(UTC)).total_seconds()))
            cron_job = next(c for c in cron_jobs if c.name == name)
            await self.enqueue(name, job_id=f"{name}:{due[name].isoformat()}")
            cron_job.calculate_next(due[name])
            assert cron_job.next_run is not None
            due[name] = cron_job.next_run

    async def drain(self) -> None:
        """Wait until every job, including ones enqueued meanwhile, has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        """Cancel whatever is still queued or running."""
        self._closing = True
        tasks = list(self._tasks.values())
        if self._cron_task is not None:
            tasks.append(self._cron_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _clear_locals(exc: BaseException) -> None:
    """Let go of the locals of the finished frames ``exc`` and the exceptions it chains pass through."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        pending += [current.__cause__, current.__context__]


async def create_queue(
    host: Host, functions: list[Function] | None = None, *, run_cron: bool = False
) -> JobQueue:
    """The queue for ``host``: arq on ``settings.redis_url`` when set, else in-process.

    ``run_cron`` (the embedded server) also runs the cron jobs in-process when there is no
    Redis, since no ``crmhost worker`` will.
    """
    if host.settings.redis_url:
        return await ArqQueue.connect(host.settings.redis_url, functions)
    queue = InProcessQueue(host, functions)
    if run_cron:
        queue.start_cron(CRON_JOBS)
    return queue


def run_worker() -> None:
    """Run an arq worker with :class:`WorkerSettings` until stopped (``crmhost worker``).

    Raises:
        ConfigurationError: ``CRMHOST_REDIS_URL`` is not set.
    """
    url = load_settings().redis_url
    if not url:
        raise ConfigurationError(
            "CRMHOST_REDIS_URL is not set: `crmhost worker` needs Redis. Without Redis, jobs run "
            "inside `crmhost serve` itself."
        )
    if not logging.getLogger().handlers:  # the CLI may have set up logging already
        logging.config.dictConfig(default_log_config(verbose=False))
    arq_run_worker(WorkerSettings, redis_settings=redis_settings_for(url))  # type: ignore[arg-type]
