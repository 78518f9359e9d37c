"""Log lines reach stderr whole: one write per line, so processes sharing it never interleave."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from services.logging import LineWriter
from tests.e2e.server import ROOT

WRITER = """
import sys
from services.logging import configure_logging
import structlog, logging
configure_logging(sys.argv[1], json=True)
log = structlog.get_logger()
for i in range(int(sys.argv[2])):
    log.info("line", i=i, payload=sys.argv[1] * 20000)
    logging.getLogger("lib").warning("stdlib %s %s", i, "y" * 5000)
"""


def test_a_line_is_one_write(monkeypatch):
    writes = []
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(bytes(data)) or len(data))
    writer = LineWriter(2)
    writer.write("partial ")
    writer.write("line\nnext ")
    writer.write("x" * 100_000 + "\n")
    assert writes == [b"partial line\n", b"next " + b"x" * 100_000 + b"\n"]


def test_a_short_os_write_is_completed(monkeypatch):
    writes = []

    def short(fd, data):
        writes.append(bytes(data[:3]))
        return min(3, len(data))

    monkeypatch.setattr(os, "write", short)
    LineWriter(2).write("abcdefg\n")
    assert b"".join(writes) == b"abcdefg\n"


def test_two_processes_sharing_stderr_never_glue_lines(tmp_path):
    log_path = tmp_path / "shared.log"
    with open(log_path, "wb") as shared:
        children = [subprocess.Popen([sys.executable, "-c", WRITER, name, "150"], cwd=ROOT,
                                     stderr=shared, stdout=subprocess.DEVNULL)
                    for name in ("a", "b")]
        for child in children:
            assert child.wait(60) == 0
    lines = log_path.read_bytes().decode().splitlines()
    structured = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(structured) == 300
    assert all(r["payload"] == r["process"] * 20000 for r in structured)
    stdlib = [line for line in lines if not line.startswith("{")]
    assert len(stdlib) == 300 and all(line.endswith("y" * 5000) for line in stdlib)
