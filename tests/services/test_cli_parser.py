"""The cobra/pflag look-alike: flag parsing, argument checks, help screens, error texts."""

import pytest

from services.cli import COMMANDS, SHORT, main
from services.cli.parser import HelpRequested, UsageError, flag_usages, resolve, Flag


def parse(*argv: str):
    return resolve(COMMANDS, list(argv), SHORT)


def test_flags_may_follow_positionals_and_take_values():
    inv = parse("run", "m", "why", "--format", "json", "--keepalive=5m", "is", "--verbose")
    assert inv.args == ["m", "why", "is"]
    assert inv.flags["format"] == "json" and inv.flags["keepalive"] == "5m" and inv.flags["verbose"]
    assert inv.changed == {"format", "keepalive", "verbose"}


def test_think_alone_means_true_and_does_not_eat_the_prompt():
    inv = parse("run", "m", "--think", "hello")
    assert inv.flags["think"] == "true" and inv.args == ["m", "hello"]
    assert parse("run", "m", "--think=high").flags["think"] == "high"


def test_short_flags_and_double_dash():
    inv = parse("create", "x", "-f", "Modelfile.x", "-qq4_K_M")
    assert inv.flags["file"] == "Modelfile.x" and inv.flags["quantize"] == "q4_K_M"
    assert parse("run", "m", "--", "--verbose").args == ["m", "--verbose"]


@pytest.mark.parametrize("argv, message", [
    (["run"], "requires at least 1 arg(s), only received 0"),
    (["show", "a", "b"], "accepts 1 arg(s), received 2"),
    (["cp", "a"], "accepts 2 arg(s), received 1"),
    (["serve", "x"], "accepts 0 arg(s), received 1"),
    (["run", "m", "--nope"], "unknown flag: --nope"),
    (["run", "m", "-z"], "unknown shorthand flag: 'z' in -z"),
    (["run", "m", "--format"], "flag needs an argument: --format"),
    (["run", "m", "--dimensions", "x"],
     'invalid argument "x" for "--dimensions" flag: strconv.ParseInt: parsing "x": invalid syntax'),
    (["frobnicate"], 'unknown command "frobnicate" for "corral"'),
    # cobra and pflag quote with %q (strconv.Quote), escapes included
    (["run", "m", "--dimensions", 'x"\t'],
     'invalid argument "x\\"\\t" for "--dimensions" flag: strconv.ParseInt: parsing "x\\"\\t": '
     'invalid syntax'),
    (["say\x01"], 'unknown command "say\\x01" for "corral"'),
])
def test_cobra_error_texts(argv, message):
    with pytest.raises(UsageError) as exc:
        parse(*argv)
    assert str(exc.value) == message


def test_errors_print_one_line_and_exit_1(capsys):
    assert main(["show"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "Error: accepts 1 arg(s), received 0\n" and captured.out == ""


def test_help_screens(capsys):
    assert main(["--help"]) == 0
    root = capsys.readouterr().out
    assert root.startswith("Large language model runner\n\nUsage:\n  corral [flags]\n  corral [command]\n")
    for name in ("serve", "create", "show", "run", "stop", "pull", "push", "list", "ps", "cp", "rm", "help"):
        assert f"\n  {name.ljust(11)} " in root
    assert main(["help", "ls"]) == 0
    listing = capsys.readouterr().out
    assert "Aliases:\n  list, ls\n" in listing and "OLLAMA_HOST" in listing


def test_every_command_has_help():
    for command in COMMANDS:
        with pytest.raises(HelpRequested) as exc:
            parse(command.name, "--help")
        assert exc.value.text.startswith(command.short + "\n\nUsage:\n  corral " + command.name)
        assert "  -h, --help " in exc.value.text


def test_serve_help_lists_environment_with_defaults():
    with pytest.raises(HelpRequested) as exc:
        parse("serve", "-h")
    text = exc.value.text
    assert "Environment Variables:\n" in text
    assert "      OLLAMA_HOST                   listen address (default 127.0.0.1:11434)" in text
    assert "OLLAMA_MODELS" in text and "OLLAMA_KEEP_ALIVE" in text


def test_run_help_lists_run_environment():
    with pytest.raises(HelpRequested) as exc:
        parse("run", "--help")
    text = exc.value.text
    for name in ("OLLAMA_EDITOR", "OLLAMA_HOST", "OLLAMA_NOHISTORY", "CORRAL_NO_AUTOSTART"):
        assert f"      {name}" in text
    assert '      --think string[="true"]   Enable thinking mode' in text


def test_flag_usages_align_three_spaces_past_the_longest():
    text = flag_usages([Flag("help", "help for x", short="h"), Flag("format", "Format", "string")])
    assert text.splitlines() == ["      --format string   Format", "  -h, --help            help for x"]
