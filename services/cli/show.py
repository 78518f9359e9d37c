"""``corral show``'s default screen: the sections Ollama's ``showInfo`` prints."""

from __future__ import annotations

from typing import Any

from services.cli_format import human_number, table, width
from services.gocodec import go_value_text


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _section(title: str, rows: list[list[str]], col_width: int = 30) -> str:
    return f"  {title}\n" + table(None, rows, col_width=col_width) + "\n"


def _model_rows(resp: dict[str, Any]) -> list[list[str]]:
    info, details = resp.get("model_info"), resp.get("details") or {}
    rows: list[list[str]] = []
    if resp.get("remote_host"):
        rows += [["", "Remote model", resp.get("remote_model", "")],
                 ["", "Remote URL", resp["remote_host"]]]
    if info is not None:
        arch = info.get("general.architecture") or ""
        if arch:
            rows.append(["", "architecture", arch])
        params = details.get("parameter_size") or ""
        if not params and isinstance(info.get("general.parameter_count"), (int, float)):
            params = human_number(int(info["general.parameter_count"]))
        if params:
            rows.append(["", "parameters", params])
        for key, label in (("context_length", "context length"),
                           ("embedding_length", "embedding length")):
            value = _number(info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", label, value])
    else:
        rows += [["", "architecture", details.get("family", "")],
                 ["", "parameters", details.get("parameter_size", "")]]
    rows.append(["", "quantization", details.get("quantization_level", "")])
    if resp.get("requires"):
        rows.append(["", "requires", resp["requires"]])
    return rows


def _projector_rows(projector: dict[str, Any]) -> list[list[str]]:
    arch = projector.get("general.architecture") or ""
    rows = [["", "architecture", arch]] if arch else []
    if isinstance(projector.get("general.parameter_count"), (int, float)):
        rows.append(["", "parameters", human_number(int(projector["general.parameter_count"]))])
    for suffix, label in (("embedding_length", "embedding length"), ("projection_dim", "dimensions")):
        for modality in ("vision", "audio"):
            value = _number(projector.get(f"{arch}.{modality}.{suffix}"))
            if value is not None:
                rows.append(["", label, value])
                break
    return rows


def _go_value(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value, lists cut to about ten columns (``[a b ...+3 more]``)."""
    if isinstance(value, list):
        items = [_go_value(v) for v in value]
        shown, total = 0, 1
        for i, text in enumerate(items):
            cells = width(text) + (2 if i else 0)
            if total + cells > 10 and i > 0:
                break
            total += cells
            shown += 1
        if shown < len(items):
            return "[" + " ".join(items[:shown]) + f" ...+{len(items) - shown} more]"
        return "[" + " ".join(items) + "]"
    return go_value_text(value)


def _head(text: str, limit: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in lines[:limit]]
    return rows + ([["", "..."]] if len(lines) > limit else [])


def show_info(resp: dict[str, Any], verbose: bool = False) -> str:
    """The default ``show`` output: Model, Capabilities, Projector, Parameters, (Metadata,
    Tensors with ``verbose``), System and License sections."""
    out = _section("Model", _model_rows(resp))
    if resp.get("capabilities"):
        out += _section("Capabilities", [["", c] for c in resp["capabilities"]])
    if resp.get("projector_info") is not None:
        out += _section("Projector", _projector_rows(resp["projector_info"]))
    if resp.get("parameters"):
        rows = [["", *line.split()] for line in resp["parameters"].splitlines() if line]
        out += _section("Parameters", rows)
    info = resp.get("model_info")
    if info is not None and verbose:
        out += _section("Metadata", [["", k, _go_value(info[k])] for k in sorted(info)])
    if resp.get("tensors") and verbose:
        rows = [["", t.get("name", ""), t.get("type", ""),
                 "[" + " ".join(str(d) for d in t.get("shape") or []) + "]"]
                for t in resp["tensors"]]
        out += _section("Tensors", rows)
    if resp.get("system"):
        out += _section("System", _head(resp["system"], 2), col_width=100)
    if resp.get("license"):
        out += _section("License", _head(resp["license"], 2), col_width=100)
    return out
