"""Encryption of secrets at rest and hashing of API keys."""
