"""``corral run``: one shot when there is a prompt or no terminal, else the REPL (``repl.py``)."""

from __future__ import annotations

import sys

from services.api_client import ApiClient
from services.cli.images import attach_images
from services.cli.parser import Invocation
from services.cli.run import (apply_show, embed_once, generate_once, infer_think, load_or_unload,
                              options_from_flags, show_or_pull)
from services.settings import ClientSettings


def cmd_run(inv: Invocation, client: ApiClient, settings: ClientSettings | None = None) -> int:
    """Ollama's RunHandler: piped stdin is prepended to the prompt words; a prompt or a
    non-terminal means one shot, otherwise load the model and start the REPL."""
    opts = options_from_flags(inv)
    prompts = list(inv.args[1:])
    interactive = True
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped:
            prompts.insert(0, piped)
        interactive = False
    opts.prompt = " ".join(prompts)
    if prompts or not sys.stdout.isatty():
        interactive = False
    info = show_or_pull(client, opts.model, opts.insecure)
    opts.think = infer_think(info, opts)
    apply_show(opts, info)
    if "embedding" in (info.get("capabilities") or []):
        return embed_once(client, opts, inv)
    if not interactive:
        if opts.multimodal:
            opts.prompt, opts.images = attach_images(opts.prompt)
        return generate_once(client, opts)
    load_or_unload(client, opts)
    from services.cli.repl import Repl  # prompt_toolkit loads only for an interactive run

    return Repl(client, opts, info, settings=settings).run()
