"""``python -m gateway``: serve Ollama's API until SIGINT/SIGTERM, then stop every runner."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import sys

import structlog
from aiohttp import web

from gateway.app import create_app
from gateway.blob_cache import BlobCache
from gateway.runners import spawn_runner
from gateway.scheduler import Scheduler
from services.clients.registry import RegistryClient
from services.grpc_server import stop_event_on_signals
from services.logging import configure_logging
from services.settings import GatewaySettings
from services.tracing import setup_tracing

log = structlog.get_logger()

REGISTRY_WAIT_S = 120.0


async def serve(settings: GatewaySettings) -> int:
    """Run the HTTP server; on a stop signal, close it and the runners (via cleanup_ctx)."""
    stopping = stop_event_on_signals()
    tls = tls_context(settings)
    registry = RegistryClient(settings.registry_address, settings.grpc_tls)
    await wait_for_registry(registry)
    blobs = BlobCache.from_settings(settings, registry)
    scheduler = Scheduler(settings, spawn=blobs.spawner(spawn_runner))
    blobs.track_in_use(lambda: {path for entry in scheduler.loaded()
                                for path in (entry.spec.model_path, *entry.spec.adapters)})
    app = create_app(settings, registry=registry, scheduler=scheduler, blobs=blobs)
    # handler_cancellation: a client that disconnects cancels its handler, hence its gRPC call.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host.host, settings.host.port, ssl_context=tls).start()
        scheme = "https" if tls else "http"
        log.info("gateway_started", address=dataclasses.replace(settings.host, scheme=scheme).url)
        await stopping.wait()
        log.info("gateway_stopping")
    finally:
        await runner.cleanup()
    log.info("gateway_stopped")
    return 0


def tls_context(settings: GatewaySettings) -> ssl.SSLContext | None:
    """HTTPS when ``CORRAL_TLS_CERT`` and ``CORRAL_TLS_KEY`` are both set (TLS 1.2+).

    Raises ``ValueError`` when only one is set, ``OSError``/``ssl.SSLError`` when they cannot be
    loaded: a server asked for HTTPS must not quietly serve plain HTTP.
    """
    if not (settings.tls_cert or settings.tls_key):
        return None
    if not (settings.tls_cert and settings.tls_key):
        raise ValueError("CORRAL_TLS_CERT and CORRAL_TLS_KEY must be set together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def wait_for_registry(registry: RegistryClient) -> None:
    """Bind the HTTP port only once the registry is ready, so "answering" means "usable".

    A registry that stays down is not fatal: requests then fail with 503 until it is back.
    """
    try:
        await registry.wait_ready(REGISTRY_WAIT_S)
        log.info("registry_ready", address=registry.target)
    except TimeoutError:
        log.warning("registry_not_ready", address=registry.target, waited_s=REGISTRY_WAIT_S)


def config_fields(settings: GatewaySettings) -> dict[str, object]:
    """The settings as loggable values (nothing secret lives in them today)."""
    fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
              if f.name != "rejected"}
    return {**{k: v if isinstance(v, (int, float, bool)) else str(v) for k, v in fields.items()},
            "host": settings.host.url, "origins": list(settings.origins)}


def main() -> int:
    settings = GatewaySettings.from_env()
    configure_logging("gateway", debug=settings.debug)
    setup_tracing("gateway", http_server=True, grpc_client=True)
    log.info("server_config", **config_fields(settings))
    for variable, value in settings.rejected:
        if variable == "OLLAMA_KV_CACHE_TYPE":
            log.warning("kv_cache_type_unsupported", kv_cache_type=value.lower(),
                        using=settings.kv_cache_type)
    try:
        return asyncio.run(serve(settings))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError; ValueError: half a key pair
        log.error("gateway_failed", error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
