"""GetStatus: the schema revision read from the database, and the blob store measured on disk."""

from __future__ import annotations

from pathlib import Path

from registry.status import blob_usage, schema_head
from registry.server import running_registry
from services.clients.registry import RegistryClient
from services.settings import RegistrySettings


async def test_status_reports_a_migrated_schema_and_the_store_size(tmp_path: Path,
                                                                   smollm2_file: Path) -> None:
    settings = RegistrySettings(models_dir=tmp_path, address="127.0.0.1:0")
    async with running_registry(settings) as service:
        client = RegistryClient(f"127.0.0.1:{service.port}")
        try:
            await client.wait_ready(timeout=5)
            status = await client.status(timeout=5)
        finally:
            await client.close()
    assert status.schema_revision == status.schema_head == schema_head() != ""
    assert status.models == 1  # the embedded smollm2:135m
    assert status.blobs >= 2  # weights and config at least
    assert status.blob_bytes >= smollm2_file.stat().st_size


def test_blob_usage_counts_only_finished_blobs(tmp_path: Path) -> None:
    (tmp_path / ("sha256-" + "a" * 64)).write_bytes(b"12345")
    (tmp_path / ("sha256-" + "b" * 64 + "-partial")).write_bytes(b"123")
    (tmp_path / ".tmp-upload").write_bytes(b"1")
    assert blob_usage(tmp_path) == (1, 5)
    assert blob_usage(tmp_path / "missing") == (0, 0)
