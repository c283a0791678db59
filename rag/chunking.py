"""Split text into overlapping chunks measured in characters, so Korean, Chinese/Japanese and English
chunks hold comparable content whatever the embedder's tokenizer makes of them.

Sentences are packed greedily up to `size` characters; consecutive chunks share about `overlap`
characters of whole sentences. A sentence longer than a chunk is cut (at a space when there is one).
For text the embedder reads in word pieces (no more tokens than characters: English, or Korean for a
multilingual embedder) a chunk also stays within its max_seq_length, so nothing is silently truncated
when embedded. Text it splits below the character level (Hangul into jamo for the English-only MiniLM)
would shrink to a sentence or two per chunk under that cap, too little for the lexical leg to match;
such chunks keep their size, the embedder reads their first max_seq_length tokens, and
`embedder_read` says which share of the characters that was. Sentence ends: . ! ? and their CJK
forms, blank lines, and a line break after a Korean sentence ending (다, 요, 죠, 까).
Needs only `count_tokens`, `token_offsets` and `max_tokens` from the embedder.
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
    read: int = -1  # characters the embedder reads (-1: all of them)


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


def reads_words(embedder: Embedder, text: str, n_tokens: int | None = None) -> bool:
    """Whether the embedder's tokenizer reads `text` in word pieces: no more tokens than characters.
    `n_tokens`: the text's token count when already known."""
    chars = sum(not c.isspace() for c in text)
    if not chars:
        return True
    return (embedder.count_tokens([text])[0] if n_tokens is None else n_tokens) <= chars


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


def _char_windows(text: str, start: int, limit: int, overlap: int) -> list[tuple[int, int]]:
    """Cut text[start:] into spans of at most `limit` characters, ending at a space where one is near."""
    spans, begin = [], 0
    while begin < len(text):
        end = min(len(text), begin + limit)
        if end < len(text):
            space = text.rfind(" ", begin + limit // 2, end)
            end = space if space > begin else end
        spans.append((start + begin, start + end))
        if end >= len(text):
            break
        begin = max(begin + 1, end - overlap)
        while begin < len(text) and text[begin] == " ":
            begin += 1
    return spans


def _pack(sizes: list[tuple[int, int, int]], limits: tuple[int, int], overlap: int):
    """Greedy packing of sentences (start, end, tokens) under (characters, tokens) limits; whole
    trailing sentences of up to `overlap` characters are carried into the next chunk."""
    chunks: list[tuple[int, int]] = []
    current: list[tuple[int, int, int]] = []

    def fits(items, extra) -> bool:  # characters from the first sentence's start to the new one's end
        return extra[1] - items[0][0] <= limits[0] and sum(it[2] for it in items) + extra[2] <= limits[1]

    for item in sizes:
        if current and not fits(current, item):
            chunks.append((current[0][0], current[-1][1]))
            kept: list[tuple[int, int, int]] = []
            for prev in reversed(current):
                if (kept[-1][1] if kept else prev[1]) - prev[0] > overlap or not fits([prev, *kept], item):
                    break
                kept.insert(0, prev)
            current = kept
        current.append(item)
    if current:
        chunks.append((current[0][0], current[-1][1]))
    return chunks


def _section_spans(embedder: Embedder, text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the chunks of one section: within `size` characters, and within the embedder's
    window too when it reads the section in word pieces."""
    spans = sentence_spans(text)
    tokens = embedder.count_tokens([text[s:e] for s, e in spans])
    reading = reads_words(embedder, text, sum(tokens))
    cap = embedder.max_tokens if reading else 1 << 30
    chunks: list[tuple[int, int]] = []
    run: list[tuple[int, int, int]] = []
    for (start, end), n in zip(spans, tokens):
        if end - start <= size and n <= cap:
            run.append((start, end, n))
            continue
        # a sentence longer than a chunk: cut into windows, each a chunk of its own
        chunks += _pack(run, (size, cap), overlap)
        run = []
        pieces = _char_windows(text[start:end], start, size, overlap)
        if reading:
            step_back = min(overlap // 4, cap // 2)
            pieces = [w for s, e in pieces for w in _token_windows(embedder, text[s:e], s, cap, step_back)]
        chunks += pieces
    return chunks + _pack(run, (size, cap), overlap)


def chunk_sections(sections, embedder: Embedder, size: int, overlap: int) -> list[Chunk]:
    """Chunks of up to `size` characters of all sections, numbered in order; within the embedder's
    token limit wherever the embedder reads the text in word pieces (see the module docstring)."""
    overlap = min(overlap, size // 2)
    chunks: list[Chunk] = []
    for section in sections:
        for start, end in _section_spans(embedder, section.text, size, overlap):
            chunks.append(Chunk(section.text[start:end], section.page, start, end))
    # token counts are not strictly additive across sentences: cut what overflows a reading embedder,
    # and record how much of the rest it reads
    counts = embedder.count_tokens([c.text for c in chunks])
    checked: list[Chunk] = []
    for chunk, n in zip(chunks, counts):
        if n <= embedder.max_tokens:
            checked.append(chunk)
        elif reads_words(embedder, chunk.text, n):
            for s, e in _token_windows(embedder, chunk.text, 0, embedder.max_tokens, 0):
                checked.append(Chunk(chunk.text[s:e], chunk.page, chunk.start + s, chunk.start + e))
        else:
            chunk.read = embedder.token_offsets([chunk.text])[0][embedder.max_tokens - 1][1]
            checked.append(chunk)
    for i, chunk in enumerate(checked):
        chunk.ordinal = i
    return checked


_SEPARATORS = re.compile(r"[\s_\-.]+")
_HEADING = re.compile(r"#{1,6}[ \t]+")


def document_title(name: str, sections) -> str:
    """What a document is known by: its file name without the extension, and its first line when that
    reads as a title (a Markdown heading, or a short line that does not end a sentence), each once.
    Example: ("hr_handbook.md", "# Hanbit staff handbook\n...") -> "hr handbook / Hanbit staff handbook"."""
    stem = _SEPARATORS.sub(" ", name.rsplit(".", 1)[0] if "." in name else name).strip()
    first = next((s.text.strip().split("\n", 1)[0].strip() for s in sections if s.text.strip()), "")
    heading = bool(_HEADING.match(first))
    first = _HEADING.sub("", first, count=1).strip()
    if not first or len(first) > 100 or (not heading and first[-1] in ".!?:;,。"):
        return stem
    if _SEPARATORS.sub(" ", first).strip().casefold() == stem.casefold():
        return first
    return f"{stem} / {first}" if stem else first


def embedder_read(chunks: list[Chunk]) -> float:
    """The share of the chunks' characters their embedder reads (1.0: all of it)."""
    total = sum(len(c.text) for c in chunks)
    return sum(len(c.text) if c.read < 0 else c.read for c in chunks) / total if total else 1.0
