"""The registry's database lifecycle: one engine per process, migrated before use.

``open_database`` is the single paired context that creates and disposes the ``AsyncEngine``;
``migrate`` brings the schema to Alembic's head on that engine. Each RPC then takes one
``AsyncSession`` from the ``async_sessionmaker`` and wraps every change in a transaction.

SQLite (``<models_dir>/corral.db``) is the embedded default. ``CORRAL_DATABASE_URL`` with a
``postgresql+asyncpg://`` URL selects PostgreSQL instead, which several registry replicas may
share (``registry.replicas`` coordinates them). The same Alembic migrations serve both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import migrations

DB_FILENAME = "corral.db"
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
# Replicas starting together must not run the migrations twice: PostgreSQL serialises them on
# this transaction-scoped advisory lock (any constant works; this one spells "corral").
MIGRATION_LOCK_KEY = 0x636F7272616C

log = structlog.get_logger()


def embedded_url(models_dir: Path) -> str:
    """The aiosqlite URL of the database inside ``models_dir``."""
    return f"sqlite+aiosqlite:///{models_dir / DB_FILENAME}"


def database_url(models_dir: Path, configured: str = "") -> str:
    """``configured`` (``CORRAL_DATABASE_URL``) when set, else SQLite in ``models_dir``.

    Raises ``ValueError`` for a URL whose driver is not one we run on (the message never
    includes the URL itself: it may carry a password).
    """
    if not configured:
        return embedded_url(models_dir)
    try:
        driver = make_url(configured).drivername
    except Exception:  # noqa: BLE001 - sqlalchemy raises ArgumentError, ValueError and friends
        raise ValueError("CORRAL_DATABASE_URL is not a database URL") from None
    if driver == "postgresql":  # the driver is implied: we only ship asyncpg
        return configured.replace("postgresql://", "postgresql+asyncpg://", 1)
    if driver not in SUPPORTED_DRIVERS:
        raise ValueError(f"CORRAL_DATABASE_URL uses {driver!r}; supported: "
                         + ", ".join(SUPPORTED_DRIVERS))
    return configured


@asynccontextmanager
async def open_database(models_dir: Path, url: str = "") -> AsyncIterator[AsyncEngine]:
    """Create the process's engine (``database_url(models_dir, url)``); dispose it on exit.

    ``models_dir`` must exist. SQLite connections get foreign keys, WAL and a busy timeout;
    PostgreSQL connections are checked before use (a replica outlives database restarts).
    """
    resolved = database_url(models_dir, url)
    if is_postgres_url(resolved):
        engine = create_async_engine(resolved, pool_pre_ping=True)
    else:
        engine = create_async_engine(resolved)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
    try:
        yield engine
    finally:
        await engine.dispose()


def is_postgres_url(url: str) -> bool:
    return url.startswith("postgresql")


def is_postgres(engine: AsyncEngine) -> bool:
    """Whether ``engine`` talks to PostgreSQL (replicas possible) rather than SQLite."""
    return engine.dialect.name == "postgresql"


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (results outlive the session)."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to Alembic's head, in one transaction; a no-op when already there."""
    async with engine.begin() as connection:
        if is_postgres(engine):
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                     {"key": MIGRATION_LOCK_KEY})
        await connection.run_sync(_upgrade_to_head, engine.url.render_as_string(False))
    log.info("database_migrated", url=str(engine.url))  # str() masks the password


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


def _configure_sqlite(dbapi_connection: DBAPIConnection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
