"""A small cobra/pflag look-alike: command specs, flag parsing and help screens as Ollama prints them.

argparse cannot reproduce cobra's layout, its error texts (``accepts 1 arg(s), received 0``,
``unknown flag: --x``) or pflag's optional flag values (``--think`` alone means ``true``),
so the few rules needed are written out here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.gocodec import go_quote

PROG = "corral"


class UsageError(Exception):
    """Bad command line; printed as ``Error: <message>`` with exit status 1."""


class HelpRequested(Exception):  # noqa: N818 - a control-flow signal, not an error
    """``-h``/``--help``/``help``: carries the help text to print."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class Flag:
    """One pflag flag. ``kind`` is bool, string, int or strings (pflag's StringSlice: repeated
    and comma-separated values accumulate); ``optional`` is pflag's NoOptDefVal."""

    name: str
    usage: str
    kind: str = "bool"
    short: str = ""
    optional: str | None = None

    @property
    def default(self) -> Any:
        return {"bool": False, "string": "", "int": 0, "strings": []}[self.kind]

    def usage_prefix(self) -> str:
        line = f"  -{self.short}, --{self.name}" if self.short else f"      --{self.name}"
        if self.kind != "bool":
            line += f" {self.kind}"
        if self.optional is not None:
            line += f'[="{self.optional}"]'
        return line


@dataclass(frozen=True)
class Command:
    """A subcommand: ``use`` is cobra's Use line (``run MODEL [PROMPT]``)."""

    use: str
    short: str
    handler: Callable[[Invocation], int] | None = None
    args: tuple[int, int | None] = (0, 0)
    flags: tuple[Flag, ...] = ()
    aliases: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    hidden: bool = False

    @property
    def name(self) -> str:
        return self.use.split()[0]

    def all_flags(self) -> tuple[Flag, ...]:
        return (*self.flags, Flag("help", f"help for {self.name}", short="h"))


@dataclass
class Invocation:
    """A parsed command line."""

    command: Command
    args: list[str]
    flags: dict[str, Any] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)


def _find_flag(flags: Sequence[Flag], name: str = "", short: str = "") -> Flag | None:
    for flag in flags:
        if (name and flag.name == name) or (short and flag.short == short):
            return flag
    return None


def _convert(flag: Flag, value: str, spelled: str) -> Any:
    if flag.kind == "string":
        return value
    if flag.kind == "strings":
        return [part for part in value.split(",") if part]
    if flag.kind == "int":
        try:
            return int(value, 0)
        except ValueError:
            raise UsageError(_invalid_argument(value, spelled, "ParseInt")) from None
    truth = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
    if value not in truth:
        raise UsageError(_invalid_argument(value, spelled, "ParseBool"))
    return truth[value]


def _invalid_argument(value: str, spelled: str, parser: str) -> str:
    """pflag's refusal wrapping strconv's ``NumError``, both quoting with ``%q``."""
    return (f"invalid argument {go_quote(value)} for {go_quote(spelled)} flag: "
            f"strconv.{parser}: parsing {go_quote(value)}: invalid syntax")


def parse_flags(command: Command, argv: Sequence[str]) -> Invocation:
    """Split ``argv`` into positional args and flag values, pflag style (interspersed)."""
    flags = command.all_flags()
    inv = Invocation(command, [], {f.name: f.default for f in flags})
    items = list(argv)
    while items:
        item = items.pop(0)
        if item == "--":
            inv.args += items
            break
        if item.startswith("--") and len(item) > 2:
            name, equals, value = item[2:].partition("=")
            has_value = bool(equals)
            flag = _find_flag(flags, name=name)
            spelled = f"--{name}"
            if flag is None:
                raise UsageError(f"unknown flag: --{name}")
        elif item.startswith("-") and len(item) > 1:
            short, value = item[1], item[2:].removeprefix("=")
            has_value = bool(item[2:])
            flag = _find_flag(flags, short=short)
            spelled = f"-{short}"
            if flag is None:
                raise UsageError(f"unknown shorthand flag: '{short}' in {item}")
        else:
            inv.args.append(item)
            continue
        if not has_value:
            if flag.kind == "bool":
                value = "true"
            elif flag.optional is not None:
                value = flag.optional
            elif items:
                value = items.pop(0)
            else:
                raise UsageError(f"flag needs an argument: {spelled}")
        converted = _convert(flag, value, spelled)
        if flag.kind == "strings" and flag.name in inv.changed:
            converted = [*inv.flags[flag.name], *converted]
        inv.flags[flag.name] = converted
        inv.changed.add(flag.name)
    return inv


