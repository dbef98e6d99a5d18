"""The Zoho CRM sandbox: an in-memory org that behaves like Zoho CRM API v8 on the wire.

Serves what the plugin and the official ``zohocrmsdk8-0`` SDK use under ``/crm/v8``: records
(list with ``fields``, ``page`` up to 2,000 records and ``page_token`` past them,
``If-Modified-Since`` with 304, insert, update, delete of 100, get by id), upsert of 100 with
``duplicate_check_fields`` and one entry per record, the deleted-records API, search
(``criteria`` with ``equals`` and ``starts_with``, ``email``, ``phone``, ``word``), a COQL
subset, the discovery reads a generic client makes (``/org``, ``/users?type=`` for every
documented type, ``/settings/modules`` listing a fresh org's standard modules, Leads to Notes,
and its tabs without a records API as ``api_supported: false``, ``/settings/modules/{api_name}``,
``/settings/fields?module=`` for every module, custom fields created through it), and
notification channels (``/actions/watch``) whose
notices are posted to the channel's ``notify_url`` with its ``channel_id`` and ``token``. OAuth
scopes are checked (``OAUTH_SCOPE_MISMATCH``). Zoho Accounts of the org's data centre: the
consent page (``/oauth/v2/auth``, the callback carries ``location`` and ``accounts-server``),
``/oauth/v2/token`` (parameters in the form or the query, Zoho's token answer with
``api_domain``, refused grants as HTTP 200 ``{"error": "invalid_code"}``, at most 10 access
tokens per refresh token in 10 minutes) and ``/oauth/v2/token/revoke``. Errors are Zoho's
``{code, details, message, status}``; 429 ``LIMIT_EXCEEDED`` when the edition's credits for the
day are spent and ``TOO_MANY_REQUESTS`` past the concurrency cap (per edition, 10 for writes of
more than 10 records). Date-times are written in the org's time zone.

Rate-limit tiers (``PUT /_sandbox/rate-limits``): one per edition (``free``, ``standard``,
``professional``, ``enterprise``...), ``real`` = the sandbox's edition, and ``off``.
"""

from __future__ import annotations

from typing import Any

from crmhost_zoho.sandbox.app import ZohoSandbox

__all__ = ["ZohoSandbox", "create_sandbox"]


def create_sandbox(**kwargs: Any) -> ZohoSandbox:
    """A new Zoho CRM sandbox (the ``crmhost.sandboxes`` entry point).

    Args:
        **kwargs: as :class:`ZohoSandbox` takes them.
    """
    return ZohoSandbox(**kwargs)
