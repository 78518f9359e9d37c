"""The runner process loads llama-cpp-python's C bindings only, not its high-level API."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import ROOT

PROBE = """
import sys
from runner.bindings import use_bindings_only
assert use_bindings_only()
import runner.process
from llama_cpp import llama_cpp
assert callable(llama_cpp.llama_decode)
heavy = sorted(m for m in ("numpy", "jinja2", "llama_cpp.llama", "llama_cpp.mtmd_cpp", "PIL")
               if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_the_runner_process_does_not_import_numpy_jinja_mtmd_or_pillow() -> None:
    """A text-only runner never loads libmtmd or Pillow: only a projector or an image does."""
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "none"


def test_an_already_imported_package_is_left_alone() -> None:
    import llama_cpp

    from runner.bindings import use_bindings_only
    assert not use_bindings_only()
    assert sys.modules["llama_cpp"] is llama_cpp


# -- the binding is pinned, and its signatures match the C library it wraps -----------------------

def _runner_llama_functions() -> set[str]:
    source = "".join(p.read_text() for p in (ROOT / "runner").glob("*.py"))
    return set(re.findall(r"llama_cpp\.(llama_[a-z0-9_]+)\(", source))


def _header() -> str:
    import llama_cpp

    site = Path(llama_cpp.__file__).resolve().parent.parent
    header = site / "include" / "llama.h"
    if not header.exists():
        pytest.skip("llama-cpp-python installed without its include/llama.h")
    text = header.read_text()
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)


def test_llama_cpp_python_is_the_version_pyproject_pins() -> None:
    pinned = re.search(r'"llama-cpp-python==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned, "llama-cpp-python must be pinned to one exact version"
    assert importlib.metadata.version("llama_cpp_python") == pinned.group(1)


def test_every_binding_the_runner_calls_matches_llama_h() -> None:
    """A release that changes a C signature (as 0.3.36 did for llama_sampler_init_penalties)
    fails here, before a request can reach the mismatched call."""
    from llama_cpp import llama_cpp

    header = _header()
    used = _runner_llama_functions()
    assert "llama_sampler_init_penalties" in used and len(used) > 30
    for name in sorted(used):
        function = getattr(llama_cpp, name)
        if isinstance(function, type):  # a ctypes type (callback, token), not a C function
            continue
        declared = re.search(rf"LLAMA_API\s[^;]*?\b{name}\s*\(([^;]*?)\)\s*;", header, re.S)
        assert declared, f"{name} is not declared in llama.h"
        params = declared.group(1).strip()
        count = 0 if params in ("", "void") else params.count(",") + 1
        assert len(function.argtypes) == count, f"{name}: binding {function.argtypes}, C ({params})"
