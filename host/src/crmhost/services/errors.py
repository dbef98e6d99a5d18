"""Errors services raise for the API to turn into 4xx answers."""

from __future__ import annotations

__all__ = ["Conflict", "InvalidInput", "NotFound", "ServiceError"]


class ServiceError(Exception):
    """A request the service refuses; ``where`` names the offending input."""

    status = 400

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


class InvalidInput(ServiceError):
    """The input is wrong (400)."""


class NotFound(ServiceError):
    """No such thing for this tenant (404) — also what another tenant's id gives."""

    status = 404


class Conflict(ServiceError):
    """The thing is in a state that does not allow this (409)."""

    status = 409
