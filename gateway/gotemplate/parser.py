"""Parsing lexed pieces into a tree, with Go's parse-time checks.

Checked here as Go does: unknown functions (``function "x" not defined``), undefined variables,
``{{break}}``/``{{continue}}`` outside ``range``, unbalanced ``end``/``else``, and empty
pipelines. ``{{else if ...}}`` (and ``{{else with ...}}``) nest a branch in the else list that
shares the outer ``{{end}}``, exactly like Go's parser.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.gotemplate import nodes as n
from gateway.gotemplate.errors import TemplateError
from gateway.gotemplate.lexer import Action, Text, Token, lex

_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue"}
_CONSTANTS = {"true": True, "false": False}


class Parser:
    """Turns template source into a root ``ListNode`` plus named (``define``d) templates."""

    def __init__(self, source: str, functions: Collection[str]) -> None:
        self.pieces = lex(source)
        self.index = 0
        self.functions = functions
        self.defined: dict[str, n.ListNode] = {}
        self.scopes: list[list[str]] = [["$"]]
        self.range_depth = 0

    def parse(self) -> n.ListNode:
        root, stop = self._list()
        if stop is not None:
            raise self._error(stop, f"unexpected {{{{{stop.tokens[0].value}}}}}")
        return root

    # -- lists and control structures ---------------------------------------------------------

    def _list(self) -> tuple[n.ListNode, Action | None]:
        """Nodes up to an ``end``/``else`` action (returned) or the end of input (None)."""
        out = n.ListNode()
        while self.index < len(self.pieces):
            piece = self.pieces[self.index]
            self.index += 1
            if isinstance(piece, Text):
                out.nodes.append(n.TextNode(piece.text))
                continue
            if not piece.tokens:
                raise self._error(piece, "missing value for command")
            first = piece.tokens[0]
            if first.kind == "ident" and first.value in ("end", "else"):
                return out, piece
            node = self._action(piece)
            if node is not None:
                out.nodes.append(node)
        return out, None

    def _action(self, action: Action) -> n.Node | None:
        first = action.tokens[0]
        keyword = first.value if first.kind == "ident" and first.value in _KEYWORDS else None
        if keyword in ("if", "range", "with"):
            return self._branch(keyword, action, action.tokens[1:])
        if keyword in ("break", "continue"):
            if self.range_depth == 0:
                raise self._error(action, f"{{{{{keyword}}}}} outside {{{{range}}}}")
            if len(action.tokens) > 1:
                extra = action.tokens[1].text
                raise self._error(action, f"unexpected {extra} in {{{{{keyword}}}}}")
            return n.BreakNode(action.line) if keyword == "break" else n.ContinueNode(action.line)
        if keyword == "define":
            self._define(action)
            return None
        if keyword in ("template", "block"):
            return self._template(keyword, action)
        pipe = self._pipeline(action, action.tokens, "command")
        return n.ActionNode(pipe, action.line, action.source)

    def _branch(self, kind: str, action: Action, tokens: list[Token]) -> n.BranchNode:
        self.scopes.append([])
        try:
            pipe = self._pipeline(action, tokens, kind)
            self.range_depth += kind == "range"
            try:
                body, stop = self._list()
            finally:
                self.range_depth -= kind == "range"
            node = n.BranchNode(kind, pipe, body, None, action.line, action.source)
            if stop is None:
                raise self._error(action, f"unexpected EOF in {kind}")
            if stop.tokens[0].value == "else":
                node.else_list = self._else(kind, stop)
            elif len(stop.tokens) > 1:
                raise self._error(stop, f"unexpected {stop.tokens[1].text} in end")
            return node
        finally:
            self.scopes.pop()

    def _else(self, kind: str, action: Action) -> n.ListNode:
        rest = action.tokens[1:]
        if rest:
            chained = rest[0].value if rest[0].kind == "ident" else None
            if chained in ("if", "with") and (chained == kind or kind != "range"):
                # {{else if x}} == {{else}}{{if x}}...{{end}}: the nested branch eats the end
                return n.ListNode([self._branch(chained, action, rest[1:])])
            raise self._error(action, f"unexpected {rest[0].text} in else")
        body, stop = self._list()
        if stop is None or stop.tokens[0].value != "end":
            raise self._error(action, f"expected end; found {stop.source if stop else 'EOF'}")
        return body

    def _define(self, action: Action) -> None:
        name = self._template_name(action, "define")
        if len(action.tokens) > 2:
            raise self._error(action, "unexpected tokens in define clause")
        self.defined[name] = self._template_body(action, "define")

    def _template_body(self, action: Action, keyword: str) -> n.ListNode:
        """The body of a define/block, parsed in a fresh variable scope up to its ``end``."""
        saved, self.scopes = self.scopes, [["$"]]
        try:
            body, stop = self._list()
        finally:
            self.scopes = saved
        if stop is None or stop.tokens[0].value != "end":
            raise self._error(action, f"unexpected EOF in {keyword}")
        return body

    def _template(self, keyword: str, action: Action) -> n.TemplateNode:
        name = self._template_name(action, keyword)
        rest = action.tokens[2:]
        pipe = self._pipeline(action, rest, keyword) if rest else None
        if keyword == "block":
            self.defined[name] = self._template_body(action, "block")
        return n.TemplateNode(name, pipe, action.line)

    def _template_name(self, action: Action, keyword: str) -> str:
        tokens = action.tokens
        if len(tokens) < 2 or tokens[1].kind != "string":
            raise self._error(action, f"unexpected name in {keyword} clause")
        return str(tokens[1].value)

    # -- pipelines ----------------------------------------------------------------------------

    def _pipeline(self, action: Action, tokens: list[Token], context: str) -> n.PipeNode:
        decl, tokens, is_assign = self._declarations(action, tokens, context)
        if not tokens:
            raise self._error(action, f"missing value for {context}")
        cmds = [self._command(action, part) for part in _split_pipes(action, tokens, self)]
        for name in decl if not is_assign else ():
            self.scopes[-1].append(name)
        return n.PipeNode(decl, cmds, is_assign)

    def _declarations(self, action: Action, tokens: list[Token],
                      context: str) -> tuple[list[str], list[Token], bool]:
        """Split ``$x :=`` / ``$x =`` / ``$i, $e :=`` (range only) off the front."""
        def plain_var(i: int) -> bool:
            return i < len(tokens) and tokens[i].kind == "var" and len(tokens[i].value) == 1

        if plain_var(0) and len(tokens) > 1 and tokens[1].kind in (":=", "="):
            name, is_assign = tokens[0].value[0], tokens[1].kind == "="
            if is_assign:
                self._check_variable(action, name)
            return [name], tokens[2:], is_assign
        if plain_var(0) and len(tokens) > 3 and tokens[1].kind == "," and plain_var(2) \
                and tokens[3].kind in (":=", "="):
            if context != "range":
                raise self._error(action, f"too many declarations in {context}")
            names = [tokens[0].value[0], tokens[2].value[0]]
            return names, tokens[4:], tokens[3].kind == "="
        return [], tokens, False

    def _command(self, action: Action, tokens: list[Token]) -> n.CommandNode:
        args: list[n.Operand] = []
        i = 0
        while i < len(tokens):
            operand, i = self._operand(action, tokens, i)
            args.append(operand)
        if not args:
            raise self._error(action, "missing value for command")
        return n.CommandNode(args)

    def _operand(self, action: Action, tokens: list[Token], i: int) -> tuple[n.Operand, int]:
        token = tokens[i]
        kind = token.kind
        if kind == "(":
            close = _matching_paren(tokens, i)
            inner = tokens[i + 1:close]
            if not inner:
                raise self._error(action, "missing value for parenthesized pipeline")
            node: n.Operand = self._pipeline(action, inner, "parenthesized pipeline")
            i = close + 1
        elif kind == "field":
            node, i = n.FieldNode(list(token.value)), i + 1
        elif kind == "var":
            self._check_variable(action, token.value[0])
            node, i = n.VariableNode(list(token.value)), i + 1
        elif kind == "dot":
            node, i = n.DotNode(), i + 1
        elif kind in ("string", "number"):
            node, i = n.LiteralNode(token.value), i + 1
        elif kind == "ident":
            node, i = self._identifier(action, token), i + 1
        else:
            raise self._error(action, f"unexpected {token.text!r} in operand")
        fields: list[str] = []
        while i < len(tokens) and tokens[i].kind == "field" and not tokens[i].spaced:
            fields += tokens[i].value
            i += 1
        if fields:
            if isinstance(node, (n.LiteralNode, n.NilNode)) or (
                    isinstance(node, n.IdentifierNode)):
                raise self._error(action, f"unexpected . after term {token.text!r}")
            node = n.ChainNode(node, fields)
        return node, i

    def _identifier(self, action: Action, token: Token) -> n.Operand:
        name = token.value
        if name in _CONSTANTS:
            return n.LiteralNode(_CONSTANTS[name])
        if name == "nil":
            return n.NilNode()
        if name in _KEYWORDS:
            raise self._error(action, f"unexpected <{name}> in command")
        if name not in self.functions:
            raise self._error(action, f'function "{name}" not defined')
        return n.IdentifierNode(name)

    def _check_variable(self, action: Action, name: str) -> None:
        if not any(name in scope for scope in self.scopes):
            raise self._error(action, f'undefined variable "{name}"')

    def _error(self, action: Action, message: str) -> TemplateError:
        return TemplateError(f"template: :{action.line}: {message}")


def _matching_paren(tokens: list[Token], start: int) -> int:
    depth = 0
    for i in range(start, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[i].kind, 0)
        if depth == 0:
            return i
    raise TemplateError("template: unclosed left paren")


def _split_pipes(action: Action, tokens: list[Token], parser: Parser) -> list[list[Token]]:
    """The commands of a pipeline: split at top-level ``|``."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        depth += {"(": 1, ")": -1}.get(token.kind, 0)
        if token.kind == "|" and depth == 0:
            parts.append([])
        elif token.kind in (":=", "=", ",") and depth == 0:
            raise parser._error(action, f"unexpected {token.text!r} in command")
        else:
            parts[-1].append(token)
    if any(not part for part in parts):
        raise parser._error(action, "missing command in pipeline")
    return parts
