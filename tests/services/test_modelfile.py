"""Modelfile parsing and writing follow Ollama's parser, and writing round-trips losslessly."""

import random

import pytest

from services.errors import InvalidRequestError
from services.modelfile import (Command, Modelfile, ollama_quote, parse_modelfile, quote_value,
                                show_modelfile)

INVALID_COMMAND = ('command must be one of "from", "license", "template", "system", "adapter", '
                   '"draft", "renderer", "parser", "parameter", "message", or "requires"')
INVALID_ROLE = 'message role must be one of "system", "user", or "assistant"'
LLAMA_TEMPLATE = ("{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}"
                  "<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n"
                  "{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>"
                  "\n\n{{ .Response }}<|eot_id|>")
MARIO = '''FROM smollm2:135m
# set the temperature to 1 [higher is more creative, lower is more coherent]
PARAMETER temperature 1
# set the system message
SYSTEM """
You are Mario from Super Mario Bros. Answer as Mario, the assistant, only.
"""
'''


def lex(text):
    """Commands as Ollama's bare parser sees them (no parameter checks)."""
    return list(parse_modelfile(text, validate=False).commands)


def error_of(text, **kwargs):
    with pytest.raises(InvalidRequestError) as err:
        parse_modelfile(text, **kwargs)
    return err.value.message


def test_seed_mario_example():
    mf = parse_modelfile(MARIO)
    assert mf.from_ == "smollm2:135m"
    assert mf.parameters == {"temperature": 1.0}
    assert mf.system == ("\nYou are Mario from Super Mario Bros. "
                         "Answer as Mario, the assistant, only.\n")
    assert mf.template is None and mf.messages == [] and mf.warnings == []
    assert parse_modelfile(mf.to_text()) == mf


def test_every_instruction_and_triple_quoted_template_with_trailing_blanks():
    text = (f'\nFROM model1\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\n'
            f'DRAFT ./assistant\nRENDERER r1\nPARSER p1\nREQUIRES 0.14.0\n'
            f'TEMPLATE """{LLAMA_TEMPLATE}"""    \n')
    assert lex(text) == [
        Command("from", "model1"), Command("adapter", "adapter1"), Command("license", "MIT"),
        Command("parameter", "value1", "param1"), Command("draft", "./assistant"),
        Command("renderer", "r1"), Command("parser", "p1"), Command("requires", "0.14.0"),
        Command("template", LLAMA_TEMPLATE)]


def test_whitespace_is_trimmed_outside_quotes_and_kept_inside():
    text = ('FROM "     model 1"\nADAPTER      adapter3\nLICENSE "MIT       "\n'
            'PARAMETER param1        value1\nTEMPLATE """   {{ .Prompt }}   """    \n')
    assert lex(text) == [
        Command("from", "     model 1"), Command("adapter", "adapter3"),
        Command("license", "MIT       "), Command("parameter", "value1", "param1"),
        Command("template", "   {{ .Prompt }}   ")]


@pytest.mark.parametrize("text,commands", [
    ('FROM "FOO  BAR  "', [Command("from", "FOO  BAR  ")]),
    ("FROM     FOOO BAR    ", [Command("from", "FOOO BAR")]),
    ("FROM /what/is/the path ", [Command("from", "/what/is/the path")]),
    ("FROM llama3:7b-instruct-q4_K_M", [Command("from", "llama3:7b-instruct-q4_K_M")]),
    ("from x\nparameter p 1\nSyStEm hi", [Command("from", "x"), Command("parameter", "1", "p"),
                                         Command("system", "hi")]),
    ("PARAMETER what the \nFROM lemons make lemonade ",
     [Command("parameter", "the", "what"), Command("from", "lemons make lemonade")]),
    ("FROM\tx\nSYSTEM\t a\tb \t", [Command("from", "x"), Command("system", "a\tb")]),
])
def test_from_and_plain_values(text, commands):
    assert lex(text) == commands


@pytest.mark.parametrize("text", ["", "PARAMETER param1 value1", "# only a comment\n\n"])
def test_missing_from(text):
    assert error_of(text, validate=False) == "no FROM line"


