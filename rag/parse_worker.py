"""Parse documents in a child process with a time and a memory cap.

A hostile or broken file (a PDF decompression bomb, a pathological HTML page, a parser bug) can take
unbounded time or memory, or crash the interpreter; parsing it in the server process would take the
app down with it. `ParseWorker.load(path)` sends the path to a long-lived child (`python -m
rag.parse_worker`, its address space capped with RLIMIT_AS) and waits at most `timeout_s`; a child that
times out, runs out of memory or dies is killed and replaced, and that file becomes an IngestError
while the rest of the batch goes on. The parent's memory does not grow with what the parser allocates.

Protocol: one JSON line per request (the path) and per reply ({"sections": [[page, text], ...]} or
{"error": message}) over the child's stdin/stdout.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import subprocess
import sys
from pathlib import Path

from .errors import IngestError
from .loaders import Section

TIMEOUT_S = 120.0  # one file; a 500-page PDF takes ~30 s with pypdf on 2 cores
MEMORY_MB = 2048  # the child's address space (Python + parser + the document's text)


class ParseWorker:
    def __init__(self, timeout_s: float = TIMEOUT_S, memory_mb: int = MEMORY_MB):
        self.timeout_s, self.memory_mb = timeout_s, memory_mb
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> ParseWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        # the child caps its own memory first thing (preexec_fn is unsafe in a threaded server)
        return subprocess.Popen(
            [sys.executable, "-m", "rag.parse_worker", str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def load(self, path: Path) -> list[Section]:
        """loaders.load(path) in the child; IngestError for anything the file does to it."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        try:
            proc.stdin.write((json.dumps(str(path)) + "\n").encode())
            proc.stdin.flush()
            line = self._read_line(proc)
        except (BrokenPipeError, TimeoutError) as exc:
            self.close()
            if isinstance(exc, TimeoutError):
                raise IngestError(
                    f"{path.name}: parsing took longer than {self.timeout_s:.0f} s and was "
                    "stopped; split the file or convert it to text"
                ) from None
            line = b""
        if not line:
            code = proc.wait()
            self._proc = None
            raise IngestError(
                f"{path.name}: the parser stopped on this file (exit {code}; more than "
                f"{self.memory_mb} MB or a crash); convert it to text or PDF and add it again"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise IngestError(reply["error"])
        return [Section(page, text) for page, text in reply["sections"]]

    def _read_line(self, proc: subprocess.Popen) -> bytes:
        """One reply line within the timeout (the child may send a large line in many pieces)."""
        import time

        deadline = time.monotonic() + self.timeout_s
        chunks = []
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError
                data = os.read(fd, 1 << 20)
                if not data:
                    return b""
                chunks.append(data)
                if data.endswith(b"\n"):
                    return b"".join(chunks)

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            self._proc = None


def main() -> None:
    """Child side: read paths, answer with sections or an error message, one JSON line each."""
    limit = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from . import loaders

    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        path = Path(json.loads(line))
        reply: dict[str, object]
        try:
            reply = {"sections": [[s.page, s.text] for s in loaders.load(path)]}
        except IngestError as exc:
            reply = {"error": str(exc)}
        except MemoryError:
            reply = {
                "error": f"{path.name}: needs more memory to parse than the parser may use; "
                "convert it to text or PDF and add it again"
            }
        except Exception as exc:  # a parser bug on a strange file must not end the batch
            reply = {
                "error": f"{path.name}: could not be parsed ({type(exc).__name__}: {exc}); "
                "convert it to text or PDF and add it again"
            }
        out.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
