"""Alembic migrations: a fresh directory gets the schema, a second start changes nothing."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from registry.db import DB_FILENAME, alembic_config, migrate, open_database
from registry.models import Base

TABLES = {"alembic_version", "blobs", "manifests", "layers", "models", "gguf_info", "api_keys"}


async def test_migration_creates_schema_and_is_idempotent(tmp_path: Path) -> None:
    for _start in range(2):
        async with open_database(tmp_path) as engine:
            await migrate(engine)
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
                version = (await conn.execute(text("select version_num from alembic_version"))).all()
        assert tables == TABLES
        assert version == [(ScriptDirectory.from_config(alembic_config("")).get_current_head(),)]
    assert (tmp_path / DB_FILENAME).is_file()


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
        async with engine.connect() as conn:
            assert (await conn.execute(text("pragma foreign_keys"))).scalar() == 1
