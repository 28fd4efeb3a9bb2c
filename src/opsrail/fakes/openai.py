"""A fake OpenAI-compatible Chat Completions server that answers deterministically.

Owns ``create_app``: ``POST /v1/chat/completions`` and ``GET /v1/models`` with the status codes, error body
(``{"error": {"message", "type", "param", "code"}}``) and response shape of the published OpenAI API, plus knobs
to fail on purpose: the first ``rate_limit_first`` calls get 429 with ``Retry-After``, the next ``fail_first``
get 500, and every answer can be delayed by ``delay_s``. The answer is an extractive "summary" of the last user
message (its first sentences) followed by the citation markers ([1], [2], …) that message contained, so a test can
check both the request that reached the server and what came back.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MODEL_ID = "opsrail-fake-summary-1"

_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LABEL = re.compile(r"^[\w ]{1,30}:(?:\s|$)")


def _error(
    status: int,
    message: str,
    type_: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def fake_answer(content: str, sentences: int = 2) -> str:
    """The deterministic answer: the first ``sentences`` prose sentences of ``content`` and the markers it cites."""
    prose: list[str] = []
    for line in content.splitlines():
        line = line.strip().lstrip("-*").strip()
        # Headings ("Facts:"), labelled fields ("severity: 1") and the numbered source list are structure, not
        # prose to summarise.
        if (
            not line
            or line.endswith(":")
            or _LABEL.match(line)
            or _MARKER.match(line)
            or line.lower().startswith("write the summary")
        ):
            continue
        prose.append(line if line.endswith((".", "!", "?")) else line + ".")
    picked = _SENTENCE_END.split(" ".join(prose))[:sentences]
    markers = list(dict.fromkeys(f"[{number}]" for number in _MARKER.findall(content)))
    answer = " ".join(part for part in picked if part) or "Nothing to summarise."
    return f"{answer} {' '.join(markers)}".strip() if markers else answer


def create_app(
    *,
    api_key: str | None = "test-key",
    fail_first: int = 0,
    rate_limit_first: int = 0,
    delay_s: float = 0.0,
    retry_after_s: float = 1.0,
) -> FastAPI:
    """The fake server. ``api_key=None`` accepts any caller; ``app.state.requests`` lists the JSON bodies received."""
    app = FastAPI(title="Fake OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    calls = {"count": 0}
    app.state.requests = []

    def authorised(request: Request) -> JSONResponse | None:
        if api_key is None:
            return None
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                code="invalid_api_key",
            )
        if header[7:].strip() != api_key:
            # The real API echoes a masked key; the fake echoes none, so a test log never holds one.
            return _error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
        return None

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        denied = authorised(request)
        if denied is not None:
            return denied
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "opsrail"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        denied = authorised(request)
        if denied is not None:
            return denied
        with lock:
            calls["count"] += 1
            number = calls["count"]
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if number <= rate_limit_first:
            return _error(
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": f"{retry_after_s:g}"},
            )
        if number <= rate_limit_first + fail_first:
            return _error(
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                code="server_error",
            )
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        app.state.requests.append(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "you must provide a model parameter", "invalid_request_error", param="model")
        messages = body.get("messages")
        if messages is None:
            return _error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                param="messages",
                code="missing_required_parameter",
            )
        if not isinstance(messages, list) or not messages:
            return _error(400, f"{messages!r} is too short - 'messages'", "invalid_request_error", param="messages")
        for position, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in {
                "system",
                "user",
                "assistant",
                "developer",
                "tool",
            }:
                return _error(
                    400,
                    f"Invalid value for 'messages[{position}].role'.",
                    "invalid_request_error",
                    param=f"messages[{position}].role",
                    code="invalid_value",
                )
        user = [m.get("content") for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
        content = fake_answer(user[-1] if user else "")
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
        return {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_opsrail_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    return app
