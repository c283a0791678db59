"""An OpenAI-compatible API over the same Engine the browser tabs use: POST /v1/chat/completions
(server-sent events or one JSON), GET /v1/models, GET /health. Starlette routes under uvicorn.

`serve_in_thread(engine)` runs it beside Streamlit in the app's process (API_PORT), sharing the one
model, queue and cache; `python -m rag serve` runs it alone. A request's answer comes from
`Engine.ask` exactly as in the UI (retrieval, citations, cache, failover, the answer checks): the
last user message is the question, the earlier user/assistant messages its history, and the model
name picks the collection (`ai-chat`, `ai-chat:<collection>`). The numbered sources come in the
extension field `sources` (and, for clients that show only text, appended to the text when the
request has `"sources_in_text": true` or the header `X-Sources: text`). `"retrieval": false` is the
passthrough: the model alone on the messages as sent, no documents. A client that disconnects
mid-answer sets the question's cancel event and closes its event stream, which frees the model
at once, as Stop does in the UI. Errors have OpenAI's shape: {"error": {"message", "type", "code"}}.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .accounts import Viewer
from .errors import RagError
from .events import Done, Error, Hits, Notice, Status, Token
from .index import ALL_DOCUMENTS

log = logging.getLogger(__name__)
MODEL = "ai-chat"
MAX_BODY = 1 << 20  # bytes of one request
RETRY_AFTER_S = 5


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.retry_after = status, message, kind, code, retry_after


@dataclass
class Request:
    question: str
    history: list[dict]
    collections: list[str]
    model: str
    stream: bool
    include_usage: bool
    sources_in_text: bool
    retrieval_only_while_loading: bool
    plain: bool = False  # "retrieval": false: the model alone on the messages as sent
    messages: list[dict] | None = None


def keys_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Gate:
    """Who may call: API_KEYS (sign-in off), or each user's own keys (AUTH=local); no key needed only
    when neither is set (the default bind is loopback). Also the cap on requests in flight."""

    def __init__(self, engine, limit: int):
        self.engine = engine
        self.keys = [keys_digest(k) for k in engine.settings.api_keys]
        self.limit, self.active, self.lock = limit, 0, threading.Lock()

    def viewer(self, authorization: str) -> Viewer | None:
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        accounts = self.engine.accounts
        if accounts is not None:  # accounts on: a user's key, and only that user's documents
            viewer = accounts.api_key_viewer(token) if token else None
            if viewer is None:
                raise ApiError(
                    401,
                    "a valid API key is required: `rag users apikey NAME`",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            return viewer
        if self.engine.settings.auth != "off":
            raise ApiError(
                403, "the API has no keys for AUTH=oidc users; use AUTH=local", "invalid_request_error", "auth"
            )
        if self.keys and not any(hmac.compare_digest(keys_digest(token), k) for k in self.keys):
            raise ApiError(
                401, "a valid API key is required (one of API_KEYS)", "invalid_request_error", "invalid_api_key"
            )
        return None

    def enter(self) -> None:
        with self.lock:
            if self.active >= self.limit:
                raise ApiError(
                    429,
                    f"{self.active} requests are being answered or waiting (API_QUEUE={self.limit}); retry shortly",
                    "rate_limit_error",
                    "queue_full",
                    RETRY_AFTER_S,
                )
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


def parse(body: bytes, collections: Callable[[], dict[str, int]], headers) -> Request:
    """The request as AI-CHAT asks it, or an ApiError (400, 404)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not JSON", "invalid_request_error", "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_request_error", "invalid_json")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty list", "invalid_request_error", "invalid_messages")
    turns: list[dict] = []
    every: list[dict] = []
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer", "tool"):
            raise ApiError(
                400, "each message needs a `role` and `content`", "invalid_request_error", "invalid_messages"
            )
        text = _text(m.get("content"))
        every.append({"role": "system" if m["role"] == "developer" else m["role"], "content": text})
        if m["role"] in ("user", "assistant"):
            turns.append({"role": m["role"], "content": text})
    if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
        raise ApiError(400, "the last message must be the user's question", "invalid_request_error", "invalid_messages")
    model = data.get("model") or MODEL
    if not isinstance(model, str):
        raise ApiError(400, "`model` must be a string", "invalid_request_error", "invalid_model")
    chosen = _collection(model, collections)
    options = data.get("stream_options") or {}
    return Request(
        question=turns[-1]["content"],
        history=turns[:-1],
        collections=[chosen] if chosen else [],
        model=model,
        stream=bool(data.get("stream")),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        sources_in_text=bool(data.get("sources_in_text")) or headers.get("x-sources", "").lower() == "text",
        retrieval_only_while_loading=bool(data.get("retrieval_only_while_loading")),
        plain=data.get("retrieval", True) is False,
        messages=[m for m in every if m["role"] != "tool"],
    )


