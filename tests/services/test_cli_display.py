"""Streaming an answer to the terminal: word wrap, thinking markers, stats."""

import io

from services.cli.display import AnswerPrinter, WordWrapper, print_stats


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_word_wrap_moves_the_crossing_word_to_the_next_line(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    out = io.StringIO()
    wrapper = WordWrapper(out)
    wrapper.write("hello brave new worlds")
    # margin = 20 - 5: the space after "new" would cross it, so "new" is erased and re-printed below
    assert out.getvalue() == "hello brave new\x1b[3D\x1b[K\nnew worlds"


def test_no_wrap_passes_text_through(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    out = io.StringIO()
    WordWrapper(out, wrap=False).write("hello brave new worlds")
    assert out.getvalue() == "hello brave new worlds"


def test_thinking_markers_plain_when_not_a_terminal():
    out = io.StringIO()
    printer = AnswerPrinter(wrap=False, hide_thinking=False, stream=out)
    printer.add("", thinking="Let me see")
    printer.add("", thinking=".")
    printer.add("Answer")
    assert out.getvalue() == "Thinking...\nLet me see.\n...done thinking.\n\nAnswer"
    assert printer.content == "Answer" and printer.thinking == "Let me see."


def test_thinking_markers_grey_on_a_terminal_and_hidden_on_request():
    out = Tty()
    AnswerPrinter(wrap=False, hide_thinking=False, stream=out).add("", thinking="hmm")
    assert out.getvalue().startswith("\033[90m\033[1mThinking...\n\033[0m\033[90mhmm")
    out = io.StringIO()
    printer = AnswerPrinter(wrap=False, hide_thinking=True, stream=out)
    printer.add("", thinking="hmm")
    printer.add("ok")
    assert out.getvalue() == "ok"


def test_stats_lines():
    out = io.StringIO()
    print_stats({"total_duration": 1_500_000_000, "load_duration": 2_000_000, "prompt_eval_count": 10,
                 "prompt_eval_duration": 100_000_000, "eval_count": 50, "eval_duration": 250_000_000}, out)
    assert out.getvalue().splitlines() == [
        "total duration:       1.5s",
        "load duration:        2ms",
        "prompt eval count:    10 token(s)",
        "prompt eval duration: 100ms",
        "prompt eval rate:     100.00 tokens/s",
        "eval count:           50 token(s)",
        "eval duration:        250ms",
        "eval rate:            200.00 tokens/s",
    ]
