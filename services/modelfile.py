"""Modelfile reading and writing with Ollama's exact lexing rules (``parser/parser.go``).

Grammar, per Ollama HEAD: one instruction per line — ``FROM``, ``PARAMETER <name> <value>``,
``TEMPLATE``, ``SYSTEM``, ``ADAPTER``, ``LICENSE``, ``MESSAGE <role> <text>``, ``DRAFT``,
``RENDERER``, ``PARSER``, ``REQUIRES`` (keywords case-insensitive). ``#`` opens a comment
only where an instruction could start. A value runs to the end of its line and is trimmed,
unless wrapped in ``"`` or ``\"\"\"``, which may span lines and keep inner whitespace; there are
no escapes. Characters Go does not count as printable are dropped outside that whitespace.

``parse_modelfile`` then applies the checks Ollama's client makes before ``/api/create``:
a FROM must exist, parameters must be known and well-typed, ``REQUIRES`` must be semver.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.errors import InvalidRequestError
from services.gocodec import go_value_text
from services.options_table import deprecation_warning, is_deprecated, parse_parameter

INSTRUCTIONS = ("from", "license", "template", "system", "adapter", "draft", "renderer",
                "parser", "parameter", "message", "requires")
ROLES = ("system", "user", "assistant")
DEFAULT_TEMPLATE = "{{ .Prompt }}"

_INVALID_COMMAND = "command must be one of " + ", ".join(
    f'"{name}"' for name in INSTRUCTIONS[:-1]) + f', or "{INSTRUCTIONS[-1]}"'
_INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
_SPACES, _NEWLINES = " \t", "\r\n"
_KEY_RE = re.compile(r"[A-Za-z0-9_]*")
_SEMVER_IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER_RE = re.compile(
    r"v(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)"
    rf"(?:-{_SEMVER_IDENT}(?:\.{_SEMVER_IDENT})*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?")


@dataclass(frozen=True)
class Command:
    """One instruction. ``name`` is the lower-case keyword; ``key`` is the parameter name
    (PARAMETER) or role (MESSAGE) and empty otherwise; ``args`` is the unquoted value."""

    name: str
    args: str
    key: str = ""


@dataclass(frozen=True)
class Modelfile:
    """An ordered, immutable list of commands with Ollama's create-time views over it."""

    commands: tuple[Command, ...] = ()

    def _all(self, name: str) -> tuple[str, ...]:
        return tuple(c.args for c in self.commands if c.name == name)

    def _last(self, name: str) -> str | None:
        values = self._all(name)
        return values[-1] if values else None

    @property
    def froms(self) -> tuple[str, ...]:
        """Every FROM argument in order (model names or paths)."""
        return self._all("from")

    @property
    def from_(self) -> str | None:
        """The last FROM argument: the one Ollama sends as ``from`` when it is not a path."""
        return self._last("from")

    @property
    def template(self) -> str | None:
        return self._last("template")

    @property
    def system(self) -> str | None:
        return self._last("system")

    @property
    def adapters(self) -> tuple[str, ...]:
        return self._all("adapter")

    @property
    def licenses(self) -> tuple[str, ...]:
        return self._all("license")

    @property
    def draft(self) -> str | None:
        return self._last("draft")

    @property
    def renderer(self) -> str | None:
        return self._last("renderer")

    @property
    def parser(self) -> str | None:
        return self._last("parser")

    @property
    def requires(self) -> str | None:
        """The REQUIRES version without its optional leading ``v`` (the CLI sends it on create)."""
        value = self._last("requires")
        return value.removeprefix("v") if value is not None else None

    @property
    def messages(self) -> list[tuple[str, str]]:
        return [(c.key, c.args) for c in self.commands if c.name == "message"]

    @property
    def parameters(self) -> dict[str, Any]:
        """Typed parameters, last value winning; ``stop`` accumulates; deprecated ones skipped.

        Raises InvalidRequestError for an unknown name or a badly typed value.
        """
        params: dict[str, Any] = {}
        for cmd in self.commands:
            if cmd.name != "parameter" or is_deprecated(cmd.key):
                continue
            value = parse_parameter(cmd.key, cmd.args)
            if isinstance(value, list):
                params[cmd.key] = params.get(cmd.key, []) + value
            else:
                params[cmd.key] = value
        return params

    @property
    def warnings(self) -> list[str]:
        """The deprecation warnings Ollama's client prints for this file, in order."""
        return [deprecation_warning(c.key) for c in self.commands
                if c.name == "parameter" and is_deprecated(c.key)]

    def to_text(self) -> str:
        """Serialize like Ollama's ``Modelfile.String`` (one line per command).

        The output is byte-identical to Ollama's whenever Ollama's own quoting reads back
        unchanged; otherwise another quoting that does is chosen, so
        ``parse_modelfile(m.to_text()) == m`` holds for every representable value.
        Raises ValueError for a value no quoting can carry (e.g. unprintable characters).
        """
        return "".join(render_command(cmd, strict=True) + "\n" for cmd in self.commands)


