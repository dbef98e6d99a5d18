"""The host's Alembic migrations, shipped inside the package and run by :mod:`crmhost.db.migrate`.

Adding a revision after a model change in :mod:`crmhost.db.models`::

    uv run python -m crmhost.db.migrate revision "add sync runs"

migrates a scratch SQLite database to ``head``, compares it with ``Base.metadata`` and writes
``versions/<rev>_add_sync_runs.py``. Read it before committing: check the ``upgrade`` and
``downgrade`` bodies, add data migrations by hand, and pass ``--url postgresql+asyncpg://...``
when the change involves PostgreSQL-only types. Naming conventions come from
:data:`crmhost.db.base.NAMING`, SQLite runs in batch mode (so ``ALTER`` works there too), and
``tests/integration/test_migrations.py`` fails whenever the models and the migrations differ.
"""
