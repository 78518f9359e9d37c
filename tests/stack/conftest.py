"""The stack tests: Open WebUI ones run only when asked for with ``-m webui``.

They need a 3 GB environment and Chromium (``scripts/test-webui.sh`` provides both), so the
default ``./scripts/test.sh`` run leaves them out; every other test here runs everywhere.
"""

from __future__ import annotations

import pytest

from tests.stack.webui import ENDPOINT_REPORT, artifacts_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "webui" in (config.getoption("markexpr") or "").replace("not webui", ""):
        return
    webui = [item for item in items if item.get_closest_marker("webui")]
    if webui:
        config.hook.pytest_deselected(items=webui)
        items[:] = [item for item in items if not item.get_closest_marker("webui")]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Print the endpoints Open WebUI hit on Corral (written by the e2e module) into the log."""
    report = config.stash.get(ENDPOINT_REPORT, None)
    if report:
        terminalreporter.section("Corral endpoints hit by Open WebUI")
        terminalreporter.write_line(report)
        terminalreporter.write_line(f"artifacts: {artifacts_dir()}")
