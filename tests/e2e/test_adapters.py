"""Modelfile ``ADAPTER``: a real LoRA adapter changes what the model says, through real processes.

The base model answers greedily; a model created with a no-op adapter (``lora_b`` zero) must
answer exactly the same (the adapter path works and changes nothing by itself), and one with a
strong adapter must answer differently. An adapter the runner cannot apply is an error that
names it, never a silent fallback to the base model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import CorralServer
from tests.e2e.cli_helpers import corral_cli
from tests.e2e.model_helpers import generate
from tests.lora import write_lora

pytestmark = pytest.mark.e2e

PROMPT = "Name three colors of the rainbow."


def create_with_adapter(corral: CorralServer, tmp_path: Path, name: str, adapter: Path) -> None:
    modelfile = tmp_path / f"{name}.Modelfile"
    modelfile.write_text(f"FROM smollm2:135m\nADAPTER ./{adapter.name}\n")
    result = corral_cli("create", name, "-f", str(modelfile), host=corral.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def base_model_file(corral: CorralServer) -> str:
    status, shown = corral.post("/api/show", {"model": "smollm2:135m"})
    assert status == 200
    return next(line.split(" ", 1)[1] for line in shown["modelfile"].splitlines()
                if line.startswith("FROM /"))


def test_an_adapter_is_applied_at_inference(corral: CorralServer, tmp_path: Path) -> None:
    base = base_model_file(corral)
    create_with_adapter(corral, tmp_path, "smol-noop-lora",
                        write_lora(tmp_path / "noop.gguf", base, strength=0.0))
    create_with_adapter(corral, tmp_path, "smol-strong-lora",
                        write_lora(tmp_path / "strong.gguf", base, strength=2.0))
    status, shown = corral.post("/api/show", {"model": "smol-strong-lora"})
    assert status == 200 and "\nADAPTER /" in shown["modelfile"]

    plain = generate(corral, "smollm2:135m", PROMPT, keep_alive=0, num_predict=12)["response"]
    noop = generate(corral, "smol-noop-lora", PROMPT, keep_alive=0, num_predict=12)["response"]
    strong = generate(corral, "smol-strong-lora", PROMPT, keep_alive=0, num_predict=12)["response"]
    assert noop == plain
    assert strong != plain
    for name in ("smol-noop-lora", "smol-strong-lora"):
        assert corral.request("DELETE", "/api/delete", {"model": name})[0] == 200


def test_an_adapter_for_another_model_fails_with_its_cause(corral: CorralServer,
                                                          tmp_path: Path) -> None:
    # tensors shaped for a different model: llama.cpp refuses the adapter
    mismatched = write_lora(tmp_path / "mismatched.gguf", base_model_file(corral), strength=1.0,
                            wrong_shape=True)
    create_with_adapter(corral, tmp_path, "smol-bad-lora", mismatched)
    status, body = corral.post("/api/generate", {"model": "smol-bad-lora", "prompt": PROMPT,
                                                 "stream": False, "keep_alive": 0})
    assert status == 500
    assert "failed to load adapter" in body["error"], body
    assert "it is not a LoRA adapter for this model" in body["error"], body
    assert corral.request("DELETE", "/api/delete", {"model": "smol-bad-lora"})[0] == 200