@pytest.mark.parametrize("text,message", [
    ("\nFROM foo\nBADCOMMAND param1 value1\n", f"(line 3): {INVALID_COMMAND}"),
    ("FROM foo\nSYSTEM\n", f"(line 3): {INVALID_COMMAND}"),
    ("FROM foo\r\nBAD x\r\n", f"(line 3): {INVALID_COMMAND}"),
    ("FROM foo\nFROM2 x\n", f"(line 2): {INVALID_COMMAND}"),
    ("FROM foo\n1FROM x\n", f"(line 2): {INVALID_COMMAND}"),
    ("FROM foo\nPARAMETER param1\n", "unexpected EOF: param1"),
    ("FROM foo\nPARAMETER param1", "unexpected EOF"),
    ("FROM foo\nPARAMETER par-am 1", "unexpected EOF: par"),
    ("FROM foo\nMESSAGE system\n", "unexpected EOF: system"),
    ("FROM foo\nMESSAGE system", "unexpected EOF"),
    ("FROM foo\nSYSTEM", "unexpected EOF"),
    ("\nFROM foo\nMESSAGE badguy I'm a bad guy!\n", f"(line 3): {INVALID_ROLE}"),
    ("FROM foo\nMESSAGE User hi\n", f"(line 2): {INVALID_ROLE}"),
    ("FROM foo\nMESSAGE tool hi\n", f"(line 2): {INVALID_ROLE}"),
    ('FROM foo\nSYSTEM """This is a multiline system.""\n', "unexpected EOF"),
    ('FROM foo\nSYSTEM "\n', "unexpected EOF"),
    ('FROM foo\nSYSTEM "a" b\n', "unexpected EOF"),
])
def test_syntax_errors(text, message):
    assert error_of(text, validate=False) == message


def test_messages_keep_their_roles_and_multiline_content():
    text = ('FROM foo\nMESSAGE system You are a file parser. Always parse things.\n'
            'MESSAGE user Hey there!\nMESSAGE assistant """\nHello, "parser".\n"""\n')
    mf = parse_modelfile(text)
    assert mf.messages == [("system", "You are a file parser. Always parse things."),
                           ("user", "Hey there!"), ("assistant", '\nHello, "parser".\n')]


@pytest.mark.parametrize("value,expected", [
    ('"""\nThis is a\nmultiline system.\n"""', "\nThis is a\nmultiline system.\n"),
    ('"""\nThis is a\nmultiline system."""', "\nThis is a\nmultiline system."),
    ('"""This is a\nmultiline system."""', "This is a\nmultiline system."),
    ('"""This is a multiline system."""', "This is a multiline system."),
    ('"""\nwith "quotes".\n"""', '\nwith "quotes".\n'),
    ('""""""', ""), ('""', ""), ('"\'"', "'"), ("'single'", "'single'"),
    ('"""\'\'"\'""\'""\'"\'\'\'\'\'""\'""\'"""', '\'\'"\'""\'""\'"\'\'\'\'\'""\'""\''),
    ('"a" "b"', 'a" "b'), ('"two\nlines"', "two\nlines"), ('"a\r\nb"', "a\r\nb"),
    ("say \"hi\" # not a comment", 'say "hi" # not a comment'),
    ("你好👋", "你好👋"), ("a\x00b\u200bc", "abc"),
])
def test_quoted_values(value, expected):
    assert parse_modelfile(f"FROM foo\nSYSTEM {value}\n").system == expected


@pytest.mark.parametrize("line,expected", [
    ("stop ### User:", "### User:"), ("stop ### User: ", "### User:"),
    ('stop "### User:"', "### User:"), ('stop "### User: "', "### User: "),
    ('stop """### User:"""', "### User:"), ('stop """### User:\n"""', "### User:\n"),
    ("stop <|endoftext|>", "<|endoftext|>"), ("stop </s>", "</s>"),
])
def test_stop_parameter_quoting(line, expected):
    assert parse_modelfile(f"FROM foo\nPARAMETER {line}\n").parameters == {"stop": [expected]}


def test_parameters_are_typed_and_stop_accumulates():
    mf = parse_modelfile("FROM x\nPARAMETER temperature 0.5\nPARAMETER top_k 1\n"
                         "PARAMETER stop a\nPARAMETER top_k 2\nPARAMETER stop b\n"
                         "PARAMETER use_mmap false\n")
    assert mf.parameters == {"temperature": 0.5, "top_k": 2, "stop": ["a", "b"], "use_mmap": False}
    assert isinstance(mf.parameters["top_k"], int)


@pytest.mark.parametrize("text,message", [
    ("FROM x\nPARAMETER numa true", "unknown parameter 'numa'"),
    ("FROM x\nPARAMETER tfs_z 1", "unknown parameter 'tfs_z'"),
    ("FROM x\nPARAMETER Temperature 1", "unknown parameter 'Temperature'"),
    ("FROM x\nPARAMETER  temperature 1", "unknown parameter ''"),
    ("FROM x\nPARAMETER temperature 0.7 # hi", "invalid float value [0.7 # hi]"),
    ("FROM x\nPARAMETER num_ctx 2k", "invalid int value [2k]"),
    ("FROM x\nPARAMETER use_mmap maybe", "invalid bool value [maybe]"),
    ("FROM x\nREQUIRES latest", "requires must be a valid semver (e.g. 0.14.0)"),
    ("FROM x\nREQUIRES 01.2.3", "requires must be a valid semver (e.g. 0.14.0)"),
    ("PARAMETER numa true", "no FROM line"),
])
def test_client_side_checks(text, message):
    assert error_of(text) == message