def parse_modelfile(text: str | bytes, *, validate: bool = True) -> Modelfile:
    """Parse Modelfile text (bytes may be UTF-8 or BOM-marked UTF-16).

    Raises InvalidRequestError with Ollama's messages: ``(line N): command must be one of
    ...``, ``(line N): message role must be one of ...``, ``unexpected EOF[: partial]``,
    ``no FROM line``; then, unless ``validate`` is False (Ollama's bare ``ParseFile``), the
    client-side checks in command order: ``unknown parameter 'K'``, ``invalid int value [x]``
    (etc.), ``requires must be a valid semver (e.g. 0.14.0)``.
    """
    modelfile = Modelfile(tuple(_Lexer(_decode(text)).run()))
    if not modelfile.froms:
        raise InvalidRequestError("no FROM line")
    for cmd in modelfile.commands if validate else ():
        _validate(cmd)
    return modelfile


def _decode(text: str | bytes) -> str:
    if isinstance(text, str):
        return text.removeprefix("\ufeff")
    if text.startswith((b"\xff\xfe", b"\xfe\xff")):
        return text.decode("utf-16", errors="replace")
    return text.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _validate(cmd: Command) -> None:
    if cmd.name == "parameter" and not is_deprecated(cmd.key):
        parse_parameter(cmd.key, cmd.args)
    elif cmd.name == "requires" and not _SEMVER_RE.fullmatch("v" + cmd.args.removeprefix("v")):
        raise InvalidRequestError("requires must be a valid semver (e.g. 0.14.0)")


def _unquote(text: str) -> tuple[str, bool]:
    """Strip one ``\"\"\"`` or ``"`` pair; False when an opening quote is not closed yet."""
    if text.startswith('"""'):
        return (text[3:-3], True) if len(text) >= 6 and text.endswith('"""') else ("", False)
    if text.startswith('"'):
        return (text[1:-1], True) if len(text) >= 2 and text.endswith('"') else ("", False)
    return text, True


class _Lexer:
    """A single pass over the text that reproduces Go's rune-by-rune state machine."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1
        self.commands: list[Command] = []

    def _next(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        char = self.text[self.pos]
        self.pos += 1
        if char in _NEWLINES:
            self.line += 1  # counted before the character is judged, as Go does
        return char

    def _fail(self, message: str) -> InvalidRequestError:
        return InvalidRequestError(f"(line {self.line}): {message}")

    def run(self) -> list[Command]:
        while (char := self._next()) is not None:
            if char == "#":
                self._skip_comment()
            elif char not in _SPACES and char not in _NEWLINES:
                self._instruction(char)
        return self.commands

    def _skip_comment(self) -> None:
        while (char := self._next()) is not None and char not in _NEWLINES:
            pass

    def _instruction(self, first: str) -> None:
        # The first character is not checked for letters; the whole word is validated later.
        word = first if first.isprintable() else ""
        while (char := self._next()) is not None and char.isascii() and char.isalpha():
            word += char
        if char is None:
            raise InvalidRequestError("unexpected EOF")
        if char not in _SPACES or word.lower() not in INSTRUCTIONS:
            raise self._fail(_INVALID_COMMAND)
        name, key = word.lower(), ""
        if name == "parameter":
            key = self._token(lambda c: c.isascii() and (c.isalnum() or c == "_"))
        elif name == "message":
            key = self._token(lambda c: c.isascii() and c.isalpha())
            if key not in ROLES:
                raise self._fail(_INVALID_ROLE)
        self.commands.append(Command(name, self.read_value(), key))

    def _token(self, allowed: Callable[[str], bool]) -> str:
        token = ""
        while (char := self._next()) is not None and allowed(char):
            token += char
        if char is None:
            raise InvalidRequestError("unexpected EOF")
        if char not in _SPACES:
            raise InvalidRequestError(f"unexpected EOF: {token}")
        return token

    def read_value(self) -> str:
        """Read a value; it ends at the first line break where the trimmed text so far
        is complete (unquoted, or with its closing quote)."""
        buffer: list[str] = []
        first: int | None = None  # index of the first character that is not white space
        while (char := self._next()) is not None:
            if char in _NEWLINES:
                if _complete(buffer, first):
                    return _unquote("".join(buffer).strip(_SPACES + _NEWLINES))[0]
                buffer.append(char)
            elif char in _SPACES or char.isprintable():
                if first is None and char not in _SPACES:
                    first = len(buffer)
                buffer.append(char)
        value, done = _unquote("".join(buffer).strip(_SPACES + _NEWLINES))
        if not done:
            raise InvalidRequestError("unexpected EOF")
        return value


def _complete(buffer: list[str], first: int | None) -> bool:
    """``_unquote(trimmed buffer)[1]`` without joining the buffer at every line break (a long
    multi-line value would make that quadratic)."""
    if first is None:
        return True
    last = len(buffer) - 1
    while buffer[last] in _SPACES or buffer[last] in _NEWLINES:
        last -= 1
    head = "".join(buffer[first:min(first + 3, last + 1)])
    length = last - first + 1
    if head.startswith('"""'):
        return length >= 6 and "".join(buffer[last - 2:last + 1]) == '"""'
    if head.startswith('"'):
        return length >= 2 and buffer[last] == '"'
    return True


