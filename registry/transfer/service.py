"""``TransferService``: what the registry's gRPC servicer holds for pull, push and ``/v2/``.

One process-wide HTTP client and download manager. Credentials are re-read from the
``CORRAL_REGISTRY_AUTH`` file at the start of every pull or push, so editing the file needs no
restart. Proxies follow Go's ``ProxyFromEnvironment`` (``registry.transfer.proxy``), chosen per
request, since aiohttp's ``trust_env`` would also proxy loopback registries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import structlog

from registry.store import ModelStore
from registry.transfer.auth import OllamaKey, credentials_for, load_credentials
from registry.transfer.download import DownloadManager
from registry.transfer.http import RegistrySession
from registry.transfer.proxy import ProxyConfig
from registry.transfer.pull import pull_model
from registry.transfer.push import push_model
from registry.transfer.remote import RemoteRef, TransferOptions, resolve_remote
from services.pb.corral.registry.v1 import registry_pb2 as pb
from services.settings import RegistrySettings

log = structlog.get_logger()


class TransferService:
    """Pulls and pushes against remote registries for one ``ModelStore``."""

    def __init__(self, store: ModelStore, options: TransferOptions | None = None) -> None:
        self.store = store
        self.options = options or TransferOptions()
        self.downloads = DownloadManager(store.blobs, self.options)
        self._key = OllamaKey(self.options.key_file) if self.options.key_file else None
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(trust_env=False,
                                               headers={"Accept-Encoding": "identity"})
        return self._http

    async def session(self, ref: RemoteRef, actions: str) -> RegistrySession:
        """A fresh conversation with ``ref``'s registry (reads the credentials file now)."""
        table = await asyncio.to_thread(load_credentials, self.options.auth_file)
        credentials = credentials_for(table, ref.host)
        return RegistrySession(self._client(), ref, credentials=credentials, key=self._key,
                               actions=actions, stall_timeout_s=self.options.stall_timeout_s,
                               proxies=self.options.proxies)

    async def pull(self, name: str, *, insecure: bool) -> AsyncIterator[pb.Progress]:
        """Progress of pulling ``name``; errors before the first line are bad requests."""
        ref = resolve_remote(name, insecure=insecure)
        session = await self.session(ref, "pull")
        async for progress in pull_model(self.store, self.downloads, session):
            yield progress

    async def push(self, name: str, *, insecure: bool) -> AsyncIterator[pb.Progress]:
        """Progress of pushing the local model ``name`` to the registry its name points at."""
        ref = resolve_remote(name, insecure=insecure)
        session = await self.session(ref, "push,pull")
        async for progress in push_model(self.store, session, name, self.options):
            yield progress

    async def close(self) -> None:
        """Cancel downloads (their partial files stay) and close the HTTP client."""
        await self.downloads.close()
        if self._http is not None:
            await self._http.close()


def options_from_settings(settings: RegistrySettings) -> TransferOptions:
    """The registry process's transfer options: Ollama's sizes, the configured credentials and
    key (``$OLLAMA_MODELS/id_ed25519`` unless ``CORRAL_REGISTRY_KEY`` says otherwise)."""
    return TransferOptions(auth_file=settings.registry_auth,
                           key_file=settings.registry_key or settings.models_dir / "id_ed25519",
                           proxies=ProxyConfig(http=settings.http_proxy, https=settings.https_proxy,
                                               no_proxy=settings.no_proxy))
