"""CreateModel semantics on a real store: from a model, from uploaded GGUF files, overrides,
Ollama's progress statuses, byte-exact layers and manifests, and every validation error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from registry.create import CreateRequest, ModelCreator
from registry.manifests import (ADAPTER_MEDIA_TYPE, CONFIG_MEDIA_TYPE, LICENSE_MEDIA_TYPE,
                                MESSAGES_MEDIA_TYPE, MODEL_MEDIA_TYPE, PARAMS_MEDIA_TYPE,
                                SYSTEM_MEDIA_TYPE, Manifest)
from services.errors import InvalidModelNameError, InvalidRequestError, ModelNotFoundError
from services.names import parse_name
from tests.registry.model_helpers import (blob_files, create, model_store, statuses, upload,
                                          write_llama_gguf)

TEMPLATE_MEDIA_TYPE = "application/vnd.ollama.image.template"


async def _manifest(store, name: str) -> Manifest:
    return Manifest.parse(await store.manifest_bytes(name))


async def test_from_model_inherits_layers_then_adds_ollama_layers(tmp_path: Path,
                                                                  tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        base = await store.import_gguf(parse_name("base"), tiny_gguf)
        progress = await create(
            store, name="Mario", from_="BASE", template="{{ .System }} {{ .Prompt }}",
            system="You are Mario.", licenses=["MIT"],
            parameters={"temperature": 1.0, "stop": ["<|im_end|>"]},
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
        manifest = await _manifest(store, "mario")
        resolved = await store.resolve("mario:latest")
        base_manifest = await _manifest(store, "base")
    model, *new = manifest.layers
    assert [layer.media_type for layer in manifest.layers] == [
        MODEL_MEDIA_TYPE, TEMPLATE_MEDIA_TYPE, SYSTEM_MEDIA_TYPE, LICENSE_MEDIA_TYPE,
        PARAMS_MEDIA_TYPE, MESSAGES_MEDIA_TYPE]
    assert statuses(progress) == [f"using existing layer {model.digest}"] + [
        f"creating new layer {layer.digest}" for layer in new] + ["writing manifest", "success"]
    assert model.digest == base_manifest.layers[0].digest and model.from_ == "base:latest"
    assert all(layer.from_ == "" for layer in new)
    assert manifest.config == base_manifest.config  # same GGUF: the same config blob
    assert resolved.record.name.display == "Mario:latest"
    assert resolved.record.details == base.details
    assert resolved.parent_model == "base:latest"
    assert resolved.template == "{{ .System }} {{ .Prompt }}"
    assert resolved.system == "You are Mario." and resolved.licenses == ["MIT"]
    assert resolved.parameters == {"stop": ["<|im_end|>"], "temperature": 1}
    assert resolved.messages == [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": "yo"}]
    assert resolved.model_path == store.blobs.path(model.digest).resolve()


async def test_layer_and_manifest_bytes_are_what_ollama_writes(tmp_path: Path,
                                                               tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="m", from_="base", system="Be <brief> & kind",
                     parameters={"temperature": 0.5, "num_ctx": 2048.0, "stop": ["<|end|>"],
                                 "my_custom_key": 3.0, "use_mmap": True},
                     messages=[{"role": "user", "content": "<hi>"}])
        content = await store.manifest_bytes("m")
        manifest = Manifest.parse(content)
        blob = {layer.media_type: store.blobs.path(layer.digest).read_bytes()
                for layer in manifest.layers}
        record = (await store.resolve("m")).record
    assert blob[SYSTEM_MEDIA_TYPE] == b"Be <brief> & kind"  # raw text, no newline added
    assert blob[PARAMS_MEDIA_TYPE] == (b'{"my_custom_key":3,"num_ctx":2048,"stop":'
                                       b'["\\u003c|end|\\u003e"],"temperature":0.5,'
                                       b'"use_mmap":true}\n')
    assert blob[MESSAGES_MEDIA_TYPE] == b'[{"role":"user","content":"\\u003chi\\u003e"}]\n'
    layers = ",".join(
        f'{{"mediaType":"{layer.media_type}","digest":"{layer.digest}","size":{layer.size}'
        + (f',"from":"{layer.from_}"' if layer.from_ else "") + "}" for layer in manifest.layers)
    config = manifest.config
    assert content == (
        '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        f'"config":{{"mediaType":"{CONFIG_MEDIA_TYPE}","digest":"{config.digest}",'
        f'"size":{config.size}}},"layers":[{layers}]}}\n').encode()
    assert record.digest == hashlib.sha256(content).hexdigest()


async def test_a_second_create_merges_parameters_replaces_and_accumulates(
        tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await create(store, name="one", from_="base", system="A", template="T1",
                     licenses=["L1"], parameters={"temperature": 1.0, "num_ctx": 2048.0},
                     messages=[{"role": "user", "content": "first"}])
        one = await _manifest(store, "one")
        progress = await create(store, name="two", from_="one", template="T2", licenses=["L2"],
                                parameters={"temperature": 0.25, "top_k": 10.0},
                                messages=[{"role": "user", "content": "second"}])
        two = await _manifest(store, "two")
        resolved = await store.resolve("two")
    system = one.layer(SYSTEM_MEDIA_TYPE)
    assert f"using existing layer {system.digest}" in statuses(progress)
    assert resolved.system == "A" and resolved.template == "T2"
    assert resolved.parameters == {"num_ctx": 2048, "temperature": 0.25, "top_k": 10}
    assert resolved.messages == [{"role": "user", "content": "second"}]
    assert resolved.licenses == ["L1", "L2"]
    assert [layer.media_type for layer in two.layers].count(TEMPLATE_MEDIA_TYPE) == 1
    assert all(layer.from_ == "one:latest" for layer in two.layers if layer.digest in
               {d.digest for d in one.layers})


async def test_recreating_the_same_model_reuses_every_layer(tmp_path: Path,
                                                            tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        request = dict(name="m", from_="base", system="S", parameters={"top_k": 5.0})
        await create(store, **request)
        first = await store.manifest_bytes("m")
        files = blob_files(store)
        progress = await create(store, **request)
        assert await store.manifest_bytes("m") == first and blob_files(store) == files
    assert all(s.startswith("using existing layer") for s in statuses(progress)[:-2])


async def test_from_uploaded_gguf_file(tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        digest = await upload(store, tiny_gguf)
        progress = await create(store, name="imported", files={"tiny.gguf": digest},
                                template="{{ .Prompt }}", parameters={"stop": ["\n", "User:"]})
        resolved = await store.resolve("imported")
        manifest = resolved.manifest
    assert statuses(progress)[:2] == ["parsing GGUF", f"using existing layer {digest}"]
    assert statuses(progress)[2].startswith("creating new layer")
    assert manifest.layers[0].digest == digest and manifest.layers[0].from_ == ""
    assert resolved.model_path.read_bytes() == tiny_gguf.read_bytes()
    assert resolved.record.details.family == "llama"
    assert resolved.record.details.quantization_level == "F32"
    assert resolved.chat_template == "{{ messages }}"
    assert resolved.template == "{{ .Prompt }}"
    assert resolved.parameters == {"stop": ["\n", "User:"]}


async def test_from_a_blob_digest_imports_that_gguf(tmp_path: Path, tiny_gguf: Path) -> None:
    async with model_store(tmp_path / "m") as store:
        digest = await upload(store, tiny_gguf)
        progress = await create(store, name="by-digest", from_=digest.replace(":", "-"))
        resolved = await store.resolve("by-digest")
    assert statuses(progress)[:2] == ["parsing GGUF", f"using existing layer {digest}"]
    assert resolved.manifest.layers[0].digest == digest


async def test_gguf_recognized_by_magic_and_adapters_get_their_layer(tmp_path: Path,
                                                                     tiny_gguf: Path) -> None:
    adapter = write_llama_gguf(tmp_path / "lora.gguf", general_type="adapter")
    async with model_store(tmp_path / "m") as store:
        model, lora = await upload(store, tiny_gguf), await upload(store, adapter)
        await create(store, name="with-lora", files={"weights": model},
                     adapters={"lora.gguf": lora})
        resolved = await store.resolve("with-lora")
    assert [layer.media_type for layer in resolved.manifest.layers] == [MODEL_MEDIA_TYPE,
                                                                 ADAPTER_MEDIA_TYPE]
    assert resolved.layer_digests(ADAPTER_MEDIA_TYPE) == [lora]


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"name": "bad name!", "from_": "base"}, InvalidModelNameError, "invalid model name"),
    ({"name": "", "from_": "base"}, InvalidModelNameError, "invalid model name"),
    ({"name": "m"}, InvalidRequestError, "neither 'from' or 'files' was specified"),
    ({"name": "m", "from_": "a/b/c/d"}, InvalidModelNameError, "invalid model name"),
    ({"name": "m", "from_": "nope"}, ModelNotFoundError, "model 'nope' not found"),
    ({"name": "m", "files": {"../x.gguf": "@tiny"}}, InvalidRequestError,
     "file path must be relative"),
    ({"name": "m", "files": {"/etc/x.gguf": "@tiny"}}, InvalidRequestError,
     "file path must be relative"),
    ({"name": "m", "files": {"x.gguf": "sha256:../../corral.db"}}, InvalidRequestError,
     "invalid digest format"),
    ({"name": "m", "files": {"x.gguf": "sha256:" + "0" * 64}}, InvalidRequestError,
     f'blob "sha256:{"0" * 64}" not found'),
    ({"name": "m", "files": {"x.gguf": "@text"}}, InvalidRequestError,
     "supplied file was not in GGUF format"),
    ({"name": "m", "files": {"notes": "@text"}}, InvalidRequestError, "unknown type"),
    ({"name": "m", "files": {"model.safetensors": "@text"}}, InvalidRequestError,
     "safetensors import is not supported; convert the model to GGUF "
     "(llama.cpp's convert_hf_to_gguf.py) first"),
    ({"name": "m", "from_": "base", "adapters": {"a.gguf": "@tiny", "b.gguf": "@text"}},
     InvalidRequestError, "only one adapter is currently supported"),
    ({"name": "m", "from_": "base", "parameters": {"temperature": "hot"}}, InvalidRequestError,
     'option "temperature" must be of type float32'),
    ({"name": "m", "from_": "base", "parameters": {"stop": "x"}}, InvalidRequestError,
     'option "stop" must be of type array'),
    ({"name": "m", "from_": "base", "template": "ok\n{{ .Prompt "}, InvalidRequestError,
     "template error: template: :2: unclosed action"),
    ({"name": "m", "from_": "base", "quantize": "q3_k_xl"}, InvalidRequestError,
     "unsupported quantization type q3_k_xl - supported types are F32, F16, Q4_K_S, Q4_K_M, "
     "Q8_0"),
    ({"name": "m", "from_": "quantized", "quantize": "q4_K_M"}, InvalidRequestError,
     "quantization is only supported for F16, BF16 and F32 models"),
])
async def test_validation_errors_come_before_any_progress_and_change_nothing(
        tmp_path: Path, tiny_gguf: Path, fields: dict, error: type, message: str) -> None:
    import gguf

    text = tmp_path / "notes.txt"
    text.write_text("plain text, not a model")
    quantized = tmp_path / "q.gguf"
    writer = gguf.GGUFWriter(quantized, "llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    async with model_store(tmp_path / "m") as store:
        await store.import_gguf(parse_name("base"), tiny_gguf)
        await store.import_gguf(parse_name("quantized"), quantized)
        refs = {"@tiny": await upload(store, tiny_gguf), "@text": await upload(store, text)}
        for key in ("files", "adapters"):
            if key in fields:
                fields[key] = {k: refs.get(v, v) for k, v in fields[key].items()}
        before = (await store.list_models(), blob_files(store))
        stream = ModelCreator(store).create(CreateRequest(**fields))
        with pytest.raises(error) as excinfo:
            await anext(stream)
        assert excinfo.value.message == message
        assert (await store.list_models(), blob_files(store)) == before


# -- a `from` model that is not local is pulled first (Ollama's parseFromModel) ---------------

async def test_create_from_a_model_that_is_not_local_pulls_it_first(service, fake, remote,
                                                                    tiny_gguf: Path) -> None:
    fake.add_gguf_model("library/base", "v1", tiny_gguf.read_bytes())
    store = service.store
    creator = ModelCreator(store, pull=lambda name: service.pull(name, insecure=True))
    lines = [p async for p in creator.create(CreateRequest(
        name="derived", from_=f"{remote}/library/base:v1", system="pulled first"))]
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest" and "writing manifest" in statuses
    assert statuses.count("success") == 1 and statuses[-1] == "success"  # the pull's is dropped
    assert any(line.get("digest") and line.get("completed") for line in lines)
    assert (await store.resolve("derived")).system == "pulled first"
    assert (await store.resolve(f"{remote}/library/base:v1")).model_path.is_file()

    with pytest.raises(ModelNotFoundError) as excinfo:  # the registry has no such model
        async for _ in creator.create(CreateRequest(name="x", from_=f"{remote}/library/nope:v1")):
            pass
    assert excinfo.value.message == f"model '{remote}/library/nope:v1' not found"
