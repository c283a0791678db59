import pytest

from rag import loaders
from rag.chunking import chunk_sections, embedder_read, sentence_spans
from rag.errors import IngestError
from rag.index import IndexStore
from rag.ingest import ingest

from .docs_factory import FILLER, make_pdf


@pytest.mark.parametrize("kind", ["txt", "md", "html", "pdf", "docx"])
def test_every_format_yields_its_planted_token(corpus, kind):
    _, files = corpus
    path, token, page = files[kind]
    sections = loaders.load(path)
    holding = [s for s in sections if token in s.text]
    assert holding, f"{token} not extracted from {path.name}"
    assert holding[0].page == page


def test_html_drops_scripts_and_styles(corpus):
    text = loaders.load(corpus[1]["html"][0])[0].text
    assert "HIDDENSCRIPT" not in text and "color:red" not in text


def test_encodings():
    korean = "휴가 신청은 인사팀에 합니다."
    assert loaders.decode_text(korean.encode("cp949")) == korean
    assert loaders.decode_text("\ufeffcafé".encode("utf-8")) == "café"
    assert loaders.decode_text("naïve".encode("utf-16")) == "naïve"
    assert loaders.decode_text(b"caf\xe9 \xff\xfe\xfd") is not None  # never fails


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "not a readable PDF"),
        (b"PK\x03\x04 this is a zip renamed", "not a readable PDF"),
        (b"%PDF-1.7\n1 0 obj garbage", "not a readable PDF|no text layer"),
    ],
)
def test_broken_pdfs_are_named(tmp_path, data, words):
    path = tmp_path / "broken.pdf"
    path.write_bytes(data)
    with pytest.raises(IngestError, match=words):
        loaders.load(path)


def test_unsupported_type(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(IngestError, match="unsupported type .png"):
        loaders.load(path)


def test_sentence_spans_handle_korean_endings():
    text = "첫 번째 문장입니다. 두 번째 문장이다\n세 번째 문장이에요\n\nFourth one! Fifth?"
    pieces = [text[s:e] for s, e in sentence_spans(text)]
    assert pieces == ["첫 번째 문장입니다.", "두 번째 문장이다", "세 번째 문장이에요", "Fourth one!", "Fifth?"]


def test_chunks_respect_the_embedder_limit_and_overlap(embedder):
    sentences = [f"Sentence number {i} talks about topic {i * 7} in some detail." for i in range(200)]
    run_on = "word " * 2000  # one sentence far longer than any chunk
    sections = [loaders.Section(1, " ".join(sentences)), loaders.Section(2, run_on)]
    chunks = chunk_sections(sections, embedder, 500, 120)
    assert max(len(c.text) for c in chunks) <= 500 and len(chunks) > 10
    page1 = [c for c in chunks if c.page == 1]
    assert any(s in page1[1].text for s in page1[0].text.split(". ")[-2:])  # shared sentence(s)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(sections[c.page - 1].text[c.start : c.end] == c.text for c in chunks)
    assert embedder_read(chunks) == 1.0
    # CHUNK_CHARS far above the embedder's window: English chunks still fit it, nothing is truncated
    huge = chunk_sections([loaders.Section(None, " ".join(sentences))], embedder, 8000, 0)
    assert max(embedder.count_tokens([c.text for c in huge])) <= embedder.max_tokens
    assert len(huge[0].text) > 900 and embedder_read(huge) == 1.0


def test_korean_chunks_keep_their_size_and_say_what_the_embedder_reads(embedder):
    """MiniLM splits Hangul into jamo (more tokens than characters): a 900-character Korean chunk
    would be ~80 characters under its token window, so it keeps its size and reports the cut."""
    sentence = "연차 휴가는 입사 후 1년이 지나면 매년 열닷새가 부여되며 팀장의 승인을 받아야 한다."
    text = " ".join(f"{i}번 조항: {sentence}" for i in range(60))
    chunks = chunk_sections([loaders.Section(None, text)], embedder, 900, 150)
    assert all(len(c.text) <= 900 for c in chunks) and len(chunks[0].text) > 800
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert embedder.count_tokens([chunks[0].text])[0] > embedder.max_tokens  # more than its window holds
    assert 0.05 < embedder_read(chunks) < 0.5
    read = chunks[0].read  # where the embedder's window ends: its max_tokens-th token
    assert 0 < read < len(chunks[0].text)
    assert abs(embedder.count_tokens([chunks[0].text[:read]])[0] - embedder.max_tokens) <= 2
    # one Korean run-on sentence longer than a chunk is cut into pieces, at spaces
    long = chunk_sections([loaders.Section(None, ("가나다라 " * 600).strip())], embedder, 900, 150)
    assert all(len(c.text) <= 900 and not c.text.startswith(" ") for c in long) and len(long) >= 3


def test_corrupt_pdf_among_good_files(tmp_path, embedder, corpus):
    folder, files = corpus
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 broken beyond repair")
    store = IndexStore(tmp_path / "index")
    progress = []
    report = ingest([folder, bad], embedder, store, 900, 150, lambda d, t, n: progress.append((d, t, n)))
    statuses = {r.path.split("/")[-1]: r.status for r in report.results}
    assert statuses["bad.pdf"] == "error" and "bad.pdf" in report.errors[0].message
    assert all(statuses[f[0].name] == "added" for f in files.values())
    assert store.count() == report.chunks_added > 0 and progress[-1][0] == progress[-1][1] == 6


def test_unchanged_files_add_nothing_and_changed_files_replace(tmp_path, embedder):
    doc = tmp_path / "policy.txt"
    doc.write_text(FILLER + "Holidays are booked through the HR portal.")
    store = IndexStore(tmp_path / "index")
    first = ingest([doc], embedder, store, 900, 150)
    again = ingest([doc], embedder, store, 900, 150)
    assert again.results[0].status == "unchanged" and again.version == first.version
    doc.write_text(FILLER + "Holidays are now booked by email to the office manager.")
    third = ingest([doc], embedder, store, 900, 150)
    assert third.results[0].status == "replaced" and len(store.documents()) == 1
    texts = [h.text for h in store.search(embedder.embed_batch(["how are holidays booked"])[0], 5)]
    assert any("email" in t for t in texts) and not any("HR portal" in t for t in texts)


def test_pdf_page_numbers_survive_to_the_index(tmp_path, embedder):
    pdf = make_pdf(tmp_path / "m.pdf", ["Intro page about nothing much.", "The vault code is QUILLHARBOR."])
    store = IndexStore(tmp_path / "index")
    ingest([pdf], embedder, store, 900, 150)
    hit = store.search(embedder.embed_batch(["what is the vault code"])[0], 1)[0]
    assert "QUILLHARBOR" in hit.text and hit.page == 2 and hit.source == "m.pdf"
