"""Test support: a small OAuth server and a test CRM plugin, registered per test (not installed)."""
