"""Test support for the host and for plugin authors: server fixtures and the conformance kit."""

__all__: list[str] = []
