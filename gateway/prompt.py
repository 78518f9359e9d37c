"""Prompt assembly: Ollama's message list, rendered with the model's GGUF Jinja chat template.

Ollama renders its Go ``TEMPLATE``; Corral renders ``tokenizer.chat_template`` as llama.cpp and
Hugging Face do (sandboxed Jinja, ``trim_blocks``/``lstrip_blocks``, ``add_generation_prompt``).
A Modelfile Go template without a chat template is only approximated for now: the message
contents are concatenated (a full Go-template renderer is a later issue).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from services.errors import InvalidRequestError

Message = dict[str, Any]


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False,
            separators: Any = None, sort_keys: bool = False) -> str:
    # Hugging Face's tojson: plain json.dumps, without Jinja's HTML escaping of <>&'.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return dt.datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=16)
def compile_template(source: str) -> jinja2.Template:
    """A compiled chat template; cached because every request of a model uses the same one."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    return env.from_string(source)


def render_chat_template(source: str, messages: Sequence[Message], *, bos_token: str = "",
                         eos_token: str = "", add_generation_prompt: bool = True) -> str:
    """Render ``messages`` with a Jinja chat template; template failures are the request's 400."""
    try:
        return compile_template(source).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt,
            bos_token=bos_token, eos_token=eos_token)
    except jinja2.TemplateError as exc:
        raise InvalidRequestError(f"chat template: {exc}") from exc


def model_messages(model: Any) -> list[Message]:
    """The Modelfile MESSAGE history of a resolved model."""
    return [{"role": m.role, "content": m.content} for m in model.messages]


def chat_messages(model: Any, messages: Sequence[Message]) -> list[Message]:
    """Request messages behind the model's MESSAGE history, with its SYSTEM when none is given."""
    history = model_messages(model) + list(messages)
    if model.system and (not messages or messages[0].get("role") != "system"):
        history.insert(0, {"role": "system", "content": model.system})
    return history


def generate_messages(model: Any, prompt: str, *, system: str | None,
                      with_history: bool) -> list[Message]:
    """[system (request's, else model's)] + [MESSAGE history, unless continuing] + [user(prompt)]."""
    system = model.system if system is None else system
    head = [{"role": "system", "content": system}] if system else []
    history = model_messages(model) if with_history else []
    return head + history + [{"role": "user", "content": prompt}]


def render(model: Any, messages: Sequence[Message]) -> str:
    """The prompt text for ``messages`` as this model expects it."""
    if model.chat_template:
        return render_chat_template(model.chat_template, messages, bos_token=model.bos_token,
                                    eos_token=model.eos_token)
    return _concatenate(m.get("content", "") for m in messages)


def _concatenate(contents: Iterable[str]) -> str:
    return "\n\n".join(c for c in contents if c)
