"""A small Dockerfile reader for the structural checks: stages, instructions, resolved ARGs."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """The file's instructions, continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    result = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
    return result


def global_args(parsed: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones FROM lines may use)."""
    found = {}
    for inst in parsed:
        if inst.keyword == "FROM":
            break
        if inst.keyword == "ARG":
            name, _, default = inst.args.partition("=")
            found[name] = default.strip('"')
    return found


def stages(path: Path) -> list[Stage]:
    """The build stages in order, with ``FROM ${ARG}`` resolved from the global ARG defaults."""
    parsed = instructions(path.read_text())
    args = global_args(parsed)
    result: list[Stage] = []
    for inst in parsed:
        if inst.keyword == "FROM":
            words = [w for w in inst.args.split() if not w.startswith("--")]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            result.append(Stage(image, name))
        elif result:
            result[-1].instructions.append(inst)
    return result


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list, or the shell words of a shell-form one."""
    args = args.strip()
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)
