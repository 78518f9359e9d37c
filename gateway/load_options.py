"""The options a runner is started with (Ollama's ``api.Runner`` options besides ``num_ctx``).

``num_thread``, ``num_batch``, ``use_mmap`` and ``use_mlock`` cannot change once llama.cpp has
loaded the model, so they belong to the runner, not to the request: a request that sets one to a
value the loaded runner does not have reloads it, as a larger ``num_ctx`` does. A request that
leaves one unset (neither the request nor the Modelfile names it) is served by whatever runner is
loaded, as Ollama does for its automatic ``num_ctx``/``num_batch``/``use_mmap`` — so one client
asking for ``num_thread: 1`` does not make every other request reload the model.

``use_mlock`` is honoured as Ollama did until it dropped the option (it now ignores it): llama.cpp
still supports locking the weights in RAM, and a user who asks for it should get it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

DEFAULT_BATCH = 512


class StartedWith(Protocol):
    """The load-time values a runner was started with (``gateway.runners.RunnerSpec``, which
    imports this module: a Protocol keeps the two from importing each other)."""

    @property
    def threads(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def use_mmap(self) -> bool: ...
    @property
    def use_mlock(self) -> bool: ...


@dataclass(frozen=True)
class LoadOptions:
    """Load-time options a request asked for explicitly; ``None`` means "whatever is loaded"."""

    num_thread: int | None = None
    num_batch: int | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None

    @classmethod
    def from_options(cls, values: Mapping[str, Any], explicit: frozenset[str]) -> LoadOptions:
        """The explicit load options among merged ``values`` (0 threads or batch means auto)."""
        def pick(name: str) -> Any:
            return values.get(name) if name in explicit else None

        threads, batch = pick("num_thread"), pick("num_batch")
        return cls(num_thread=threads if threads and threads > 0 else None,
                   num_batch=batch if batch and batch > 0 else None,
                   use_mmap=pick("use_mmap"), use_mlock=pick("use_mlock"))

    def served_by(self, spec: StartedWith) -> bool:
        """Whether a runner started from ``spec`` has every value asked for."""
        return ((self.num_thread is None or self.num_thread == spec.threads)
                and (self.num_batch is None or self.num_batch == spec.batch_size)
                and (self.use_mmap is None or self.use_mmap == spec.use_mmap)
                and (self.use_mlock is None or self.use_mlock == spec.use_mlock))

    def differences(self, spec: StartedWith) -> dict[str, tuple[object, object]]:
        """``{option: (loaded, wanted)}`` for the log line of a reload."""
        pairs = {"num_thread": (spec.threads, self.num_thread),
                 "num_batch": (spec.batch_size, self.num_batch),
                 "use_mmap": (spec.use_mmap, self.use_mmap),
                 "use_mlock": (spec.use_mlock, self.use_mlock)}
        return {k: v for k, v in pairs.items() if v[1] is not None and v[0] != v[1]}


AUTO = LoadOptions()
