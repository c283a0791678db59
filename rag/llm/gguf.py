"""Read a GGUF file's header, metadata and tensor table without loading its weights.

Gives what the memory planner needs (layers, heads, KV heads, head sizes, training context, bytes
per layer) and turns every way a download goes wrong into a specific ModelError. Arrays (the
vocabulary) are skipped, not decoded, so this stays fast on 150k-token vocabularies. It does not
validate the weights themselves; llama.cpp does that when it loads them.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
SWA_PAD = 256  # llama.cpp pads KV cache sizes to this many cells
# architectures whose layers alternate sliding-window and global attention: every n-th layer is global
# (llama.cpp's set_swa_pattern(n) in llama-model.cpp)
SWA_PATTERNS = {"gemma2": 2, "gemma3": 6, "cohere2": 4, "gpt-oss": 2}
_KEEP_ARRAYS = {"tokenizer.ggml.tokens"}  # only its length is kept


@dataclass
class GGUFMeta:
    path: Path
    file_size: int
    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    context_length: int
    n_vocab: int
    quantization: str
    layer_bytes: list[int]
    other_bytes: int
    chat_template: str | None = None
    input_embedding_bytes: int = 0  # token_embd: one row is read per token, not the whole table
    sliding_window: int = 0  # n_swa: tokens a sliding-window layer attends to (0: no such layers)
    swa_layers: tuple[bool, ...] = ()  # per layer: does it use the sliding window
    metadata: dict = field(default_factory=dict, repr=False)

    @property
    def weight_bytes(self) -> int:
        return sum(self.layer_bytes) + self.other_bytes

    def swa_cells(self, n_ctx: int, n_ubatch: int) -> int:
        """KV cells of a sliding-window layer as llama.cpp allocates them without the full-size SWA cache:
        the window plus one micro-batch, padded to 256, at most n_ctx."""
        return min(n_ctx, -(-(self.sliding_window + n_ubatch) // SWA_PAD) * SWA_PAD)

    def kv_bytes(
        self, n_ctx: int, bytes_per_elem: float = 2.0, n_layers: int | None = None, n_ubatch: int | None = None
    ) -> int:
        """KV cache = cells x n_head_kv x (key_length + value_length) x bytes per element, summed over the
        last `n_layers` layers (all by default; llama.cpp offloads the last ones first). A layer has n_ctx
        cells; a sliding-window one swa_cells() when `n_ubatch` is given (swa_full off), else n_ctx too."""
        layers = self.n_layer if n_layers is None else n_layers
        cells = layers * n_ctx
        if n_ubatch is not None and self.sliding_window and layers > 0:
            n_swa = sum(self.swa_layers[self.n_layer - layers :])
            cells -= n_swa * (n_ctx - self.swa_cells(n_ctx, n_ubatch))
        return int(cells * self.n_head_kv * (self.key_length + self.value_length) * bytes_per_elem)


class _Cursor:
    def __init__(self, buf, path: Path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ModelError(
                f"{self.path} is truncated inside its header ({len(self.buf)} bytes): "
                "the download did not finish; download the file again"
            )
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep_array: bool):
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if count > len(self.buf):
                raise ModelError(f"{self.path} has a corrupt metadata array; download the file again")
            if etype in _SCALAR:  # fixed-size items: skip in one step
                self.take(count * struct.calcsize(_SCALAR[etype]))
            elif etype == _STRING:  # vocabularies: 150k+ strings, skipped in a tight loop
                self.pos = _skip_strings(self.buf, self.pos, count, self.path)
            else:
                for _ in range(count):
                    self.value(etype, False)
            return count if keep_array else None
        raise ModelError(
            f"{self.path} has an unknown metadata type {vtype}: the file is corrupt or "
            "from a newer GGUF version; download it again or upgrade llama-cpp-python"
        )


_U64 = struct.Struct("<Q").unpack_from


def _skip_strings(buf, pos: int, count: int, path: Path) -> int:
    """Position after `count` length-prefixed strings starting at `pos`."""
    end = len(buf)
    try:
        for _ in range(count):
            pos += 8 + _U64(buf, pos)[0]
    except struct.error:
        pos = end + 1
    if pos > end:
        raise ModelError(
            f"{path} is truncated inside its header ({end} bytes): the download did not finish; download the file again"
        )
    return pos


def _sniff(path: Path, head: bytes) -> None:
    """Name the common wrong files before parsing."""
    if not head:
        raise ModelError(f"{path} is empty (0 bytes): the download failed; download the model again")
    if head.startswith(b"version https://git-lfs"):
        raise ModelError(f"{path} is a Git LFS pointer, not the model: run `git lfs pull` or download the file itself")
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        raise ModelError(
            f"{path} is an HTML/XML page saved in place of the model (a login or error page): "
            "download the .gguf file itself"
        )
    if head[:4] != b"GGUF":
        raise ModelError(
            f"{path} is not a GGUF file (it starts with {head[:8]!r}); llama.cpp needs a .gguf "
            "model such as Qwen2.5-1.5B-Instruct-Q4_0.gguf"
        )


def read_meta(path: Path | str) -> GGUFMeta:
    """Parse the GGUF at `path`; raise ModelError with a specific reason if it is not a usable model."""
    path = Path(path)
    if path.is_dir():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))[:3]
        raise ModelError(
            f"MODEL_PATH {path} is a directory, not a model file: set MODEL_PATH to the .gguf file "
            + (f"(e.g. {path / ggufs[0]}; it holds {', '.join(ggufs)})" if ggufs else "itself")
            + ", or set MODELS_DIR to the folder to use the first .gguf in it"
        )
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist: place a .gguf in models/ or set MODEL_PATH")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        _sniff(path, fh.read(64))
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, size, buf)


def _parse(path: Path, size: int, buf) -> GGUFMeta:
    cur = _Cursor(buf, path)
    cur.take(4)
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ModelError(
            f"{path} is GGUF version {version}; this app reads versions 2 and 3: "
            "upgrade llama-cpp-python or use another file"
        )
    n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
    if n_tensors > size or n_kv > size:
        raise ModelError(f"{path} has a corrupt header; download the file again")
    meta: dict = {}
    for _ in range(n_kv):
        key = cur.string()
        meta[key] = cur.value(cur.unpack("<I"), key in _KEEP_ARRAYS)
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.unpack("<Q") for _ in range(cur.unpack("<I"))]
        tensors.append((name, dims, cur.unpack("<I"), cur.unpack("<Q")))
    align = int(meta.get("general.alignment", 32)) or 32
    data_start = (cur.pos + align - 1) // align * align
    return _build(path, size, meta, tensors, data_start)


def _tensor_bytes(path: Path, dims: list[int], ggml_type: int) -> tuple[int, str]:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        qtype = GGMLQuantizationType(ggml_type)
        block, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise ModelError(
            f"{path} uses tensor type {ggml_type}, unknown to this version; upgrade llama-cpp-python and gguf"
        ) from None
    count = 1
    for d in dims:
        count *= d
    return count // block * type_size, qtype.name


def _build(path: Path, size: int, meta: dict, tensors: list, data_start: int) -> GGUFMeta:
    from gguf.constants import MODEL_ARCH_NAMES

    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelError(f"{path} has no general.architecture: it is not a model GGUF (maybe a LoRA or vocab file)")
    if arch not in set(MODEL_ARCH_NAMES.values()):
        raise ModelError(
            f"{path} has architecture {arch!r}, which this llama.cpp does not know: "
            "use a supported model (llama, qwen2, mistral, gemma, phi3 ...) or upgrade llama-cpp-python"
        )
    n_layer = int(meta.get(f"{arch}.block_count", 0))
    layer_bytes, other, end, embd = [0] * n_layer, 0, data_start, 0
    kinds: Counter[str] = Counter()
    for name, dims, ggml_type, offset in tensors:
        nbytes, kind = _tensor_bytes(path, dims, ggml_type)
        kinds[kind] += nbytes
        end = max(end, data_start + offset + nbytes)
        parts = name.split(".")
        if parts[0] == "blk" and parts[1].isdigit() and int(parts[1]) < n_layer:
            layer_bytes[int(parts[1])] += nbytes
        else:
            other += nbytes
        if name == "token_embd.weight":
            embd = nbytes
    if end > size:
        raise ModelError(
            f"{path} is truncated: {size:,} bytes of {end:,} expected "
            f"({100 * size / end:.1f}%); the download did not finish, download it again"
        )
    return _meta(path, size, meta, arch, n_layer, layer_bytes, other, kinds, embd)


def _meta(path, size, meta, arch, n_layer, layer_bytes, other, kinds, embd) -> GGUFMeta:
    n_embd = int(meta.get(f"{arch}.embedding_length", 0))
    n_head = _first_int(meta.get(f"{arch}.attention.head_count"), 1)
    n_head_kv = _first_int(meta.get(f"{arch}.attention.head_count_kv"), n_head)
    if n_layer <= 0 or n_embd <= 0:
        raise ModelError(f"{path} lacks {arch}.block_count or {arch}.embedding_length: the file is corrupt")
    head_dim = n_embd // max(n_head, 1)
    n_swa, swa = _swa_layers(meta, arch, n_layer)
    return GGUFMeta(
        path=path,
        file_size=size,
        architecture=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        key_length=int(meta.get(f"{arch}.attention.key_length", head_dim)),
        value_length=int(meta.get(f"{arch}.attention.value_length", head_dim)),
        context_length=int(meta.get(f"{arch}.context_length", 2048)),
        n_vocab=int(meta.get("tokenizer.ggml.tokens") or meta.get(f"{arch}.vocab_size", 0)),
        quantization=kinds.most_common(1)[0][0] if kinds else "unknown",
        layer_bytes=layer_bytes,
        other_bytes=other,
        chat_template=meta.get("tokenizer.chat_template"),
        input_embedding_bytes=embd,
        sliding_window=n_swa,
        swa_layers=swa,
        metadata=meta,
    )


def _swa_layers(meta: dict, arch: str, n_layer: int) -> tuple[int, tuple[bool, ...]]:
    """(n_swa, per-layer flags) for sliding-window attention. The GGUF gives the window; which layers use
    it is the pattern llama.cpp hard-codes for the architecture (every n-th layer attends globally).
    A window on an architecture not listed counts as full attention everywhere (no SWA layers): the
    planned cache is then the full size, never an under-estimate."""
    n_swa = meta.get(f"{arch}.attention.sliding_window")
    if not isinstance(n_swa, int) or n_swa <= 0:
        return 0, (False,) * n_layer
    every = SWA_PATTERNS.get(arch)
    if every is None:
        return 0, (False,) * n_layer
    return n_swa, tuple(il % every < every - 1 for il in range(n_layer))


def _first_int(value, default: int) -> int:
    """Head counts may be per-layer arrays in some models; the reader keeps scalars only."""
    return int(value) if isinstance(value, (int, float)) else default
