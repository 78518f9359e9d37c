"""The registry's side of Corral's own ``/v2/`` API: manifests by repository and reference.

Repository ``namespace/model`` and reference ``tag`` name the local model
``<host>/namespace/model:tag``; the host is the one the caller passes, and the default
(``registry.ollama.ai``) when it passes none or has no such model — so another instance pulling
``this-host:11434/library/smollm2:135m`` gets the local ``smollm2:135m``. A ``sha256:``
reference finds any local model whose manifest has that digest.
"""

from __future__ import annotations

import structlog

from registry.blobs import digest_of, is_digest
from registry.manifests import Manifest
from registry.store import ModelStore
from registry.transfer.pull import gguf_facts
from services.errors import InvalidModelNameError, InvalidRequestError, ModelNotFoundError
from services.names import DEFAULT_HOST, ModelName, parse_name

log = structlog.get_logger()


def repository_name(repository: str, reference: str, host: str = "") -> ModelName:
    """The local name a ``/v2/<repository>/manifests/<reference>`` path stands for."""
    namespace, sep, model = repository.partition("/")
    if not sep or "/" in model:
        raise InvalidModelNameError()
    return parse_name(f"{host or DEFAULT_HOST}/{namespace}/{model}:{reference}")


async def get_manifest(store: ModelStore, repository: str, reference: str,
                       host: str = "", name: str = "") -> tuple[bytes, str, str]:
    """``(content, media type, digest)`` of a stored manifest; ``ModelNotFoundError`` if none.

    ``name``, when given, is an exact local model name and the only thing looked up.
    """
    if name:
        content = await store.manifest_bytes(name)
    elif is_digest(reference):
        content = await _manifest_by_digest(store, reference.replace("-", ":", 1))
    else:
        content = await _manifest_by_name(store, repository, reference, host)
    return content, Manifest.parse(content).media_type, digest_of(content)


async def _manifest_by_name(store: ModelStore, repository: str, reference: str, host: str) -> bytes:
    for candidate in dict.fromkeys([host, ""]):
        name = repository_name(repository, reference, candidate)
        try:
            return await store.manifest_bytes(name.full)
        except ModelNotFoundError:
            continue
    raise ModelNotFoundError(f"manifest unknown: {repository}:{reference}")


async def _manifest_by_digest(store: ModelStore, digest: str) -> bytes:
    for record in await store.list_models():
        if f"sha256:{record.digest}" == digest:
            return await store.manifest_bytes(record.name.full)
    raise ModelNotFoundError(f"manifest unknown: {digest}")


async def put_manifest(store: ModelStore, repository: str, reference: str, content: bytes,
                       host: str = "", model: str = "") -> str:
    """Store a received manifest under the name it was pushed to (or ``model``, an exact
    local name); return its digest. Every referenced blob must already be stored with the
    declared size.
    """
    if model:
        name = parse_name(model)
    elif is_digest(reference):
        raise InvalidRequestError("manifests can only be pushed to a tag")
    else:
        name = repository_name(repository, reference, host)
    try:
        manifest = Manifest.parse(content)
    except ValueError as exc:
        raise InvalidRequestError(f"manifest invalid: {exc}") from exc
    for descriptor in (manifest.config, *manifest.layers):
        if await store.blobs.size(descriptor.digest) != descriptor.size:
            raise InvalidRequestError(f"blob unknown to registry: {descriptor.digest}")
    await store.save_model(name, content, await gguf_facts(store, manifest))
    log.info("manifest_received", model=name.display, digest=digest_of(content))
    return digest_of(content)
