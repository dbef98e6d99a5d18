"""The base every canonical Struct shares."""

from __future__ import annotations

import msgspec

__all__ = ["CanonicalStruct"]


class CanonicalStruct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Immutable, keyword-only, strict: what plugins and the host exchange."""