def test_deprecated_parameters_are_kept_skipped_and_warned():
    mf = parse_modelfile("FROM x\nPARAMETER mirostat 2\nPARAMETER penalize_newline junk\n")
    assert mf.parameters == {}
    assert mf.warnings == ["parameter mirostat is deprecated",
                           "parameter penalize_newline is deprecated"]
    assert len(mf.commands) == 3


def test_accessors_for_repeated_and_last_wins_instructions():
    mf = parse_modelfile("FROM a\nFROM ./proj.gguf\nLICENSE one\nLICENSE two\nADAPTER ./l.gguf\n"
                         "SYSTEM s1\nSYSTEM s2\nREQUIRES v0.14.0\n")
    assert mf.froms == ("a", "./proj.gguf") and mf.from_ == "./proj.gguf"
    assert mf.licenses == ("one", "two") and mf.adapters == ("./l.gguf",)
    assert mf.system == "s2" and mf.commands[-1] == Command("requires", "v0.14.0")
    assert mf.draft is None and mf.renderer is None and mf.parser is None


def test_comments_only_where_an_instruction_starts():
    assert lex("\n# comment\n   # indented comment\nFROM foo # not a comment\n\t") == [
        Command("from", "foo # not a comment")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-8"])
def test_encodings(encoding):
    text = "FROM bob\nPARAMETER top_k 1\n\tSYSTEM 你好👋 utf16 file."
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):
        data = "\ufeff".encode(encoding) + data
    mf = parse_modelfile(data)
    assert mf.from_ == "bob" and mf.system == "你好👋 utf16 file."


def test_bom_before_a_comment_in_a_str():
    assert parse_modelfile("\ufeff# c\nFROM x").from_ == "x"


# --- writing -----------------------------------------------------------------------------

@pytest.mark.parametrize("value,written", [
    ("<|eot_id|>", "<|eot_id|>"), ("", ""), ("two\nlines", '"two\nlines"'),
    (" edge ", '" edge "'), ('say "hi"\nplease', '"""say "hi"\nplease"""'),
    ('say "hi"', 'say "hi"'),
])
def test_ollama_quoting(value, written):
    assert ollama_quote(value) == written
    assert quote_value(value) == written


@pytest.mark.parametrize("value", [
    '"hi"', '"', '""', '"""', "\tindented", "trailing\t", "a\rb", '"\n', "\n", " ", "\r\n",
    'x"""', '"""x\ny',
])
def test_quoting_falls_back_when_ollamas_form_would_change_the_value(value):
    written = quote_value(value, strict=True)
    assert parse_modelfile(f"FROM x\nSYSTEM {written}\n").system == value


def test_to_text_matches_ollama_for_ordinary_files():
    text = parse_modelfile(
        'FROM foo\nADAPTER adapter1\nLICENSE """\nLegal text.\n"Oh look, a quote!"\n"""\n\n'
        "PARAMETER stop <|eot_id|>\nPARAMETER temperature 0.7\nTEMPLATE {{ .Prompt }}\n"
        'MESSAGE system """\nAlways respond with "Hello!".\n"""\nMESSAGE user Hey there!\n'
        'SYSTEM ""\n').to_text()
    assert text == ('FROM foo\nADAPTER adapter1\n'
                    'LICENSE """\nLegal text.\n"Oh look, a quote!"\n"""\n'
                    "PARAMETER stop <|eot_id|>\nPARAMETER temperature 0.7\nTEMPLATE {{ .Prompt }}\n"
                    'MESSAGE system """\nAlways respond with "Hello!".\n"""\n'
                    "MESSAGE user Hey there!\nSYSTEM \n")


def test_from_is_written_raw_unless_that_loses_something():
    assert Modelfile((Command("from", "/a b/model.gguf"),)).to_text() == "FROM /a b/model.gguf\n"
    mf = Modelfile((Command("from", "  spaced "),))
    assert parse_modelfile(mf.to_text()) == mf


@pytest.mark.parametrize("value", ['a"""\nb"', 'x"""\ny', '"""\n"""', "nul\x00", "nbsp\xa0"])
def test_values_no_quoting_can_carry_raise_on_write(value):
    # Without escapes, a line ending in a closing quote ends every quoted form early.
    with pytest.raises(ValueError):
        Modelfile((Command("from", "x"), Command("system", value))).to_text()


