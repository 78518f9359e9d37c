"""The ``corral`` command line, at parity with ``ollama``'s: ``serve`` plus client commands.

Every client command first makes sure a server answers at OLLAMA_HOST (starting a local one in
the background when allowed, see ``autostart``). Failures print one ``Error: ...`` line to
stderr and exit with status 1; help screens and errors follow cobra's wording.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from services.api_client import ApiClient, ApiError, ServerUnreachableError
from services.cli import commands
from services.cli.autostart import client_of, connect
from services.cli.create import cmd_create
from services.cli.keys import cmd_keys
from services.cli.parser import Command, Flag, HelpRequested, Invocation, UsageError, resolve
from services.cli.run_command import cmd_run
from services.cli.store import cmd_load, cmd_rescan, cmd_save, cmd_verify
from services.errors import CorralError
from services.settings import ClientSettings, GatewaySettings, RegistrySettings, documented_variables

SHORT = "Large language model runner"


def _env(*classes: type) -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    for cls in classes:
        pairs.update(documented_variables(cls))
    return tuple(pairs.items())


CLIENT_ENV = tuple(documented_variables(ClientSettings, "host", "models_dir", "no_autostart", "api_key"))
RUN_ENV = (*documented_variables(ClientSettings, "editor"), *CLIENT_ENV,
           *documented_variables(ClientSettings, "nohistory"))
KEYS_ENV = (*CLIENT_ENV, *documented_variables(ClientSettings, "registry_address"))
INSECURE = Flag("insecure", "Use an insecure registry")


def cmd_serve(_inv: Invocation) -> int:
    import asyncio

    from services.logging import configure_logging
    from services.serve import serve

    configure_logging("serve", debug=RegistrySettings.from_env().debug)
    return asyncio.run(serve(os.environ))  # the services it starts each read their own settings


# Client commands read their settings once, here; a server they start inherits the environment.
def _keys_command(inv: Invocation) -> int:
    settings = ClientSettings.from_env()
    return cmd_keys(inv, lambda: connect(settings, os.environ), direct=settings.registry_address)


def _run_command(inv: Invocation) -> int:
    settings = ClientSettings.from_env()
    return cmd_run(inv, connect(settings, os.environ), settings)


def _client_command(handler: Callable[[Invocation, ApiClient], int]) -> Callable[[Invocation], int]:
    def run(inv: Invocation) -> int:
        return handler(inv, connect(ClientSettings.from_env(), os.environ))
    return run


COMMANDS: tuple[Command, ...] = (
    Command("serve", "Start corral", cmd_serve, aliases=("start",),
            env=_env(GatewaySettings, RegistrySettings)),
    Command("create MODEL", "Create a model", _client_command(cmd_create), args=(1, 1), env=CLIENT_ENV,
            flags=(Flag("file", 'Name of the Modelfile (default "Modelfile")', "string", "f"),
                   Flag("quantize", "Quantize model to this level (e.g. q4_K_M)", "string", "q"))),
    Command("show MODEL", "Show information for a model", _client_command(commands.cmd_show),
            args=(1, 1), env=CLIENT_ENV,
            flags=(Flag("license", "Show license of a model"),
                   Flag("modelfile", "Show Modelfile of a model"),
                   Flag("parameters", "Show parameters of a model"),
                   Flag("template", "Show template of a model"),
                   Flag("system", "Show system message of a model"),
                   Flag("verbose", "Show detailed model information", short="v"))),
    Command("run MODEL [PROMPT]", "Run a model", _run_command, args=(1, None), env=RUN_ENV,
            flags=(Flag("keepalive", "Duration to keep a model loaded (e.g. 5m)", "string"),
                   Flag("verbose", "Show timings for response"), INSECURE,
                   Flag("nowordwrap", "Don't wrap words to the next line automatically"),
                   Flag("format", "Response format (e.g. json)", "string"),
                   Flag("think", "Enable thinking mode: true/false or high/medium/low for supported models",
                        "string", optional="true"),
                   Flag("hidethinking", "Hide thinking output (if provided)"),
                   Flag("truncate", "For embedding models: truncate inputs exceeding context length "
                        "(default: true). Set --truncate=false to error instead"),
                   Flag("dimensions", "Truncate output embeddings to specified dimension "
                        "(embedding models only)", "int"))),
    Command("stop MODEL", "Stop a running model", _client_command(commands.cmd_stop), args=(1, 1),
            env=CLIENT_ENV),
    Command("pull MODEL", "Pull a model from a registry", _client_command(commands.cmd_pull),
            args=(1, 1), flags=(INSECURE,), env=CLIENT_ENV),
    Command("push MODEL", "Push a model to a registry", _client_command(commands.cmd_push),
            args=(1, 1), flags=(INSECURE,), env=CLIENT_ENV),
    Command("list", "List models", _client_command(commands.cmd_list), args=(0, None), aliases=("ls",),
            env=CLIENT_ENV),
    Command("ps", "List running models", _client_command(commands.cmd_ps), args=(0, None), env=CLIENT_ENV),
    Command("cp SOURCE DESTINATION", "Copy a model", _client_command(commands.cmd_copy), args=(2, 2),
            env=CLIENT_ENV),
    Command("rm MODEL [MODEL...]", "Remove a model", _client_command(commands.cmd_delete),
            args=(1, None), env=CLIENT_ENV),
    Command("rescan", "Index the Ollama manifest files in the model store now",
            _client_command(cmd_rescan), env=CLIENT_ENV),
    Command("verify [MODEL]", "Re-hash stored blobs and report corrupt ones",
            _client_command(cmd_verify), args=(0, 1), env=CLIENT_ENV,
            flags=(Flag("repair", "Move corrupt blobs to quarantine/ (pull their models again)"),)),
    Command("save MODEL [MODEL...]", "Save models to an OCI image layout tar",
            _client_command(cmd_save), args=(1, None), env=CLIENT_ENV,
            flags=(Flag("output", "Write the archive to this file", "string", "o"),)),
    Command("load FILE", "Load models from a tar written by 'corral save'",
            _client_command(cmd_load), args=(1, 1), env=CLIENT_ENV),
    Command("keys ACTION [NAME]", "Manage API keys: create NAME, list, revoke NAME", _keys_command,
            args=(1, 2), env=KEYS_ENV,
            flags=(Flag("scope", "Scopes of a new key: read, inference, manage, registry:pull, "
                        "registry:push, metrics, admin (repeat or comma-separate)", "strings"),
                   Flag("expires", "Expiry of a new key: a duration (90d, 12h) or an RFC 3339 time",
                        "string"),
                   Flag("rpm", "Requests per minute a new key may make (0 = unlimited)", "int"),
                   Flag("concurrency", "Generations a new key may run at once (0 = unlimited)",
                        "int"))),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        inv = resolve(COMMANDS, argv, SHORT)
        if inv is None:
            return commands.print_version(client_of(ClientSettings.from_env(), timeout=10))
        assert inv.command.handler is not None  # resolve() returns only runnable commands
        return inv.command.handler(inv)
    except HelpRequested as help_screen:
        sys.stdout.write(help_screen.text)
        return 0
    except (UsageError, ApiError, ServerUnreachableError) as exc:
        return _fail(str(exc))
    except CorralError as exc:
        return _fail(exc.message)
    except OSError as exc:
        return _fail(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    sys.stdout.flush()
    print(f"Error: {message}", file=sys.stderr)
    return 1


__all__ = ["COMMANDS", "main"]
