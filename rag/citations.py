"""Citations an answer may show: only numbers of passages that were shown to the model.

Small models invent citations ("[7]" with five passages). `CitationFilter` sits on the token stream:
text after an unclosed "[" is held back until it closes, a marker whose numbers are all unknown is
dropped, and a list keeps only its known numbers ("[2, 9]" -> "[2]"). `cited(text)` reads the
numbers an answer cites. Example: with passages 1-3, "Paris [1][7]." streams as "Paris [1]."
"""

from __future__ import annotations

import re

MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
OPEN = re.compile(r"\[[\d,; ]{0,16}$")  # a marker that may still be completed by the next piece


def numbers(marker_body: str) -> list[int]:
    return [int(n) for n in re.split(r"\s*[,;]\s*", marker_body.strip())]


def cited(text: str) -> list[int]:
    """Distinct cited numbers in order of first citation. Example: 'a [2] b [1, 2]' -> [2, 1]."""
    out: list[int] = []
    for m in MARKER.finditer(text):
        out += [n for n in numbers(m.group(1)) if n not in out]
    return out


class CitationFilter:
    def __init__(self, known: set[int]):
        self.known = known
        self.dropped: list[int] = []  # numbers removed because no passage has them
        self._held = ""

    def _clean(self, text: str) -> str:
        def keep(m: re.Match) -> str:
            ns = numbers(m.group(1))
            self.dropped += [n for n in ns if n not in self.known]
            good = [str(n) for n in ns if n in self.known]
            return f"[{', '.join(good)}]" if good else ""

        return MARKER.sub(keep, text)

    def feed(self, piece: str) -> str:
        """The text that can be shown now."""
        text = self._held + piece
        open_at = OPEN.search(text)
        self._held, text = (text[open_at.start() :], text[: open_at.start()]) if open_at else ("", text)
        return self._clean(text)

    def finish(self) -> str:
        text, self._held = self._held, ""
        return self._clean(text)
