"""Typed keys for the objects an application shares with its handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.generation import InferenceService
from gateway.scheduler import Scheduler
from services.settings import GatewaySettings

SETTINGS = web.AppKey("settings", GatewaySettings)
REGISTRY = web.AppKey("registry", Any)
SCHEDULER = web.AppKey("scheduler", Scheduler)
INFERENCE = web.AppKey("inference", InferenceService)
BLOBS = web.AppKey("blobs", Any)  # gateway.blob_cache.BlobCache, or None (tests)
