"""Typed keys for the objects an application shares with its handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.blob_cache import BlobCache
from gateway.generation import InferenceService
from gateway.scheduler import Scheduler
from services.clients.registry import RegistryClient
from services.settings import GatewaySettings

SETTINGS = web.AppKey("settings", GatewaySettings)
# The whole registry client (the model routes use all of it); tests store a fake RegistryPort.
REGISTRY = web.AppKey("registry", RegistryClient)
SCHEDULER = web.AppKey("scheduler", Scheduler)
INFERENCE = web.AppKey("inference", InferenceService)
BLOBS: web.AppKey[BlobCache | None] = web.AppKey("blobs")  # None: use the registry's paths
