"""The platform API (Litestar): thin controllers over :mod:`crmhost.services`."""
