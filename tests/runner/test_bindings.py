"""The runner process loads llama-cpp-python's C bindings only, not its high-level API."""

import subprocess
import sys

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
