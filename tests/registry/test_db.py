"""Alembic migrations on SQLite and PostgreSQL: a fresh database gets the schema, a second
start changes nothing, replicas starting together migrate once, and the URL is validated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from registry.db import DB_FILENAME, alembic_config, migrate, open_database
from registry import tables
from registry.tables import Base
from registry.db import database_url, session_factory

TABLES = {"alembic_version", "blobs", "manifests", "layers", "models", "gguf_info", "api_keys"}


async def test_migration_creates_schema_and_is_idempotent(tmp_path: Path, database_backend: str) -> None:
    for _start in range(2):
        async with open_database(tmp_path) as engine:
            await migrate(engine)
            async with engine.connect() as conn:
                tables_now = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
                version = (await conn.execute(text("select version_num from alembic_version"))).all()
        assert tables_now >= TABLES
        assert version == [(ScriptDirectory.from_config(alembic_config("")).get_current_head(),)]
    assert (tmp_path / DB_FILENAME).is_file() == (database_backend == "sqlite")


async def test_migrations_match_orm_models(tmp_path: Path) -> None:
    async with open_database(tmp_path) as engine:
        await migrate(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    assert diff == []


async def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    async with open_database(tmp_path) as engine:
        await migrate(engine)
        now = tables.utcnow()
        with pytest.raises(IntegrityError):
            async with session_factory(engine).begin() as session:
                session.add(tables.Model(host="h", namespace="n", model="m", tag="t",
                                         name_key="h/n/m:t", manifest_digest="sha256:" + "0" * 64,
                                         created_at=now, modified_at=now))


async def test_replicas_starting_together_migrate_once(tmp_path: Path, database_backend: str) -> None:
    if database_backend == "sqlite":
        pytest.skip("one registry per SQLite file: replicas need PostgreSQL")

    async def start() -> None:
        async with open_database(tmp_path) as engine:
            await migrate(engine)

    await asyncio.gather(*(start() for _ in range(3)))
    async with open_database(tmp_path) as engine, engine.connect() as conn:
        assert len((await conn.execute(text("select version_num from alembic_version"))).all()) == 1


def test_database_url_defaults_to_sqlite_and_accepts_postgres_only(
        tmp_path: Path, database_backend: str) -> None:
    if database_backend == "sqlite":  # the PostgreSQL pass swaps the default for its database
        assert database_url(tmp_path) == f"sqlite+aiosqlite:///{tmp_path / DB_FILENAME}"
    assert database_url(tmp_path, "postgresql://u:p@db/corral") == "postgresql+asyncpg://u:p@db/corral"
    assert database_url(tmp_path, "postgresql+asyncpg://db/c") == "postgresql+asyncpg://db/c"
    with pytest.raises(ValueError, match="mysql") as excinfo:
        database_url(tmp_path, "mysql+aiomysql://u:hunter2@db/c")
    assert "hunter2" not in str(excinfo.value)
    with pytest.raises(ValueError, match="not a database URL"):
        database_url(tmp_path, "::nonsense::")



