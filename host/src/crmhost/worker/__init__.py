"""Background jobs: arq on Redis in production, the same job functions in-process without it.

- :mod:`~crmhost.worker.settings`: arq's ``WorkerSettings`` (``crmhost worker``).
- :mod:`~crmhost.worker.registry`: the job functions and cron jobs.
- :mod:`~crmhost.worker.lifecycle`: what a worker opens and closes (the :class:`~crmhost.runtime.Host`).
- :mod:`~crmhost.worker.queue`: enqueueing (the only module using arq's enqueue API).
- :mod:`~crmhost.worker.jobs`: the job functions, ``async def job(ctx, *, ...)``.
"""

__all__: list[str] = []
