"""The pytest plugin crmhost registers (``pytest11`` entry point): shared fixtures."""

from __future__ import annotations

__all__: list[str] = []