def _text(content) -> str:
    """A message's text: a string, or OpenAI's list of parts (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if content is None:
        return ""
    raise ApiError(400, "a message's `content` must be text", "invalid_request_error", "invalid_messages")


def _collection(model: str, collections: Callable[[], dict[str, int]]) -> str:
    """'' for `ai-chat` (all documents); the collection named by `ai-chat:<name>`; else 404."""
    if model == MODEL:
        return ""
    prefix = MODEL + ":"
    if model.startswith(prefix):
        name = model[len(prefix) :]
        if name == ALL_DOCUMENTS:
            return ""
        if name in collections():
            return name
    raise ApiError(
        404, f"the model {model!r} does not exist: see GET /v1/models", "invalid_request_error", "model_not_found"
    )


def models(collections: dict[str, int]) -> dict:
    now = int(time.time())
    names = [MODEL] + [f"{MODEL}:{name}" for name in sorted(collections)]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": now, "owned_by": "ai-chat"} for n in names],
    }


def _sources(hits) -> list[dict]:
    return [{"n": p.n, "source": p.source, "page": p.page, "score": round(p.score, 4), "text": p.text} for p in hits]


def sources_text(sources: list[dict]) -> str:
    lines = [f"[{s['n']}] {s['source']}" + (f", page {s['page']}" if s.get("page") else "") for s in sources]
    return "\n\nSources:\n" + "\n".join(lines) if lines else ""


def usage(done: Done | None) -> dict:
    prompt, completion = (done.prompt_tokens, done.completion_tokens) if done else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def about(done: Done | None) -> dict:
    """The extension block: how the answer was made."""
    if done is None:
        return {}
    return {
        "cache": done.cache,
        "retrieval_only": done.retrieval_only,
        "backend": done.backend,
        "cited": done.cited,
        "reason": done.reason,
        "retrieval_ms": round(done.retrieval_ms, 1),
        "first_token_ms": None if done.first_token_ms is None else round(done.first_token_ms, 1),
    }


async def events(engine, req: Request, viewer: Viewer | None, wait: bool, workers: ThreadPoolExecutor) -> AsyncIterator:
    """Engine.ask's events, produced in a worker thread; leaving early (a client gone) cancels the
    question and closes its stream, which releases the model at once. The workers are long-lived:
    a new thread per request paid ~20 ms to start torch's thread team for the query embedding."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    end = object()

    def work() -> None:
        if req.plain:
            stream = engine.chat(req.messages or [], cancel)
        else:
            stream = engine.ask(req.question, req.history, cancel, wait, req.collections, viewer)
        try:
            for event in stream:
                loop.call_soon_threadsafe(queue.put_nowait, event)
                if cancel.is_set():
                    break
        except Exception as exc:  # noqa: BLE001 - reported to the client as an error event
            log.exception("the API request failed")
            loop.call_soon_threadsafe(queue.put_nowait, Error(f"internal error: {exc}"))
        finally:
            stream.close()
            loop.call_soon_threadsafe(queue.put_nowait, end)

    workers.submit(work)
    try:
        while (event := await queue.get()) is not end:
            yield event
    finally:
        cancel.set()  # a disconnect: the pipeline stops at its next token and lets the model go


def _chunk(rid: str, model: str, created: int, delta: dict, finish: str | None = None, **extra) -> str:
    body = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _finish(done: Done | None) -> str:
    return "length" if done is not None and done.finish_reason == "length" else "stop"


