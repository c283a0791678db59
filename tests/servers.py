"""Model servers on loopback for the remote-backend tests.

`LlamaServer` runs llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`)
on a generated GGUF; it can be killed (SIGKILL) and started again on the same port. `StalledServer`
accepts connections and never answers; `FullBacklogServer` never completes a connection.
`ScriptedServer` answers chat requests with a given sequence of statuses (503, 429, 400 ...) before a
real streamed answer, to check the retry policy; it has no tokenizer route, so the client's estimate
is used. Every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Loopback:
    port: int

    @property
    def url(self) -> str:
        """The OpenAI API base a client is given."""
        return f"http://127.0.0.1:{self.port}/v1"


class LlamaServer(Loopback):
    def __init__(self, model: Path, log: Path, n_ctx: int = 4096, api_key: str | None = None):
        self.model, self.log, self.n_ctx, self.api_key = model, log, n_ctx, api_key
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> LlamaServer:
        args = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            "1",
        ]
        if self.api_key:
            args += ["--api_key", self.api_key]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            if "Uvicorn running" in self.log.read_text(errors="replace"):
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"llama_cpp.server did not start in {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def requests(self, path: str) -> list[str]:
        """Access-log lines of requests to `path`, e.g. '... "POST /extras/tokenize/count HTTP/1.1" 401'."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if f" {path} HTTP" in line]


class StalledServer(Loopback):
    """Accepts every connection, reads nothing, answers nothing, until stopped."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


class FullBacklogServer(Loopback):
    """A port whose accept queue is full: the kernel drops new connection attempts, so a client's
    connect hangs until its connect timeout (loopback's stand-in for an unreachable host)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)  # takes the one slot

    def stop(self) -> None:
        self.filler.close()
        self.sock.close()


def sse_event(delta: dict, finish: str | None = None) -> str:
    """One streamed chat-completion chunk in the OpenAI format."""
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


def sse_answer(words: list[str]) -> bytes:
    """A complete streamed chat completion in the OpenAI format."""
    event = sse_event
    events = [event({"role": "assistant"}, None)] + [event({"content": w}, None) for w in words]
    return ("".join(events) + event({}, "stop") + "data: [DONE]\n\n").encode()


class ScriptedServer(Loopback):
    """POST /v1/chat/completions answers with `script` in order ((status, headers) pairs), then with a
    streamed answer. GET /v1/models lists one model, GET /props is optional; other paths are 404."""

    def __init__(
        self,
        script: list[tuple[int, dict]],
        answer: tuple[str, ...] = ("Scripted", " answer", " [1]."),
        model_fields: dict | None = None,
        props: dict | None = None,
        stream_body=None,
    ):
        """`model_fields`: extra fields of the listed model (vLLM: max_model_len); `props`: the body
        of GET /props (llama.cpp's server), 404 when None; `stream_body(write)`: writes the streamed
        answer itself, piece by piece (misbehaving servers), instead of `answer`."""
        self.script, self.answer, self.stream_body = list(script), answer, stream_body
        self.model_fields, self.props = model_fields or {}, props
        self.chat_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    model = {"id": "scripted", "object": "model", "owned_by": "test", **server.model_fields}
                    self._send(200, json.dumps({"object": "list", "data": [model]}).encode(), {})
                elif self.path == "/props" and server.props is not None:
                    self._send(200, json.dumps(server.props).encode(), {})
                else:
                    self._send(404, b'{"error": "not found"}', {})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}', {})
                    return
                server.chat_requests += 1
                if server.script:
                    status, headers = server.script.pop(0)
                    self._send(status, json.dumps({"error": {"message": f"scripted {status}"}}).encode(), headers)
                elif server.stream_body:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()

                    def write(text: str) -> None:
                        self.wfile.write(text.encode())
                        self.wfile.flush()

                    try:
                        server.stream_body(write)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up on us: what these tests expect
                else:
                    self._send(200, sse_answer(list(server.answer)), {}, "text/event-stream")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