def test_unwritable_keys_raise_on_write():
    with pytest.raises(ValueError):
        Modelfile((Command("from", "x"), Command("parameter", "1", "top-k"))).to_text()
    with pytest.raises(ValueError):
        Modelfile((Command("from", "x"), Command("message", "hi", "tool"))).to_text()


_PIECES = ["a", "Z9", " ", "  ", "\t", "\n", "\r\n", '"', "'", '"""', "#", ":", "é", "👋",
           "{{ .Prompt }}", "{{ if .System }}{{ .System }}{{ end }}", "<|eot_id|>", "\\n"]


def _random_value(rng):
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 8)))


def _random_command(rng):
    kind = rng.choice(["from", "template", "system", "license", "adapter", "message",
                       "parameter", "renderer", "parser", "draft"])
    if kind == "message":
        return Command(kind, _random_value(rng), rng.choice(["system", "user", "assistant"]))
    if kind == "parameter":
        return Command(kind, _random_value(rng), "stop")
    return Command(kind, _random_value(rng))


def test_round_trip_is_lossless_over_random_tricky_values():
    rng, written = random.Random(20240607), 0
    for _ in range(1500):
        cmds = (Command("from", "base"),) + tuple(_random_command(rng) for _ in range(4))
        mf = Modelfile(cmds)
        try:
            text = mf.to_text()
        except ValueError:
            continue
        written += 1
        assert parse_modelfile(text) == mf, text
    assert written > 1200


@pytest.mark.parametrize("value", [
    "", " ", "\n", "x", ' "quoted" ', '"', '""', '"""', "\t", "a\r\nb", "ünïcødé 👋",
    LLAMA_TEMPLATE, "{{ .Prompt }}\n", '"""{{ .Prompt }}', 'ends with quote"', "#hash",
    "line one\nline \"two\"\n", "   lead", "trail   ", 'x"""', '""" """',
])
def test_round_trip_for_every_value_kind(value):
    mf = Modelfile((Command("from", value or "x"), Command("template", value),
                    Command("system", value), Command("license", value),
                    Command("parameter", value, "stop"), Command("message", value, "user")))
    assert parse_modelfile(mf.to_text()) == mf


# --- ollama show --modelfile ---------------------------------------------------------------

def test_show_modelfile_layout():
    text = show_modelfile(
        display_name="mario:latest", model_path="/m/blobs/sha256-abc", system="Be Mario.",
        adapters=["/m/blobs/sha256-ad"], projectors=["/m/blobs/sha256-pr"],
        parameters={"stop": ["<|eot_id|>", "User:"], "num_ctx": 4096, "temperature": 0.7},
        licenses=["MIT"], messages=[("user", "hi"), {"role": "assistant", "content": "hello"}])
    assert text == (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM mario:latest\n\n"
        "FROM /m/blobs/sha256-abc\nADAPTER /m/blobs/sha256-ad\nFROM /m/blobs/sha256-pr\n"
        "TEMPLATE {{ .Prompt }}\nSYSTEM Be Mario.\n"
        "PARAMETER stop <|eot_id|>\nPARAMETER stop User:\nPARAMETER num_ctx 4096\n"
        "PARAMETER temperature 0.7\nLICENSE MIT\nMESSAGE user hi\nMESSAGE assistant hello\n")


def test_show_modelfile_quotes_multiline_and_prints_numbers_like_go():
    text = show_modelfile(display_name="m:latest", model_path="/b", template=LLAMA_TEMPLATE,
                          parameters={"num_ctx": 1048576, "use_mmap": True},
                          renderer="r", parser="p", draft="/d")
    body = text.split("\n\n", 1)[1]
    assert body == (f'FROM /b\nDRAFT /d\nTEMPLATE "{LLAMA_TEMPLATE}"\nRENDERER r\nPARSER p\n'
                    "PARAMETER num_ctx 1.048576e+06\nPARAMETER use_mmap true\n")


def test_show_modelfile_safetensors_form_and_no_template():
    text = show_modelfile(display_name="m:latest", model_path="/b", template=None,
                          safetensors=True)
    assert text == '# Modelfile generated by "ollama show"\nFROM m:latest\n'


def test_show_modelfile_never_fails_on_unrepresentable_text():
    text = show_modelfile(display_name="m:latest", model_path="/b", system='a"""\nb"')
    assert 'SYSTEM """a"""\nb""""\n' in text


def test_show_output_parses_back():
    text = show_modelfile(display_name="m:latest", model_path="/b", system="You are\n\"x\"",
                          parameters={"stop": ["a b "], "top_k": 3})
    mf = parse_modelfile(text)
    assert mf.system == 'You are\n"x"' and mf.parameters == {"stop": ["a b "], "top_k": 3}
