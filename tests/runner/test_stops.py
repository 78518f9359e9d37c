"""The stop-sequence matcher and UTF-8 reassembly (pure)."""

from __future__ import annotations

import pytest

from runner.stops import StopMatcher, TextStream


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


def test_no_stops_passes_text_through() -> None:
    assert StopMatcher([]).feed("abc") == ("abc", False)


def test_stop_inside_one_piece_cuts_before_it() -> None:
    assert StopMatcher(["END"]).feed("hello END world") == ("hello ", True)


def test_stop_split_across_pieces_is_never_emitted() -> None:
    pieces = ["Hi", " <|im", "_e", "nd|>", "x"]
    assert feed_all(StopMatcher(["<|im_end|>"]), pieces) == ("Hi ", True)


def test_partial_prefix_is_held_back_until_disproved() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("go ST") == ("go ", False)
    assert matcher.feed("ART") == ("START", False)


def test_held_back_text_is_released_by_flush() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("end ST") == ("end ", False)
    assert matcher.flush() == "ST"


def test_earliest_of_several_stops_wins() -> None:
    assert StopMatcher(["b", "abc"]).feed("xxabcd") == ("xx", True)


@pytest.mark.parametrize("pieces", [["ab\n\nc"], ["ab\n", "\nc"], ["a", "b", "\n", "\n", "c"]])
def test_double_newline_stop(pieces: list[str]) -> None:
    assert feed_all(StopMatcher(["\n\n"]), pieces) == ("ab", True)


def test_text_stream_reassembles_utf8_split_across_tokens() -> None:
    data = "naïve 🐈".encode()
    stream, out = TextStream([]), []
    for i in range(len(data)):
        text, _ = stream.feed(data[i:i + 1])
        out.append(text)
    assert "".join(out) + stream.finish() == "naïve 🐈"
    assert all("\ufffd" not in piece for piece in out)


def test_text_stream_stops_on_multibyte_stop() -> None:
    stream = TextStream(["🐈"])
    assert stream.feed("cat ".encode()) == ("cat ", False)
    assert stream.feed("🐈".encode()[:2]) == ("", False)
    assert stream.feed("🐈 tail".encode()[2:]) == ("", True)
