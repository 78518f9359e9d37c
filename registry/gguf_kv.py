"""Corral's one GGUF reader: a fast, read-only header scanner (key/values and tensor infos,
nothing materialized), and the facts (``GGUFInfo``) and ``/api/show`` key/values built from it.

``gguf.GGUFReader`` builds numpy views for every vocabulary entry, which costs tens of seconds
for a 262k-token vocabulary on a busy host. This scanner walks the same header with
``struct.unpack_from`` over an mmap, keeps arrays only up to ``max_array`` elements (longer
ones are skipped, their length remembered) and never touches tensor data; the ``gguf``
package supplies the value types, key names and quantization names (the tests check the
scanner against ``gguf.GGUFReader``). Blocking; call it in a worker thread.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from registry.gguf_info import SHAPE_KEYS, GGUFInfo, human_number, kv_shape, quantization_name

GGUF_MAGIC = b"GGUF"
SHOW_ARRAY_LIMIT = 5  # /api/show replaces longer arrays by [] (Ollama's non-verbose form)

_T = gguf.GGUFValueType
_SCALARS: dict[int, str] = {  # keyed by the IntEnum, looked up by the header's plain int
    _T.UINT8: "<B", _T.INT8: "<b", _T.UINT16: "<H", _T.INT16: "<h", _T.UINT32: "<I",
    _T.INT32: "<i", _T.FLOAT32: "<f", _T.BOOL: "<?", _T.UINT64: "<Q", _T.INT64: "<q",
    _T.FLOAT64: "<d"}
_STRING, _ARRAY = _T.STRING, _T.ARRAY
# Arrays the facts need whole (per-layer head counts), by key suffix: "{arch}" left out.
_SHAPE_SUFFIXES = tuple(key.removeprefix("{arch}") for key in SHAPE_KEYS)


@dataclass(frozen=True)
class SkippedArray:
    """An array longer than the scan kept: its element type and length."""

    item_type: int
    length: int


@dataclass(frozen=True)
class GGUFHeader:
    """Everything before the tensor data: key/values in file order and tensor infos."""

    kv: dict[str, Any]
    tensors: list[tuple[str, tuple[int, ...], int]]  # name, shape, ggml type

    @property
    def parameter_count(self) -> int:
        total = 0
        for _name, shape, _type in self.tensors:
            count = 1
            for dim in shape:
                count *= dim
            total += count
        return total


class _Cursor:
    def __init__(self, buffer: Any) -> None:
        self.buf, self.pos = buffer, 0

    def unpack(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def raw_string(self) -> bytes:
        length = self.unpack("<Q")
        if self.pos + length > len(self.buf):
            raise ValueError("GGUF string runs past the end of the file")
        data = bytes(self.buf[self.pos:self.pos + length])
        self.pos += length
        return data

    def skip_string(self) -> None:
        length = self.unpack("<Q")
        self.pos += length


def scan_header(path: Path, *, max_array: int = SHOW_ARRAY_LIMIT,
                keep_arrays: tuple[str, ...] = ()) -> GGUFHeader:
    """Read ``path``'s header. Arrays longer than ``max_array`` become ``SkippedArray`` unless
    their key ends with one of ``keep_arrays``. Raises ``ValueError`` for a file that is not
    GGUF v2/v3."""
    with open(path, "rb") as f:
        try:
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # empty file
            raise ValueError("not a GGUF file") from exc
    with buffer:
        try:
            return _scan(_Cursor(buffer), max_array, keep_arrays)
        except struct.error as exc:
            raise ValueError(f"truncated GGUF header: {exc}") from exc


def _scan(cur: _Cursor, max_array: int, keep_arrays: tuple[str, ...]) -> GGUFHeader:
    if bytes(cur.buf[:4]) != GGUF_MAGIC:
        raise ValueError("not a GGUF file")
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version}")
    n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        kv[key] = _value(cur, cur.unpack("<I"), None if key.endswith(keep_arrays) else max_array)
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = tuple(cur.unpack("<Q") for _ in range(cur.unpack("<I")))
        tensor_type = cur.unpack("<I")
        cur.unpack("<Q")  # data offset
        tensors.append((name, dims, tensor_type))
    return GGUFHeader(kv=kv, tensors=tensors)


def _value(cur: _Cursor, value_type: int, max_array: int | None) -> Any:
    if value_type == _STRING:
        return cur.string()
    if value_type in _SCALARS:
        return cur.unpack(_SCALARS[value_type])
    if value_type != _ARRAY:
        raise ValueError(f"unknown GGUF value type {value_type}")
    item_type, length = cur.unpack("<I"), cur.unpack("<Q")
    if max_array is None or length <= max_array:
        return [_value(cur, item_type, max_array) for _ in range(length)]
    _skip_array(cur, item_type, length)
    return SkippedArray(item_type, length)


def _skip_array(cur: _Cursor, item_type: int, length: int) -> None:
    if item_type in _SCALARS:
        cur.pos += struct.calcsize(_SCALARS[item_type]) * length
    elif item_type == _STRING:
        for _ in range(length):
            cur.skip_string()
    else:
        for _ in range(length):
            _value(cur, item_type, 0)


def _token_text(path: Path, header: GGUFHeader, id_key: str) -> str:
    """The vocabulary entry ``id_key`` points at (one more pass over the tokens array)."""
    token_id = header.kv.get(id_key)
    tokens = header.kv.get("tokenizer.ggml.tokens")
    if not isinstance(token_id, int) or not isinstance(tokens, (SkippedArray, list)):
        return ""
    if isinstance(tokens, list):
        return tokens[token_id] if 0 <= token_id < len(tokens) else ""
    if not 0 <= token_id < tokens.length:
        return ""
    return _nth_token(path, token_id)


def _nth_token(path: Path, index: int) -> str:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        cur = _Cursor(buffer)
        cur.pos = 4 + 4 + 8
        n_kv = cur.unpack("<Q")
        for _ in range(n_kv):
            key = cur.string()
            value_type = cur.unpack("<I")
            if key != "tokenizer.ggml.tokens":
                _value(cur, value_type, 0)
                continue
            cur.unpack("<I")
            cur.unpack("<Q")
            for _ in range(index):
                cur.skip_string()
            return cur.string()
    return ""


def scan_facts_header(path: Path) -> GGUFHeader:
    """The header with just what ``gguf_info_from_header`` needs: long arrays skipped, but
    per-layer shape arrays kept. Raises ``ValueError`` for a file that is not GGUF."""
    return scan_header(path, max_array=0, keep_arrays=_SHAPE_SUFFIXES)


def gguf_info_from_header(path: Path, header: GGUFHeader) -> GGUFInfo:
    """The ``GGUFInfo`` facts of a header from ``scan_facts_header(path)``."""
    kv = header.kv
    arch = str(kv.get("general.architecture", ""))
    parameters = header.parameter_count
    return GGUFInfo(
        architecture=arch,
        parameter_count=parameters,
        parameter_size=human_number(parameters),
        quantization=_quantization(header),
        context_length=int(kv.get(f"{arch}.context_length", 0) or 0),
        embedding_length=int(kv.get(f"{arch}.embedding_length", 0) or 0),
        chat_template=str(kv.get("tokenizer.chat_template", "")),
        bos_token=_token_text(path, header, "tokenizer.ggml.bos_token_id"),
        eos_token=_token_text(path, header, "tokenizer.ggml.eos_token_id"),
        kv_shape=kv_shape(kv),
    )


def read_gguf_info(path: Path) -> GGUFInfo:
    """``path``'s facts, without materializing the vocabulary.

    Blocking; raises ``ValueError`` for a file that is not GGUF."""
    return gguf_info_from_header(path, scan_facts_header(path))


def _quantization(header: GGUFHeader) -> str:
    file_type = header.kv.get("general.file_type")
    if isinstance(file_type, int):
        return quantization_name(file_type)
    weights: Counter[str] = Counter()
    for _name, shape, tensor_type in header.tensors:
        count = 1
        for dim in shape:
            count *= dim
        try:
            weights[gguf.GGMLQuantizationType(tensor_type).name] += count
        except ValueError:
            weights[str(tensor_type)] += count
    return weights.most_common(1)[0][0] if weights else "unknown"


def model_info(header: GGUFHeader) -> dict[str, Any]:
    """``/api/show``'s ``model_info``: every key but ``general.name`` and the chat template,
    arrays longer than ``SHOW_ARRAY_LIMIT`` as ``[]``, plus ``general.parameter_count``."""
    info: dict[str, Any] = {}
    for key, value in header.kv.items():
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        info[key] = [] if isinstance(value, SkippedArray) else value
    info["general.parameter_count"] = header.parameter_count
    return dict(sorted(info.items()))