def ollama_quote(value: str) -> str:
    """Ollama's ``quote``: wrap only values with a newline or an edge space."""
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        return f'"""{value}"""' if '"' in value else f'"{value}"'
    return value


def _reads_back(written: str, value: str) -> bool:
    if _plainly_reads_back(written, value):
        return True
    lexer = _Lexer(written + "\n")
    try:
        return lexer.read_value() == value and lexer.pos == len(lexer.text)
    except InvalidRequestError:
        return False


def _plainly_reads_back(written: str, value: str) -> bool:
    """The common cases, decided without running the lexer over a possibly huge value: printable
    text (tabs and line feeds allowed) written bare on one line without edge white space and
    not starting with a quote, or in ``"..."`` without a quote inside."""
    if "\r" in value or not value.replace("\t", " ").replace("\n", " ").isprintable():
        return False
    if written == value:
        return ("\n" not in value and value == value.strip(_SPACES) and value != ""
                and not value.startswith('"'))
    return written == f'"{value}"' and '"' not in value


def quote_value(value: str, *, raw: bool = False, strict: bool = False) -> str:
    """The text to write after a keyword so that it reads back as ``value``.

    Ollama's form comes first (``raw`` means FROM, which Ollama never quotes); if that
    would read back differently, ``"..."`` then ``\"\"\"...\"\"\"`` are tried. With nothing
    lossless, ``strict`` raises ValueError and otherwise Ollama's form is returned.
    """
    preferred = value if raw else ollama_quote(value)
    for candidate in (preferred, f'"{value}"', f'"""{value}"""'):
        if _reads_back(candidate, value):
            return candidate
    if strict:
        raise ValueError(f"value cannot be written to a Modelfile losslessly: {value!r}")
    return preferred


def render_command(cmd: Command, *, strict: bool = False) -> str:
    """One Modelfile line (without its newline) for ``cmd``, per Ollama's ``Command.String``."""
    if strict:
        _check_renderable(cmd)
    if cmd.name == "from":
        return "FROM " + quote_value(cmd.args, raw=True, strict=strict)
    text = quote_value(cmd.args, strict=strict)
    if cmd.name in ("parameter", "message"):
        return f"{cmd.name.upper()} {cmd.key} {text}"
    return f"{cmd.name.upper()} {text}"


def _check_renderable(cmd: Command) -> None:
    if cmd.name not in INSTRUCTIONS:
        raise ValueError(f"unknown Modelfile instruction {cmd.name!r}")
    if cmd.name == "parameter" and not _KEY_RE.fullmatch(cmd.key):
        raise ValueError(f"parameter name {cmd.key!r} cannot be written to a Modelfile")
    if cmd.name == "message" and cmd.key not in ROLES:
        raise ValueError(f"message role {cmd.key!r} cannot be written to a Modelfile")


def show_modelfile(*, display_name: str, model_path: str, template: str | None = DEFAULT_TEMPLATE,
                   system: str = "", adapters: Iterable[str] = (), projectors: Iterable[str] = (),
                   draft: str = "", renderer: str = "", parser: str = "",
                   parameters: Mapping[str, Any] | None = None, licenses: Iterable[str] = (),
                   messages: Iterable[Any] = (), safetensors: bool = False) -> str:
    """The ``ollama show --modelfile`` text (also ``/api/show``'s ``modelfile``).

    Order follows Ollama HEAD: FROM blob, ADAPTERs, DRAFT, projector FROMs, TEMPLATE (unless
    None), SYSTEM, RENDERER, PARSER, PARAMETERs (list values one line each, numbers as Go's
    ``%v`` of a float64), LICENSEs, MESSAGEs. ``messages`` holds ``(role, content)`` pairs
    or ``{"role", "content"}`` mappings. ``safetensors`` selects Ollama's MLX form: the
    blob FROM becomes ``FROM <display_name>`` and the hint lines are left out.
    """
    cmds = [Command("from", display_name if safetensors else model_path)]
    cmds += [Command("adapter", path) for path in adapters]
    cmds += [Command("draft", draft)] if draft else []
    cmds += [Command("from", path) for path in projectors]
    cmds += [Command("template", template)] if template is not None else []
    for name, value in (("system", system), ("renderer", renderer), ("parser", parser)):
        cmds += [Command(name, value)] if value else []
    cmds += _parameter_commands(parameters or {})
    cmds += [Command("license", text) for text in licenses]
    cmds += [Command("message", content, role) for role, content in map(_role_content, messages)]
    header = '# Modelfile generated by "ollama show"\n'
    if not safetensors:
        header += ("# To build a new Modelfile based on this, replace FROM with:\n"
                   f"# FROM {display_name}\n\n")
    return header + "".join(render_command(cmd) + "\n" for cmd in cmds)


def _parameter_commands(parameters: Mapping[str, Any]) -> list[Command]:
    commands = []
    for name, value in parameters.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        commands += [Command("parameter", go_value_text(item), name) for item in values]
    return commands


def _role_content(message: Any) -> tuple[str, str]:
    if isinstance(message, Mapping):
        return message.get("role", ""), message.get("content", "")
    role, content = message
    return role, content
