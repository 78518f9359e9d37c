"""Lexing Go ``text/template`` source into text pieces and tokenized actions.

Delimiters are ``{{``/``}}``. ``{{- `` trims the whitespace before the action and `` -}}`` the
whitespace after it (the dash must be separated from the action by a space, tab or newline, as in
Go). ``{{/* ... */}}`` is a comment. Inside an action the tokens are fields (``.A.B``), variables
(``$x.A``), identifiers, string/raw-string/char/number literals, ``( ) | , := =``. Each token
records whether whitespace preceded it, which the parser needs to tell ``(x).F`` from ``(x) .F``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.gotemplate.errors import TemplateError

SPACE = " \t\r\n"
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*\.?[0-9a-fA-F_]*(?:[pP][+-]?[0-9_]+)?"
    r"|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?)i?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELDS = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_VARIABLE = re.compile(r"\$[A-Za-z0-9_]*")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True)
class Token:
    kind: str  # field dot var ident string number char ( ) | , := =
    value: Any  # by kind: list[str] for field/var, str for ident/string, a number, or the text
    spaced: bool  # whitespace came right before it
    text: str


@dataclass
class Text:
    text: str
    line: int


@dataclass
class Action:
    tokens: list[Token]
    line: int
    source: str = ""


def lex(source: str) -> list[Text | Action]:
    """Split ``source`` into text pieces and actions, applying trim markers."""
    pieces: list[Text | Action] = []
    pos, trim_next = 0, False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(SPACE)
        if start < 0:
            _add_text(pieces, text, source, pos)
            return pieces
        inner = start + 2
        if source.startswith("-", inner) and inner + 1 < len(source) and source[inner + 1] in SPACE:
            text = text.rstrip(SPACE)
            inner += 2
        _add_text(pieces, text, source, pos)
        line = source.count("\n", 0, start) + 1
        end, trim_next, action = _lex_action(source, inner, line)
        if action is not None:
            pieces.append(action)
        pos = end


def _add_text(pieces: list[Text | Action], text: str, source: str, pos: int) -> None:
    if text:
        pieces.append(Text(text, source.count("\n", 0, pos) + 1))


def _lex_action(source: str, pos: int, line: int) -> tuple[int, bool, Action | None]:
    """Tokens from ``pos`` to the closing delimiter: (end position, right trim, action|None)."""
    if source.startswith("/*", pos):
        return _lex_comment(source, pos, line)
    lexer = _ActionLexer(source, pos, line)
    tokens, end, trim = lexer.run()
    return end, trim, Action(tokens, line, source[pos:end].strip())


def _lex_comment(source: str, pos: int, line: int) -> tuple[int, bool, None]:
    close = source.find("*/", pos + 2)
    if close < 0:
        raise TemplateError(f"template: :{line}: unclosed comment")
    after = close + 2
    if source.startswith("}}", after):
        return after + 2, False, None
    if after < len(source) and source[after] in SPACE and source.startswith("-}}", after + 1):
        return after + 4, True, None
    raise TemplateError(f"template: :{line}: comment ends before closing delimiter")


class _ActionLexer:
    """Scans one action's tokens; stops at ``}}`` or `` -}}``."""

    def __init__(self, source: str, pos: int, line: int) -> None:
        self.src, self.pos, self.line = source, pos, line
        self.tokens: list[Token] = []
        self.depth = 0

    def run(self) -> tuple[list[Token], int, bool]:
        src = self.src
        while True:
            spaced = False
            while self.pos < len(src) and src[self.pos] in SPACE:
                self.pos += 1
                spaced = True
            if self.pos >= len(src):
                raise TemplateError(f"template: :{self.line}: unclosed action")
            if spaced and src.startswith("-}}", self.pos):
                return self._close(self.pos + 3, True)
            if src.startswith("}}", self.pos):
                return self._close(self.pos + 2, False)
            self._token(spaced)

    def _close(self, end: int, trim: bool) -> tuple[list[Token], int, bool]:
        if self.depth > 0:
            raise TemplateError(f"template: :{self.line}: unclosed left paren")
        return self.tokens, end, trim

    def _emit(self, kind: str, value: object, spaced: bool, end: int) -> None:
        self.tokens.append(Token(kind, value, spaced, self.src[self.pos:end]))
        self.pos = end

    def _token(self, spaced: bool) -> None:
        src, pos = self.src, self.pos
        char = src[pos]
        if char in "()|,":
            self.depth += {"(": 1, ")": -1}.get(char, 0)
            if self.depth < 0:
                raise TemplateError(f"template: :{self.line}: unexpected right paren")
            self._emit(char, char, spaced, pos + 1)
        elif src.startswith(":=", pos):
            self._emit(":=", ":=", spaced, pos + 2)
        elif char == "=":
            self._emit("=", "=", spaced, pos + 1)
        elif char == '"':
            end = _string_end(src, pos, '"', self.line)
            self._emit("string", unquote(src[pos + 1:end - 1], self.line), spaced, end)
        elif char == "`":
            end = src.find("`", pos + 1)
            if end < 0:
                raise TemplateError(f"template: :{self.line}: unterminated raw quoted string")
            self._emit("string", src[pos + 1:end], spaced, end + 1)
        elif char == "'":
            end = _string_end(src, pos, "'", self.line)
            value = unquote(src[pos + 1:end - 1], self.line)
            if len(value) != 1:
                raise TemplateError(f"template: :{self.line}: malformed character constant")
            self._emit("number", ord(value), spaced, end)
        elif char == "$":
            match = _VARIABLE.match(src, pos)
            assert match is not None, "_VARIABLE matches any $"
            fields = _FIELDS.match(src, match.end())
            names = [match.group()] + (fields.group()[1:].split(".") if fields else [])
            self._emit("var", names, spaced, fields.end() if fields else match.end())
        elif char == "." and (fields := _FIELDS.match(src, pos)):
            self._emit("field", fields.group()[1:].split("."), spaced, fields.end())
        elif char == "." and not (pos + 1 < len(src) and src[pos + 1].isdigit()):
            self._emit("dot", ".", spaced, pos + 1)
        elif char.isdigit() or char in "+-.":
            self._number(spaced)
        elif match := _IDENT.match(src, pos):
            self._emit("ident", match.group(), spaced, match.end())
        else:
            raise TemplateError(f"template: :{self.line}: unexpected {char!r} in command")

    def _number(self, spaced: bool) -> None:
        match = _NUMBER.match(self.src, self.pos)
        text = match.group() if match else ""
        if not text or not any(c.isdigit() for c in text):
            char = self.src[self.pos]
            raise TemplateError(f"template: :{self.line}: bad number syntax: {char!r}")
        assert match is not None  # text is not empty
        self._emit("number", parse_number(text, self.line), spaced, match.end())


