"""The Salesforce sandbox: an in-memory org that behaves like Salesforce on the wire.

Serves what the plugin, ``simple-salesforce`` and generic clients use: the discovery a client
runs on start (Versions at ``/services/data/``, the resource map of each version from v31.0 to
v68.0, describeGlobal, sObject Basic Information and describe of every object it lists, all
with Salesforce's shapes, see :mod:`~crmhost_salesforce.sandbox.resources`); under
``/services/data/vXX.X``, sObject CRUD, upsert and get by external id, describe,
``query``/``queryAll`` with a SOQL subset and ``nextRecordsUrl`` pages of 2,000, sObject
Collections (200 records, ``allOrNone``),
``/composite`` (25 subrequests, at most 5 collections or queries, one API call), getUpdated and
getDeleted with their windows, ``/limits``, ``Sforce-Limit-Info`` on every answer and a daily
allocation that answers 403 ``REQUEST_LIMIT_EXCEEDED`` when spent; 18-character ids with a
valid checksum; Salesforce's error arrays; email duplicate rules (``DUPLICATES_DETECTED``,
bypassed for alert rules by ``Sforce-Duplicate-Rule-Header: allowSave=true``); the OAuth
web-server flow (``/services/oauth2/authorize``, ``/token``, ``/revoke``) with token responses
whose ``instance_url`` is the sandbox and whose ``signature`` is valid; and Outbound Messages
(SOAP) to the webhook URL, retried until acknowledged.

Besides the toolkit's ``/_sandbox/`` endpoints (see :mod:`crmhost.sandbox`; rate-limit tiers
``real`` = ``enterprise``, ``developer`` and ``off``), it has:

- ``POST /_sandbox/salesforce/purge-deleted``: empty the recycle bin and the delete log now
  (getDeleted's ``earliestDateAvailable`` moves to now).
- ``PUT /_sandbox/salesforce/outbound``: ``{"sobject": "Contact", "fields": [...]}`` sends an
  Outbound Message for every write of that object; ``null`` stops them.
- ``PUT /_sandbox/salesforce/duplicate-rules``: ``{"Contact": {"action": "block"|"alert", "active": true}}``.
- ``POST /_sandbox/salesforce/clock``: ``{"advance_s": seconds}`` moves the org's clock.
"""

from __future__ import annotations

from typing import Any

from crmhost_salesforce.sandbox.app import SalesforceSandbox

__all__ = ["SalesforceSandbox", "create_sandbox"]


def create_sandbox(**kwargs: Any) -> SalesforceSandbox:
    """A new Salesforce sandbox (the ``crmhost.sandboxes`` entry point).

    Args:
        **kwargs: as :class:`SalesforceSandbox` takes them.
    """
    return SalesforceSandbox(**kwargs)
