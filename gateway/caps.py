"""Server-wide caps on what one request may make a runner allocate or generate.

``CORRAL_MAX_NUM_CTX`` bounds ``num_ctx`` (the KV cache a runner allocates) and
``CORRAL_MAX_PREDICT`` bounds ``num_predict``. A request that explicitly asks for more gets a
400 saying so; defaults that exceed a cap (a Modelfile PARAMETER, OLLAMA_CONTEXT_LENGTH, an
unlimited ``num_predict`` of -1 or -2) are lowered to it, since the caller did not ask for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.options import ModelOptions
from services.errors import InvalidRequestError


@dataclass(frozen=True)
class RequestCaps:
    """The operator's caps; 0 means no cap."""

    max_num_ctx: int = 0
    max_predict: int = 0

    def apply(self, merged: ModelOptions, requested: Mapping[str, object] | None) -> ModelOptions:
        """``merged`` within the caps; ``InvalidRequestError`` when ``requested`` (the request's
        own options) asks past one."""
        if not (self.max_num_ctx or self.max_predict):
            return merged
        asked = {k for k, v in (requested or {}).items() if v is not None}
        values = dict(merged.values)
        if self.max_num_ctx and merged.num_ctx > self.max_num_ctx:
            if "num_ctx" in asked:
                raise InvalidRequestError(
                    f"num_ctx {merged.num_ctx} exceeds this server's limit of {self.max_num_ctx} "
                    "(CORRAL_MAX_NUM_CTX)")
            values["num_ctx"] = self.max_num_ctx
        predict = int(values["num_predict"])
        if self.max_predict and (predict < 0 or predict > self.max_predict):
            if "num_predict" in asked and predict > self.max_predict:
                raise InvalidRequestError(
                    f"num_predict {predict} exceeds this server's limit of {self.max_predict} "
                    "(CORRAL_MAX_PREDICT)")
            values["num_predict"] = self.max_predict
        return ModelOptions(values, merged.explicit)
