"""Executing a parsed template against data, with Go's semantics.

Variables live on one stack (``$`` is the data); a control structure pops what it declared when it
ends, a ``range`` iteration pops what its body declared. Field access on a map never fails (a
missing key is nil, i.e. ``missingkey=zero``), on a struct an unknown field is an error, on nil
it is Go's ``nil pointer evaluating`` error. ``and``/``or`` short-circuit (Go >= 1.18).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from gateway.gotemplate import nodes as n
from gateway.gotemplate.errors import TemplateError
from gateway.gotemplate.funcs import FUNCTIONS, FuncError
from gateway.gotemplate.values import GoStruct, map_key_order, sprint_value, truth, type_name

_MISSING = object()
MAX_DEPTH = 200  # nested {{template}} calls; Go allows 100000, Python's stack does not


class _Break(Exception):  # noqa: N818 - control flow for {{break}}, not an error
    pass


class _Continue(Exception):  # noqa: N818 - control flow for {{continue}}
    pass


# A template that repeats a big value ({{ .Prompt }}{{ .Prompt }}...) could otherwise build a
# prompt far past any context window (and gRPC's message limit) before anything measured it.
MAX_OUTPUT_CHARS = 256 * 1024 * 1024


class _ExecError(Exception):
    """An execution failure not yet tagged with its position."""


class Executor:
    """One execution: the output buffer, the variable stack and the current position."""

    def __init__(self, defined: dict[str, n.ListNode], name: str = "") -> None:
        self.defined = defined
        self.name = name
        self.out: list[str] = []
        self.size = 0
        self.vars: list[tuple[str, Any]] = []
        self.depth = 0
        self.at: tuple[int, str] = (0, "")

    def run(self, root: n.ListNode, data: Any) -> str:
        self.vars = [("$", data)]
        try:
            self.walk(data, root)
        except _ExecError as exc:
            line, source = self.at
            raise TemplateError(
                f'template: {self.name}:{line}: executing "{self.name}" at <{source}>: {exc}'
            ) from None
        return "".join(self.out)

    # -- statements ---------------------------------------------------------------------------

    def emit(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT_CHARS:
            raise _ExecError(f"the output is over {MAX_OUTPUT_CHARS} characters")
        self.out.append(text)

    def walk(self, dot: Any, node: n.Node) -> None:
        if isinstance(node, n.TextNode):
            self.emit(node.text)
        elif isinstance(node, n.ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, n.ActionNode):
            self.at = (node.line, node.source)
            value = self.pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.emit(sprint_value(value))
        elif isinstance(node, n.BranchNode):
            self.branch(dot, node)
        elif isinstance(node, n.TemplateNode):
            self.template(dot, node)
        elif isinstance(node, n.BreakNode):
            raise _Break
        elif isinstance(node, n.ContinueNode):
            raise _Continue

    def branch(self, dot: Any, node: n.BranchNode) -> None:
        mark = len(self.vars)
        try:
            self.at = (node.line, node.source)
            value = self.pipeline(dot, node.pipe)
            if node.kind == "range":
                self.range(dot, node, value)
            elif truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: n.BranchNode, value: Any) -> None:
        items = self._iteration(node, value)
        if not items:
            if node.else_list is not None:
                self.walk(dot, node.else_list)
            return
        decl = node.pipe.decl
        for key, elem in items:
            if decl and node.pipe.is_assign:
                self.set_var(decl[0], key if len(decl) > 1 else elem)
                if len(decl) > 1:
                    self.set_var(decl[1], elem)
            elif decl:
                self.vars[-1] = (self.vars[-1][0], elem)
                if len(decl) > 1:
                    self.vars[-2] = (self.vars[-2][0], key)
            mark = len(self.vars)
            try:
                self.walk(elem, node.body)
            except _Break:
                break
            except _Continue:
                continue
            finally:
                del self.vars[mark:]

    def _iteration(self, node: n.BranchNode, value: Any) -> list[tuple[Any, Any]]:
        if value is None:
            return []
        if isinstance(value, dict):
            return sorted(value.items(), key=lambda kv: map_key_order(kv[0]))
        if isinstance(value, (list, tuple)):
            return list(enumerate(value))
        if isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                raise _ExecError(f"can't use {value} to iterate over more than one variable")
            return [(i, i) for i in range(value)]
        raise _ExecError(f"range can't iterate over {sprint_value(value, top=False)}")

    def template(self, dot: Any, node: n.TemplateNode) -> None:
        self.at = (node.line, f'template "{node.name}"')
        body = self.defined.get(node.name)
        if body is None:
            raise _ExecError(f'no such template "{node.name}"')
        value = self.pipeline(dot, node.pipe) if node.pipe else None
        if self.depth >= MAX_DEPTH:
            raise _ExecError(f"exceeded maximum template depth ({MAX_DEPTH})")
        saved, self.vars = self.vars, [("$", value)]
        self.depth += 1
        try:
            self.walk(value, body)
        finally:
            self.vars = saved
            self.depth -= 1

    # -- expressions --------------------------------------------------------------------------

    def pipeline(self, dot: Any, pipe: n.PipeNode) -> Any:
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def command(self, dot: Any, cmd: n.CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, n.IdentifierNode):
            return self.call(dot, first.name, cmd.args[1:], final)
        if len(cmd.args) > 1 or final is not _MISSING:
            if isinstance(first, (n.FieldNode, n.ChainNode)) or (
                    isinstance(first, n.VariableNode) and len(first.idents) > 1):
                name = (first.fields if isinstance(first, n.ChainNode) else first.idents)[-1]
                raise _ExecError(f"{name} has arguments but cannot be invoked as function")
            raise _ExecError("can't give argument to non-function")
        if isinstance(first, n.NilNode):
            raise _ExecError("nil is not a command")
        return self.operand(dot, first)

    def operand(self, dot: Any, node: n.Operand) -> Any:
        if isinstance(node, n.FieldNode):
            return self.fields(dot, node.idents)
        if isinstance(node, n.VariableNode):
            return self.fields(self.var(node.idents[0]), node.idents[1:])
        if isinstance(node, n.ChainNode):
            return self.fields(self.operand(dot, node.node), node.fields)
        if isinstance(node, n.DotNode):
            return dot
        if isinstance(node, n.LiteralNode):
            return node.value
        if isinstance(node, n.PipeNode):
            return self.pipeline(dot, node)
        if isinstance(node, n.IdentifierNode):
            return self.call(dot, node.name, [], _MISSING)
        return None  # NilNode as an argument

    def fields(self, value: Any, names: list[str]) -> Any:
        for name in names:
            value = self.field(value, name)
        return value

    @staticmethod
    def field(value: Any, name: str) -> Any:
        if isinstance(value, GoStruct):
            if name not in value.fields:
                raise _ExecError(f"can't evaluate field {name} in type {value.type_name}")
            return value.fields[name]
        if isinstance(value, dict):
            return value.get(name)
        if value is None:
            raise _ExecError(f"nil pointer evaluating interface {{}}.{name}")
        raise _ExecError(f"can't evaluate field {name} in type {type_name(value)}")

    def call(self, dot: Any, name: str, arg_nodes: list[n.Operand], final: Any) -> Any:
        if name in ("and", "or"):
            return self._logic(dot, name, arg_nodes, final)
        fn = FUNCTIONS[name]
        args = [self.operand(dot, a) for a in arg_nodes]
        if final is not _MISSING:
            args.append(final)
        try:
            inspect.signature(fn).bind(*args)
        except TypeError:
            raise _ExecError(f"wrong number of args for {name}: got {len(args)}") from None
        try:
            return fn(*args)
        except FuncError as exc:
            raise _ExecError(f"error calling {name}: {exc}") from None

    def _logic(self, dot: Any, name: str, arg_nodes: list[n.Operand], final: Any) -> Any:
        thunks: list[Callable[[], Any]] = [functools.partial(self.operand, dot, a)
                                           for a in arg_nodes]
        if final is not _MISSING:
            thunks.append(lambda: final)
        if not thunks:
            raise _ExecError(f"wrong number of args for {name}: want at least 1 got 0")
        value = None
        for thunk in thunks:
            value = thunk()
            if truth(value) != (name == "and"):
                return value
        return value

    # -- variables ----------------------------------------------------------------------------

    def var(self, name: str) -> Any:
        for var_name, value in reversed(self.vars):
            if var_name == name:
                return value
        raise _ExecError(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise _ExecError(f"undefined variable: {name}")
