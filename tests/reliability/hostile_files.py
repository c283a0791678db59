"""Hostile and broken documents, written for real (no mocks): each one does what its name says."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from ..docs_factory import DOCX_RELS, DOCX_TYPES, make_pdf


def _pdf_with_stream(path: Path, stream: bytes, filters: str) -> Path:
    """A minimal one-page PDF whose content stream is `stream` (already encoded with `filters`)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>",
        b"<< /Length %d /Filter %s >>\nstream\n" % (len(stream), filters.encode()) + stream + b"\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def pdf_bomb(path: Path, expanded_mb: int = 1024) -> Path:
    """A 1 MB PDF whose page content inflates to `expanded_mb` MB (text-drawing operators)."""
    block = b"BT /F1 12 Tf 72 712 Td (bomb) Tj ET\n" * 29000  # ~1 MB
    squeeze = zlib.compressobj(9)
    parts = [squeeze.compress(block) for _ in range(expanded_mb)]
    return _pdf_with_stream(path, b"".join(parts) + squeeze.flush(), "/FlateDecode")


def docx_bomb(path: Path, expanded_mb: int = 200) -> Path:
    """A DOCX whose document.xml inflates to `expanded_mb` MB of whitespace."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", DOCX_TYPES)
        zf.writestr("_rels/.rels", DOCX_RELS)
        with zf.open("word/document.xml", "w", force_zip64=True) as fh:
            fh.write(
                b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
                b'wordprocessingml/2006/main"><w:body>'
            )
            for _ in range(expanded_mb):
                fh.write(b" " * (1 << 20))
            fh.write(b"</w:body></w:document>")
    return path


def docx_entities(path: Path) -> Path:
    """A DOCX with the 'billion laughs' entity expansion and an external entity to /etc/passwd."""
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY l0 "lol">{lol}'
        '<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
        "<w:p><w:r><w:t>&l9; &ext;</w:t></w:r></w:p></w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", DOCX_TYPES)
        zf.writestr("_rels/.rels", DOCX_RELS)
        zf.writestr("word/document.xml", xml)
    return path


def encrypted_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, "The vault code is SECRETWORD.")
    pdf.output(str(path))
    return path


def zip_renamed_pdf(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "not a pdf")
    return path


def html_huge_line(path: Path, mb: int = 50) -> Path:
    """Scripts, an event handler and a 50 MB single line (a script body), plus one visible sentence."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('<html><head><script>alert("head")</script></head><body onload="steal()">')
        fh.write("<p>The visible sentence mentions HTMLWORD.</p><script>var x='")
        chunk = "a" * (1 << 20)
        for _ in range(mb):
            fh.write(chunk)
        fh.write("';</script><img src=x onerror=alert(1)></body></html>")
    return path


def bad_text(path: Path) -> Path:
    path.write_bytes(b"Valid start TEXTWORD \xff\xfe\xc3\x28 invalid \x00\x00 NUL bytes \x80 end.\n")
    return path


def all_hostile(folder: Path) -> dict[str, Path]:
    """name -> file, for the batch test."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "encrypted.pdf": encrypted_pdf(folder / "encrypted.pdf"),
        "empty.pdf": _touch(folder / "empty.pdf"),
        "zip-renamed.pdf": zip_renamed_pdf(folder / "zip-renamed.pdf"),
        "bomb.pdf": pdf_bomb(folder / "bomb.pdf"),
        "bomb.docx": docx_bomb(folder / "bomb.docx"),
        "entities.docx": docx_entities(folder / "entities.docx"),
        "huge-line.html": html_huge_line(folder / "huge-line.html"),
        "bad-bytes.txt": bad_text(folder / "bad-bytes.txt"),
        "good.pdf": make_pdf(folder / "good.pdf", ["A good page that mentions GOODWORD."]),
    }


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path
