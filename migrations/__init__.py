"""Alembic migrations of the registry's SQLite schema; ``registry.db.migrate`` runs them."""
