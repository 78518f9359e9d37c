"""The registry servicer's API-key RPCs, mixed into ``registry.server.RegistryServicer``.

The class using this mixin sets ``self._keys`` (a ``KeyStore``). Nothing here logs a hash.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from registry.keys import KeyRecord, KeyStore, NewKey
from registry.tables import utcnow
from services.context import ServicerContext
from services.pb.corral.registry.v1 import registry_pb2 as pb


class KeysServicerMixin:
    """API keys over ``self._keys``."""

    _keys: KeyStore

    async def CreateKey(self, request: pb.CreateKeyRequest,
                        context: ServicerContext) -> pb.CreateKeyResponse:
        """Store a key; INVALID_ARGUMENT for a bad name/scope/hash, ALREADY_EXISTS for a taken name."""
        expires = request.expires_at.ToDatetime(tzinfo=UTC) if request.HasField("expires_at") else None
        record = await self._keys.create(NewKey(
            name=request.name, key_hash=request.key_hash, scopes=tuple(request.scopes),
            expires_at=expires, requests_per_minute=request.requests_per_minute,
            max_concurrent=request.max_concurrent))
        return pb.CreateKeyResponse(key=api_key(record))

    async def ListKeys(self, request: pb.ListKeysRequest,
                       context: ServicerContext) -> pb.ListKeysResponse:
        """Every key's description, by name."""
        return pb.ListKeysResponse(keys=[api_key(r) for r in await self._keys.list_keys()])

    async def RevokeKey(self, request: pb.RevokeKeyRequest,
                        context: ServicerContext) -> pb.RevokeKeyResponse:
        """Delete a key; NOT_FOUND when no key has that name."""
        await self._keys.revoke(request.name)
        return pb.RevokeKeyResponse()

    async def CheckKey(self, request: pb.CheckKeyRequest,
                       context: ServicerContext) -> pb.CheckKeyResponse:
        """Whether keys exist, and what the key with ``key_hash`` (if asked) may do."""
        response = pb.CheckKeyResponse(keys_exist=await self._keys.any())
        if not request.key_hash:
            return response
        record = await self._keys.check(request.key_hash)
        if record is None:
            response.status = pb.KEY_STATUS_UNKNOWN
        elif record.expired(utcnow()):
            response.status = pb.KEY_STATUS_EXPIRED
        else:
            response.status = pb.KEY_STATUS_VALID
            response.key.CopyFrom(api_key(record))
        return response


def api_key(record: KeyRecord) -> pb.ApiKey:
    """A ``KeyRecord`` as the proto's ``ApiKey`` (no hash)."""
    key = pb.ApiKey(name=record.name, scopes=list(record.scopes), created_at=_timestamp(record.created_at),
                    requests_per_minute=record.requests_per_minute,
                    max_concurrent=record.max_concurrent)
    if record.last_used_at is not None:
        key.last_used_at.CopyFrom(_timestamp(record.last_used_at))
    if record.expires_at is not None:
        key.expires_at.CopyFrom(_timestamp(record.expires_at))
    return key


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
