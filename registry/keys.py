"""API keys in the registry's database, with an in-memory index the gateway's checks hit.

The registry is the only writer of the ``api_keys`` table (the same rule the resolve cache
relies on), so the index is loaded once and changed only together with the database: a key
revoked here is gone from the index before ``RevokeKey`` returns, and the gateway asks on every
request, so the key's very next request is refused. Only SHA-256 hashes ever arrive here.

``last_used_at`` is kept in memory at once and written to the database at most once a minute per
key, in the background: a check must not wait for a disk write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from registry.tables import ApiKeyRow, utcnow
from services.apikeys import check_limit, check_name, check_scopes, is_key_hash
from services.errors import ConflictError, InvalidRequestError, KeyNotFoundError

LAST_USED_WRITE_INTERVAL_S = 60.0

log = structlog.get_logger()


@dataclass(frozen=True)
class KeyRecord:
    """One key as the registry knows it (the hash stays inside this module's callers)."""

    name: str
    key_hash: str
    scopes: tuple[str, ...]
    requests_per_minute: int
    max_concurrent: int
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> KeyRecord:
        return cls(name=row.name, key_hash=row.key_hash, scopes=tuple(row.scopes.split()),
                   requests_per_minute=row.requests_per_minute, max_concurrent=row.max_concurrent,
                   created_at=row.created_at, last_used_at=row.last_used_at,
                   expires_at=row.expires_at)


@dataclass(frozen=True)
class NewKey:
    """What ``KeyStore.create`` needs (validated there)."""

    name: str
    key_hash: str
    scopes: tuple[str, ...]
    expires_at: datetime | None = None
    requests_per_minute: int = 0
    max_concurrent: int = 0


class KeyStore:
    """Create, list, revoke and check API keys."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._by_hash: dict[str, KeyRecord] | None = None
        self._lock = asyncio.Lock()
        self._written_at: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def _index(self) -> dict[str, KeyRecord]:
        if self._by_hash is None:
            async with self._lock:
                if self._by_hash is None:
                    async with self._sessions() as session:
                        rows = (await session.scalars(select(ApiKeyRow))).all()
                    self._by_hash = {row.key_hash: KeyRecord.from_row(row) for row in rows}
        return self._by_hash

    async def create(self, new: NewKey) -> KeyRecord:
        """Store ``new``; ``ConflictError`` when its name (or, impossibly, its hash) is taken."""
        record = KeyRecord(
            name=check_name(new.name), key_hash=_checked_hash(new.key_hash),
            scopes=check_scopes(list(new.scopes)),
            requests_per_minute=check_limit(new.requests_per_minute, "requests_per_minute"),
            max_concurrent=check_limit(new.max_concurrent, "max_concurrent"),
            created_at=utcnow(), expires_at=new.expires_at)
        if record.expired(record.created_at):
            raise InvalidRequestError("the key's expiry is not in the future")
        index = await self._index()
        async with self._lock:
            try:
                async with self._sessions.begin() as session:
                    session.add(_row(record))
            except IntegrityError:
                raise ConflictError(f"a key named {record.name!r} already exists") from None
            index[record.key_hash] = record
        log.info("api_key_created", key_name=record.name, scopes=list(record.scopes))
        return record

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, by name."""
        return sorted((await self._index()).values(), key=lambda r: r.name)

    async def revoke(self, name: str) -> None:
        """Delete the key called ``name``; ``KeyNotFoundError`` when there is none."""
        index = await self._index()
        async with self._lock:
            async with self._sessions.begin() as session:
                result = cast("CursorResult[Any]", await session.execute(
                    delete(ApiKeyRow).where(ApiKeyRow.name == name)))
            if result.rowcount == 0:
                raise KeyNotFoundError(f"key {name!r} not found")
            for key_hash in [h for h, r in index.items() if r.name == name]:
                del index[key_hash]
        log.info("api_key_revoked", key_name=name)

    async def any(self) -> bool:
        """Whether any key exists (expired ones included: they show that auth is wanted)."""
        return bool(await self._index())

    async def check(self, key_hash: str) -> KeyRecord | None:
        """The key with this hash (expired or not), marking it used; ``None`` when unknown."""
        index = await self._index()
        record = index.get(key_hash)
        if record is None:
            return None
        now = utcnow()
        if not record.expired(now):
            record = replace(record, last_used_at=now)
            index[key_hash] = record
            self._note_use(key_hash, now)
        return record

    def _note_use(self, key_hash: str, when: datetime) -> None:
        loop = asyncio.get_running_loop()
        last = self._written_at.get(key_hash)
        if last is not None and loop.time() - last < LAST_USED_WRITE_INTERVAL_S:
            return
        self._written_at[key_hash] = loop.time()
        task = loop.create_task(self._write_last_used(key_hash, when))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_last_used(self, key_hash: str, when: datetime) -> None:
        try:
            async with self._sessions.begin() as session:
                await session.execute(update(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash)
                                      .values(last_used_at=when))
        except Exception as exc:  # noqa: BLE001 - a lost timestamp must not fail anything
            log.warning("api_key_last_used_not_saved", error=str(exc))

    async def close(self) -> None:
        """Let pending ``last_used_at`` writes finish."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


def _checked_hash(key_hash: str) -> str:
    if not is_key_hash(key_hash):
        raise InvalidRequestError("key_hash must be the 64 hex digits of a SHA-256")
    return key_hash


def _row(record: KeyRecord) -> ApiKeyRow:
    return ApiKeyRow(name=record.name, key_hash=record.key_hash, scopes=" ".join(record.scopes),
                     requests_per_minute=record.requests_per_minute,
                     max_concurrent=record.max_concurrent, created_at=record.created_at,
                     expires_at=record.expires_at)
