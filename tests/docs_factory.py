"""Real document files for tests: PDF (fpdf2), DOCX (zip + WordprocessingML), HTML, Markdown, text."""

from __future__ import annotations

import zipfile
from pathlib import Path

DOCX_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml"
 ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"""
DOCX_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="word/document.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>
</Relationships>"""


def make_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def make_docx(path: Path, paragraphs: list[str]) -> Path:
    from xml.sax.saxutils import escape

    body = "".join(f'<w:p><w:r><w:t xml:space="preserve">{escape(p)}</w:t></w:r></w:p>' for p in paragraphs)
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", DOCX_TYPES)
        zf.writestr("_rels/.rels", DOCX_RELS)
        zf.writestr("word/document.xml", document)
    return path


FILLER = (
    "The quarterly report covers logistics, staffing and the maintenance schedule of the warehouse. "
    "Deliveries arrive on weekdays and are checked against the purchase order before storage. "
)


def make_corpus(folder: Path) -> dict[str, tuple[Path, str, int | None]]:
    """One file per format, each with a planted unique token. Returns {format: (path, token, page)}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    out["txt"] = (folder / "notes.txt", "ZEBRAQUARTZ", None)
    out["txt"][0].write_text(FILLER * 3 + "The backup passphrase for the archive is ZEBRAQUARTZ. " + FILLER)
    out["md"] = (folder / "guide.md", "MARBLEFALCON", None)
    out["md"][0].write_text("# Setup\n\n" + FILLER + "\n\n## Codes\n\nThe Wi-Fi guest code is MARBLEFALCON.\n")
    out["html"] = (folder / "page.html", "COPPERLANTERN", None)
    out["html"][0].write_text(
        "<html><head><title>Office</title><style>body{color:red}</style><script>var x='HIDDENSCRIPT';</script>"
        f"</head><body><h1>Office</h1><p>{FILLER}</p><p>The parking permit number is COPPERLANTERN.</p>"
        "</body></html>"
    )
    out["pdf"] = (folder / "manual.pdf", "VELVETORCHID", 2)
    make_pdf(out["pdf"][0], [FILLER * 2, FILLER + "The service hatch key is labelled VELVETORCHID.", FILLER])
    out["docx"] = (folder / "memo.docx", "AMBERGLACIER", None)
    make_docx(out["docx"][0], ["Memo", FILLER, "The conference room booking code is AMBERGLACIER."])
    return out
