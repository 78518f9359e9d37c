"""What ``corral run`` (``services.cli.run_command``) and its REPL share: run options, one-shot
answers on /api/generate, chat turns on /api/chat, pulling the model first if needed."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from services.api_client import ApiClient, ApiError
from services.cli.display import AnswerPrinter, print_stats
from services.cli.parser import Invocation, UsageError
from services.cli.progress import ProgressDisplay, Spinner
from services.cli_format import go_duration
from services.gocodec import go_quote
from services.settings import parse_go_duration

THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class RunOptions:
    """Everything one run session sends; the REPL's ``/set`` commands change it."""

    model: str
    prompt: str = ""
    parent_model: str = ""
    loaded_messages: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    system: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    format: str = ""
    keep_alive: str | int | None = None
    think: bool | str | None = None
    think_explicit: bool = False
    hide_thinking: bool = False
    wordwrap: bool = True
    verbose: bool = False
    insecure: bool = False
    multimodal: bool = False  # the model takes images: paths in prompts are attached
    images: list[str] = field(default_factory=list)  # base64, for the one-shot prompt

    def copy(self) -> RunOptions:
        return replace(self, loaded_messages=list(self.loaded_messages),
                       messages=list(self.messages), options=dict(self.options))


def keep_alive_value(text: str) -> str | int:
    """The ``--keepalive`` flag as Ollama's client sends it: a Go duration string, or -1."""
    seconds = parse_go_duration(text)
    return -1 if seconds < 0 else go_duration(round(seconds * 1e9))


def think_value(text: str) -> bool | str:
    if text in ("", "true"):
        return True
    if text == "false":
        return False
    if text in THINK_LEVELS:
        return text
    raise UsageError(f"invalid value for --think: {go_quote(text)} (must be true, false, high, "
                     "medium, low, or max)")


def format_value(text: str) -> Any:
    """``json`` stays a string; anything else must be a JSON schema (sent as an object)."""
    if not text or text == "json":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def request_fields(opts: RunOptions) -> dict[str, Any]:
    """The optional request fields shared by generate and chat."""
    body: dict[str, Any] = {}
    if opts.format:
        body["format"] = format_value(opts.format)
    if opts.options:
        body["options"] = opts.options
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    if opts.think is not None:
        body["think"] = opts.think
    return body


def pull_model(client: ApiClient, name: str, insecure: bool = False) -> None:
    """POST /api/pull with progress bars on stderr."""
    with ProgressDisplay(verb="pulling", pull_labels=True) as display:
        for obj in client.stream("/api/pull", {"model": name, "insecure": insecure}):
            display.update(obj)


def show_or_pull(client: ApiClient, name: str, insecure: bool = False) -> dict[str, Any]:
    """The model's /api/show answer, pulling it first when the server does not have it."""
    try:
        info: dict[str, Any] = client.request("POST", "/api/show", {"model": name})
        return info
    except ApiError as exc:
        if exc.status != 404:
            raise
    pull_model(client, name, insecure)
    info = client.request("POST", "/api/show", {"model": name})
    return info


def infer_think(info: dict[str, Any], opts: RunOptions) -> bool | str | None:
    """Explicit choice wins; otherwise thinking models think and others leave it unset."""
    if opts.think_explicit:
        return opts.think
    return True if "thinking" in (info.get("capabilities") or []) else None


def apply_show(opts: RunOptions, info: dict[str, Any]) -> None:
    opts.parent_model = (info.get("details") or {}).get("parent_model", "")
    opts.loaded_messages = list(info.get("messages") or [])
    opts.multimodal = "vision" in (info.get("capabilities") or [])


def load_or_unload(client: ApiClient, opts: RunOptions) -> None:
    """Load the model (or unload it with keep_alive 0) via an empty /api/generate."""
    spinner = Spinner()
    try:
        client.request("POST", "/api/show", {"model": opts.model})
        body: dict[str, Any] = {"model": opts.model}
        if opts.keep_alive is not None:
            body["keep_alive"] = opts.keep_alive
        if opts.think is not None:
            body["think"] = opts.think
        for _ in client.stream("/api/generate", body):
            pass
    finally:
        spinner.stop()


