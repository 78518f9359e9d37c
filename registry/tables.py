"""The registry's tables, as SQLAlchemy ORM classes. The schema itself comes from Alembic.

    models ──► manifests ──► layers ──► blobs ◄── gguf_info
                   └──────── config ──────┘
    api_keys (standalone: names, scopes, limits, SHA-256 of each secret)

Digests are stored as ``sha256:<64 hex>`` everywhere. Blob files hold the content; these rows
hold what references it, so garbage collection is a query, not a scan of every manifest.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite itself keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every registry table."""


class Blob(Base):
    """A content-addressed file under ``blobs/``."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When the file last hashed to ``digest`` (NULL: not yet, e.g. indexed from an Ollama store),
    # its mtime then, and what it hashed to when it did not (NULL unless found corrupt).
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    corrupt_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)


class Manifest(Base):
    """A schema2 manifest, byte for byte; its sha256 is the model id."""

    __tablename__ = "manifests"

    digest: Mapped[str] = mapped_column(String(71), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    config_digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    layers: Mapped[list[Layer]] = relationship(
        order_by="Layer.position", cascade="all, delete-orphan", lazy="selectin")


class Layer(Base):
    """One layer descriptor of a manifest, in manifest order."""

    __tablename__ = "layers"

    manifest_digest: Mapped[str] = mapped_column(
        ForeignKey("manifests.digest", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest"), index=True)
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)


class Model(Base):
    """A name (as first spelled) pointing at a manifest; ``name_key`` makes lookups case-blind."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(String(350))
    namespace: Mapped[str] = mapped_column(String(80))
    model: Mapped[str] = mapped_column(String(80))
    tag: Mapped[str] = mapped_column(String(80))
    name_key: Mapped[str] = mapped_column(String(600), unique=True)
    manifest_digest: Mapped[str] = mapped_column(ForeignKey("manifests.digest"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    # The manifest digest last written to / read from this name's Ollama manifest file; NULL
    # when no file was ever written (rows from before store interop).
    file_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)

    manifest: Mapped[Manifest] = relationship(lazy="selectin")


class GGUFFacts(Base):
    """What the registry read from a GGUF blob's header, so it is read once per blob."""

    __tablename__ = "gguf_info"

    blob_digest: Mapped[str] = mapped_column(
        ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    architecture: Mapped[str] = mapped_column(String(255))
    parameter_count: Mapped[int] = mapped_column(BigInteger)
    parameter_size: Mapped[str] = mapped_column(String(32))
    quantization: Mapped[str] = mapped_column(String(32))
    context_length: Mapped[int] = mapped_column(BigInteger)
    embedding_length: Mapped[int] = mapped_column(BigInteger)
    chat_template: Mapped[str] = mapped_column(Text)
    bos_token: Mapped[str] = mapped_column(Text)
    eos_token: Mapped[str] = mapped_column(Text)
    # The K/V cache shape (``registry.gguf_info.KvShape``). NULL in rows written before
    # revision 0004: ``ModelStore`` reads the header again and fills them in on first use.
    kv_block_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kv_head_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kv_head_count_kv: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kv_key_length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kv_value_length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ApiKeyRow(Base):
    """An API key: its name, scopes (space-separated) and limits, and the SHA-256 of its
    secret. The secret itself is never stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(255))
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    max_concurrent: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