def check_args(command: Command, args: Sequence[str]) -> None:
    """Cobra's ExactArgs / MinimumNArgs / RangeArgs messages."""
    low, high = command.args
    count = len(args)
    if high is None and count < low:
        raise UsageError(f"requires at least {low} arg(s), only received {count}")
    if high is not None and low == high and count != low:
        raise UsageError(f"accepts {low} arg(s), received {count}")
    if high is not None and low != high and not low <= count <= high:
        raise UsageError(f"accepts between {low} and {high} arg(s), received {count}")


def flag_usages(flags: Sequence[Flag]) -> str:
    """pflag's FlagUsages: sorted by name, usage aligned three spaces past the longest flag."""
    ordered = sorted(flags, key=lambda f: f.name)
    width = max(len(f.usage_prefix()) for f in ordered) + 1
    return "\n".join(f"{f.usage_prefix()} {' ' * (width - len(f.usage_prefix()))} {f.usage}"
                     for f in ordered)


def env_usages(env: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"      {name:<27}   {doc}" for name, doc in env)


def command_help(command: Command) -> str:
    """``corral <command> --help``, in cobra's default layout."""
    use = " ".join([PROG, *command.use.split()[:1], *command.use.split()[1:]])
    parts = [command.short, "", "Usage:", f"  {use} [flags]"]
    if command.aliases:
        parts += ["", "Aliases:", "  " + ", ".join((command.name, *command.aliases))]
    parts += ["", "Flags:", flag_usages(command.all_flags())]
    if command.env:
        parts += ["", "Environment Variables:", env_usages(command.env)]
    return "\n".join(parts) + "\n"


def root_help(commands: Sequence[Command], short: str) -> str:
    """``corral --help``: usage, the command list and the root flags."""
    visible = [c for c in commands if not c.hidden]
    pad = max(11, *(len(c.name) for c in visible))
    lines = [short, "", "Usage:", f"  {PROG} [flags]", f"  {PROG} [command]", "",
             "Available Commands:"]
    lines += [f"  {c.name.ljust(pad)} {c.short}" for c in visible]
    lines += [f"  {'help'.ljust(pad)} Help about any command", "", "Flags:",
              flag_usages([Flag("help", f"help for {PROG}", short="h"),
                           Flag("version", "Show version information", short="v")]),
              "", f'Use "{PROG} [command] --help" for more information about a command.']
    return "\n".join(lines) + "\n"


def resolve(commands: Sequence[Command], argv: Sequence[str], short: str) -> Invocation | None:
    """Find and parse the subcommand in ``argv``; None means the root ``--version`` flag.

    Raises HelpRequested for help screens and UsageError for bad command lines.
    """
    if not argv or argv[0] in ("-h", "--help"):
        raise HelpRequested(root_help(commands, short))
    if argv[0] in ("-v", "--version"):
        return None
    if argv[0].startswith("-"):
        raise UsageError(f"unknown flag: {argv[0]}" if argv[0].startswith("--")
                         else f"unknown shorthand flag: '{argv[0][1:2]}' in {argv[0]}")
    by_name = {n: c for c in commands for n in (c.name, *c.aliases)}
    if argv[0] == "help":
        target = by_name.get(argv[1]) if len(argv) > 1 else None
        if len(argv) > 1 and target is None:
            raise UsageError(f'unknown help topic [{argv[1]!r}]'.replace("'", '"'))
        raise HelpRequested(command_help(target) if target else root_help(commands, short))
    command = by_name.get(argv[0])
    if command is None:
        raise UsageError(f"unknown command {go_quote(argv[0])} for {go_quote(PROG)}")
    inv = parse_flags(command, argv[1:])
    if inv.flags.get("help"):
        raise HelpRequested(command_help(command))
    check_args(command, inv.args)
    return inv
