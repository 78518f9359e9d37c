"""Corral's store-keeping endpoints (Ollama has none of these); the CLI's ``rescan``,
``verify``, ``save`` and ``load`` use them.

- ``POST /api/rescan`` syncs the registry with the Ollama manifest files now:
  ``{"indexed": [...], "removed": [...], "exported": [...], "skipped": {path: why}}``.
- ``POST /api/verify`` ``{"model"?, "repair"?, "stream"?}`` re-hashes blobs; NDJSON, per blob
  ``{"status": "verifying <12 hex>", "digest", "total"}`` then ``{"status": "ok" | "corrupt" |
  "missing", "digest", "total", "actual"?, "models", "quarantined"?}``, and last
  ``{"status": "success", "verified": n, "corrupt": n, "missing": n}``.
- ``GET /api/manifests/<name>`` answers a model's manifest byte for byte (its sha256 is the
  model id) and ``PUT /api/manifests/<name>`` stores one whose blobs are all present (uploaded
  with ``POST /api/blobs/:digest``), answering 201 ``{"digest"}``: an exact copy of a model
  between stores, which ``/api/create`` (it rebuilds the manifest) cannot give.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from aiohttp import web

from gateway.keys import REGISTRY
from gateway.limits import read_body
from gateway.schemas import read_json
from gateway.streaming import collect, json_response, ndjson_stream
from services.gocodec import typed_field
from services.names import parse_name
from services.pb.corral.registry.v1 import registry_pb2 as pb

MAX_MANIFEST_BYTES = 2 << 20  # under gRPC's 4 MiB message limit
_STATUS = {pb.BlobVerification.STATE_SOUND: "ok", pb.BlobVerification.STATE_CORRUPT: "corrupt",
           pb.BlobVerification.STATE_MISSING: "missing"}


async def rescan(request: web.Request) -> web.Response:
    reply = await request.app[REGISTRY].rescan()
    return json_response({"indexed": list(reply.indexed), "removed": list(reply.removed),
                          "exported": list(reply.exported), "skipped": dict(reply.skipped)})


async def verify(request: web.Request) -> web.StreamResponse:
    s = "VerifyRequest"
    body = await read_json(request, s) if request.can_read_body else {}
    name = typed_field(body, s, "model", "string", default="")
    repair = typed_field(body, s, "repair", "bool", default=False)
    stream = typed_field(body, s, "stream", "bool", default=True)
    if name:
        parse_name(name)
    events = _verify_objects(request.app[REGISTRY].verify_blobs(name, repair=repair))
    if not stream:
        return await collect(events, lambda items: items[-1])
    return await ndjson_stream(request, events)


async def _verify_objects(events: AsyncIterator[pb.BlobVerification]
                          ) -> AsyncGenerator[dict[str, Any], None]:
    counts = {"ok": 0, "corrupt": 0, "missing": 0}
    async for event in events:
        if event.state == pb.BlobVerification.STATE_HASHING:
            yield {"status": f"verifying {event.digest.removeprefix('sha256:')[:12]}",
                   "digest": event.digest, "total": event.size}
            continue
        status = _STATUS[event.state]
        counts[status] += 1
        out: dict[str, Any] = {"status": status, "digest": event.digest, "total": event.size}
        if event.actual_digest:
            out["actual"] = event.actual_digest
        out["models"] = list(event.models)
        if event.quarantined:
            out["quarantined"] = True
        yield out
    yield {"status": "success", "verified": sum(counts.values()), "corrupt": counts["corrupt"],
           "missing": counts["missing"]}


async def get_manifest(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    parse_name(name)
    reply = await request.app[REGISTRY].get_manifest(name=name)
    return web.Response(body=reply.content, headers={
        "Content-Type": reply.media_type, "Docker-Content-Digest": reply.digest})


async def put_manifest(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    parse_name(name)
    content = await read_body(request, MAX_MANIFEST_BYTES)
    digest = await request.app[REGISTRY].put_manifest("", "", content, name=name)
    return json_response({"digest": digest}, status=201)


def add_store_routes(app: web.Application) -> None:
    app.router.add_post("/api/rescan", rescan)
    app.router.add_post("/api/verify", verify)
    app.router.add_get("/api/manifests/{name:.+}", get_manifest)
    app.router.add_put("/api/manifests/{name:.+}", put_manifest)
