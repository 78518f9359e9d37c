"""Pull/push/create progress: Ollama's bars and spinners on a terminal, plain lines otherwise."""

import io
import re

from services.cli.progress import ProgressDisplay

LAYER = {"status": "pulling 6a07", "digest": "sha256:6a0746a1ec1a" + "0" * 52, "total": 4_683_073_184}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def final_screen(text: str) -> list[str]:
    """The lines of the last redraw, without escape sequences."""
    last = re.split(r"\x1b\[2K(?!.*\x1b\[2K)", text, flags=re.S)[-1]
    return [line.rstrip() for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", last).splitlines()
            if line.strip()]


def test_pull_on_a_terminal_draws_bars_and_settled_spinners():
    out = Tty()
    with ProgressDisplay(pull_labels=True, stream=out) as display:
        display.update({"status": "pulling manifest"})
        display.update(LAYER)  # the announcement line (completed 0) is skipped, as Ollama does
        display.update({**LAYER, "completed": 1_000_000_000})
        display.update({**LAYER, "completed": LAYER["total"]})
        display.update({"status": "verifying sha256 digest"})
        display.update({"status": "success"})
    lines = final_screen(out.getvalue())
    assert lines[0] == "pulling manifest"
    assert re.fullmatch(r"pulling 6a0746a1ec1a: 100% ▕█+▏ 4\.7 GB", lines[1])
    assert lines[2:] == ["verifying sha256 digest", "success"]


def test_bar_in_progress_shows_sizes():
    out = Tty()
    display = ProgressDisplay(pull_labels=True, stream=out).__enter__()
    display.update({**LAYER, "completed": 1_000_000_000})
    display.progress.refresh()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    display.stop()
    assert re.search(r"pulling 6a0746a1ec1a:  21% ▕█+ +▏   1 GB/4\.7 GB", text)


def test_not_a_terminal_prints_each_status_once():
    out = io.StringIO()
    with ProgressDisplay(verb="pushing", stream=out) as display:
        for obj in ({"status": "retrieving manifest"}, {**LAYER, "status": "pushing 6a07", "completed": 5},
                    {**LAYER, "status": "pushing 6a07", "completed": LAYER["total"]},
                    {"status": "pushing manifest"}, {"status": "pushing manifest"}, {"status": "success"}):
            display.update(obj)
    assert out.getvalue().splitlines() == ["retrieving manifest", "pushing 6a07 100% 4.7 GB",
                                           "pushing manifest", "success"]
