"""llama-cpp-python's C bindings, without its high-level API.

``import llama_cpp`` runs the package's ``__init__``, which imports the high-level ``Llama``
class and with it numpy and jinja2: about 85 ms and 20 MB per runner process that never uses
them. ``use_bindings_only()``, called first thing in the runner process, registers the package
without running its ``__init__``, so ``from llama_cpp import llama_cpp`` loads only the ctypes
bindings (and ``llama_cpp.llama_grammar`` only the grammar helpers). In any other process the
full package loads as usual; runner modules work with either.
"""

from __future__ import annotations

import importlib.util
import sys


def use_bindings_only() -> bool:
    """Register a bare ``llama_cpp`` package; False when it was already imported or absent."""
    if "llama_cpp" in sys.modules:
        return False
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.submodule_search_locations is None:
        return False
    sys.modules["llama_cpp"] = importlib.util.module_from_spec(spec)
    return True
