"""Alembic environment, in the async template's shape.

The registry runs migrations itself at startup (``registry.db.migrate``): it hands its own
AsyncConnection's sync facade over in ``config.attributes["connection"]``, on SQLite or
PostgreSQL alike. Run standalone (``alembic`` tooling), the URL comes from ``sqlalchemy.url``,
else from ``CORRAL_DATABASE_URL``.
"""

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from registry.tables import Base
from services.settings import RegistrySettings

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL for the URL without connecting."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"},
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things, so autogenerate batch operations.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Open our own engine (standalone use only)."""
    section = config.get_section(config.config_ini_section, {})
    section.setdefault("sqlalchemy.url", RegistrySettings.from_env().database_url)
    connectable = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


def run_migrations_online() -> None:
    """Use the caller's connection when given one, else open an engine."""
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_async_migrations())
    else:
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
