"""Generate random-weight llama-architecture GGUF models (Q4_0) for tests and benchmarks.

No model can be downloaded here, so tests and benchmarks use these: the text they produce is
meaningless, but llama.cpp loads, tokenizes, allocates KV cache and decodes them exactly as it
would a real model of the same shape. Weights are written directly as valid Q4_0 blocks (a small
f16 scale and random nibbles) so even the 1.5B preset is generated in seconds.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Shape:
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_ctx_train: int = 4096


PRESETS = {
    "tiny": Shape(n_vocab=512, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=128, n_ctx_train=4096),
    # Layer shapes of Qwen2.5-0.5B / 1.5B (GQA, 151,936-token vocabulary) in the llama architecture.
    "0.5b": Shape(n_vocab=151_936, n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864, n_ctx_train=32_768),
    "1.5b": Shape(n_vocab=151_936, n_embd=1536, n_layer=28, n_head=12, n_head_kv=2, n_ff=8960, n_ctx_train=32_768),
}


def spm_vocab(size: int) -> tuple[list[str], list[float], list[int]]:
    """A SentencePiece-style vocabulary: <unk>, <s>, </s>, 256 byte tokens, then text pieces."""
    from gguf.constants import TokenType

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    chars = string.ascii_letters + string.digits + string.punctuation
    pieces = ["\u2581"] + [c for c in chars] + ["\u2581" + c for c in chars]
    for n in itertools.count(2):
        if len(tokens) + len(pieces) >= size:
            break
        for combo in itertools.product(string.ascii_lowercase, repeat=n):
            word = "".join(combo)
            pieces += [word, "\u2581" + word]
            if len(tokens) + len(pieces) >= size:
                break
    pieces = pieces[: size - len(tokens)]
    # longer pieces merge first; ties broken by order
    scores = [0.0] * len(tokens) + [float(len(p)) - i * 1e-6 for i, p in enumerate(pieces)]
    return tokens + pieces, scores, [int(t) for t in types] + [int(TokenType.NORMAL)] * len(pieces)


def _q4_0(rng, rows: int, cols: int, scale: float):
    """Random Q4_0 data for a (rows, cols) weight: each 32-value block = f16 scale + 16 bytes of nibbles."""
    import numpy as np

    blocks = rng.integers(0, 256, size=(rows, cols // 32, 18), dtype=np.uint8)
    blocks[:, :, 0:2] = np.frombuffer(np.float16(scale).tobytes(), dtype=np.uint8)
    return blocks.reshape(rows, cols // 32 * 18)


def write_model(path: Path | str, shape: Shape, seed: int = 0, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Write a random-weight Q4_0 llama GGUF of `shape` to `path` (atomically) and return the path.

    chat_template=None writes a file without a template (tests the app's fallback)."""
    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    rng = np.random.default_rng(seed)
    head_dim = shape.n_embd // shape.n_head
    kv_dim = head_dim * shape.n_head_kv
    w = gguf.GGUFWriter(str(tmp), arch="llama")
    w.add_name(f"ai-chat random llama {shape.n_layer}x{shape.n_embd}")
    w.add_context_length(shape.n_ctx_train)
    w.add_embedding_length(shape.n_embd)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(shape.n_ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    tokens, scores, types = spm_vocab(shape.n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    if chat_template is not None:
        w.add_chat_template(chat_template)

    q4 = gguf.GGMLQuantizationType.Q4_0
    scale = 0.02 / 4.6  # nibble std ~4.6 -> weights with std ~0.02

    def matrix(name: str, rows: int, cols: int) -> None:
        w.add_tensor(name, _q4_0(rng, rows, cols, scale), raw_dtype=q4)

    def norm(name: str) -> None:
        w.add_tensor(name, np.ones(shape.n_embd, dtype=np.float32))

    matrix("token_embd.weight", shape.n_vocab, shape.n_embd)
    for i in range(shape.n_layer):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", shape.n_embd, shape.n_embd)
        matrix(f"blk.{i}.attn_k.weight", kv_dim, shape.n_embd)
        matrix(f"blk.{i}.attn_v.weight", kv_dim, shape.n_embd)
        matrix(f"blk.{i}.attn_output.weight", shape.n_embd, shape.n_embd)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", shape.n_ff, shape.n_embd)
        matrix(f"blk.{i}.ffn_up.weight", shape.n_ff, shape.n_embd)
        matrix(f"blk.{i}.ffn_down.weight", shape.n_embd, shape.n_ff)
    norm("output_norm.weight")
    matrix("output.weight", shape.n_vocab, shape.n_embd)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path
