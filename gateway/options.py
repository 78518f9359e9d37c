"""Ollama's model options (``api.Options``) and ``keep_alive`` parsing.

Precedence: built-in defaults < the model's Modelfile PARAMETERs < the request's ``options``.
Unknown keys and ``null`` values are ignored, as Ollama's ``Options.FromMap`` does.

Deviation: a value of the wrong type is a 400 (``InvalidRequestError``) here, where Ollama answers
500 with the same message; it is the client's mistake, and we are honest about errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.errors import InvalidRequestError
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.settings import FOREVER, parse_go_duration

INT, FLOAT, BOOL, STRINGS = "integer", "float32", "boolean", "array"

OPTION_TYPES: dict[str, str] = {
    "num_ctx": INT, "num_batch": INT, "num_gpu": INT, "main_gpu": INT, "use_mmap": BOOL,
    "num_thread": INT, "num_keep": INT, "seed": INT, "num_predict": INT, "top_k": INT,
    "top_p": FLOAT, "min_p": FLOAT, "typical_p": FLOAT, "repeat_last_n": INT,
    "temperature": FLOAT, "repeat_penalty": FLOAT, "presence_penalty": FLOAT,
    "frequency_penalty": FLOAT, "stop": STRINGS, "draft_num_predict": INT,
}

# api.DefaultOptions at HEAD; num_ctx comes from OLLAMA_CONTEXT_LENGTH instead.
DEFAULTS: dict[str, Any] = {
    "num_batch": 512, "num_gpu": -1, "num_thread": 0, "num_keep": 4, "seed": -1,
    "num_predict": -1, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "typical_p": 1.0,
    "repeat_last_n": 64, "temperature": 0.8, "repeat_penalty": 1.0, "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}

_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty",
                    "repeat_last_n", "presence_penalty", "frequency_penalty")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce_option(key: str, value: object) -> object:
    """One option value checked and converted like ``Options.FromMap`` (ints truncate)."""
    kind = OPTION_TYPES[key]
    if kind == INT and _is_number(value) and math.isfinite(value):
        return int(value)
    if kind == FLOAT and _is_number(value):
        return float(value)
    if kind == BOOL and isinstance(value, bool):
        return value
    if kind == STRINGS and isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return list(value)
        raise InvalidRequestError(f'option "{key}" must be of an array of strings')
    raise InvalidRequestError(f'option "{key}" must be of type {kind}')


def decode_options(raw: Mapping[str, object] | None) -> dict[str, object]:
    """Known, non-null options from a JSON object, type-checked."""
    return {key: coerce_option(key, value) for key, value in (raw or {}).items()
            if key in OPTION_TYPES and value is not None}


@dataclass(frozen=True)
class ModelOptions:
    """The merged options of one request."""

    values: Mapping[str, object]

    @classmethod
    def merge(cls, parameters: Mapping[str, object] | None, request: Mapping[str, object] | None,
              *, num_ctx: int) -> ModelOptions:
        """defaults < Modelfile ``parameters`` < request ``options``."""
        return cls({**DEFAULTS, "num_ctx": num_ctx, **decode_options(parameters),
                    **decode_options(request)})

    @property
    def num_ctx(self) -> int:
        return max(4, int(self.values["num_ctx"]))

    def sampling(self) -> pb.SamplingOptions:
        sampling = pb.SamplingOptions(**{f: self.values[f] for f in _SAMPLING_FIELDS})
        if self.values["seed"] >= 0:  # -1 (the default) means "random": leave unset
            sampling.seed = self.values["seed"]
        return sampling

    def generate_request(self, prompt: str, *, context: list[int] = ()) -> pb.GenerateRequest:
        """A runner request carrying these options."""
        request = pb.GenerateRequest(prompt=prompt, context=list(context), sampling=self.sampling(),
                                     stop=self.values.get("stop", []), parse_special=True,
                                     num_keep=self.values["num_keep"])
        if self.values["num_predict"] >= 0:
            request.num_predict = self.values["num_predict"]
        return request


def parse_keep_alive(value: object) -> float | None:
    """Seconds from a JSON ``keep_alive`` (§1.14); ``None`` when absent, ``FOREVER`` if negative."""
    if value is None:
        return None
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_go_duration(value)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
    else:
        raise InvalidRequestError(f"Unsupported type: '{_go_type_name(value)}'")
    return FOREVER if seconds < 0 else seconds


def _go_type_name(value: object) -> str:
    """The name Go's ``reflect.TypeOf`` gives a decoded JSON value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"
