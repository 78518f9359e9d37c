import dataclasses
import math

import pytest

from services.cli import COMMANDS
from services.cli.parser import HelpRequested, resolve
from services.settings import (FOREVER, ClientSettings, GatewaySettings, GrpcTls, RegistrySettings,
                               documented_variables, parse_bool, parse_env_duration,
                               parse_go_duration, parse_ollama_host, parse_size)


@pytest.mark.parametrize("text,seconds", [
    ("5m", 300), ("1h30m", 5400), ("300ms", 0.3), ("-1m", -60), ("1.5s", 1.5), ("0", 0),
    ("2h0m0.5s", 7200.5),
])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,error", [
    ("10", 'time: missing unit in duration "10"'),
    ("abc", 'time: invalid duration "abc"'),
    ("", 'time: invalid duration ""'),
    ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("99999999999h", 'time: invalid duration "99999999999h"'),  # beyond Go's int64 nanoseconds
    ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
])
def test_go_duration_errors_use_go_wording(text, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(")):
        parse_go_duration(text)


def test_go_duration_range_ends_where_go_s_does():
    assert parse_go_duration("2562047h47m16.854775807s") == pytest.approx(2**63 / 1e9)
    assert parse_go_duration("-2562047h47m16.854775808s") == pytest.approx(-(2**63) / 1e9)


def test_env_duration_accepts_bare_seconds_and_negative_forever():
    assert parse_env_duration("10", 300) == 10
    assert parse_env_duration("2m", 300) == 120
    assert parse_env_duration("-1", 300) == FOREVER
    assert parse_env_duration("99999999999999", 300) == FOREVER  # beyond Go's Duration
    assert parse_env_duration("", 300) == 300
    assert parse_env_duration("junk", 300) == 300


@pytest.mark.parametrize("value,url", [
    (None, "http://127.0.0.1:11434"),
    ("", "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    (":8080", "http://0.0.0.0:8080"),
    ("example.com:1234", "http://example.com:1234"),
    ("http://example.com", "http://example.com:80"),
    ("https://example.com", "https://example.com:443"),
    ("https://example.com:99/path", "https://example.com:99"),
    ("127.0.0.1:notaport", "http://127.0.0.1:11434"),
    ('"localhost:5000"', "http://localhost:5000"),
    ("[::1]:7000", "http://[::1]:7000"),
])
def test_ollama_host_parsing(value, url):
    assert parse_ollama_host(value).url == url


def test_bools_follow_go_with_ollamas_twist():
    assert not parse_bool("false") and not parse_bool("0") and not parse_bool(None)
    assert parse_bool("1") and parse_bool("true") and parse_bool("yes")


def test_gateway_settings_from_env(tmp_path):
    settings = GatewaySettings.from_env({
        "OLLAMA_HOST": ":9999", "OLLAMA_MODELS": str(tmp_path), "OLLAMA_KEEP_ALIVE": "-1",
        "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_MAX_QUEUE": "0", "OLLAMA_LOAD_TIMEOUT": "0"})
    assert settings.host.port == 9999 and settings.models_dir == tmp_path
    assert settings.keep_alive == math.inf and settings.num_parallel == 4
    assert settings.max_queue == 512  # 0 is not a usable queue bound: default
    assert settings.load_timeout == math.inf
    with pytest.raises(AttributeError):
        settings.num_parallel = 2  # frozen


@pytest.mark.parametrize(("text", "size"), [
    ("", 0), ("0", 0), ("1048576", 1 << 20), ("20GB", 20 * 10**9), ("20gb", 20 * 10**9),
    ("512MiB", 512 << 20), ("1.5g", 1_500_000_000), ("2 TiB", 2 << 40), ("lots", 0), ("-5GB", 0),
])
def test_sizes_parse_decimal_and_binary_units(text, size):
    assert parse_size(text) == size


def test_fleet_settings_from_env(tmp_path):
    gateway = GatewaySettings.from_env({
        "CORRAL_CACHE_DIR": str(tmp_path / "cache"), "CORRAL_CACHE_MAX": "8GiB",
        "CORRAL_GRPC_TLS_CA": str(tmp_path / "ca.pem"),
        "CORRAL_GRPC_TLS_CERT": str(tmp_path / "gw.pem"), "CORRAL_GRPC_TLS_KEY": str(tmp_path / "gw.key")})
    assert gateway.cache_dir == tmp_path / "cache" and gateway.cache_max == 8 << 30
    assert gateway.grpc_tls == GrpcTls(cert=tmp_path / "gw.pem", key=tmp_path / "gw.key",
                                       ca=tmp_path / "ca.pem")
    assert GatewaySettings.from_env({}).cache_dir is None and not GatewaySettings.from_env({}).grpc_tls.enabled
    url = "postgresql+asyncpg://corral:s3cret@db/corral"
    registry = RegistrySettings.from_env({"CORRAL_DATABASE_URL": f" {url} "})
    assert registry.database_url == url
    assert "s3cret" not in repr(registry)  # settings get logged; the DSN's password must not be
    documented = dict(documented_variables(GatewaySettings)) | dict(documented_variables(RegistrySettings))
    for name in ("CORRAL_DATABASE_URL", "CORRAL_CACHE_DIR", "CORRAL_CACHE_MAX", "CORRAL_GRPC_TLS_CERT",
                 "CORRAL_GRPC_TLS_KEY", "CORRAL_GRPC_TLS_CA"):
        assert documented[name]


SETTINGS = (GatewaySettings, RegistrySettings, ClientSettings, GrpcTls)


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda cls: cls.__name__)
def test_every_setting_declares_its_variable_parser_default_and_doc(cls):
    for f in dataclasses.fields(cls):
        if f.name == "rejected":
            continue  # what load() could not use, not a variable of its own
        assert f.metadata["env"].isupper() and f.metadata["doc"], f.name
        assert f.metadata["parse"] or f.metadata["nested"], f.name
        assert (f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING), f"{f.name} has no default"
    cls()  # every field has a default, so nothing is required from the environment


def test_defaults_come_from_the_declaration_alone():
    assert GatewaySettings.from_env({}) == GatewaySettings()
    assert RegistrySettings.from_env({}) == RegistrySettings()
    assert ClientSettings.from_env({}) == ClientSettings()
    assert GatewaySettings().keep_alive == 300.0 and GatewaySettings().max_queue == 512
    assert RegistrySettings().embedded_model and RegistrySettings().address == "127.0.0.1:11435"


def test_unusable_values_keep_the_default_and_are_remembered():
    settings = GatewaySettings.from_env({"OLLAMA_KV_CACHE_TYPE": "Q5_0", "OLLAMA_NUM_PARALLEL": "x",
                                         "OLLAMA_FLASH_ATTENTION": "'0'"})
    assert settings.kv_cache_type == "f16" and settings.num_parallel == 1
    assert settings.flash_attention == "off"
    assert dict(settings.rejected) == {"OLLAMA_KV_CACHE_TYPE": "Q5_0", "OLLAMA_NUM_PARALLEL": "x"}
    assert GatewaySettings.from_env({"OLLAMA_KV_CACHE_TYPE": "Q8_0"}).kv_cache_type == "q8_0"


def test_client_settings_hold_the_variables_the_cli_reads():
    settings = ClientSettings.from_env({"OLLAMA_EDITOR": "vim -u NONE", "OLLAMA_NOHISTORY": "1",
                                        "CORRAL_REGISTRY_ADDR": " 127.0.0.1:1 ", "CORRAL_API_KEY": "s3"})
    assert settings.editor == "vim -u NONE" and settings.nohistory
    assert settings.registry_address == "127.0.0.1:1"  # the CLI's default is "through the server"
    assert "s3" not in repr(settings)


@pytest.mark.parametrize("command,classes", [
    ("serve", (GatewaySettings, RegistrySettings)), ("run", (ClientSettings,))])
def test_help_lists_every_variable_with_its_doc_and_default(command, classes):
    with pytest.raises(HelpRequested) as exc:
        resolve(COMMANDS, [command, "--help"], "")
    lines = {line.split()[0]: line for line in exc.value.text.splitlines() if line.startswith("      ")}
    docs: dict[str, set[str]] = {}  # a variable two services read may carry either's doc
    for cls in classes:
        for f in dataclasses.fields(cls):
            if "env" in f.metadata:
                docs.setdefault(f.metadata["env"], set()).add(f.metadata["doc"])
                for variable, doc in f.metadata["also"]:
                    docs.setdefault(variable, set()).add(doc)
    if command == "run":
        docs.pop("CORRAL_REGISTRY_ADDR")  # only `keys` talks to the registry itself
    for variable, described in docs.items():
        assert variable in lines, variable
        assert any(doc in lines[variable] for doc in described), lines[variable]
    if command == "serve":
        assert lines["OLLAMA_KEEP_ALIVE"].endswith("idle time before unload (default 5m)")
        assert lines["OLLAMA_MAX_QUEUE"].endswith("queued requests before 503 (default 512)")
        assert lines["OLLAMA_DEBUG"].endswith("debug logging (default false)")