def _string_end(src: str, pos: int, quote: str, line: int) -> int:
    i = pos + 1
    while i < len(src):
        if src[i] == "\\":
            i += 2
            continue
        if src[i] == quote:
            return i + 1
        if src[i] == "\n":
            break
        i += 1
    raise TemplateError(f"template: :{line}: unterminated quoted string")


def parse_number(text: str, line: int) -> int | float:
    """A Go numeric literal (no imaginary numbers); ints stay ints."""
    if text.endswith("i"):
        raise TemplateError(f"template: :{line}: complex numbers are not supported: {text}")
    plain = text.replace("_", "")
    sign = -1 if plain.startswith("-") else 1
    body = plain.lstrip("+-")
    try:
        if body[:2].lower() == "0x" and any(c in body.lower() for c in ".p"):
            return sign * float.fromhex(body)
        if body[:2].lower() in ("0x", "0b", "0o"):
            return sign * int(body, 0)
        if re.fullmatch(r"0[0-7]+", body):
            return sign * int(body, 8)
        if re.fullmatch(r"[0-9]+", body):
            return sign * int(body)
        return sign * float(body)
    except ValueError:
        raise TemplateError(f"template: :{line}: bad number syntax: {text!r}") from None


def unquote(body: str, line: int) -> str:
    """Decode the escapes of a Go interpreted string literal body."""
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        esc = body[i + 1:i + 2]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise TemplateError(f"template: :{line}: invalid syntax in string escape")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc.isdigit():
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise TemplateError(f"template: :{line}: invalid syntax in string escape")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise TemplateError(f"template: :{line}: invalid syntax in string escape")
    return "".join(out)
