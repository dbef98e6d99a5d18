"""Prometheus metrics for the roadmap's figures; served at ``/metrics`` by the API process.

Workers are separate processes: ``crmhost worker`` serves its own registry on
``CRMHOST_WORKER_METRICS_PORT`` when set, so a scraper reads both.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = [
    "BATCH_SECONDS",
    "EVENT_TO_CRM_SECONDS",
    "OAUTH_TOTAL",
    "REGISTRY",
    "SYNC_RECORDS",
    "WEBHOOK_TO_STORE_SECONDS",
]

REGISTRY = CollectorRegistry(auto_describe=True)

#: records pushed or pulled, by outcome (created, updated, rejected, conflict, echo, deleted...);
#: the sync success rate is ok outcomes over all
SYNC_RECORDS = Counter(
    "crmhost_sync_records",
    "Records synced, by provider, direction and outcome",
    ["provider", "direction", "outcome"],
    registry=REGISTRY,
)
#: one CRM batch call (push_records, push_activity, one pull page)
BATCH_SECONDS = Histogram(
    "crmhost_sync_batch_seconds",
    "Duration of one CRM batch call",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
#: from an email event's arrival at the API to the CRM confirming the activity
EVENT_TO_CRM_SECONDS = Histogram(
    "crmhost_event_to_crm_seconds",
    "Real-time latency: email event received to CRM confirmed",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300),
    registry=REGISTRY,
)
#: from a CRM webhook's arrival to its changes committed in the contact store
WEBHOOK_TO_STORE_SECONDS = Histogram(
    "crmhost_webhook_to_store_seconds",
    "Real-time latency: CRM webhook received to change stored",
    ["provider"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60),
    registry=REGISTRY,
)
#: OAuth connects and refreshes by outcome (connected, denied, failed, refreshed, reauth)
OAUTH_TOTAL = Counter(
    "crmhost_oauth",
    "OAuth connects and refreshes, by outcome",
    ["provider", "outcome"],
    registry=REGISTRY,
)
