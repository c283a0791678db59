"""Sentence-transformers embedder loaded offline from a local directory.

`Embedder` is the seam chunking, ingest and retrieval use, written as a Protocol so a test or another
runtime can stand in: `embed_batch` (passages) and `embed_queries` (L2-normalised float32 rows),
`count_tokens`, `token_offsets`, plus `id`, `dim` and `max_tokens`. `SentenceEmbedder` is the
implementation. Retrieval models trained with instructions (multilingual-e5: "query: " / "passage: ",
bge, KURE ...) get them: the `prompts` their config_sentence_transformers.json declares, or
EMBED_QUERY_PREFIX / EMBED_PASSAGE_PREFIX; the prefixes are part of the embedder's id, so an index
embedded without them is not searched with them.
Heavy imports (torch, transformers) happen inside `load_embedder`, never at import time. The usual
Transformer + Pooling (+ Normalize) models run on transformers directly; other module stacks go
through SentenceTransformer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

# Rows per forward pass. Peak memory grows with batch x seq_len (attention scores per layer); 16 keeps
# the transient near 100 MB for 256-token chunks and is as fast on CPU as 64 (measured in the bench).
EMBED_BATCH = 16


class Embedder(Protocol):
    id: str  # identifies the model: an index built with another embedder is refused
    dim: int
    max_tokens: int  # text tokens per passage, special tokens excluded

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...


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
    raise ConfigError(
        f"EMBED_MODEL={root} holds no sentence-transformers model (no modules.json or "
        "config.json); point it at a local model directory"
    )


# Module types we run ourselves with plain transformers (no sentence_transformers import: it pulls in
# scikit-learn, scipy and pandas, 2.6 s and ~110 MB RSS here). Anything else goes through
# SentenceTransformer, which runs every module type.
DIRECT_MODULES = {"Transformer", "Pooling", "Normalize"}
POOLING_MODES = ("mean", "cls", "max")


def _read_json(path: Path) -> Any:
    """The file's JSON value (a model directory's configs: objects, modules.json a list), None if absent."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def direct_config(model_dir: Path) -> dict | None:
    """What `model_dir` needs when its modules are only Transformer + Pooling (+ Normalize):
    {"pooling": mean|cls|max, "max_seq_length": int|None}; None when it needs SentenceTransformer."""
    modules = _read_json(model_dir / "modules.json")
    pooling = "mean"  # SentenceTransformer's choice for a bare transformers directory
    if modules is not None:
        kinds = {m["type"].rsplit(".", 1)[-1]: m for m in modules}
        if not set(kinds) <= DIRECT_MODULES or kinds.get("Transformer", {}).get("path", "") != "":
            return None
        pool_cfg = _read_json(model_dir / kinds["Pooling"]["path"] / "config.json") if "Pooling" in kinds else {}
        modes = [
            m
            for m in POOLING_MODES
            if pool_cfg.get(f"pooling_mode_{m}_token") or pool_cfg.get(f"pooling_mode_{m}_tokens")
        ]
        others = [
            k
            for k, v in pool_cfg.items()
            if k.startswith("pooling_mode_") and v and not any(k.startswith(f"pooling_mode_{m}_token") for m in modes)
        ]
        if len(modes) != 1 or others:
            return None
        pooling = modes[0]
    st_config = _read_json(model_dir / "sentence_bert_config.json") or {}
    return {"pooling": pooling, "max_seq_length": st_config.get("max_seq_length")}


class DirectEncoder:
    """Transformer + pooling + L2 normalisation, as SentenceTransformer.encode computes them."""

    def __init__(self, model_dir: Path, pooling: str, max_seq_length: int | None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="sdpa").eval()
        self.pooling = pooling
        self.max_seq_length = int(
            max_seq_length or min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)
        )
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str], batch_size: int):
        import numpy as np

        torch = self.torch
        # longest first, as SentenceTransformer does: batches of similar length pad less
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                elif self.pooling == "max":
                    pooled = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
                else:
                    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, p=2, dim=1).float().numpy()
        return out


