"""Make untrusted text (documents, file names, model output) safe to show as Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rag import md_escape

__all__ = ["md_escape", "safe_markdown", "safe_stream"]


def safe_stream(pieces: Iterable[str]) -> Iterator[str]:
    """Streamed Markdown (answers quote documents) made inert: image syntax (`![alt](url)`) escaped so
    no remote image is ever fetched, and `<` as `&lt;` so no HTML tag is ever interpreted."""
    carry = ""
    for piece in pieces:
        text = (carry + piece).replace("![", "!\\[").replace("<", "&lt;")
        carry = "!" if text.endswith("!") else ""
        if carry:
            text = text[:-1]
        if text:
            yield text
    if carry:
        yield carry


def safe_markdown(text: str) -> str:
    return "".join(safe_stream([text]))
