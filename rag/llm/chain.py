"""The backend chain at run time: the local model and the model servers, in the order they are tried.

`Backends` answers the engine's questions about the chain without generating anything: may anyone
answer now (`unavailable`), give me this endpoint's model if it can answer (`get`), what identifies
the chain's answers in the cache (`fingerprint`), and how is each doing (`status`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..errors import RagError
from ..lazy import Lazy
from .endpoints import Endpoint
from .remote import RemoteLLM


class Backends:
    def __init__(self, settings, model: Lazy, model_fingerprint: Callable[[], str]):
        self.endpoints: tuple[Endpoint, ...] = settings.chain
        self.remotes = {e: RemoteLLM(e, settings) for e in self.endpoints if e.kind == "openai"}
        self.model = model  # the local LocalLLM, loaded lazily
        self._model_fingerprint = model_fingerprint

    @property
    def local_first(self) -> bool:
        return self.endpoints[0].kind == "local"

    @property
    def has_local(self) -> bool:
        return any(e.kind == "local" for e in self.endpoints)

    def _named(self, endpoint: Endpoint, reason: str) -> str:
        return reason if len(self.endpoints) == 1 else f"{endpoint.name}: {reason}"

    def fingerprint(self) -> str:
        """What cached answers depend on besides the question: the local model file and/or the
        servers. "none" while the chain is only a local model that is not there (nothing cached)."""
        if self.endpoints == (Endpoint("local"),):
            return self._model_fingerprint()
        parts = [self._model_fingerprint() if e.kind == "local" else self.remotes[e].fingerprint()
                 for e in self.endpoints]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def unavailable(self, wait: bool) -> str:
        """"" if some backend may answer now, else why none can. No network calls."""
        reasons = []
        for e in self.endpoints:
            if e.kind == "local":
                if self.model.ready or (wait and self.model.state != "failed"):
                    return ""
                reason = str(self.model.error) if self.model.state == "failed" else "the model is still loading"
            else:
                remote = self.remotes[e]
                if remote.breaker.remaining_s() == 0:
                    return ""
                reason = f"circuit breaker open ({remote.health.last_error})"
            reasons.append(self._named(e, reason))
        return "; ".join(reasons)

    def get(self, endpoint: Endpoint, wait: bool):
        """(LocalLLM or RemoteLLM, "") if `endpoint` may answer now, else (None, why not). A server
        whose breaker is due is probed here; a local fallback starts loading when first asked for."""
        if endpoint.kind == "openai":
            remote = self.remotes[endpoint]
            ok, why = remote.available()
            return (remote, "") if ok else (None, f"{endpoint.name}: {why}")
        self.model.start_if_idle()
        model, why = self.local_model(wait)
        return model, "" if model else self._named(endpoint, why)

    def local_model(self, wait: bool):
        if wait and self.model.state != "failed":
            try:
                return self.model.get(), ""
            except RagError as exc:
                return None, str(exc)
        if self.model.ready:
            return self.model.peek(), ""
        if self.model.state == "failed":
            return None, str(self.model.error)
        return None, "the model is still loading"

    def may_answer_after(self, index: int) -> bool:
        """Whether a backend after position `index` of the chain could still be tried."""
        return any(e.kind == "local" or self.remotes[e].breaker.remaining_s() == 0 for e in self.endpoints[index + 1:])

    def status(self) -> list[dict]:
        out = []
        for e in self.endpoints:
            if e.kind == "local":
                out.append({"name": "local", "kind": "local", "state": self.model.state,
                            "error": str(self.model.error) if self.model.error else None})
                continue
            remote = self.remotes[e]
            out.append({"name": e.name, "kind": "openai", "model": remote.model or None, "n_ctx": remote.known_ctx,
                        "n_ctx_source": remote.ctx_source,
                        "breaker": remote.breaker.state, "consecutive_failures": remote.breaker.failures,
                        "probe_in_s": round(remote.breaker.remaining_s(), 1),
                        "breaker_opened": remote.breaker.opened_count, **remote.health.snapshot()})
        return out
