"""Re-encryption of stored secrets with the newest key."""

from __future__ import annotations

from typing import Any

from crmhost.security.rotation import rotate_all

__all__ = ["rotate_keys"]


async def rotate_keys(ctx: dict[str, Any]) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many values changed.

    Idempotent: values already under the newest key are skipped.
    """
    return await rotate_all(ctx["host"])
