"""arq's ``WorkerSettings`` for ``crmhost worker`` (or ``arq crmhost.worker.settings.WorkerSettings``)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from crmhost.worker import lifecycle
from crmhost.worker.codec import deserialize, serialize
from crmhost.worker.registry import CRON_JOBS, FUNCTIONS
from crmhost.worker.serial import JOB_TIMEOUT_S

__all__ = ["WorkerSettings", "redis_settings_for"]


def redis_settings_for(url: str | None = None) -> RedisSettings:
    """The arq connection settings for ``url`` (``CRMHOST_REDIS_URL`` by default)."""
    url = url or os.environ.get("CRMHOST_REDIS_URL") or ""
    return RedisSettings.from_dsn(url) if url else RedisSettings()


class WorkerSettings:
    """What arq's worker runs and how."""

    functions: ClassVar[list[Any]] = FUNCTIONS
    cron_jobs: ClassVar[list[Any]] = CRON_JOBS
    on_startup = lifecycle.startup
    on_shutdown = lifecycle.shutdown
    redis_settings = redis_settings_for()
    job_serializer = serialize
    job_deserializer = deserialize
    # jobs mostly wait on CRM HTTP calls and the per-account rate limiter, not on the CPU;
    # 20 keeps a 2-core worker busy without opening more DB connections than the pool's 20
    max_jobs = 20
    # how often an idle worker asks Redis for new jobs: arq's default of 0.5 s was most of the
    # event-to-CRM latency (a kick's job waited up to half a second); 20 cheap polls a second
    poll_delay = 0.05
    # the registry gives every function this timeout too: arq holds a killed worker's job for
    # the longest timeout + 10 s, so this bounds recovery from a SIGKILL (crmhost.worker.serial)
    job_timeout = JOB_TIMEOUT_S
    # arq retries only on Retry(...) or a worker shutdown mid-job; the registry sets per-job tries
    max_tries = 5
    # a kept result also holds its _job_id, refusing the same id (e.g. refresh:<id>) until it
    # expires; one minute lets a caller read the outcome but never blocks the next periodic job
    keep_result = 60
