"""The CLI decides what an error means from its status, not from words in its message."""

from __future__ import annotations

import pytest

from services.api_client import ApiError
from services.cli import commands
from services.cli.parser import Invocation, UsageError
from services.cli.repl import Repl
from services.cli.run import RunOptions


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the REPL keeps its history under ~/.corral


class FailingClient:
    """Every request and stream fails with ``error``."""

    def __init__(self, error: ApiError) -> None:
        self.error = error
        self.calls: list[tuple] = []

    def request(self, method: str, path: str, body=None):
        self.calls.append((method, path, body))
        if path == "/api/delete":
            return None
        raise self.error

    def stream(self, path: str, body):
        self.calls.append(("POST", path, body))
        raise self.error
        yield  # pragma: no cover - a generator, like ApiClient.stream


def invocation(*args: str, **flags) -> Invocation:
    return Invocation(command="", args=list(args), flags={"insecure": False, **flags})


def test_stop_calls_a_404_a_missing_model_whatever_its_words():
    with pytest.raises(UsageError, match="couldn't find model \"ghost\" to stop"):
        commands.cmd_stop(invocation("ghost"), FailingClient(ApiError("no such model", 404)))


def test_stop_does_not_mistake_a_server_error_mentioning_not_found_for_a_missing_model():
    error = ApiError("blob sha256:ab not found on this server", 500)
    with pytest.raises(ApiError) as info:
        commands.cmd_stop(invocation("base"), FailingClient(error))
    assert info.value is error


def test_rm_warns_only_when_stopping_failed_for_another_reason(capsys):
    assert commands.cmd_delete(invocation("ghost"), FailingClient(ApiError("gone", 404))) == 0
    assert capsys.readouterr().err == ""
    broken = FailingClient(ApiError("runner not found in table", 500))
    assert commands.cmd_delete(invocation("base"), broken) == 0
    assert capsys.readouterr().err == "Warning: unable to stop model 'base'\n"
    assert ("DELETE", "/api/delete", {"model": "base"}) in broken.calls


@pytest.mark.parametrize("error,namespace_message", [
    (ApiError("unauthorized: access denied", 502), True),  # the remote registry refused us
    (ApiError("push to r.example/me/m: 403: denied: access denied"), True),  # in-stream
    (ApiError("unauthorized: invalid API key", 401), False),  # this server refused our key
    (ApiError("forbidden: API key 'k' lacks the 'push' scope", 403), False),
    (ApiError("the model registry is unavailable", 503), False),
])
def test_push_names_the_namespace_only_when_the_remote_registry_refused(error, namespace_message):
    client = FailingClient(error)
    if namespace_message:
        with pytest.raises(UsageError, match="not authorized to push to this namespace"):
            commands.cmd_push(invocation("r.example/me/m"), client)
    else:
        with pytest.raises(ApiError) as info:
            commands.cmd_push(invocation("r.example/me/m"), client)
        assert info.value is error


def _repl(client) -> Repl:
    return Repl(client, RunOptions(model="base"), {"capabilities": ["completion"]})


def test_repl_load_reads_404_as_missing_and_400_as_a_refusal(capsys):
    repl = _repl(FailingClient(ApiError("nothing by that name", 404)))
    repl._load(["/load", "ghost"])
    assert "Couldn't find model 'ghost'" in capsys.readouterr().out
    assert repl.opts.model == "base"  # restored
    repl = _repl(FailingClient(ApiError('"base" lacks thinking', 400)))
    repl._load(["/load", "base"])
    assert 'error: "base" lacks thinking' in capsys.readouterr().out
    with pytest.raises(ApiError):
        _repl(FailingClient(ApiError("internal server error", 500)))._load(["/load", "base"])


def test_repl_send_keeps_the_session_on_a_400_and_ends_it_on_a_500(capsys):
    repl = _repl(FailingClient(ApiError("invalid think value: \"loud\"", 400)))
    repl._send("hi")
    assert 'error: invalid think value: "loud"' in capsys.readouterr().out
    with pytest.raises(ApiError):
        _repl(FailingClient(ApiError("internal server error", 500)))._send("hi")


def test_repl_save_checks_the_name_itself_and_reports_other_refusals(capsys):
    client = FailingClient(ApiError("neither 'from' nor files given", 400))
    repl = _repl(client)
    repl._save(["/save", "Bad!Name"])
    assert "error: The model name 'Bad!Name' is invalid" in capsys.readouterr().out
    assert client.calls == []  # refused before asking the server
    repl._save(["/save", "mine"])
    assert "error: neither 'from' nor files given" in capsys.readouterr().out
