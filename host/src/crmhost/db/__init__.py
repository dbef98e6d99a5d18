"""Storage: SQLAlchemy models, engine, tenant scoping and migrations."""
