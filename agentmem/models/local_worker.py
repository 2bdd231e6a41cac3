"""The child process that runs a GGUF model with ``llama-cpp-python``.

:class:`~agentmem.models.local_model.LlamaCppChatModel` starts
``python -m agentmem.models.local_worker`` and talks to it in JSON lines: a native
crash inside llama.cpp (a segmentation fault, an abort, the OOM killer) then ends this
process, not the chat app or the caller's process, and the parent reports it as a typed
error and starts a fresh worker for the next call.

The protocol, one JSON object a line:

- parent → worker: ``{"messages": [...], "max_tokens": N, "temperature": T,
  "repeat_penalty": P, "schema": {...} | null, "stream": bool}``
- worker → parent: ``{"type": "ready"}`` once the model is loaded, then per request
  zero or more ``{"type": "chunk", "text": ...}`` and one ``{"type": "done", "text": ...,
  "usage": {"prompt_tokens": N, "completion_tokens": N}}`` or ``{"type": "error",
  "message": ...}``. A load failure is ``{"type": "error", "stage": "load", ...}`` and the
  process exits.

The protocol runs on a duplicate of the original standard output; file descriptor 1 is
pointed at standard error, so whatever the native library prints cannot corrupt it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _usage(raw: dict[str, Any] | None) -> dict[str, int]:
    raw = raw or {}
    return {
        "prompt_tokens": int(raw.get("prompt_tokens", 0)),
        "completion_tokens": int(raw.get("completion_tokens", 0)),
    }


def _answer(llama: Any, request: dict[str, Any], channel: IO[str]) -> None:
    options: dict[str, Any] = {
        "messages": request["messages"],
        "max_tokens": int(request["max_tokens"]),
        "temperature": float(request["temperature"]),
        "repeat_penalty": float(request["repeat_penalty"]),
    }
    if request.get("schema") is not None:
        options["response_format"] = {"type": "json_object", "schema": request["schema"]}
    if not request.get("stream"):
        response = llama.create_chat_completion(**options)
        text = response["choices"][0]["message"].get("content") or ""
        _send(channel, {"type": "done", "text": text, "usage": _usage(response.get("usage"))})
        return
    pieces: list[str] = []
    for chunk in llama.create_chat_completion(stream=True, **options):
        choices = chunk.get("choices") or []
        content = choices[0].get("delta", {}).get("content") if choices else None
        if content:
            pieces.append(content)
            _send(channel, {"type": "chunk", "text": content})
    # llama-cpp reports no usage for a stream: count the tokens here, where the model is.
    prompt = sum(
        len(llama.tokenize(m["content"].encode(), add_bos=False)) for m in options["messages"]
    )
    completion = len(llama.tokenize("".join(pieces).encode(), add_bos=False)) if pieces else 0
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    _send(channel, {"type": "done", "text": "".join(pieces), "usage": usage})


def main(argv: list[str] | None = None) -> int:
    """Load the model, then answer requests from standard input until it closes."""
    parser = argparse.ArgumentParser(prog="python -m agentmem.models.local_worker")
    parser.add_argument("model_path")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=0)
    args = parser.parse_args(argv)

    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        import llama_cpp
    except ImportError as exc:
        _send(channel, {"type": "error", "stage": "import", "message": str(exc)})
        return 3
    try:
        llama = llama_cpp.Llama(
            model_path=args.model_path,
            n_ctx=args.n_ctx,
            n_threads=args.n_threads or None,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        _send(channel, {"type": "error", "stage": "load", "message": str(exc)})
        return 3
    _send(channel, {"type": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            _answer(llama, json.loads(line), channel)
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            _send(channel, {"type": "error", "message": f"{type(exc).__name__}: {exc}"})
    llama.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
