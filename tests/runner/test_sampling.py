"""Sampler configuration from the request: seed semantics and what is refused."""

from __future__ import annotations

import math

import pytest

from runner.sampling import SamplerConfig
from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb


@pytest.mark.parametrize("seed,resolved", [(7, 7), (2**32 + 7, 7), (-2, 2**32 - 2), (0, 0)])
def test_a_seed_is_taken_mod_2_to_the_32_as_llama_server_does(seed, resolved):
    assert SamplerConfig(seed=seed).resolved_seed() == resolved


@pytest.mark.parametrize("seed", [-1, 2**32 - 1, 2**33 - 1])
def test_all_ones_means_a_random_seed(seed):
    seeds = {SamplerConfig(seed=seed).resolved_seed() for _ in range(8)}
    assert len(seeds) > 1


@pytest.mark.parametrize("field", ["temperature", "top_p", "min_p", "typical_p",
                                   "repeat_penalty", "presence_penalty", "frequency_penalty"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_refused(field, value):
    with pytest.raises(InvalidRequestError, match=f"sampling option {field} must be finite"):
        SamplerConfig.from_proto(pb.SamplingOptions(**{field: value}))


def test_unset_fields_take_the_defaults():
    config = SamplerConfig.from_proto(pb.SamplingOptions(top_k=3))
    assert config.top_k == 3 and config.temperature == pytest.approx(0.8) and config.seed == -1
