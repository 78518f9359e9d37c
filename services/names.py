"""Ollama's model name grammar (``types/model/name.go``).

    [ [scheme://]host "/" ] [ namespace "/" ] model [ ":" tag ]

Missing parts take the defaults ``registry.ollama.ai``, ``library`` and ``latest``. Every part
starts with an ASCII letter, digit or ``_``; hosts may also hold ``- _ . :``, namespaces ``- _``,
models and tags ``- _ .``. Casing is kept for display but names compare case-insensitively
(``ModelName.key``). Because ``/`` never appears inside a part and no part may start with ``.``,
a valid name is also safe to use as path components.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.errors import InvalidModelNameError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_FIRST = "A-Za-z0-9_"
_HOST = re.compile(rf"[{_FIRST}][{_FIRST}\-.:]{{0,349}}", re.ASCII)
_NAMESPACE = re.compile(rf"[{_FIRST}][{_FIRST}\-]{{0,79}}", re.ASCII)
_MODEL_OR_TAG = re.compile(rf"[{_FIRST}][{_FIRST}\-.]{{0,79}}", re.ASCII)


@dataclass(frozen=True)
class ModelName:
    """A fully qualified model name; build it with ``parse_name`` so it is always valid."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def full(self) -> str:
        """``host/namespace/model:tag`` in the casing it was given."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def key(self) -> str:
        """The case-insensitive identity: the lower-cased full name."""
        return self.full.lower()

    @property
    def display(self) -> str:
        """Ollama's shortest form, tag always shown: ``llama3:latest``, ``u/m:t``, ``h/ns/m:t``."""
        if self.host.lower() != DEFAULT_HOST:
            prefix = f"{self.host}/{self.namespace}/"
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = f"{self.namespace}/"
        else:
            prefix = ""
        return f"{prefix}{self.model}:{self.tag}"

    def __str__(self) -> str:
        return self.display


def parse_name(text: str) -> ModelName:
    """Parse ``text`` with Ollama's rules and defaults; raise ``InvalidModelNameError`` if invalid."""
    host, namespace, model, tag = _split(text)
    name = ModelName(host=host if host is not None else DEFAULT_HOST,
                     namespace=namespace if namespace is not None else DEFAULT_NAMESPACE,
                     model=model,
                     tag=tag if tag is not None else DEFAULT_TAG)
    if not _is_valid(name):
        raise InvalidModelNameError()
    return name


def is_valid_name(text: str) -> bool:
    """Whether ``text`` parses as a model name."""
    try:
        parse_name(text)
    except InvalidModelNameError:
        return False
    return True


def _split(text: str) -> tuple[str | None, str | None, str, str | None]:
    """Peel tag, model, namespace and host off ``text`` as ``ParseNameBare`` does.

    ``None`` means the part was absent (take the default); an empty string means a separator had
    an empty side (``model:``, ``/model``), which fails validation.
    """
    rest, tag = text, None
    if text.rfind(":") > text.rfind("/"):
        rest, _, tag = text.rpartition(":")
    rest, sep, model = rest.rpartition("/")
    if not sep:
        return None, None, model, tag
    rest, sep, namespace = rest.rpartition("/")
    if not sep:
        return None, namespace, model, tag
    scheme_rest = rest.split("://", 1)
    return scheme_rest[-1], namespace, model, tag


def _is_valid(name: ModelName) -> bool:
    return bool(_HOST.fullmatch(name.host) and _NAMESPACE.fullmatch(name.namespace)
                and _MODEL_OR_TAG.fullmatch(name.model) and _MODEL_OR_TAG.fullmatch(name.tag))
