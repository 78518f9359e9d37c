"""``stream: false``: the objects a generation streamed, merged into the one Ollama returns."""

from __future__ import annotations

from typing import Any


def with_logprobs(obj: dict[str, Any], logprobs: list[dict[str, Any]]) -> dict[str, Any]:
    """``logprobs`` goes last, as in Ollama's response structs, and only when there are some."""
    return {**obj, "logprobs": logprobs} if logprobs else obj


def merge_generate(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """``stream:false`` for generate: one object, ``response``/``thinking`` concatenated."""
    final = dict(objects[-1])
    final["response"] = "".join(o.get("response", "") for o in objects)
    thinking = "".join(o.get("thinking", "") for o in objects)
    final.pop("thinking", None)
    if thinking:
        final = _insert_after(final, "response", "thinking", thinking)
    return _merged_logprobs(final, objects)


def _merged_logprobs(final: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Every object's ``logprobs``, concatenated into the last one (``stream:false``)."""
    final.pop("logprobs", None)
    return with_logprobs(final, [lp for o in objects for lp in o.get("logprobs", ())])


def merge_chat(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """``stream:false`` for chat: one object, content/thinking concatenated, tool calls kept."""
    final = dict(objects[-1])
    if "_debug_info" in final:
        return final
    messages = [o["message"] for o in objects if "message" in o]
    merged: dict[str, Any] = {"role": "assistant",
                              "content": "".join(m.get("content", "") for m in messages)}
    if thinking := "".join(m.get("thinking", "") for m in messages):
        merged["thinking"] = thinking
    if calls := [c for m in messages for c in m.get("tool_calls", ())]:
        merged["tool_calls"] = calls
    final["message"] = merged
    return _merged_logprobs(final, objects)


def _insert_after(obj: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out
