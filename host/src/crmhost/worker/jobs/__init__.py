"""Job functions: ``async def job(ctx, *, ...)`` with ``ctx["host"]`` the :class:`~crmhost.runtime.Host`.

Every job may run twice (arq delivers at least once), so each one is idempotent.
"""

__all__: list[str] = []