def declared_prefixes(model_dir: Path) -> tuple[str, str]:
    """(query, passage) prefixes from the model's sentence-transformers `prompts`, "" where none."""
    prompts = (_read_json(model_dir / "config_sentence_transformers.json") or {}).get("prompts") or {}
    query = prompts.get("query", "")
    passage = next((prompts[k] for k in ("passage", "document", "corpus") if k in prompts), "")
    return str(query), str(passage)


class SentenceEmbedder:
    def __init__(
        self, encode, tokenizer, dim: int, max_seq_length: int, model_dir: Path, prefixes: tuple[str, str] = ("", "")
    ):
        """`encode(texts, batch_size)` returns L2-normalised float32 rows."""
        self._encode = encode
        self.tokenizer = tokenizer
        self.query_prefix, self.passage_prefix = prefixes
        self.id = embedder_id(model_dir)
        if any(prefixes):
            self.id += "-p" + hashlib.sha256("\0".join(prefixes).encode()).hexdigest()[:6]
        self.dim = dim
        # max_seq_length counts [CLS] and [SEP] and the passage prefix; chunks hold text tokens only
        prefix_tokens = self.count_tokens([self.passage_prefix])[0] if self.passage_prefix else 0
        self.max_tokens = int(max_seq_length) - 2 - prefix_tokens

    def embed_batch(self, texts: Sequence[str], batch_size: int = EMBED_BATCH) -> np.ndarray:
        """Passages (chunks), with the passage prefix."""
        import numpy as np

        rows = [self.passage_prefix + t for t in texts]
        return np.ascontiguousarray(self._encode(rows, batch_size), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Questions, with the query prefix."""
        import numpy as np

        rows = [self.query_prefix + t for t in texts]
        return np.ascontiguousarray(self._encode(rows, EMBED_BATCH), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of every token of every text (needs a fast tokenizer)."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [[tuple(span) for span in spans] for spans in encoded["offset_mapping"]]


def _sentence_transformer(model_dir: Path, prefixes: tuple[str, str]) -> SentenceEmbedder:
    from sentence_transformers import SentenceTransformer

    # SDPA attention: no materialised batch x heads x seq x seq score tensors (transformers defaults
    # BERT to "eager" here); half the peak memory of eager and faster on CPU
    model = SentenceTransformer(
        str(model_dir), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "sdpa"}
    )
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension

    def encode(texts, batch_size):
        return model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    dim = int(get_dim() or 0)
    return SentenceEmbedder(encode, model.tokenizer, dim, model.max_seq_length or 512, model_dir, prefixes)


def load_embedder(
    model_path: Path, query_prefix: str | None = None, passage_prefix: str | None = None
) -> SentenceEmbedder:
    """Load the sentence-transformers model at `model_path` on the CPU, offline. A prefix left None
    is the one the model declares (see the module docstring)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not Path(model_path).is_dir():
        raise ConfigError(
            f"EMBED_MODEL={model_path} is not a directory; point it at a local "
            "sentence-transformers model (default: the bundled all-MiniLM-L6-v2)"
        )
    model_dir = find_model_dir(Path(model_path))
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        config = direct_config(model_dir)
        declared = declared_prefixes(model_dir)
        prefixes = (
            declared[0] if query_prefix is None else query_prefix,
            declared[1] if passage_prefix is None else passage_prefix,
        )
        if config is None:
            return _sentence_transformer(model_dir, prefixes)
        encoder = DirectEncoder(model_dir, config["pooling"], config["max_seq_length"])
        dim, seq = encoder.dim, encoder.max_seq_length
        return SentenceEmbedder(encoder.encode, encoder.tokenizer, dim, seq, model_dir, prefixes)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"EMBED_MODEL={model_dir} could not be loaded ({exc}); "
            "check that the directory is a complete sentence-transformers model"
        ) from exc
