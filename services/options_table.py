"""Ollama's runtime options (``api.Options``) as one table, plus its two decoders.

Two decoders exist because Ollama has two, with different strictness:

* ``parse_parameter`` mirrors ``api.FormatParams`` (Modelfile ``PARAMETER`` lines, REPL
  ``/set parameter``): the name must be a current option, the text is parsed like Go's
  ``strconv``; anything else is an ``InvalidRequestError``.
* ``coerce_api_option`` mirrors ``Options.FromMap`` (JSON ``options`` in requests): unknown
  names and ``null`` are ignored (``IGNORED``); a known name with the wrong JSON type is an error.

Deprecated options are not current: both decoders treat them as unknown. The Modelfile
reader checks ``is_deprecated`` first and skips them with ``deprecation_warning``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from services.errors import InvalidRequestError

INT, FLOAT, BOOL, STRING_LIST = "int", "float", "bool", "string-list"
CURRENT, DEPRECATED, REMOVED = "current", "deprecated", "removed"


@dataclass(frozen=True)
class OptionSpec:
    """One option: its JSON name, value kind, Ollama's default and lifecycle status."""

    name: str
    kind: str
    default: Any = None
    status: str = CURRENT


def _specs(*rows: tuple[Any, ...]) -> dict[str, OptionSpec]:
    return {row[0]: OptionSpec(*row) for row in rows}


OPTIONS: Final[dict[str, OptionSpec]] = _specs(
    # num_ctx unset: Ollama picks 4096/32768/262144 from free VRAM; 4096 is the small-host pick.
    ("num_ctx", INT, 4096),
    ("num_batch", INT, 512),
    ("num_gpu", INT, -1),
    ("main_gpu", INT, None),
    ("use_mmap", BOOL, None),
    # Ollama dropped use_mlock in 2025 (ignored since); llama.cpp still locks, so Corral honours it.
    ("use_mlock", BOOL, False),
    ("num_thread", INT, 0),
    ("num_keep", INT, 4),
    ("seed", INT, -1),
    ("num_predict", INT, -1),
    ("top_k", INT, 40),
    ("top_p", FLOAT, 0.9),
    ("min_p", FLOAT, 0.0),
    ("typical_p", FLOAT, 1.0),
    ("repeat_last_n", INT, 64),
    ("temperature", FLOAT, 0.8),
    ("repeat_penalty", FLOAT, 1.0),
    ("presence_penalty", FLOAT, 0.0),
    ("frequency_penalty", FLOAT, 0.0),
    ("stop", STRING_LIST, None),
    # draft_num_predict: only meaningful with a draft model; the runtime uses 0 without one.
    ("draft_num_predict", INT, 4),
    ("mirostat", INT, 0, DEPRECATED),
    ("mirostat_tau", FLOAT, 5.0, DEPRECATED),
    ("mirostat_eta", FLOAT, 0.1, DEPRECATED),
    ("penalize_newline", BOOL, False, DEPRECATED),
    ("low_vram", BOOL, False, DEPRECATED),
    ("f16_kv", BOOL, False, DEPRECATED),
    ("logits_all", BOOL, False, DEPRECATED),
    ("vocab_only", BOOL, False, DEPRECATED),
    ("numa", BOOL, False, REMOVED),
    ("tfs_z", FLOAT, 1.0, REMOVED),
)

DEFAULTS: Final[dict[str, Any]] = {
    name: spec.default for name, spec in OPTIONS.items() if spec.status == CURRENT
}


class _Ignored:
    """Sentinel type: the option is to be dropped silently (unknown key or JSON null)."""

    _instance: _Ignored | None = None

    def __new__(cls) -> _Ignored:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IGNORED"

    def __bool__(self) -> bool:
        return False


IGNORED: Final = _Ignored()

_INT_RE = re.compile(r"[+-]?[0-9]+")
_DEC_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HEX_FLOAT_RE = re.compile(r"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")
_SPECIAL_FLOAT_RE = re.compile(r"[+-]?(inf|infinity|nan)", re.IGNORECASE)
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# The C field each integer option ends up in: llama.cpp's and the runner proto's int32s (n_ctx,
# n_batch, top_k, n_predict, n_keep, penalty_last_n, ...). Only ``seed`` is wider: a Go int64,
# reduced mod 2**32 to llama.cpp's uint32 seed as llama-server does (0xFFFFFFFF = random).
_WIDE_INTS = frozenset({"seed"})


def int_bounds(name: str) -> tuple[int, int]:
    """The smallest and largest value integer option ``name`` may take."""
    return _INT64 if name in _WIDE_INTS else _INT32


