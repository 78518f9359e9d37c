"""The registry's database lifecycle: one engine per process, migrated before use.

``open_database`` is the single paired context that creates and disposes the ``AsyncEngine``;
``migrate`` brings the schema to Alembic's head on that engine. Each RPC then takes one
``AsyncSession`` from the ``async_sessionmaker`` and wraps every change in a transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import migrations

DB_FILENAME = "corral.db"

log = structlog.get_logger()


def database_url(models_dir: Path) -> str:
    """The aiosqlite URL of the database inside ``models_dir``."""
    return f"sqlite+aiosqlite:///{models_dir / DB_FILENAME}"


@asynccontextmanager
async def open_database(models_dir: Path) -> AsyncIterator[AsyncEngine]:
    """Create the process's engine on ``<models_dir>/corral.db``; dispose it on exit.

    ``models_dir`` must exist. SQLite connections get foreign keys, WAL and a busy timeout.
    """
    engine = create_async_engine(database_url(models_dir))
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    try:
        yield engine
    finally:
        await engine.dispose()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (results outlive the session)."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to Alembic's head, in one transaction; a no-op when already there."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to_head, str(engine.url))
    log.info("database_migrated", url=str(engine.url))


def alembic_config(url: str) -> Config:
    """An Alembic config for our ``migrations`` package; no ``alembic.ini`` is needed."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser syntax
    return config


def _upgrade_to_head(connection: Connection, url: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