def create_app(engine, limit: int | None = None):
    from starlette.applications import Starlette
    from starlette.requests import Request as HttpRequest
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    class Stream(StreamingResponse):
        """A streamed answer that gives its API_QUEUE slot back however the response ends."""

        def __init__(self, content, on_close: Callable[[], None], **kw):
            super().__init__(content, **kw)
            self.on_close = on_close

        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                self.on_close()

    gate = Gate(engine, limit or engine.settings.api_queue)
    workers = ThreadPoolExecutor(max_workers=gate.limit, thread_name_prefix="api-answer")

    def error(exc: ApiError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        body = {"error": {"message": exc.message, "type": exc.kind, "code": exc.code, "param": None}}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    async def read(request: HttpRequest) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            raise ApiError(413, f"the request is over {MAX_BODY // 1024} KiB", "invalid_request_error", "too_large")
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > MAX_BODY:
                raise ApiError(413, f"the request is over {MAX_BODY // 1024} KiB", "invalid_request_error", "too_large")
        return body

    async def health(request: HttpRequest) -> JSONResponse:
        states = {p.name: p.state for p in engine.load_states()}
        model = engine.chain.local.details() if engine.chain.local else None
        queue = getattr(model, "queue", 0) if model else 0
        return JSONResponse({"status": "ok", "parts": states, "api_requests": gate.active, "model_queue": queue})

    async def list_models(request: HttpRequest) -> JSONResponse:
        try:
            viewer = gate.viewer(request.headers.get("authorization", ""))
        except ApiError as exc:
            return error(exc)
        return JSONResponse(models(engine.collections(viewer)))

    async def chat(request: HttpRequest):
        try:
            viewer = gate.viewer(request.headers.get("authorization", ""))
            req = parse(await read(request), lambda: engine.collections(viewer), request.headers)
            wait = True
            if engine.model_loading():
                if not req.retrieval_only_while_loading:
                    raise ApiError(
                        503,
                        'the model is loading; retry shortly, or send "retrieval_only_while_loading": true '
                        "for the passages now",
                        "server_error",
                        "model_loading",
                        RETRY_AFTER_S,
                    )
                wait = False
            gate.enter()
        except ApiError as exc:
            return error(exc)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            return Stream(
                _stream(req, viewer, wait, rid, created),
                gate.leave,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        try:
            return await _whole(req, viewer, wait, rid, created)
        finally:
            gate.leave()

    async def _whole(req: Request, viewer, wait: bool, rid: str, created: int) -> JSONResponse:
        parts, sources, done, failed = [], [], None, ""
        async for event in events(engine, req, viewer, wait, workers):
            if isinstance(event, Token):
                parts.append(event.text)
            elif isinstance(event, Notice):
                parts.append(f"\n\n({event.text})\n\n")
            elif isinstance(event, Hits):
                sources = _sources(event.hits)
            elif isinstance(event, Done):
                done = event
            elif isinstance(event, Error):
                failed = event.message
        if failed and done is None:
            return error(
                ApiError(500 if failed.startswith("internal") else 400, failed, "server_error", "answer_failed")
            )
        text = done.answer if done is not None else "".join(parts).strip()
        if req.sources_in_text:
            text += sources_text(sources)
        return JSONResponse(
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": req.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": _finish(done)}
                ],
                "usage": usage(done),
                "sources": sources,
                "ai_chat": about(done),
            }
        )

    async def _stream(req: Request, viewer, wait: bool, rid: str, created: int):
        # no try/finally here: Stream gives the slot back, also when the client left before the first chunk
        yield _chunk(rid, req.model, created, {"role": "assistant", "content": ""})
        sources, done, failed = [], None, ""
        async for event in events(engine, req, viewer, wait, workers):
            if isinstance(event, Token):
                yield _chunk(rid, req.model, created, {"content": event.text})
            elif isinstance(event, Notice):
                yield _chunk(rid, req.model, created, {"content": f"\n\n({event.text})\n\n"})
            elif isinstance(event, Hits):
                sources = _sources(event.hits)
            elif isinstance(event, Status):
                continue
            elif isinstance(event, Done):
                done = event
            elif isinstance(event, Error):
                failed = event.message
        tail = ""
        if done is not None and done.extra.get("draft"):  # the answer check changed what was streamed
            tail = f"\n\n(Checked against your documents, the answer is:)\n{done.answer}"
        elif failed and done is None:
            tail = f"\n\n(error: {failed})"
        if req.sources_in_text:
            tail += sources_text(sources)
        if tail:
            yield _chunk(rid, req.model, created, {"content": tail})
        extra = {"sources": sources, "ai_chat": about(done)}
        yield _chunk(rid, req.model, created, {}, _finish(done), **extra)
        if req.include_usage:
            body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": req.model}
            yield f"data: {json.dumps({**body, 'choices': [], 'usage': usage(done)})}\n\n"
        yield "data: [DONE]\n\n"

    routes = [
        Route("/health", health),
        Route("/v1/models", list_models),
        Route("/v1/chat/completions", chat, methods=["POST"]),
    ]
    return Starlette(routes=routes)


def check_bind(settings) -> None:
    """Refuse to serve an open API beyond loopback: keys or accounts first."""
    loopback = settings.api_host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not settings.api_keys and not settings.accounts:
        raise RagError(
            f"API_HOST={settings.api_host} would let anyone on the network ask: set API_KEYS, or AUTH=local with "
            "`rag users apikey NAME`, or keep API_HOST=127.0.0.1"
        )


def serve(engine, port: int | None = None, host: str | None = None) -> None:
    """Run the API in this thread until interrupted (`python -m rag serve`)."""
    import uvicorn

    settings = engine.settings  # `rag serve` checked the bind before it made the engine
    uvicorn.run(create_app(engine), host=host or settings.api_host, port=port or settings.api_port, log_level="warning")


_started: set[int] = set()
_lock = threading.Lock()


def serve_in_thread(engine):
    """Start the API once per process beside the Streamlit server (API_PORT set); a port in use is
    logged, and the app goes on without the API. Returns the uvicorn Server (None if already started)."""
    import uvicorn

    settings = engine.settings
    with _lock:
        if not settings.api_port or settings.api_port in _started:
            return None
        _started.add(settings.api_port)
    check_bind(settings)
    config = uvicorn.Config(create_app(engine), host=settings.api_host, port=settings.api_port, log_level="warning")
    server = uvicorn.Server(config)

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except (OSError, SystemExit) as exc:
            log.error("the API could not serve on %s:%s: %s", settings.api_host, settings.api_port, exc)

    threading.Thread(target=run, name="api-server", daemon=True).start()
    return server
