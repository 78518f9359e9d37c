"""LoRA adapters in the engine: applied at load, and refused with a clear error when unfit."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.engine import Engine
from runner.settings import RunnerSettings
from services.errors import CorralError
from tests.lora import write_lora
from tests.runner.conftest import collect, request


async def greedy_answer(model_path: str, *lora: Path) -> str:
    engine = Engine(RunnerSettings(model=model_path, ctx_size=256, threads=2,
                                   lora=tuple(map(str, lora))))
    await engine.start()
    try:
        text, _done = await collect(engine, request(num_predict=10, temperature=0))
        return text
    finally:
        await engine.stop()


async def test_a_noop_adapter_keeps_the_answer_and_a_strong_one_changes_it(
        model_path: str, tmp_path: Path) -> None:
    plain = await greedy_answer(model_path)
    noop = await greedy_answer(model_path, write_lora(tmp_path / "noop.gguf", model_path,
                                                      strength=0.0))
    strong = await greedy_answer(model_path, write_lora(tmp_path / "strong.gguf", model_path,
                                                        strength=2.0))
    assert noop == plain
    assert strong != plain


@pytest.mark.parametrize("kind", ["wrong shape", "not an adapter"])
async def test_an_unfit_adapter_fails_the_load_and_names_the_file(
        model_path: str, tmp_path: Path, kind: str) -> None:
    if kind == "wrong shape":
        adapter = write_lora(tmp_path / "bad.gguf", model_path, strength=1.0, wrong_shape=True)
    else:
        adapter = Path(model_path)  # a model, not an adapter
    engine = Engine(RunnerSettings(model=model_path, ctx_size=256, threads=2,
                                   lora=(str(adapter),)))
    with pytest.raises(CorralError, match=f"failed to load adapter {adapter}"):
        await engine.start()
