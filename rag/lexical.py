"""Tokens for the lexical (BM25) leg, in any language, with no dictionary download.

- Hangul, kana and CJK ideographs: overlapping character bigrams of each run, plus each character
  on its own. Korean particles and endings attach to nouns ("휴가는", "휴가를"); bigrams make "휴가는"
  share "휴가" with "휴가", so a question matches its document whatever the particle; the single
  characters catch one-syllable words ("책은" / "책을") and words split differently ("검사" / "검진"),
  at a low BM25 weight because they are common. Measured with `python -m rag eval`: on
  tests/data/korean-qa.json lexical answer-recall@5 went from 0.933 (bigrams) to 0.950.
- Other scripts: words, case-folded, with a light English plural/possessive strip ("policies" ->
  "policy", "rooms" -> "room", "team's" -> "team").
The same function tokenizes chunks when they are committed (stored space-separated in an SQLite FTS5
table with their document's title, see index.py) and questions when they are searched, so both sides
always agree.
"""

from __future__ import annotations

import re

# Hangul syllables + jamo, CJK ideographs (+ extension A), hiragana, katakana
_CJK = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W{_CJK}_]+(?:'[^\W{_CJK}_]+)?")
_IS_CJK = re.compile(rf"[{_CJK}]")
# Question words and glue that carry no topic; dropped from queries only (BM25 already discounts
# common words, but each one is another posting list to merge).
STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in
into is it its me my no not of on or our should so than that the their them then there these they this to
was we were what when where which who whom why will with would you your about after before""".split()
) | frozenset(
    # Korean particles and endings as single syllables: on their own they match nearly every document
    "은 는 이 가 을 를 에 의 도 와 과 로 으 요 다 고 서 만 나 면 며 지 게 니 까 죠 데 어 아 야 해"
    " 한 하 할 된 될 것 수 등 및".split()
)


def _word(word: str) -> str:
    word = word.casefold()
    if word.endswith("'s"):
        word = word[:-2]
    elif len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word


def tokens(text: str) -> list[str]:
    """Example: "휴가는 3일, Rooms" -> ['휴가', '가는', '휴', '가', '는', '3', '일', 'room']."""
    out = []
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if _IS_CJK.match(piece):
            out += [piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)] + list(piece)
        else:
            out.append(_word(piece))
    return out


def document_text(text: str, title: str = "") -> str:
    """What the FTS5 table stores for a chunk: its document's title and its own tokens, space-separated.
    The title is there because a chunk deep in a document rarely names what the document is about
    ("annual leave is 17 days" in the handbook of one of ten companies); see docs/retrieval.md."""
    return " ".join(tokens(f"{title}\n{text}" if title else text))


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression: any of the text's distinct tokens (stopwords dropped), each quoted.
    Returns "" when nothing is left to search for."""
    seen = dict.fromkeys(t for t in tokens(text) if t not in STOPWORDS)
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in seen)
