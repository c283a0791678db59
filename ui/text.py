"""Make untrusted text (documents, file names, model output) safe to show as Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str) -> str:
    """Example: '**x**' -> '\\*\\*x\\*\\*'. Rendered as the literal characters."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def no_remote_images(pieces: Iterable[str]) -> Iterator[str]:
    """Escape image syntax (`![alt](url)`) in streamed Markdown so no remote image is ever fetched."""
    carry = ""
    for piece in pieces:
        text = (carry + piece).replace("![", "!\\[")
        carry = "!" if text.endswith("!") else ""
        if carry:
            text = text[:-1]
        if text:
            yield text
    if carry:
        yield carry


def safe_markdown(text: str) -> str:
    return "".join(no_remote_images([text]))
