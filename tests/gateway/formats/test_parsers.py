"""Every parser — the named ones and the template-driven one — on recorded outputs, fed whole,
split in two at every position, and one character at a time: the result never depends on
where the chunks break, and nothing emitted is ever partial markup (what has been sent is
always a prefix of the final content and thinking)."""

from __future__ import annotations

import pytest

from gateway.formats.chat_format import ChatFormat
from gateway.formats.registry import PARSERS
from gateway.output import Piece
from gateway.prompt import PromptTemplate, Think, parse_go
from tests.gateway.formats.recorded import CASES, GO_TOOLS_TEMPLATE, Case

TEMPLATE = PromptTemplate(go=parse_go(GO_TOOLS_TEMPLATE, from_request=False))
LONGEST_TAG = 24  # no tag any parser holds back is longer


def make_parser(case: Case):
    fmt = ChatFormat(TEMPLATE, parser="" if case.parser == "template" else case.parser)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    if case.last_message:
        messages.append(case.last_message)
    prompt = fmt.render(messages, tools=case.tools, think=case.think)
    return fmt.parser(case.think, prompt, tools=case.tools,
                      last_message=case.last_message or messages[-1])


def run(case: Case, chunks: list[str]) -> Piece:
    parser, total = make_parser(case), Piece()
    for chunk in chunks:
        total.add(parser.feed(chunk))
        assert case.content.startswith(total.content), "content sent that is not content"
        assert case.thinking.startswith(total.thinking), "thinking sent that is not thinking"
    total.add(parser.finish())
    return total


def check(case: Case, result: Piece) -> None:
    assert result.content == case.content
    assert result.thinking == case.thinking
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in result.tool_calls] \
        == case.calls
    assert [c["function"]["index"] for c in result.tool_calls] == list(range(len(case.calls)))
    assert len({c["id"] for c in result.tool_calls}) == len(case.calls)
    assert all(c["id"].startswith("call_") for c in result.tool_calls)


def all_splits(text: str):
    yield [text]
    for cut in range(len(text) + 1):
        yield [text[:cut], text[cut:]]
    yield list(text)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_split_gives_the_same_pieces(case):
    for chunks in all_splits(case.output):
        check(case, run(case, chunks))


@pytest.mark.parametrize("case", [c for c in CASES if c.content or c.thinking],
                         ids=[c.id for c in CASES if c.content or c.thinking])
def test_text_streams_before_the_end(case):
    """Char by char, all but the held-back tail is out before the output ends."""
    parser, sent = make_parser(case), Piece()
    text_end = case.output.rfind(case.content[-1:]) + 1 if case.content else len(case.output)
    for char in case.output[:text_end]:
        sent.add(parser.feed(char))
    streamed = len(sent.content) + len(sent.thinking)
    assert streamed >= len(case.content) + len(case.thinking) - LONGEST_TAG


def test_every_registered_parser_has_recorded_cases():
    covered = {c.parser for c in CASES}
    assert set(PARSERS) - {"passthrough"} <= covered


def test_passthrough_and_unparsable_calls_lose_nothing():
    fmt = ChatFormat(TEMPLATE, parser="passthrough")
    parser = fmt.parser(Think(), "")
    assert parser.feed("<tool_call>x").content == "<tool_call>x"
    broken = "<tool_call>\n{not json}\n</tool_call>"
    qwen = ChatFormat(TEMPLATE, parser="qwen3").parser(Think(False), "")
    out = qwen.feed(broken)
    out.add(qwen.finish())
    assert out.content == broken and not out.tool_calls


@pytest.mark.parametrize("name,output,expected", [
    ("qwen3", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}",
     {"city": "Rome"}),
    ("qwen3-coder", "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n",
     {"city": "Rome"}),
    ("deepseek3", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
                  "{\"city\": \"Rome\"}", {"city": "Rome"}),
])
def test_a_call_cut_off_by_the_end_of_generation_is_still_read(name, output, expected):
    parser = ChatFormat(TEMPLATE, parser=name).parser(Think(False), "", tools=CASES[0].tools)
    piece = parser.feed(output)
    piece.add(parser.finish())
    assert [c["function"]["arguments"] for c in piece.tool_calls] == [expected]
