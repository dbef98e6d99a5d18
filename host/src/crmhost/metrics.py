"""Prometheus metrics for the roadmap's figures; served at ``/metrics`` by the API process.

Workers are separate processes with their own counts: ``crmhost worker`` serves the same
registry (the same metric names) on ``CRMHOST_WORKER_METRICS_PORT`` when set, on
``CRMHOST_WORKER_METRICS_ADDR`` (``127.0.0.1`` by default: metrics are not for the world), so
a scraper reads the API and every worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from crmhost.errors import ConfigurationError

__all__ = [
    "BATCH_SECONDS",
    "EVENT_TO_CRM_SECONDS",
    "OAUTH_TOTAL",
    "REGISTRY",
    "SYNC_RECORDS",
    "WEBHOOK_TO_STORE_SECONDS",
    "serve_worker_metrics",
    "worker_metrics_address",
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
#: OAuth connects and refreshes by outcome: connected, denied (the user refused consent), failed
#: (the callback or code exchange failed), refreshed, refresh_failed (the token endpoint failed;
#: tried again later), reauth (the CRM refused the credentials: the integration needs_reauth)
OAUTH_TOTAL = Counter(
    "crmhost_oauth",
    "OAuth connects and refreshes, by outcome",
    ["provider", "outcome"],
    registry=REGISTRY,
)


def worker_metrics_address(env: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """Where a worker serves its metrics: ``(address, port)``, None when not asked to.

    Raises:
        ConfigurationError: ``CRMHOST_WORKER_METRICS_PORT`` is not a port number.
    """
    env = os.environ if env is None else env
    raw = env.get("CRMHOST_WORKER_METRICS_PORT", "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"CRMHOST_WORKER_METRICS_PORT must be a port number, not {raw!r}")
    return env.get("CRMHOST_WORKER_METRICS_ADDR", "").strip() or "127.0.0.1", port


def serve_worker_metrics(address: str, port: int) -> WSGIServer:
    """Serve :data:`REGISTRY` at ``http://address:port/metrics`` from a daemon thread.

    Returns the server: ``server.server_port`` is the bound port (for port 0), and
    ``shutdown()`` then ``server_close()`` stop it.
    """
    server, _thread = start_http_server(port, addr=address, registry=REGISTRY)
    return server