def _pieces(obj: dict[str, Any]) -> tuple[str, str, list[Any] | None]:
    """(content, thinking, tool calls) of one generate or chat chunk."""
    if "message" in obj:
        message = obj["message"] or {}
        return message.get("content") or "", message.get("thinking") or "", message.get("tool_calls")
    return obj.get("response") or "", obj.get("thinking") or "", obj.get("tool_calls")


def stream_answer(client: ApiClient, path: str, body: dict[str, Any], opts: RunOptions,
                  ) -> tuple[AnswerPrinter, dict[str, Any]] | None:
    """Stream one answer to stdout; None when Ctrl-C cancelled it (the connection is closed,
    which stops the generation on the server)."""
    printer = AnswerPrinter(wrap=opts.wordwrap, hide_thinking=opts.hide_thinking)
    spinner = Spinner()
    latest: dict[str, Any] = {}
    try:
        for obj in client.stream(path, body):
            content, thinking, tool_calls = _pieces(obj)
            if content or not opts.hide_thinking:
                spinner.stop()
            printer.add(content, thinking, tool_calls)
            latest = obj
    except KeyboardInterrupt:
        spinner.stop()
        sys.stdout.write("\n")
        sys.stdout.flush()
        return None
    finally:
        spinner.stop()
    return printer, latest


def generate_once(client: ApiClient, opts: RunOptions) -> int:
    """One-shot /api/generate: the answer, then a blank line, then stats with --verbose."""
    body = {"model": opts.model, "prompt": opts.prompt, **request_fields(opts)}
    if opts.images:
        body["images"] = opts.images
    if opts.system:
        body["system"] = opts.system
    result = stream_answer(client, "/api/generate", body, opts)
    if result is None:
        return 0
    _printer, latest = result
    if opts.prompt:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if latest.get("done") and opts.verbose:
        print_stats(latest)
    return 0


def chat_once(client: ApiClient, opts: RunOptions) -> dict[str, Any] | None:
    """One /api/chat turn over the session's messages; the assistant message, or None if cancelled."""
    body = {"model": opts.model, "messages": opts.messages, **request_fields(opts)}
    result = stream_answer(client, "/api/chat", body, opts)
    if result is None:
        return None
    printer, latest = result
    if opts.messages:
        sys.stdout.write("\n\n")
        sys.stdout.flush()
    if opts.verbose:
        print_stats(latest)
    role = (latest.get("message") or {}).get("role") or "assistant"
    message = {"role": role, "content": printer.content}
    if printer.thinking:
        message["thinking"] = printer.thinking
    return message


def embed_once(client: ApiClient, opts: RunOptions, inv: Invocation) -> int:
    if not opts.prompt:
        raise UsageError("embedding models require input text. "
                         f'Usage: corral run {opts.model} "your text here"')
    body: dict[str, Any] = {"model": opts.model, "input": opts.prompt}
    if opts.keep_alive is not None:
        body["keep_alive"] = opts.keep_alive
    if "truncate" in inv.changed:
        body["truncate"] = inv.flags["truncate"]
    if inv.flags["dimensions"] > 0:
        body["dimensions"] = inv.flags["dimensions"]
    embeddings = client.request("POST", "/api/embed", body).get("embeddings") or []
    if not embeddings:
        raise ApiError("no embeddings returned")
    print(json.dumps(embeddings[0], separators=(",", ":")))
    return 0


def options_from_flags(inv: Invocation) -> RunOptions:
    flags = inv.flags
    opts = RunOptions(model=inv.args[0], format=flags["format"], hide_thinking=flags["hidethinking"],
                      wordwrap=not flags["nowordwrap"], verbose=flags["verbose"],
                      insecure=flags["insecure"])
    if "think" in inv.changed:
        opts.think, opts.think_explicit = think_value(flags["think"]), True
    if flags["keepalive"]:
        try:
            opts.keep_alive = keep_alive_value(flags["keepalive"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return opts
