"""CORRAL_MAX_NUM_CTX / CORRAL_MAX_PREDICT: 400 past a cap asked for, defaults lowered to it."""

from __future__ import annotations

import pytest

from gateway.caps import RequestCaps
from gateway.options import ModelOptions
from services.errors import InvalidRequestError

MODEL = "smollm2:135m"


def merged(request: dict, parameters: dict | None = None, num_ctx: int = 4096) -> ModelOptions:
    return ModelOptions.merge(parameters, request, num_ctx=num_ctx)


def test_no_caps_change_nothing() -> None:
    options = merged({"num_ctx": 100_000, "num_predict": -1})
    assert RequestCaps().apply(options, {"num_ctx": 100_000}) is options


def test_explicit_values_past_a_cap_are_refused() -> None:
    caps = RequestCaps(max_num_ctx=2048, max_predict=64)
    with pytest.raises(InvalidRequestError, match=r"num_ctx 4096 exceeds this server's limit of 2048"):
        caps.apply(merged({"num_ctx": 4096}), {"num_ctx": 4096})
    with pytest.raises(InvalidRequestError, match=r"num_predict 65 exceeds .* 64 \(CORRAL_MAX_PREDICT\)"):
        caps.apply(merged({"num_predict": 65}), {"num_predict": 65})


def test_defaults_and_unlimited_values_are_lowered() -> None:
    caps = RequestCaps(max_num_ctx=2048, max_predict=64)
    options = caps.apply(merged({}, {"num_ctx": 8192}), {})
    assert options.num_ctx == 2048 and options.values["num_predict"] == 64
    for unlimited in (-1, -2):
        assert caps.apply(merged({"num_predict": unlimited}), {"num_predict": unlimited}
                          ).values["num_predict"] == 64
    within = caps.apply(merged({"num_ctx": 1024, "num_predict": 10}), {"num_ctx": 1024, "num_predict": 10})
    assert (within.num_ctx, within.values["num_predict"]) == (1024, 10)


async def test_the_gateway_refuses_before_loading_anything(make_client, settings, spawner) -> None:
    client = await make_client(settings, max_num_ctx=1024, max_predict=16)
    for options in ({"num_ctx": 4096}, {"num_predict": 17}):
        response = await client.post("/api/generate", json={
            "model": MODEL, "prompt": "Hi", "stream": False, "options": options})
        assert response.status == 400
        assert "exceeds this server's limit" in (await response.json())["error"]
    openai = await client.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100})
    assert openai.status == 400
    assert spawner.spawned == []
    ok = await client.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False})
    assert ok.status == 200
    assert spawner.spawned[0].spec.ctx_size <= 1024
    assert spawner.spawned[0].client.requests[0].num_predict == 16
