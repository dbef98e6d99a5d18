"""The Pipedrive sandbox: Pipedrive's API on the wire, in memory (see :class:`PipedriveSandbox`)."""

from __future__ import annotations

from typing import Any

from crmhost_pipedrive.sandbox.app import PipedriveSandbox

__all__ = ["PipedriveSandbox", "create_sandbox"]


def create_sandbox(**kwargs: Any) -> PipedriveSandbox:
    """A fresh Pipedrive sandbox (the ``crmhost.sandboxes`` entry point)."""
    return PipedriveSandbox(**kwargs)
