"""The parse tree of a Go template (a subset of ``text/template/parse``'s node types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass
class ListNode:
    nodes: list[Node] = field(default_factory=list)


@dataclass
class TextNode:
    text: str


# -- operands ----------------------------------------------------------------------------------

@dataclass
class FieldNode:
    """``.A.B``: fields looked up on dot."""

    idents: list[str]


@dataclass
class VariableNode:
    """``$x.A.B``: ``idents[0]`` is the variable name (``$`` is the root data)."""

    idents: list[str]


@dataclass
class DotNode:
    pass


@dataclass
class NilNode:
    pass


@dataclass
class LiteralNode:
    """A bool, number or string constant."""

    value: Any


@dataclass
class IdentifierNode:
    """A function name."""

    name: str


@dataclass
class ChainNode:
    """``(pipeline).A.B`` (or any operand followed by fields)."""

    node: Operand
    fields: list[str]


@dataclass
class CommandNode:
    args: list[Operand]


@dataclass
class PipeNode:
    """``$a, $b := cmd | cmd``; ``is_assign`` for ``=`` rather than ``:=``."""

    decl: list[str]
    cmds: list[CommandNode]
    is_assign: bool = False


# -- actions -----------------------------------------------------------------------------------

@dataclass
class ActionNode:
    pipe: PipeNode
    line: int = 0
    source: str = ""


@dataclass
class BranchNode:
    """``if``/``range``/``with``: ``else_list`` is None when there is no ``else``."""

    kind: str
    pipe: PipeNode
    body: ListNode
    else_list: ListNode | None = None
    line: int = 0
    source: str = ""


@dataclass
class TemplateNode:
    """``{{template "name" pipeline}}``."""

    name: str
    pipe: PipeNode | None
    line: int = 0


@dataclass
class BreakNode:
    line: int = 0


@dataclass
class ContinueNode:
    line: int = 0


Operand = Union[FieldNode, VariableNode, DotNode, NilNode, LiteralNode, IdentifierNode,
                ChainNode, PipeNode]
Node = Union[ListNode, TextNode, ActionNode, BranchNode, TemplateNode, BreakNode, ContinueNode]
