"""API keys in the registry: stored as hashes, checked from memory, revoked at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.db import DB_FILENAME, migrate, open_database, session_factory
from registry.keys import KeyStore, NewKey
from registry.server import running_registry
from services.apikeys import hash_secret, new_secret
from services.clients.registry import RegistryClient
from services.errors import ConflictError, InvalidRequestError, KeyNotFoundError
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import RegistrySettings


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[KeyStore]:
    async with open_database(tmp_path) as engine:
        await migrate(engine)
        store = KeyStore(session_factory(engine))
        yield store
        await store.close()


async def test_create_check_and_revoke(keys: KeyStore) -> None:
    assert not await keys.any()
    secret = new_secret()
    await keys.create(NewKey("ci", hash_secret(secret), ("inference", "read")))
    assert await keys.any()
    record = await keys.check(hash_secret(secret))
    assert record is not None and record.name == "ci"
    assert record.scopes == ("read", "inference")  # canonical order
    assert record.last_used_at is not None
    assert await keys.check(hash_secret(secret + "x")) is None
    await keys.revoke("ci")
    assert await keys.check(hash_secret(secret)) is None
    assert not await keys.any()
    with pytest.raises(KeyNotFoundError):
        await keys.revoke("ci")


async def test_the_database_holds_hashes_never_secrets(tmp_path: Path, keys: KeyStore,
                                                      database_backend: str) -> None:
    secret = new_secret()
    await keys.create(NewKey("ci", hash_secret(secret), ("read",)))
    await keys.check(hash_secret(secret))
    await keys.close()  # the last_used_at write
    async with open_database(tmp_path) as engine, engine.connect() as conn:
        rows = (await conn.execute(text("select * from api_keys"))).all()
        row = (await conn.execute(text("select key_hash, last_used_at from api_keys"))).one()
    stored = repr(rows).encode()
    if database_backend == "sqlite":  # every byte on disk, journal included
        stored += (tmp_path / DB_FILENAME).read_bytes() + b"".join(
            p.read_bytes() for p in tmp_path.glob(f"{DB_FILENAME}-*"))
    assert secret.encode() not in stored
    assert secret.removeprefix("corral_").encode() not in stored
    assert row[0] == hash_secret(secret) and row[1] is not None


async def test_index_survives_a_restart(tmp_path: Path, keys: KeyStore) -> None:
    secret = new_secret()
    await keys.create(NewKey("ci", hash_secret(secret), ("read",), requests_per_minute=5))
    async with open_database(tmp_path) as engine:
        reopened = KeyStore(session_factory(engine))
        record = await reopened.check(hash_secret(secret))
        await reopened.close()
    assert record is not None and record.requests_per_minute == 5


async def test_rejects_bad_names_scopes_hashes_and_duplicates(keys: KeyStore) -> None:
    good = hash_secret(new_secret())
    for bad in (NewKey("", good, ("read",)), NewKey("a b", good, ("read",)),
                NewKey("ci", good, ()), NewKey("ci", good, ("root",)),
                NewKey("ci", "not-a-hash", ("read",)),
                NewKey("ci", good, ("read",), requests_per_minute=-1),
                NewKey("ci", good, ("read",), expires_at=datetime.now(UTC) - timedelta(1))):
        with pytest.raises(InvalidRequestError):
            await keys.create(bad)
    await keys.create(NewKey("ci", good, ("read",)))
    with pytest.raises(ConflictError):
        await keys.create(NewKey("ci", hash_secret(new_secret()), ("read",)))
    assert [r.name for r in await keys.list_keys()] == ["ci"]


async def test_rpcs_through_the_client(tmp_path: Path) -> None:
    settings = RegistrySettings(models_dir=tmp_path, address="127.0.0.1:0", embedded_model=False)
    async with running_registry(settings) as service:
        client = RegistryClient(f"127.0.0.1:{service.port}")
        try:
            assert (await client.check_key()).keys_exist is False
            secret = new_secret()
            expires = datetime.now(UTC) + timedelta(hours=1)
            request = pb.CreateKeyRequest(name="ops", scopes=["manage"], key_hash=hash_secret(secret),
                                          requests_per_minute=3, max_concurrent=1)
            request.expires_at.FromDatetime(expires)
            created = await client.create_key(request)
            assert created.name == "ops" and list(created.scopes) == ["manage"]
            assert abs(created.expires_at.ToDatetime(tzinfo=UTC) - expires) < timedelta(seconds=1)
            with pytest.raises(ConflictError):
                await client.create_key(request)
            checked = await client.check_key(hash_secret(secret))
            assert checked.keys_exist and checked.status == pb.KEY_STATUS_VALID
            assert (checked.key.name, checked.key.requests_per_minute, checked.key.max_concurrent) == ("ops", 3, 1)
            assert checked.key.HasField("last_used_at")
            assert (await client.check_key(hash_secret("nope"))).status == pb.KEY_STATUS_UNKNOWN
            assert [k.name for k in await client.list_keys()] == ["ops"]
            await client.revoke_key("ops")
            assert (await client.check_key(hash_secret(secret))).status == pb.KEY_STATUS_UNKNOWN
            with pytest.raises(KeyNotFoundError):
                await client.revoke_key("ops")
        finally:
            await client.close()


async def test_expired_key_is_reported_expired(keys: KeyStore) -> None:
    secret = new_secret()
    soon = datetime.now(UTC) + timedelta(hours=1)  # far enough that a slow create cannot pass it
    record = await keys.create(NewKey("short", hash_secret(secret), ("read",), expires_at=soon))
    assert not record.expired(datetime.now(UTC))
    assert not record.expired(soon - timedelta(milliseconds=1))
    assert record.expired(soon) and record.expired(soon + timedelta(milliseconds=1))
