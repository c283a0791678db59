"""Make untrusted text (documents, file names, model output) safe to show as Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str) -> str:
    """Example: '**x**' -> '\\*\\*x\\*\\*'. Rendered as the literal characters."""
    return _MD_SPECIAL.sub(r"\\\1", text)


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