def fits_float32(value: float) -> bool:
    """Whether ``value`` is finite and stays finite as a C float (every float option is one)."""
    if not math.isfinite(value):
        return False
    try:
        return math.isfinite(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return False


def is_current(name: str) -> bool:
    """Whether ``name`` is an option Ollama HEAD still honours."""
    spec = OPTIONS.get(name)
    return spec is not None and spec.status == CURRENT


def is_deprecated(name: str) -> bool:
    """Whether a Modelfile ``PARAMETER name`` is skipped with a warning rather than rejected."""
    spec = OPTIONS.get(name)
    return spec is not None and spec.status == DEPRECATED


def deprecation_warning(name: str) -> str:
    """The warning Ollama prints when a Modelfile sets a deprecated parameter."""
    return f"parameter {name} is deprecated"


def parse_parameter(name: str, values: str | Sequence[str]) -> Any:
    """Decode Modelfile/CLI text for option ``name`` exactly like ``api.FormatParams``.

    ``values`` is one string, or several (the REPL passes every word): ``stop`` returns
    them all as a list, every other kind parses the first. Returns int, float (rounded to
    float32 precision, shortest form), bool, or list[str].
    Raises InvalidRequestError: ``unknown parameter 'K'`` (deprecated and removed names too),
    ``invalid int value [x]``, ``invalid float value [x]``, ``invalid bool value [x]``.
    """
    vals = [values] if isinstance(values, str) else list(values)
    if not is_current(name):
        raise InvalidRequestError(f"unknown parameter '{name}'")
    kind = OPTIONS[name].kind
    if kind == STRING_LIST:
        return vals
    first = vals[0] if vals else ""
    parsed = _PARSERS[kind](first)
    if kind == INT and parsed is not None and not _in_bounds(name, parsed):
        parsed = None
    if parsed is None:
        raise InvalidRequestError(f"invalid {kind} value [{' '.join(vals)}]")
    return parsed


def _in_bounds(name: str, value: float) -> bool:
    low, high = int_bounds(name)
    return low <= value <= high


def _parse_int(text: str) -> int | None:
    if not _INT_RE.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64[0] <= value <= _INT64[1] else None


def _parse_bool(text: str) -> bool | None:
    if text in _TRUE:
        return True
    return False if text in _FALSE else None


def _parse_float(text: str) -> float | None:
    if _DEC_FLOAT_RE.fullmatch(text) or _SPECIAL_FLOAT_RE.fullmatch(text):
        value = float(text)
    elif _HEX_FLOAT_RE.fullmatch(text):
        value = float.fromhex(text)
    else:
        return None
    return _to_float32(value)


def _to_float32(value: float) -> float | None:
    """Round like Go's ``float32(x)``; None when that overflows (Go's ErrRange), and for
    ``inf``/``nan``, which Go parses but which no sampler can use (an infinite temperature
    never ends a generation)."""
    if not math.isfinite(value):
        return None
    try:
        single: float = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:  # some Python builds raise, others round to inf
        return None
    if math.isinf(single):
        return None
    # Shortest decimal that survives float32 rounding: what Go's JSON writes for a float32.
    for digits in range(1, 10):
        short = float(f"{single:.{digits}g}")
        if struct.unpack("f", struct.pack("f", short))[0] == single:
            return short
    return single


_PARSERS = {INT: _parse_int, FLOAT: _parse_float, BOOL: _parse_bool}


def coerce_api_option(name: str, value: Any) -> Any:
    """Check one JSON ``options`` entry exactly like ``Options.FromMap``.

    Returns the typed value, or ``IGNORED`` for an unknown (incl. deprecated/removed) name
    or a JSON null. Ints accept any JSON number (floats truncate toward zero); floats need a
    number; bools need a bool; ``stop`` needs an array of strings.
    Raises InvalidRequestError: ``option "K" must be of type integer|float32|boolean|array``
    or ``option "stop" must be of an array of strings``; and, beyond Ollama (where these reach
    C as garbage or a 500), ``option "K" must be an integer between LOW and HIGH`` for an int
    that does not fit its C field and ``option "K" must be a finite float32``.
    """
    if value is None or not is_current(name):
        return IGNORED
    kind = OPTIONS[name].kind
    if kind == STRING_LIST:
        return _coerce_list(name, value)
    if kind == BOOL:
        if isinstance(value, bool):
            return value
        raise _type_error(name, "boolean")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(name, "integer" if kind == INT else "float32")
    if kind == INT:
        number = int(value) if math.isfinite(value) else None
        if number is None or not _in_bounds(name, number):
            low, high = int_bounds(name)
            raise InvalidRequestError(f'option "{name}" must be an integer between {low} and {high}')
        return number
    if not fits_float32(float(value)):
        raise InvalidRequestError(f'option "{name}" must be a finite float32')
    return float(value)


def _coerce_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise _type_error(name, "array")
    if not all(isinstance(item, str) for item in value):
        raise InvalidRequestError(f'option "{name}" must be of an array of strings')
    return list(value)


def _type_error(name: str, type_name: str) -> InvalidRequestError:
    return InvalidRequestError(f'option "{name}" must be of type {type_name}')


def coerce_api_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Apply ``coerce_api_option`` to a whole ``options`` object, dropping ignored keys."""
    result: dict[str, Any] = {}
    for name, value in (options or {}).items():
        typed = coerce_api_option(name, value)
        if typed is not IGNORED:
            result[name] = typed
    return result
