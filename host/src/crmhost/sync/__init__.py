"""The sync engine: platform contacts and events, outbox, push, pull, conflicts, echoes.

Shared by the HTTP API and the jobs; every function takes the :class:`~crmhost.runtime.Host`
or an open tenant-scoped session.
"""
