"""A Go ``text/template`` engine: the language Ollama's Modelfile ``TEMPLATE`` is written in.

Supported: text and actions with ``{{-``/``-}}`` trimming, comments, fields, ``$`` and variables
(``:=``, ``=``, two-variable ``range``), ``if``/``else if``/``else``, ``range`` (with ``else``,
``break``, ``continue``, over slices, maps in key order and ints), ``with``/``else with``,
``define``/``template``/``block``, pipelines, parenthesised calls, every Go literal but complex
numbers, Go truthiness, and the functions in ``funcs.FUNCTIONS`` plus ``and``/``or``.
Not supported: methods on values and the ``call``/``js`` functions (a parse error names them).

    tmpl = Template("{{ range .Messages }}{{ .Role }}: {{ .Content }}\\n{{ end }}")
    tmpl.execute({"Messages": [{"Role": "user", "Content": "hi"}]})
"""

from __future__ import annotations

from typing import Any

from gateway.gotemplate import nodes
from gateway.gotemplate.errors import TemplateError
from gateway.gotemplate.executor import Executor
from gateway.gotemplate.funcs import NAMES
from gateway.gotemplate.parser import Parser
from gateway.gotemplate.values import GoMap, GoSlice, GoStruct, PropertyType, marshal

__all__ = ["GoMap", "GoSlice", "GoStruct", "PropertyType", "Template", "TemplateError",
           "marshal", "nodes"]


class Template:
    """A parsed template; ``execute`` may be called any number of times (it keeps no state)."""

    def __init__(self, source: str, *, name: str = "") -> None:
        parser = Parser(source, NAMES)
        self.source = source
        self.name = name
        self.root = parser.parse()
        self.defined = parser.defined

    def execute(self, data: Any, root: nodes.ListNode | None = None) -> str:
        """Render with ``data`` as dot and ``$``; ``root`` replaces the tree (Ollama's cuts)."""
        return Executor(self.defined, self.name).run(root or self.root, data)

    def __repr__(self) -> str:
        return f"Template({self.source[:40]!r}...)"
