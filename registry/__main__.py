"""``python -m registry``: serve the model registry until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

import structlog

from registry.server import running_registry
from services.grpc_server import stop_event_on_signals
from services.logging import configure_logging
from services.settings import RegistrySettings
from services.tracing import setup_tracing

log = structlog.get_logger()


async def serve(settings: RegistrySettings) -> None:
    """Run the registry until a stop signal arrives."""
    stop = stop_event_on_signals()
    async with running_registry(settings) as service:
        log.info("registry_started", address=settings.address, port=service.port,
                 models_dir=str(settings.models_dir))
        await stop.wait()
        log.info("registry_stopping")


def main() -> None:
    settings = RegistrySettings.from_env()
    configure_logging("registry", debug=settings.debug)
    setup_tracing("registry", grpc_server=True)
    try:
        asyncio.run(serve(settings))
    except ValueError as exc:  # a bad CORRAL_DATABASE_URL or TLS setting: say so, no traceback
        log.error("registry_failed", error=str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
