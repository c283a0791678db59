"""Sentence-transformers embedder loaded offline from a local directory.

`Embedder` satisfies the small `EmbedderLike` protocol the rest of the engine uses: `embed_batch`
(L2-normalised float32 rows), `count_tokens`, `token_offsets`, plus `id`, `dim` and `max_tokens`.
Heavy imports (torch, sentence_transformers) happen inside `load_embedder`, never at import time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from .errors import ConfigError


class EmbedderLike(Protocol):
    id: str
    dim: int
    max_tokens: int

    def embed_batch(self, texts: Sequence[str]): ...


def embedder_id(model_dir: Path) -> str:
    """Stable id of a model directory: its name plus a hash of its config files (content, not location)."""
    name = model_dir.parent.name if model_dir.name in ("model", "models") else model_dir.name
    digest = hashlib.sha256()
    for filename in ("config.json", "modules.json", "config_sentence_transformers.json"):
        path = model_dir / filename
        if path.is_file():
            digest.update(path.read_bytes())
    return f"{name}-{digest.hexdigest()[:10]}"


def find_model_dir(root: Path) -> Path:
    """The directory that holds the sentence-transformers files: root itself or one level below."""
    if (root / "modules.json").is_file() or (root / "config.json").is_file():
        return root
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if (child / "modules.json").is_file():
            return child
    raise ConfigError(f"EMBED_MODEL={root} holds no sentence-transformers model (no modules.json or "
                      "config.json); point it at a local model directory")


class Embedder:
    def __init__(self, model, model_dir: Path):
        self.model = model
        self.tokenizer = model.tokenizer
        self.id = embedder_id(model_dir)
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        # max_seq_length counts [CLS] and [SEP]; chunks hold text tokens only
        self.max_tokens = int(model.max_seq_length) - 2

    def embed_batch(self, texts: Sequence[str], batch_size: int = 64):
        import numpy as np

        vectors = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of every token of every text (needs a fast tokenizer)."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False,
                                 return_offsets_mapping=True)
        return [[tuple(span) for span in spans] for spans in encoded["offset_mapping"]]


def load_embedder(model_path: Path) -> Embedder:
    """Load the sentence-transformers model at `model_path` on the CPU, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not Path(model_path).is_dir():
        raise ConfigError(f"EMBED_MODEL={model_path} is not a directory; point it at a local "
                          "sentence-transformers model (default: the bundled all-MiniLM-L6-v2)")
    model_dir = find_model_dir(Path(model_path))
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    try:
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"EMBED_MODEL={model_dir} could not be loaded ({exc}); "
                          "check that the directory is a complete sentence-transformers model") from exc
    return Embedder(model, model_dir)
