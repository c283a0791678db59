"""`python -m rag eval QA.json`: retrieval quality and speed on a SQuAD-format question set.

Each article becomes one Markdown document in a temporary index (the real ingest: chunking, the
configured embedder, FAISS and the FTS5 lexical table). Every question then goes through the real
retrieval path (retrieve.search, query embedding included) in each mode, and we count:
- answer-recall@k: a retrieved passage of the question's own document contains one of the gold
  answer strings (case and spacing ignored);
- document-recall@k: a retrieved passage comes from the question's article;
- p50 / p95 query latency.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import retrieve
from .config import RetrievalMode
from .errors import RagError


@dataclass
class Question:
    text: str
    answers: list[str]
    doc: str  # the file name of its article
    impossible: bool = False  # SQuAD v2: the article does not answer it


@dataclass
class ModeResult:
    mode: str
    answer_hits: int = 0
    doc_hits: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self, n: int) -> dict:
        lat = sorted(self.latencies_ms)
        return {
            "mode": self.mode,
            "answer_recall": self.answer_hits / n,
            "document_recall": self.doc_hits / n,
            "p50_ms": statistics.median(lat),
            "p95_ms": lat[min(len(lat) - 1, int(len(lat) * 0.95))],
        }


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def load_squad(path: Path, folder: Path, impossible: bool = False) -> list[Question]:
    """Write each article of a SQuAD-format file into `folder` as Markdown; return its questions
    (with `impossible`, also SQuAD v2's unanswerable ones)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RagError(
            f'{path}: not a SQuAD-format JSON file ({exc}); expected {{"data": [{{"title", '
            '"paragraphs": [{"context", "qas": [...]}]}]}'
        ) from exc
    questions = []
    for i, article in enumerate(data):
        slug = re.sub(r"[^\w]+", "-", article.get("title", ""), flags=re.UNICODE).strip("-")[:60] or "article"
        name = f"{i:03d}-{slug}.md"
        paragraphs = [p["context"] for p in article["paragraphs"]]
        (folder / name).write_text(
            f"# {article.get('title', name)}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
        )
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = sorted({a["text"] for a in qa.get("answers", []) if a["text"].strip()})
                if answers:
                    questions.append(Question(qa["question"], answers, name))
                elif impossible and qa.get("is_impossible"):
                    questions.append(Question(qa["question"], [], name, impossible=True))
    if not questions:
        raise RagError(f"{path}: no questions with answers found")
    return questions


def evaluate(
    qa_path: Path,
    embedder,
    k: int = 5,
    chunk_chars: int = 900,
    chunk_overlap: int = 150,
    modes: tuple[RetrievalMode, ...] = retrieve.MODES,
) -> dict:
    from .index import IndexStore
    from .ingest import ingest

    with tempfile.TemporaryDirectory(prefix="ai-chat-eval-") as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        questions = load_squad(qa_path, docs)
        store = IndexStore(Path(tmp) / "index")
        began = time.perf_counter()
        report = ingest([docs], embedder, store, chunk_chars, chunk_overlap)
        ingest_s = time.perf_counter() - began
        if report.errors:
            raise RagError("; ".join(r.message for r in report.errors))
        results = []
        for mode in modes:
            result = ModeResult(mode)
            retrieve.search(embedder, store, questions[0].text, k, mode=mode)  # warm up
            for q in questions:
                t0 = time.perf_counter()
                hits = retrieve.search(embedder, store, q.text, k, mode=mode)
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                own = [_norm(h.text) for h in hits if h.source == q.doc]  # a hit counts in its own document
                result.answer_hits += any(_norm(a) in t for a in q.answers for t in own)
                result.doc_hits += any(h.source == q.doc for h in hits)
            results.append(result.as_dict(len(questions)))
        return {
            "file": str(qa_path),
            "k": k,
            "questions": len(questions),
            "documents": len(report.results),
            "chunks": store.count(),
            "chunk_chars": chunk_chars,
            "chunk_overlap": chunk_overlap,
            "embedder_read": round(report.embedder_read, 3),
            "embedder": embedder.id,
            "ingest_s": round(ingest_s, 1),
            "modes": results,
        }


def table(result: dict) -> str:
    lines = [
        f"{result['file']}: {result['questions']} questions, {result['documents']} documents, "
        f"{result['chunks']} chunks of <= {result['chunk_chars']} characters "
        f"(embedder reads {result['embedder_read']:.0%}), k={result['k']}, "
        f"embedder {result['embedder']}",
        "",
        "| mode | answer-recall@k | document-recall@k | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    for m in result["modes"]:
        lines.append(
            f"| {m['mode']} | {m['answer_recall']:.3f} | {m['document_recall']:.3f} | "
            f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} |"
        )
    return "\n".join(lines)
