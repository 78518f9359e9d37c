"""Declarative settings: each field names its variable, parser, default and doc exactly once.

``setting()`` builds a dataclass field whose metadata says how to read it; ``load()`` reads a
frozen settings class from an environment mapping; ``documented_variables()`` builds the
``Environment Variables:`` block of ``--help`` from the same metadata, so a default, a name or
a description cannot drift between the code and the help screen.

Like Ollama's ``envconfig.Var``, a value is trimmed of spaces and quotes and a blank one counts
as unset. A parser returns ``None`` for a value it cannot use, and the field keeps its default;
``load`` records such values in the settings' ``rejected`` field so ``main`` can warn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
Parser = Callable[[str], Any]


def setting(env: str, parse: Parser | None, default: Any = dataclasses.MISSING, doc: str = "", *,
            factory: Callable[[], Any] | None = None, shown: str | None = None,
            aliases: tuple[str, ...] = (), also: tuple[tuple[str, str], ...] = (),
            nested: type | None = None, repr: bool = True) -> Any:
    """A settings field read from ``env`` (else from the first set of ``aliases``).

    ``parse`` turns the trimmed, non-blank text into the value (``None``: unusable, keep the
    default); ``nested`` instead loads a settings dataclass of its own from the whole
    environment. ``shown`` is the default as ``--help`` prints it when printing the value itself
    would not do (a factory, a duration); ``also`` documents further variables ``nested`` reads.
    """
    metadata = {"env": env, "parse": parse, "doc": doc, "shown": shown, "aliases": aliases,
                "also": also, "nested": nested}
    if factory is not None:
        return dataclasses.field(default_factory=factory, repr=repr, metadata=metadata)
    return dataclasses.field(default=default, repr=repr, metadata=metadata)


def env_text(env: Mapping[str, str], *names: str) -> str:
    """The first of ``names`` set to something non-blank, trimmed of spaces and quotes."""
    for name in names:
        text = env.get(name, "").strip().strip("\"'")
        if text:
            return text
    return ""


def load(cls: type[T], env: Mapping[str, str]) -> T:
    """An instance of the settings dataclass ``cls`` read from ``env``."""
    values: dict[str, Any] = {}
    rejected: list[tuple[str, str]] = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "env" not in meta:
            continue
        if meta["nested"] is not None:
            values[f.name] = load(meta["nested"], env)
            continue
        text = env_text(env, meta["env"], *meta["aliases"])
        if not text:
            continue
        value = meta["parse"](text)
        if value is None:
            rejected.append((meta["env"], text))
        else:
            values[f.name] = value
    if "rejected" in {f.name for f in dataclasses.fields(cls)}:
        values["rejected"] = tuple(rejected)
    return cls(**values)


def documented_variables(settings_cls: type, *names: str) -> list[tuple[str, str]]:
    """(variable, description) pairs for ``--help`` screens, in declaration order.

    With ``names``, only those fields (in the order given); the description ends with the
    default where the field says how to show it.
    """
    by_name = {f.name: f for f in dataclasses.fields(settings_cls) if "env" in f.metadata}
    chosen = [by_name[n] for n in names] if names else list(by_name.values())
    return [pair for f in chosen for pair in ((f.metadata["env"], _described(f)),
                                              *f.metadata["also"])]


def _described(f: dataclasses.Field[Any]) -> str:
    shown = f.metadata["shown"]
    if shown is None:
        shown = shown_default(f.default)
    return f"{f.metadata['doc']} (default {shown})" if shown else f.metadata["doc"]


def shown_default(value: Any) -> str:
    """A default as ``--help`` prints it; empty (not shown) for none, a blank or a factory."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        return str(value)
    return ""


# -- parsers: text in, value out, None when the text is unusable ------------------------------

def text(value: str) -> str:
    return value


def lowercase(value: str) -> str:
    return value.lower()


def comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def integer(minimum: int) -> Parser:
    """An integer of at least ``minimum``; anything else keeps the default."""
    def parse(value: str) -> int | None:
        try:
            number = int(value)
        except ValueError:
            return None
        return number if number >= minimum else None
    return parse


def one_of(*choices: str) -> Parser:
    """One of ``choices``, case-insensitively; anything else keeps the default."""
    def parse(value: str) -> str | None:
        return value.lower() if value.lower() in choices else None
    return parse
