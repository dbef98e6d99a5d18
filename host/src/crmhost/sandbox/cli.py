"""``crmhost sandbox <slug>``: find a plugin's sandbox by entry point and serve it."""

from __future__ import annotations

import importlib.metadata
import json
import sys

from crmhost.sandbox.app import Sandbox
from crmhost.sandbox.serve import serve

__all__ = ["ENTRY_POINT_GROUP", "available", "create", "run"]

#: plugins declare ``<slug> = "crmhost_<slug>.sandbox:create_sandbox"`` in this group
ENTRY_POINT_GROUP = "crmhost.sandboxes"


def available() -> list[str]:
    """Slugs of the installed sandboxes."""
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def create(slug: str) -> Sandbox:
    """A new sandbox of ``slug``; :class:`LookupError` says which sandboxes exist."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == slug:
            sandbox = ep.load()()
            if not isinstance(sandbox, Sandbox):
                raise TypeError(
                    f"sandbox {slug!r}: {ep.value} returned {type(sandbox).__name__}, not a Sandbox"
                )
            return sandbox
    raise LookupError(f"no sandbox {slug!r}; installed: {', '.join(available()) or 'none'}")


def run(slug: str, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the sandbox of ``slug`` until interrupted.

    Prints one JSON line to stdout once it listens: ``{"base_url", "client_id", "client_secret"}``.
    """
    sandbox = create(slug)

    def ready(url: str) -> None:
        line = {"base_url": url, "client_id": sandbox.client_id, "client_secret": sandbox.client_secret}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    serve(sandbox, host, port, on_ready=ready)
