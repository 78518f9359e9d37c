"""llama.cpp's ``llama-server`` and ``llama-batched-bench``, built once from the llama.cpp sources
vendored in the llama-cpp-python sdist of the installed version, so both sides of every comparison
run the same llama.cpp revision. Everything lives under ``bench/.cache`` (gitignored).
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
TARGETS = ("llama-server", "llama-batched-bench")
# Same CPU flags as llama-cpp-python's own source build (native, OpenMP); static so the binaries
# need nothing from the build tree; no network at build time (no curl, no prebuilt web UI).
CMAKE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF",
               "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_UI=OFF",
               "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_TESTS=OFF",
               "-DLLAMA_BUILD_EXAMPLES=OFF")


def llama_cpp_python_version() -> str:
    return importlib.metadata.version("llama-cpp-python")


def source_dir(version: str) -> Path:
    """The vendored llama.cpp tree of the sdist, downloaded and unpacked on first use."""
    root = CACHE / "src" / f"llama_cpp_python-{version}"
    llama = root / "vendor" / "llama.cpp"
    if (llama / "CMakeLists.txt").is_file():
        return llama
    tarball = CACHE / "src" / f"llama_cpp_python-{version}.tar.gz"
    if not tarball.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                        "--no-deps", f"llama-cpp-python=={version}", "-d", str(tarball.parent)],
                       check=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(tarball.parent, filter="data")
    return llama


def binaries(version: str | None = None, jobs: int = 2, log=print) -> dict[str, Path]:
    """Paths of the two tools, building them first if they are not cached (minutes on 2 cores)."""
    version = version or llama_cpp_python_version()
    build = CACHE / f"build-{version}"
    paths = {name: build / "bin" / name for name in TARGETS}
    if all(p.is_file() for p in paths.values()):
        return paths
    src = source_dir(version)
    log(f"building {', '.join(TARGETS)} from llama.cpp in llama-cpp-python {version} sdist "
        f"(-j{jobs}; log: {build}.log) ...")
    with open(f"{build}.log", "ab") as out:
        subprocess.run(["cmake", "-S", str(src), "-B", str(build), *CMAKE_FLAGS],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
        subprocess.run(["cmake", "--build", str(build), f"-j{jobs}", "--target", *TARGETS],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
    return paths


def llama_cpp_commit(version: str | None = None) -> str:
    """The llama.cpp commit the sdist was cut from, as CMake's build-info recorded it, or ``?``."""
    build = CACHE / f"build-{version or llama_cpp_python_version()}"
    for path in (build / "common" / "build-info.cpp", build / "CMakeCache.txt"):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        match = re.search(r'LLAMA_COMMIT\s*=\s*"([0-9a-f]{7,40})"', text)
        if match:
            return match.group(1)
    log = Path(f"{build}.log")
    if log.is_file():
        match = re.search(r"ggml commit:\s*([0-9a-f]{7,40})", log.read_text(errors="replace"))
        if match:
            return match.group(1)
    return "?"
