"""A saved conversation as Markdown (to read or keep as notes) or JSON (everything, to process).

Markdown: the title, then each exchange as a heading with the question, the answer, and its numbered
sources with their pages, the cited ones marked. Questions and titles are escaped (they are the
user's words, not formatting); answers stay Markdown, with HTML made inert.
JSON: the conversation with every exchange's full record, so nothing saved is left out.
"""

from __future__ import annotations

import json
import re
import time

from .conversations import Conversation

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str) -> str:
    """Example: '**x**' -> '\\*\\*x\\*\\*': shown as the literal characters."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def to_markdown(conv: Conversation) -> str:
    n = len(conv.exchanges)
    lines = [f"# {md_escape(conv.title)}", "", f"AI-CHAT conversation · {_when(conv.created)} · {n} exchange(s)", ""]
    for i, ex in enumerate(conv.exchanges, 1):
        record = ex.record
        lines += [f"## {i}. {md_escape(' '.join(ex.question.split()))}", ""]
        lines += [str(record.get("content", "")).replace("<", "&lt;").strip() or "*(no answer)*", ""]
        cited = set(record.get("cited") or []) | {record.get("attributed")} - {None}
        sources = record.get("sources") or []
        if sources:
            lines += ["Sources:", ""]
            for src in sorted(sources, key=lambda s: (s["n"] not in cited, s["n"])):
                page = f", page {src['page']}" if src.get("page") else ""
                mark = " — cited" if src["n"] in cited else ""
                lines.append(f"- [{src['n']}] {md_escape(str(src['source']))}{page}{mark}")
            lines.append("")
        if record.get("meta"):
            lines += [f"*{md_escape(record['meta'])}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_json(conv: Conversation) -> str:
    return json.dumps(
        {
            "id": conv.id,
            "title": conv.title,
            "created": conv.created,
            "updated": conv.updated,
            "exchanges": [{"question": e.question, "created": e.created, **e.record} for e in conv.exchanges],
        },
        ensure_ascii=False,
        indent=1,
    )


def export_file_name(conv: Conversation, ext: str) -> str:
    """A safe download name from the title, e.g. 'leave-policy-3f2a9c1b.md'."""
    slug = re.sub(r"[^\w]+", "-", conv.title, flags=re.UNICODE).strip("-")[:40] or "conversation"
    return f"{slug}-{conv.id[:8]}.{ext}"
