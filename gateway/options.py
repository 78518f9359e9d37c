"""Ollama's model options (``api.Options``) merged for one request, and ``keep_alive`` parsing.

Precedence: built-in defaults < the model's Modelfile PARAMETERs < the request's ``options``.
The option table and its JSON decoder are ``services.options_table`` (shared with the registry
and the CLI): unknown and deprecated keys and ``null`` values are ignored, as Ollama's
``Options.FromMap`` does.

Deviation: a value of the wrong type is a 400 (``InvalidRequestError``) here, where Ollama answers
500 with the same message; it is the client's mistake, and we are honest about errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from gateway.load_options import LoadOptions
from services.errors import InvalidRequestError
from services.gocodec import go_type_name
from services.options_table import DEFAULTS, coerce_api_options
from services.pb.corral.runner.v1 import runner_pb2 as pb
from services.settings import FOREVER, MAX_DURATION_S, parse_go_duration

_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty",
                    "repeat_last_n", "presence_penalty", "frequency_penalty")


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decode_options(raw: Mapping[str, object] | None) -> dict[str, object]:
    """Known, current, non-null options from a JSON object, type-checked (400 on a bad type)."""
    return coerce_api_options(dict(raw or {}))


@dataclass(frozen=True)
class ModelOptions:
    """The merged options of one request; ``explicit`` names those the Modelfile or the request
    set (the rest are defaults)."""

    values: Mapping[str, Any]
    explicit: frozenset[str] = frozenset()

    @classmethod
    def merge(cls, parameters: Mapping[str, object] | None, request: Mapping[str, object] | None,
              *, num_ctx: int) -> ModelOptions:
        """defaults < Modelfile ``parameters`` < request ``options``."""
        from_model, from_request = decode_options(parameters), decode_options(request)
        return cls({**DEFAULTS, "num_ctx": num_ctx, **from_model, **from_request},
                   frozenset(from_model) | frozenset(from_request))

    def load_options(self) -> LoadOptions:
        """The runner options this request asks for (``num_thread``, ``num_batch``, ...)."""
        return LoadOptions.from_options(self.values, self.explicit)

    @property
    def num_ctx(self) -> int:
        return max(4, int(self.values["num_ctx"]))

    @property
    def num_keep(self) -> int:
        return int(self.values["num_keep"])

    def sampling(self) -> pb.SamplingOptions:
        sampling = pb.SamplingOptions(**{f: self.values[f] for f in _SAMPLING_FIELDS})
        if self.values["seed"] != -1:  # -1 (the default) means "random": leave unset
            sampling.seed = self.values["seed"]  # the runner takes it mod 2**32
        return sampling

    def generate_request(self, prompt: str, *, context: Sequence[int] = (), json_schema: str = "",
                         logprobs: bool = False, top_logprobs: int = 0,
                         shift: bool = True) -> pb.GenerateRequest:
        """A runner request carrying these options (``json_schema`` constrains the output)."""
        request = pb.GenerateRequest(prompt=prompt, context=list(context), sampling=self.sampling(),
                                     stop=self.values.get("stop") or [], parse_special=True,
                                     num_keep=self.values["num_keep"], json_schema=json_schema,
                                     logprobs=logprobs, top_logprobs=top_logprobs, shift=shift)
        if self.values["num_predict"] >= 0:  # unlimited: the runner stops when the slot is full
            request.num_predict = self.values["num_predict"]
        return request


def parse_keep_alive(value: object) -> float | None:
    """Seconds from a JSON ``keep_alive`` (§1.14); ``None`` when absent, ``FOREVER`` if negative.

    Ollama decodes it into a Go ``time.Duration`` (int64 nanoseconds): a string beyond that
    range is Go's ``time: invalid duration`` and a number beyond it is a 400 here too (Go's
    float-to-int conversion would make it garbage), so no value can overflow a timer later.
    """
    if value is None:
        return None
    if _is_number(value):
        seconds = float(value)
        if seconds > MAX_DURATION_S:
            raise InvalidRequestError(
                f"keep_alive {value} is out of range: a duration is at most "
                "2562047h47m16.854775807s (a negative keep_alive keeps the model loaded forever)")
    elif isinstance(value, str):
        try:
            seconds = parse_go_duration(value)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
    else:
        raise InvalidRequestError(f"Unsupported type: '{go_type_name(value)}'")
    return FOREVER if seconds < 0 else seconds

