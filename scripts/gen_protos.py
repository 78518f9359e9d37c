"""Generate the gRPC stubs in services/pb/ from protos/ — the one command for codegen.

    python scripts/gen_protos.py          # regenerate
    python scripts/gen_protos.py --check  # exit 1 if the committed stubs are stale (CI)

protoc writes absolute imports (`from corral.runner.v1 import ...`); they are rewritten to
`services.pb.corral...` so the stubs live inside the shared kernel without touching sys.path.
The `.pyi` type stubs (messages and gRPC stubs/servicers) come from mypy-protobuf, whose
output passes `mypy --strict`; protoc's own `--pyi_out` leaves generics bare and covers no
`_pb2_grpc` module.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
TARGET = ROOT / "services" / "pb"
IMPORT = re.compile(r"^from corral\.", re.MULTILINE)


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    argv = ["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}",
            f"--grpc_python_out={out}", *_mypy_plugins(), f"--mypy_out=quiet:{out}",
            f"--mypy_grpc_out=quiet:{out}", *protos]
    if protoc.main(argv) != 0:
        raise SystemExit("protoc failed")
    for path in out.rglob("*.py*"):
        path.write_text(IMPORT.sub("from services.pb.corral.", path.read_text()))
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()


def _mypy_plugins() -> list[str]:
    """mypy-protobuf's protoc plugins, found beside this interpreter (the venv's bin/)."""
    bindir = Path(sys.executable).parent
    plugins = {"protoc-gen-mypy": bindir / "protoc-gen-mypy",
               "protoc-gen-mypy_grpc": bindir / "protoc-gen-mypy_grpc"}
    missing = [str(path) for path in plugins.values() if not path.exists()]
    if missing:
        raise SystemExit(f"mypy-protobuf is not installed (no {', '.join(missing)}): "
                         "run ./scripts/setup.sh")
    return [f"--plugin={name}={path}" for name, path in plugins.items()]


def differs(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b)
    stale = cmp.left_only + cmp.right_only + cmp.diff_files
    for sub in cmp.common_dirs:
        stale += [f"{sub}/{name}" for name in differs(a / sub, b / sub)]
    return [name for name in stale if name != "__pycache__"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if services/pb is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        if args.check:
            stale = differs(Path(tmp), TARGET) if TARGET.exists() else ["services/pb"]
            if stale:
                print("stale generated stubs:", ", ".join(stale), file=sys.stderr)
                print("run: python scripts/gen_protos.py", file=sys.stderr)
                return 1
            return 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(Path(tmp), TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
