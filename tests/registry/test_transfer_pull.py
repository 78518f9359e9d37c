"""Pulling from an in-process registry: progress, 200/307/bearer flows, faults, resume, sharing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from registry.manifests import MODEL_MEDIA_TYPE
from registry.transfer.service import TransferService
from services.errors import CorralError, InvalidModelNameError
from tests.registry.conftest import open_store
from tests.registry.fake_oci import digest
from tests.registry.transfer_helpers import (PART, WEIGHTS, blob_files, fast_options, gguf_file,
                                             pull)



@pytest.fixture
def gguf(tmp_path: Path) -> bytes:
    return gguf_file(tmp_path / "model.gguf", WEIGHTS // 4)


async def test_pull_direct_200_in_parallel_parts(service, fake, remote, gguf):
    content = fake.add_gguf_model("library/tiny", "v1", gguf)
    lines = await pull(service, f"{remote}/library/tiny:v1")
    model = digest(gguf)
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    model_lines = [line for line in lines if line["digest"] == model]
    assert {line["status"] for line in model_lines} == {f"pulling {model[7:19]}"}
    assert all(line["total"] == len(gguf) for line in model_lines)
    completed = [line["completed"] for line in model_lines]
    assert completed == sorted(completed) and completed[-1] == len(gguf)
    config = json.loads(content)["config"]
    assert lines[-4] == {"status": f"pulling {config['digest'][7:19]}", "digest": config["digest"],
                         "total": config["size"], "completed": config["size"]}
    # every byte served once, in five ranged parts
    assert fake.served[model] == len(gguf)
    assert sorted(start for d, start in fake.ranges if d == model) == [0, PART, 2 * PART, 3 * PART, 4 * PART]
    store = service.store
    assert await store.manifest_bytes(f"{remote}/library/tiny:v1") == content
    resolved = await store.resolve(f"{remote}/library/tiny:v1")
    assert resolved.chat_template == "{{ messages }}"
    assert resolved.model_path.read_bytes() == gguf
    assert not [n for n in blob_files(service) if "partial" in n]


async def test_pull_again_is_all_cache_hits(service, fake, remote, gguf):
    fake.add_gguf_model("library/tiny", "v1", gguf)
    await pull(service, f"{remote}/library/tiny:v1")
    served = sum(fake.served.values())
    lines = await pull(service, f"{remote}/library/tiny:v1")
    assert sum(fake.served.values()) == served
    blob_lines = [line for line in lines if line["digest"]]
    assert len(blob_lines) == 2 and all(line["completed"] == line["total"] for line in blob_lines)


async def test_pull_follows_307_and_drops_auth_off_host(service, fake, remote, gguf):
    fake.redirect, fake.auth = True, "bearer"
    fake.add_gguf_model("library/tiny", "v1", gguf)
    lines = await pull(service, f"{remote}/library/tiny:v1")
    assert lines[-1]["status"] == "success"
    cdn = [(path, headers) for method, path, headers in fake.log if path.startswith("/cdn/")]
    assert cdn and all("Authorization" not in headers for _, headers in cdn)
    assert fake.served[digest(gguf)] == len(gguf)


async def test_bearer_challenge_with_ollama_signature(service, fake, remote, gguf, tmp_path):
    fake.auth = "bearer"
    fake.add_gguf_model("library/tiny", "v1", gguf)
    lines = await pull(service, f"{remote}/library/tiny:v1")
    assert lines[-1]["status"] == "success"
    # the key was created on first use, in OpenSSH format, and it is what signed
    key_file = tmp_path / "id_ed25519"
    assert key_file.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (key_file.stat().st_mode & 0o777) == 0o600
    public = (tmp_path / "id_ed25519.pub").read_text().split()
    assert public[0] == "ssh-ed25519" and fake.signers
    token_requests = [path for _, path, _ in fake.log if path.startswith("/token")]
    assert len(token_requests) == 1  # one token serves the whole pull
    assert "scope=repository%3Alibrary%2Ftiny%3Apull" in token_requests[0]
    assert "service=fake" in token_requests[0] and "nonce=" in token_requests[0]


async def test_basic_auth_from_credentials_file(tmp_path, fake, remote, gguf):
    fake.auth = "basic"
    fake.add_gguf_model("library/tiny", "v1", gguf)
    async with open_store(tmp_path / "models") as store:
        anonymous = TransferService(store, fast_options(tmp_path))
        with pytest.raises(CorralError, match="requires a username and password"):
            await pull(anonymous, f"{remote}/library/tiny:v1")
        await anonymous.close()
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({f"http://{remote}": {"username": "alice", "password": "s3cret"}}))
        service = TransferService(store, fast_options(tmp_path, auth_file=auth))
        assert (await pull(service, f"{remote}/library/tiny:v1"))[-1]["status"] == "success"
        await service.close()


async def test_missing_manifest_uses_ollamas_wording(service, remote):
    with pytest.raises(CorralError) as excinfo:
        await pull(service, f"{remote}/library/nothere:v1")
    assert excinfo.value.message == "pull model manifest: file does not exist"


async def test_http_needs_insecure_and_names_are_checked(service, remote):
    with pytest.raises(CorralError, match="^insecure protocol http$"):
        await pull(service, f"http://{remote}/library/tiny:v1", insecure=False)
    with pytest.raises(InvalidModelNameError):
        await pull(service, "bad name!")


async def test_tampered_blob_never_lands(service, fake, remote, gguf):
    fake.add_gguf_model("library/tiny", "v1", gguf)
    fake.tampered.add(digest(gguf))
    before = blob_files(service)
    with pytest.raises(CorralError, match="digest mismatch"):
        await pull(service, f"{remote}/library/tiny:v1")
    assert await service.store.blobs.size(digest(gguf)) is None
    assert not [n for n in blob_files(service) - before if digest(gguf)[7:] in n]
    assert await service.store.list_models() == []


async def test_dropped_connection_resumes_without_refetching(service, fake, remote, gguf):
    fake.add_gguf_model("library/tiny", "v1", gguf)
    model = digest(gguf)
    fake.drops[model] = [PART // 2, 1000, PART // 3]  # three responses cut short
    lines = await pull(service, f"{remote}/library/tiny:v1")
    assert lines[-1]["status"] == "success"
    assert fake.served[model] == len(gguf)  # nothing fetched twice
    assert (await service.store.resolve(f"{remote}/library/tiny:v1")).model_path.read_bytes() == gguf


async def test_interrupted_pull_resumes_after_restart(tmp_path, fake, remote, gguf):
    fake.add_gguf_model("library/tiny", "v1", gguf)
    model, name = digest(gguf), f"{remote}/library/tiny:v1"
    fake.hang_from = 2 * PART  # parts 0 and 1 finish; 2, 3 and 4 stall halfway
    async with open_store(tmp_path / "models") as store:
        first = TransferService(store, fast_options(tmp_path, stall_timeout_s=0.2))
        async for progress in first.pull(name, insecure=True):
            download = first.downloads.running(model)
            if download and sum(p.done for p in download.partial.parts) == 2 and \
                    progress.completed >= 3 * PART:
                break  # the client goes away: the download is cancelled, its partial kept
        await first.close()
    fake.release.set()
    blobs_dir = tmp_path / "models/blobs"
    state = json.loads((blobs_dir / f"sha256-{model[7:]}-partial.json").read_text())
    config = json.loads(fake.manifests[("library/tiny", "v1")])["config"]["digest"]
    assert not (blobs_dir / f"sha256-{config[7:]}-partial").exists()  # reserved, never started
    kept = sum(completed for _, _, completed in state["parts"])
    done = [offset for offset, size, completed in state["parts"] if completed == size]
    assert done == [0, PART] and kept >= 3 * PART
    served_before, fake.hang_from = fake.served[model], None
    fake.ranges.clear()
    async with open_store(tmp_path / "models") as store:  # a new process on the same store
        second = TransferService(store, fast_options(tmp_path))
        lines = [p async for p in second.pull(name, insecure=True)]
        await second.close()
        assert (await store.resolve(name)).model_path.read_bytes() == gguf
    assert lines[-1].status == "success"
    first_line = next(p for p in lines if p.digest == model)
    assert first_line.completed == kept  # progress starts where the last pull stopped
    assert fake.served[model] - served_before == len(gguf) - kept
    resumed_at = sorted(o + c for o, s, c in state["parts"] if c < s)
    assert sorted(start for d, start in fake.ranges if d == model) == resumed_at  # done parts: never


async def test_concurrent_pulls_share_one_download(service, fake, remote, gguf):
    fake.add_gguf_model("library/tiny", "v1", gguf)
    fake.add_model("library/other", "v1", [(MODEL_MEDIA_TYPE, gguf)],
                   config=b'{"model_format":"gguf","x":1}\n')
    results = await asyncio.gather(pull(service, f"{remote}/library/tiny:v1"),
                                   pull(service, f"{remote}/library/tiny:v1"),
                                   pull(service, f"{remote}/library/other:v1"))
    assert [lines[-1]["status"] for lines in results] == ["success"] * 3
    assert fake.served[digest(gguf)] == len(gguf)
    assert len(await service.store.list_models()) == 2
