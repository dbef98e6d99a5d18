"""Every job function and cron job, with its limits.

Job names are the function names; enqueue them by name through :mod:`crmhost.worker.queue`.
Cron jobs only fan out per-integration jobs (with deterministic job ids), so a cron firing
twice, or on two workers, enqueues each piece of work once.
"""

from __future__ import annotations

from arq import cron, func
from arq.cron import CronJob
from arq.worker import Function

from crmhost.worker.jobs.keys import rotate_keys
from crmhost.worker.jobs.tokens import refresh_due_tokens, refresh_token

__all__ = ["CRON_JOBS", "FUNCTIONS", "by_name"]

FUNCTIONS: list[Function] = [
    # a token endpoint answers in seconds; 5 tries with backoff ride out a CRM blip of minutes
    func(refresh_token, max_tries=5, timeout=60),
    # re-encrypting is local work, but large tables take a while; a rerun resumes where it stopped
    func(rotate_keys, max_tries=3, timeout=3600),
    func(refresh_due_tokens, max_tries=1, timeout=120),
]

CRON_JOBS: list[CronJob] = [
    # every 5 minutes, well inside the default 300 s refresh margin and HubSpot's 30-minute tokens
    cron(refresh_due_tokens, minute=set(range(0, 60, 5)), unique=True, run_at_startup=True),
]


def by_name(functions: list[Function] | None = None) -> dict[str, Function]:
    """The job functions keyed by the name they are enqueued under."""
    return {f.name: f for f in (FUNCTIONS if functions is None else functions)}
