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
from crmhost.worker.jobs.notify import deliver_due_notifications, deliver_notifications
from crmhost.worker.jobs.push import push_due, push_integration
from crmhost.worker.jobs.scoring import decay_scores, schedule_decay
from crmhost.worker.jobs.sync import initial_sync, pull_integration, resume_initial_syncs, schedule_pulls
from crmhost.worker.jobs.tokens import refresh_due_tokens, refresh_token
from crmhost.worker.jobs.webhooks import renew_webhook_subscriptions, subscribe_webhooks
from crmhost.worker.serial import JOB_TIMEOUT_S

__all__ = ["CRON_JOBS", "FUNCTIONS", "by_name"]

#: every function's timeout: arq holds a SIGKILLed worker's job "in progress" for the longest
#: timeout + 10 s (no other worker may run it meanwhile), so 60 s means a killed push or pull
#: resumes in about 70 s. Work that may take longer runs in slices of SLICE_S (20 s) and
#: continues in a new job; the 40 s left absorb a CRM call in flight (HTTP timeout 30 s).
T = JOB_TIMEOUT_S

FUNCTIONS: list[Function] = [
    # a token endpoint answers in seconds; 5 tries with backoff ride out a CRM blip of minutes
    func(refresh_token, max_tries=5, timeout=T),
    # re-encrypting is local work in committed batches; a slice out of time continues in a new job
    func(rotate_keys, max_tries=3, timeout=T),
    func(refresh_due_tokens, max_tries=1, timeout=T),
    # one drain per integration at a time, sliced (crmhost.worker.serial); it leaves rows pending
    # on any CRM failure (it never raises Retry), so tries only count worker crashes;
    # keep_result=0 frees the job id push:<id> the moment it ends
    func(push_integration, max_tries=3, timeout=T, keep_result=0),
    func(push_due, max_tries=1, timeout=T),
    # one pull per integration at a time, sliced; it commits page by page and resumes from its
    # cursor, so tries are cheap; rate-limit pauses and outages retry through Retry (10 tries
    # ride out a CRM hour); keep_result=0 frees pull:<id> for the next webhook
    func(pull_integration, max_tries=10, timeout=T, keep_result=0),
    func(schedule_pulls, max_tries=1, timeout=T),
    # the backfill is a pull (resumable) plus streamed outbox inserts (idempotent by dedupe
    # key), in slices that enqueue the next part
    func(initial_sync, max_tries=10, timeout=T, keep_result=0),
    func(resume_initial_syncs, max_tries=1, timeout=T),
    # failures reschedule rows with backoff (never Retry); a slice stops starting POSTs after
    # 20 s (each has a 10 s timeout) and the minutely cron continues
    func(deliver_notifications, max_tries=1, timeout=T, keep_result=0),
    func(deliver_due_notifications, max_tries=1, timeout=T),
    # one CRM call (plus a refresh); 8 tries with backoff ride out a CRM blip of several minutes,
    # and the renewal cron tries again after that, hours before the subscription lapses
    func(subscribe_webhooks, max_tries=8, timeout=T, keep_result=0),
    func(renew_webhook_subscriptions, max_tries=1, timeout=T),
    # local work in committed chunks; a rerun finds the scores already decayed
    func(decay_scores, max_tries=3, timeout=T),
    func(schedule_decay, max_tries=1, timeout=T),
]

CRON_JOBS: list[CronJob] = [
    # every 5 minutes, well inside the default 300 s refresh margin and HubSpot's 30-minute tokens
    cron(refresh_due_tokens, minute=set(range(0, 60, 5)), unique=True, run_at_startup=True, timeout=T),
    # every minute: backoffs and rate-limit pauses end and crashed drains' leases expire without
    # anyone kicking; a minute bounds how long such rows wait
    cron(push_due, second=0, unique=True, run_at_startup=True, timeout=T),
    # every minute: a part of an initial sync that died is started again STALL_S (90 s) after it
    # began, so a timed-out part resumes within 2.5 minutes; at startup, what a restart cut off
    cron(resume_initial_syncs, second=15, unique=True, run_at_startup=True, timeout=T),
    # hourly is the finest sync_frequency (the fallback to webhooks); daily ones are skipped until due
    cron(schedule_pulls, minute=0, second=0, unique=True, timeout=T),
    # every minute: a notification's first retry waits 30 s, so a minute bounds the extra wait
    cron(deliver_due_notifications, second=30, unique=True, timeout=T),
    # every 15 minutes, well inside RENEW_MARGIN (6 h) of the shortest-lived subscription
    cron(
        renew_webhook_subscriptions, minute=set(range(7, 60, 15)), unique=True, run_at_startup=True, timeout=T
    ),
    # hourly: a half-life is days, so an hour's decay rarely moves a rounded score by more than 1
    cron(schedule_decay, minute=23, second=0, unique=True, timeout=T),
]


def by_name(functions: list[Function] | None = None) -> dict[str, Function]:
    """The job functions keyed by the name they are enqueued under."""
    return {f.name: f for f in (FUNCTIONS if functions is None else functions)}
