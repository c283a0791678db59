"""Turn one file into text sections (one per PDF page; one for other formats).

Supported: .txt, .md, .pdf (pypdf, with page numbers), .html/.htm (stdlib parser, scripts and
styles dropped), .docx (stdlib zip + XML, no macro or external content). Every failure becomes an
IngestError naming the file and what to do. This module does not chunk or embed.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

from .errors import IngestError

SUPPORTED = {".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx"}
MAX_DOCX_XML = 64 * 1024 * 1024  # uncompressed document.xml; larger is treated as a zip bomb


@dataclass
class Section:
    page: int | None
    text: str


# what a file that is not text starts with (a renamed image, archive or program)
MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF-": "a PDF",
    b"PK\x03\x04": "a ZIP archive (or a Word/Excel file)",
    b"\x7fELF": "a program",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!\x1a\x07": "a RAR archive",
    b"\xd0\xcf\x11\xe0": "an old Office file (.doc/.xls/.hwp)",
    b"GGUF\x03\x00\x00\x00": "a GGUF model",
    b"GGUF\x02\x00\x00\x00": "a GGUF model",
    b"SQLite format 3\x00": "a SQLite database",
    b"OggS\x00": "a media file",
    b"\x00\x00\x00": "a binary file",
}


def sniff(data: bytes) -> str | None:
    """What `data` is when it is clearly not text: a known file signature, or binary-looking NUL bytes
    (a run of 8, or over 10% of the first 8 kB, outside UTF-16; a stray NUL in text is dropped later);
    None for text."""
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            return what
    head = data[:8192]
    if not head.startswith((b"\xff\xfe", b"\xfe\xff")) and (b"\x00" * 8 in head or head.count(0) > len(head) // 10):
        return "a binary file"
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, Korean CP949, then Latin-1 (never fails).

    A file that is almost one encoding (a UTF-8 file with a stray Latin-1 byte, a CP949 file with one
    broken character) is decoded as that one with only the bad bytes replaced, not as Latin-1 as a
    whole: the encoding with the fewest invalid sequences per non-ASCII byte wins if under 5%."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    non_ascii = len(data.translate(None, bytes(range(128)))) or 1
    lenient = {enc: data.decode(enc, errors="replace") for enc in ("utf-8-sig", "cp949")}
    invalid, best = min((text.count("\ufffd"), enc) for enc, text in lenient.items())  # one U+FFFD per bad sequence
    if invalid / non_ascii < 0.05:
        return lenient[best]
    return data.decode("latin-1")


def _clean(text: str) -> str:
    return text.replace("\x00", "")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if what := sniff(data):
        raise IngestError(
            f"{path.name}: the content is {what}, not text (a renamed file?); add the original file or save it as text"
        )
    return decode_text(data)


def load_text(path: Path) -> list[Section]:
    return [Section(None, _clean(_read_text(path)))]


def load_pdf(path: Path) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError, PdfReadError

    with open(path, "rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:  # the signature may follow a little junk; anything else is not a PDF
        what = f"the content is {found}" if (found := sniff(head)) else "no %PDF- signature at its start"
        raise IngestError(
            f"{path.name}: not a readable PDF ({what}; a renamed file?); add the original file or "
            "re-export it from its source application"
        )
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(f"{path.name}: the PDF is password-protected; save an unprotected copy and add that")
        pages = [Section(i + 1, _clean(page.extract_text() or "")) for i, page in enumerate(reader.pages)]
    except IngestError:
        raise
    except LimitReachedError as exc:
        raise IngestError(
            f"{path.name}: a stream in this PDF decompresses past pypdf's safety limit (a "
            "decompression bomb?); re-export it from its source application"
        ) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise IngestError(
            f"{path.name}: not a readable PDF ({type(exc).__name__}: {exc}); re-export it from its source application"
        ) from exc
    if not any(s.text.strip() for s in pages):
        raise IngestError(f"{path.name}: the PDF has no text layer (a scan?); run OCR on it first")
    return pages


class _TextExtractor(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "section",
        "article",
        "pre",
        "blockquote",
        "table",
        "ul",
        "ol",
        "title",
    }

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def load_html(path: Path) -> list[Section]:
    parser = _TextExtractor()
    parser.feed(_read_text(path))
    parser.close()
    return [Section(None, _clean("".join(parser.parts)))]


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def load_docx(path: Path) -> list[Section]:
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML:
                raise IngestError(
                    f"{path.name}: document.xml expands to {info.file_size:,} bytes "
                    f"(limit {MAX_DOCX_XML:,}); the file looks like a zip bomb"
                )
            root = ElementTree.fromstring(zf.read(info))
    except IngestError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError) as exc:
        raise IngestError(
            f"{path.name}: not a readable DOCX ({type(exc).__name__}: {exc}); re-save it from Word or LibreOffice"
        ) from exc
    paragraphs = []
    for para in root.iter(f"{_W}p"):
        pieces = []
        for node in para.iter():
            if node.tag == f"{_W}t" and node.text:
                pieces.append(node.text)
            elif node.tag == f"{_W}tab":
                pieces.append("\t")
            elif node.tag in (f"{_W}br", f"{_W}cr"):
                pieces.append("\n")
        paragraphs.append("".join(pieces))
    return [Section(None, _clean("\n".join(paragraphs)))]


LOADERS = {
    ".txt": load_text,
    ".md": load_text,
    ".markdown": load_text,
    ".pdf": load_pdf,
    ".html": load_html,
    ".htm": load_html,
    ".docx": load_docx,
}


def load(path: Path) -> list[Section]:
    """Sections of `path`, chosen by its suffix; IngestError if unsupported or unreadable."""
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise IngestError(
            f"{path.name}: unsupported type {path.suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}"
        )
    try:
        sections = loader(path)
    except OSError as exc:
        raise IngestError(f"{path.name}: cannot be read ({exc.strerror or exc})") from exc
    if not any(s.text.strip() for s in sections):
        raise IngestError(f"{path.name}: contains no text")
    return sections
