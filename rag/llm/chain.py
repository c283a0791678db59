"""The backend chain at run time: the local model and the model servers, in the order they are tried.

`Chain` is the only place that knows there are two kinds of backend: it builds one `Backend`
(base.py) per entry of the configured chain. Everything else asks it, never a backend's kind: may
anyone answer now (`unavailable`), which backends to try (`backends`), what identifies the chain's
answers in the cache (`fingerprint`), and how each is doing (`status`).
"""

from __future__ import annotations

import hashlib

from ..config import Settings
from .base import Backend, BackendStatus, ChatModel
from .local import LocalBackend
from .remote import RemoteLLM


class Chain:
    def __init__(self, settings: Settings):
        self.local: LocalBackend | None = None  # the chain's local entry, if it has one
        self.backends: list[Backend] = []
        for endpoint in settings.chain:
            if endpoint.kind == "local":
                self.local = LocalBackend(settings)
                self.backends.append(self.local)
            else:
                self.backends.append(RemoteLLM(endpoint, settings))

    @property
    def first(self) -> Backend:
        return self.backends[0]

    def fingerprint(self) -> str:
        """What cached answers depend on besides the question: the model file and/or the servers.
        "none" while the chain is only a local model that is not there (nothing is cached)."""
        if len(self.backends) == 1:
            return self.first.fingerprint()
        return hashlib.sha256("|".join(b.fingerprint() for b in self.backends).encode()).hexdigest()[:16]

    def _named(self, backend: Backend, reason: str) -> str:
        return reason if len(self.backends) == 1 or not reason else f"{backend.name}: {reason}"

    def unavailable(self, wait: bool) -> str:
        """ "" if some backend may answer now, else why none can. No network calls."""
        reasons = []
        for backend in self.backends:
            reason = backend.unavailable(wait)
            if not reason:
                return ""
            reasons.append(self._named(backend, reason))
        return "; ".join(reasons)

    def acquire(self, backend: Backend, wait: bool) -> tuple[ChatModel | None, str]:
        """`backend`'s model if it can answer now, else (None, why not, naming the backend)."""
        model, why = backend.acquire(wait)
        return model, self._named(backend, why)

    def may_answer_after(self, backend: Backend) -> bool:
        """Whether a backend after `backend` could still be tried (its breaker lets requests through)."""
        later = self.backends[self.backends.index(backend) + 1 :]
        return any(not b.unavailable(wait=True) for b in later)

    def status(self) -> list[BackendStatus]:
        return [b.status() for b in self.backends]
