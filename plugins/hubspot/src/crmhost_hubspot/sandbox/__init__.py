"""The HubSpot sandbox: HubSpot's API on the wire, in memory (see :class:`HubSpotSandbox`)."""

from __future__ import annotations

from typing import Any

from crmhost_hubspot.sandbox.app import HubSpotSandbox

__all__ = ["HubSpotSandbox", "create_sandbox"]


def create_sandbox(**kwargs: Any) -> HubSpotSandbox:
    """A fresh HubSpot sandbox (the ``crmhost.sandboxes`` entry point)."""
    return HubSpotSandbox(**kwargs)
