"""What lets several registry replicas share one PostgreSQL database (and one blob directory).

* ``StoreLock`` serialises every change that can prune blobs, across processes. A change
  checks its blob files, commits rows, then unlinks the files its commit orphaned: if another
  replica committed a manifest in between that uses one of those blobs, it would point at a
  deleted file. An in-process ``asyncio.Lock`` covered that for one registry; replicas add a
  PostgreSQL advisory lock, held in an open transaction on a connection of its own for the
  whole change (files included). The database drops it when that transaction ends, so a
  replica that crashes or is cancelled mid-change never leaves it held. Writes are rare
  (create, copy, delete, pull) and short, so one fleet-wide writer costs nothing measurable,
  and, unlike SERIALIZABLE retries, it also covers the file operations outside the transaction.
* ``watch_model_changes`` keeps every replica's resolve cache honest: each model change
  ``NOTIFY``s inside its transaction (so the message goes out only if it commits), and every
  replica ``LISTEN``s on a dedicated asyncpg connection and drops its cache on a message.
  While that connection is down the cache is off, so a lost message can never serve a stale
  model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

log = structlog.get_logger()

WRITE_LOCK_KEY = 0x636F7272616C + 1  # registry.db.MIGRATION_LOCK_KEY + 1
CHANNEL = "corral_models_changed"
PING_INTERVAL_S = 5.0
FIRST_LISTEN_S = 5.0
RETRY_MAX_S = 10.0


class StoreLock:
    """``async with lock:`` — one writer per process, and per database on PostgreSQL."""

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._local = asyncio.Lock()
        self._engine = engine if engine is not None and engine.dialect.name == "postgresql" else None
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> StoreLock:
        await self._local.acquire()
        if self._engine is None:
            return self
        try:
            self._connection = await self._engine.connect()
            await self._connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                           {"key": WRITE_LOCK_KEY})
        except BaseException:
            await self._release()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._release()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                # Ending the transaction releases the advisory lock; shielded so that a
                # cancelled writer still hands the lock back at once.
                await asyncio.shield(_rollback_and_close(connection))
        finally:
            self._local.release()


async def _rollback_and_close(connection: AsyncConnection) -> None:
    try:
        await connection.rollback()
    finally:
        await connection.close()


async def notify_models_changed(session: AsyncSession, origin: str) -> None:
    """Tell every other replica to drop its resolve cache once this transaction commits.

    ``origin`` names the writing replica, which has already dropped its own cache (and must not
    drop a fresher one when its own message comes back)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, :origin)"),
                              {"channel": CHANNEL, "origin": origin})


@contextlib.asynccontextmanager
async def watch_model_changes(engine: AsyncEngine, store: Any, *,
                              connect: Callable[[], Any] | None = None) -> AsyncIterator[None]:
    """On PostgreSQL, listen for other replicas' model changes for the duration of the block.

    ``store`` gets ``set_cache_enabled(False)`` at once and ``True`` only while listening, and
    ``models_changed(origin)`` for every message. A no-op on SQLite (one registry per file; its
    own writes already invalidate). ``connect`` overrides how the asyncpg connection is made.
    Entering waits (up to ``FIRST_LISTEN_S``) for the first LISTEN, so a fresh replica starts
    with its cache on; the database being down then only delays that.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    store.set_cache_enabled(False)
    listening = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        _listen_forever(store, connect or _asyncpg_connector(engine), listening))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listening.wait(), FIRST_LISTEN_S)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _asyncpg_connector(engine: AsyncEngine) -> Callable[[], Any]:
    """Connect with exactly the arguments SQLAlchemy's asyncpg dialect would use."""
    import asyncpg  # noqa: PLC0415 - only PostgreSQL deployments load the driver

    args, kwargs = engine.dialect.create_connect_args(engine.url)
    dropped = ("async_fallback", "prepared_statement_cache_size")  # SQLAlchemy's own options
    kwargs = {k: v for k, v in kwargs.items() if k not in dropped}
    return lambda: asyncpg.connect(*args, **kwargs)


async def _listen_forever(store: Any, connect: Callable[[], Any], listening: asyncio.Event) -> None:
    delay = 0.1
    while True:
        try:
            await _listen_once(store, connect, listening)
            delay = 0.1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any connection failure: cache off, retry with backoff
            log.warning("model_change_feed_lost", error=type(exc).__name__, retry_s=delay)
        store.set_cache_enabled(False)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


async def _listen_once(store: Any, connect: Callable[[], Any], listening: asyncio.Event) -> None:
    """Listen until the connection fails; returns or raises when it does."""
    connection = await connect()
    lost = asyncio.Event()
    try:
        connection.add_termination_listener(lambda _conn: lost.set())
        await connection.add_listener(
            CHANNEL, lambda _conn, _pid, _channel, origin: store.models_changed(origin))
        store.set_cache_enabled(True)  # empties it: messages may have been missed meanwhile
        listening.set()
        log.info("model_change_feed_listening", channel=CHANNEL)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_INTERVAL_S)
            if not lost.is_set():  # a silent network partition shows up as a failed ping
                await connection.fetchval("SELECT 1", timeout=PING_INTERVAL_S)
    finally:
        store.set_cache_enabled(False)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 2.0)
