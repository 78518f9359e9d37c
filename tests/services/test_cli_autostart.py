"""Which hosts the CLI may start a server for, and the switch that turns auto-start off."""

from services.cli.autostart import is_local
from services.settings import ClientSettings, parse_ollama_host


def test_only_local_hosts_are_started():
    assert is_local(parse_ollama_host(None))
    assert is_local(parse_ollama_host("localhost:1")) and is_local(parse_ollama_host(":8080"))
    assert is_local(parse_ollama_host("[::1]:1")) and is_local(parse_ollama_host("127.0.0.2"))
    assert not is_local(parse_ollama_host("192.0.2.1:11434"))
    assert not is_local(parse_ollama_host("https://example.com"))


def test_settings_from_environment(tmp_path):
    settings = ClientSettings.from_env({"OLLAMA_HOST": "localhost:9", "OLLAMA_MODELS": str(tmp_path),
                                        "CORRAL_NO_AUTOSTART": "1"})
    assert settings.host.port == 9 and settings.models_dir == tmp_path and settings.no_autostart
    assert not ClientSettings.from_env({}).no_autostart
