import math

import pytest

from services.settings import (FOREVER, GatewaySettings, GrpcTls, RegistrySettings,
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
