"""Ollama's layer over Go templates (``template/template.go``, ``thinking``, ``tools``).

``OllamaTemplate`` parses a Modelfile TEMPLATE the way Ollama does: a template that names neither
``.Messages`` nor ``.Response`` gets ``{{ .Response }}`` appended, and it runs in one of three
modes — suffix (fill-in-the-middle), messages (one execution over ``.Messages``), or legacy
(one execution per ``.System``/``.Prompt``/``.Response`` turn, the last one cut right after
``.Response`` so the prompt ends where the model continues). It also answers the questions
Ollama asks a template: which identifiers it uses (capabilities), which text surrounds
``.Thinking`` (thinking tags), and which text opens a tool call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.gotemplate import Template, TemplateError
from gateway.gotemplate import nodes as n
from gateway.gotemplate.apitypes import template_messages, template_tools

_RESPONSE = n.ActionNode(n.PipeNode([], [n.CommandNode([n.FieldNode(["Response"])])]),
                         source=".Response")


@dataclass
class Values:
    """What a prompt is rendered from (Ollama's ``template.Values``); messages are API dicts."""

    messages: Sequence[dict[str, Any]] = ()
    tools: Sequence[dict[str, Any]] = ()
    prompt: str = ""
    suffix: str = ""
    think: bool = False
    think_level: str = ""
    is_think_set: bool = False
    think_vars: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.think_vars = {"Think": self.think, "ThinkLevel": self.think_level,
                           "IsThinkSet": self.is_think_set}


class OllamaTemplate:
    """A Modelfile TEMPLATE with Ollama's execution modes and template analysis."""

    def __init__(self, source: str) -> None:
        self.template = Template(source)
        self.source = source
        self.vars = identifiers(self.template)
        if "messages" not in self.vars and "response" not in self.vars:
            self.template.root = n.ListNode([*self.template.root.nodes, _RESPONSE])

    # -- capabilities -------------------------------------------------------------------------

    @property
    def uses_tools(self) -> bool:
        return "tools" in self.vars

    @property
    def uses_suffix(self) -> bool:
        return "suffix" in self.vars

    def thinking_tags(self) -> tuple[str, str]:
        """The text around ``.Thinking`` inside ``range .Messages`` (``("", "")`` if none)."""
        return infer_thinking_tags(self.template)

    def tool_call_tag(self) -> str:
        """The text that starts a tool call in the model's output; ``{`` when it is bare JSON."""
        return tool_call_tag(self.template.root)

    # -- execution ----------------------------------------------------------------------------

    def execute(self, values: Values) -> str:
        """The prompt for ``values`` (TemplateError when the template fails)."""
        system, messages = collate(values.messages)
        if values.prompt and values.suffix:
            return self.template.execute({"Prompt": values.prompt, "Suffix": values.suffix,
                                          "Response": "", **values.think_vars})
        if "messages" in self.vars:
            return self.template.execute({
                "System": system, "Messages": template_messages(messages),
                "Tools": template_tools(values.tools), "Response": "", **values.think_vars})
        return self._legacy(messages, values)

    def _legacy(self, messages: list[dict[str, Any]], values: Values) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            out.append(self.template.execute({**turn, **values.think_vars}))
            turn.update(System="", Prompt="", Response="")

        for message in messages:
            role, content = message.get("role"), message.get("content", "")
            if role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = content
            elif role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = content
            elif role == "assistant":
                turn["Response"] = content
        last = cut_after_response(self.template.root)
        out.append(self.template.execute({**turn, **values.think_vars}, root=last))
        return "".join(out)


def collate(messages: Sequence[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """All system texts joined by blank lines, and the messages with consecutive same-role
    messages merged (tool results are never merged)."""
    system: list[str] = []
    merged: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "system":
            system.append(message.get("content", ""))
        if merged and merged[-1].get("role") == role and role != "tool":
            merged[-1] = {**merged[-1], "content": merged[-1].get("content", "") + "\n\n"
                          + message.get("content", "")}
        else:
            merged.append(dict(message))
    return "\n\n".join(system), merged


# -- tree analysis -----------------------------------------------------------------------------

def identifiers(template: Template) -> list[str]:
    """The lower-cased field and variable names the template mentions (Ollama's ``Vars``)."""
    names: set[str] = set()
    for root in [template.root, *template.defined.values()]:
        for node in root.nodes:
            names.update(name.lower() for name in _identifiers(node))
    return sorted(names)


def _identifiers(node: Any) -> Iterator[str]:
    if isinstance(node, n.ListNode):
        for child in node.nodes:
            yield from _identifiers(child)
    elif isinstance(node, n.TemplateNode):
        if node.pipe is None:
            raise TemplateError("undefined template specified")
        yield from _identifiers(node.pipe)
    elif isinstance(node, n.ActionNode):
        yield from _identifiers(node.pipe)
    elif isinstance(node, n.BranchNode):
        yield from _identifiers(node.pipe)
        yield from _identifiers(node.body)
        if node.else_list is not None:
            yield from _identifiers(node.else_list)
    elif isinstance(node, n.PipeNode):
        for cmd in node.cmds:
            for arg in cmd.args:
                yield from _identifiers(arg)
    elif isinstance(node, (n.FieldNode, n.VariableNode)):
        yield from node.idents


def cut_after_response(root: n.ListNode) -> n.ListNode:
    """A copy of the tree with everything after the first ``.Response`` field removed.

    The walk visits list items, branch bodies (not their conditions) and action arguments in
    order, like Ollama's ``deleteNode``.
    """
    cut = False

    def visit(node: Any) -> Any:
        nonlocal cut
        if cut:
            return None
        if isinstance(node, n.FieldNode) and "Response" in node.idents:
            cut = True
            return node
        if isinstance(node, n.ListNode):
            return n.ListNode([kept for child in node.nodes if (kept := visit(child)) is not None])
        if isinstance(node, n.BranchNode):
            body = visit(node.body) or n.ListNode()
            else_list = visit(node.else_list) if node.else_list is not None else None
            return dataclasses.replace(node, body=body, else_list=else_list)
        if isinstance(node, n.ActionNode):
            pipe = visit(node.pipe)
            return None if pipe is None else dataclasses.replace(node, pipe=pipe)
        if isinstance(node, n.PipeNode):
            cmds = []
            for cmd in node.cmds:
                args = [kept for arg in cmd.args if (kept := visit(arg)) is not None]
                if not args:
                    return None
                cmds.append(n.CommandNode(args))
            return dataclasses.replace(node, cmds=cmds) if cmds else None
        return node

    return visit(root) or n.ListNode()


def infer_thinking_tags(template: Template) -> tuple[str, str]:
    """Ollama's heuristic: the first and last text of the list holding ``.Thinking`` (inside a
    ``range`` over ``.Messages``) are the opening and closing tags; the last match wins."""
    tags = ["", ""]

    def visit(node: Any, ancestors: list[Any]) -> None:
        path = [*ancestors, node]
        if isinstance(node, n.FieldNode) and node.idents and node.idents[0] == "Thinking":
            _take_tags(path, tags)
        for child in _children(node):
            visit(child, path)

    visit(template.root, [])
    return tags[0], tags[1]


def _take_tags(path: list[Any], tags: list[str]) -> None:
    ranges = [a for a in path if isinstance(a, n.BranchNode) and a.kind == "range"]
    if not ranges or not _pipe_uses_field(ranges[-1].pipe, "Messages"):
        return
    lists = [a for a in path if isinstance(a, n.ListNode) and a.nodes]
    if not lists:
        return
    nodes = lists[-1].nodes
    if isinstance(nodes[0], n.TextNode):
        tags[0] = nodes[0].text.strip()
    if isinstance(nodes[-1], n.TextNode):
        tags[1] = nodes[-1].text.strip()


def _pipe_uses_field(pipe: n.PipeNode, name: str) -> bool:
    stack: list[Any] = [pipe]
    while stack:
        node = stack.pop()
        if isinstance(node, n.FieldNode) and node.idents[0] == name:
            return True
        stack.extend(_children(node))
    return False


def _children(node: Any) -> list[Any]:
    if isinstance(node, n.ListNode):
        return list(node.nodes)
    if isinstance(node, n.BranchNode):
        return [node.pipe, node.body] + ([node.else_list] if node.else_list else [])
    if isinstance(node, n.ActionNode):
        return [node.pipe]
    if isinstance(node, n.TemplateNode):
        return [node.pipe] if node.pipe else []
    if isinstance(node, n.PipeNode):
        return list(node.cmds)
    if isinstance(node, n.CommandNode):
        return list(node.args)
    return []


def tool_call_tag(root: n.ListNode) -> str:
    """The first non-blank text inside the ``if .ToolCalls`` branch, up to any ``{``."""
    branch = _find_tool_calls_branch(root.nodes)
    text = _first_text(branch.body.nodes) if branch else None
    tag = (text or "").replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


def _find_tool_calls_branch(nodes: list[Any]) -> n.BranchNode | None:
    for node in nodes:
        if isinstance(node, n.ListNode):
            found = _find_tool_calls_branch(node.nodes)
        elif isinstance(node, n.BranchNode):
            if node.kind == "if" and any(isinstance(arg, n.FieldNode) and "ToolCalls" in arg.idents
                                         for cmd in node.pipe.cmds for arg in cmd.args):
                return node
            found = _find_tool_calls_branch(node.body.nodes) or (
                _find_tool_calls_branch(node.else_list.nodes) if node.else_list else None)
        else:
            continue
        if found:
            return found
    return None


def _first_text(nodes: list[Any]) -> str | None:
    for node in nodes:
        if isinstance(node, n.TextNode):
            if node.text.strip():
                return node.text
        elif isinstance(node, n.ListNode):
            if (text := _first_text(node.nodes)) is not None:
                return text
        elif isinstance(node, n.BranchNode):
            return _first_text(node.body.nodes) or (
                _first_text(node.else_list.nodes) if node.else_list else None)
        elif isinstance(node, n.ActionNode):
            return None
    return None
