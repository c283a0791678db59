"""The backend chain: which model servers answer, in which order. Parsing only; no network.

An entry is `local` (llama.cpp in this process on MODEL_PATH) or `openai:URL[#model]` (an
OpenAI-compatible server: Ollama, LM Studio, llama.cpp's server, vLLM). The chain is LLM_BACKEND's
entries (local, or every LLM_BASE_URL in order) followed by FALLBACKS, duplicates dropped.
Example: LLM_BACKEND=openai LLM_BASE_URL=http://gpu-a:8000/v1 FALLBACKS=openai:http://gpu-b:8000/v1,local
-> [openai:http://gpu-a:8000/v1, openai:http://gpu-b:8000/v1, local].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError

BackendKind = Literal["local", "openai"]


@dataclass(frozen=True)
class Endpoint:
    kind: BackendKind
    url: str = ""  # API base URL, e.g. http://localhost:11434/v1 (no trailing slash)
    model: str = ""  # model name for this server only; "" = LLM_MODEL, or the server's first model

    @property
    def name(self) -> str:
        """How the endpoint is shown and logged: credentials in the URL are masked."""
        if self.kind == "local":
            return "local"
        return f"openai:{redact(self.url)}" + (f"#{self.model}" if self.model else "")

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r})"


def redact(url: str) -> str:
    """Example: 'http://user:pw@gpu-a:8000/v1' -> 'http://***@gpu-a:8000/v1'."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def check_url(name: str, raw: str) -> str:
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name}: {redact(raw.strip())!r} is not an http(s) URL; give the server's API base, "
            "e.g. http://localhost:11434/v1 (Ollama) or http://gpu-a:8000/v1 (vLLM)"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{name}: {redact(url)!r} has an invalid port") from None
    return url


def parse_urls(name: str, raw: str) -> tuple[str, ...]:
    """LLM_BASE_URL: one URL or several, comma-separated."""
    return tuple(check_url(name, part) for part in raw.split(",") if part.strip())


def parse_entry(name: str, raw: str) -> Endpoint:
    text = raw.strip()
    if text.lower() == "local":
        return Endpoint("local")
    kind, sep, rest = text.partition(":")
    if kind.lower() != "openai" or not sep:
        raise ConfigError(
            f"{name}: {redact(text)!r} is not a backend; use `local` or `openai:URL` "
            "(optionally `openai:URL#model`), e.g. openai:http://gpu-b:8000/v1,local"
        )
    url, _, model = rest.partition("#")
    return Endpoint("openai", check_url(name, url), model.strip())


def parse_chain(name: str, raw: str) -> tuple[Endpoint, ...]:
    """FALLBACKS: comma-separated entries. A comma inside a URL is not supported (none needs one)."""
    return tuple(parse_entry(name, part) for part in raw.split(",") if part.strip())


def chain(backend: str, base_urls: tuple[str, ...], fallbacks: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    if backend == "openai" and not base_urls:
        raise ConfigError(
            "LLM_BACKEND=openai needs LLM_BASE_URL, e.g. http://localhost:11434/v1 (Ollama), "
            "http://localhost:1234/v1 (LM Studio), http://localhost:8080/v1 (llama.cpp server)"
        )
    first = [Endpoint("openai", url) for url in base_urls] if backend == "openai" else [Endpoint("local")]
    out: list[Endpoint] = []
    for entry in [*first, *fallbacks]:
        if entry not in out:
            out.append(entry)
    return tuple(out)
