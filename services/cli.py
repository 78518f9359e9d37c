"""The ``corral`` command line: ``serve`` plus client commands that talk to OLLAMA_HOST."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from services import cli_format
from services.api_client import ApiClient, ApiError, ServerUnreachableError
from services.logging import configure_logging
from services.settings import GatewaySettings, RegistrySettings, documented_variables, parse_ollama_host


def _client() -> ApiClient:
    return ApiClient(parse_ollama_host(os.environ.get("OLLAMA_HOST")))


def cmd_serve(_args: argparse.Namespace) -> int:
    from services.serve import serve

    configure_logging("serve", debug=RegistrySettings.from_env().debug)
    return asyncio.run(serve(os.environ))


def cmd_list(_args: argparse.Namespace) -> int:
    models = _client().request("GET", "/api/tags")["models"]
    rows = [[m["name"], m["digest"][:12], cli_format.human_bytes(m["size"]),
             cli_format.human_time_ago(m["modified_at"])] for m in models]
    print(cli_format.table(["NAME", "ID", "SIZE", "MODIFIED"], rows))
    return 0


def cmd_ps(_args: argparse.Namespace) -> int:
    models = _client().request("GET", "/api/ps")["models"]
    rows = [[m["name"], m["digest"][:12], cli_format.human_bytes(m["size"]), "100% CPU",
             str(m.get("context_length", "")), cli_format.human_until(m["expires_at"])]
            for m in models]
    print(cli_format.table(["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"], rows))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    prompt = " ".join(args.prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped}\n\n{prompt}" if prompt and piped else piped or prompt
    if not prompt:
        return _chat_loop(args)
    body = {"model": args.model, "prompt": prompt, **_run_options(args)}
    final = {}
    for obj in _client().stream("/api/generate", body):
        sys.stdout.write(obj.get("response", ""))
        sys.stdout.flush()
        final = obj
    sys.stdout.write("\n")
    if args.verbose:
        _print_stats(final)
    return 0


def _run_options(args: argparse.Namespace) -> dict:
    body: dict = {}
    if args.format:
        body["format"] = args.format
    if args.keepalive:
        body["keep_alive"] = args.keepalive
    return body


def _chat_loop(args: argparse.Namespace) -> int:
    """A minimal interactive chat; the full REPL (prompt-toolkit, slash commands) is its own work."""
    messages: list[dict] = []
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print()
            return 0
        if line.strip() in ("/bye", "/exit"):
            return 0
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        reply = ""
        for obj in _client().stream("/api/chat", {"model": args.model, "messages": messages,
                                                   **_run_options(args)}):
            piece = obj.get("message", {}).get("content", "")
            reply += piece
            sys.stdout.write(piece)
            sys.stdout.flush()
        print("\n")
        messages.append({"role": "assistant", "content": reply})


def _print_stats(final: dict) -> None:
    def rate(count: int, ns: int) -> str:
        return f"{count / ns * 1e9:.2f} tokens/s" if ns else "n/a"

    ns = 1e9
    lines = [
        f"total duration:       {final.get('total_duration', 0) / ns:.6f}s",
        f"load duration:        {final.get('load_duration', 0) / ns:.6f}s",
        f"prompt eval count:    {final.get('prompt_eval_count', 0)} token(s)",
        f"prompt eval duration: {final.get('prompt_eval_duration', 0) / ns:.6f}s",
        f"prompt eval rate:     {rate(final.get('prompt_eval_count', 0), final.get('prompt_eval_duration', 0))}",
        f"eval count:           {final.get('eval_count', 0)} token(s)",
        f"eval duration:        {final.get('eval_duration', 0) / ns:.6f}s",
        f"eval rate:            {rate(final.get('eval_count', 0), final.get('eval_duration', 0))}",
    ]
    print("\n".join(lines), file=sys.stderr)


def _env_epilog(*settings_classes: type) -> str:
    pairs = dict(p for cls in settings_classes for p in documented_variables(cls))
    return "Environment Variables:\n" + "\n".join(f"      {k:<27}   {v}" for k, v in pairs.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral", description="Large language model runner")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", aliases=["start"], help="Start corral",
                           epilog=_env_epilog(GatewaySettings, RegistrySettings),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.set_defaults(func=cmd_serve)
    run = sub.add_parser("run", help="Run a model")
    run.add_argument("model")
    run.add_argument("prompt", nargs="*")
    run.add_argument("--verbose", action="store_true", help="Show timings for response")
    run.add_argument("--format", help='Response format (e.g. json)')
    run.add_argument("--keepalive", help="Duration to keep a model loaded (e.g. 5m)")
    run.set_defaults(func=cmd_run)
    sub.add_parser("list", aliases=["ls"], help="List models").set_defaults(func=cmd_list)
    sub.add_parser("ps", help="List running models").set_defaults(func=cmd_ps)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ApiError, ServerUnreachableError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
