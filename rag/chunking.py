"""Split text into overlapping chunks measured in the embedder's own tokens.

Sentences are packed greedily up to `size` tokens; consecutive chunks share about `overlap`
tokens of whole sentences. A sentence longer than a chunk is cut at token boundaries. No chunk is
ever longer than the embedder's max_seq_length (which would be silently truncated when embedded).
Sentence ends: . ! ? and their CJK forms, blank lines, and a line break after a Korean sentence
ending (다, 요, 죠, 까). Needs only `count_tokens` and `token_offsets` from the embedder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .embeddings import Embedder

_BOUNDARY = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*\s+|\n[ \t]*\n\s*|(?<=[다요죠까])[ \t]*\n\s*")


@dataclass
class Chunk:
    text: str
    page: int | None
    start: int
    end: int
    ordinal: int = 0


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed. Example: "A. B." -> [(0, 2), (3, 5)]."""
    spans, begin = [], 0
    for match in _BOUNDARY.finditer(text):
        spans.append((begin, match.start()))
        begin = match.end()
    spans.append((begin, len(text)))
    out = []
    for start, end in spans:
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((start + lead, start + lead + len(stripped)))
    return out


def _token_windows(embedder: Embedder, text: str, start: int, limit: int, overlap: int) -> list[tuple[int, int]]:
    """Cut text[start:] into spans of at most `limit` tokens, stepping limit - overlap tokens."""
    offsets = embedder.token_offsets([text])[0]
    step = max(1, limit - overlap)
    spans = []
    for first in range(0, len(offsets), step):
        window = offsets[first : first + limit]
        spans.append((start + window[0][0], start + window[-1][1]))
        if first + limit >= len(offsets):
            break
    return spans


def _pack(embedder: Embedder, text: str, limit: int, overlap: int) -> list[tuple[int, int]]:
    spans = sentence_spans(text)
    counts = embedder.count_tokens([text[s:e] for s, e in spans])
    chunks: list[tuple[int, int]] = []
    current: list[tuple[int, int, int]] = []

    def flush() -> None:
        if current:
            chunks.append((current[0][0], current[-1][1]))

    for (start, end), n in zip(spans, counts):
        if n > limit:
            flush()
            current = []
            chunks.extend(_token_windows(embedder, text[start:end], start, limit, overlap))
            continue
        if current and sum(c for _, _, c in current) + n > limit:
            flush()
            kept: list[tuple[int, int, int]] = []
            total = 0
            for item in reversed(current):  # carry whole trailing sentences as overlap
                if total + item[2] > overlap or total + item[2] + n > limit:
                    break
                kept.insert(0, item)
                total += item[2]
            current = kept
        current.append((start, end, n))
    flush()
    return chunks


def chunk_sections(sections, embedder: Embedder, size: int, overlap: int) -> list[Chunk]:
    """Chunks of all sections, numbered in order, each within the embedder's token limit."""
    limit = max(8, min(size, embedder.max_tokens))
    overlap = min(overlap, limit // 2)
    chunks: list[Chunk] = []
    for section in sections:
        for start, end in _pack(embedder, section.text, limit, overlap):
            chunks.append(Chunk(section.text[start:end], section.page, start, end))
    # token counts are not strictly additive across sentences: re-check and cut what overflows
    counts = embedder.count_tokens([c.text for c in chunks])
    checked: list[Chunk] = []
    for chunk, n in zip(chunks, counts):
        if n <= embedder.max_tokens:
            checked.append(chunk)
            continue
        for s, e in _token_windows(embedder, chunk.text, 0, limit, overlap):
            checked.append(Chunk(chunk.text[s:e], chunk.page, chunk.start + s, chunk.start + e))
    for i, chunk in enumerate(checked):
        chunk.ordinal = i
    return checked
