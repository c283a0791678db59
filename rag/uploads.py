"""Store uploaded files safely: generated names inside DATA_DIR/uploads, originals kept as metadata.

An uploaded name is never used as a path. `display_name` turns it into a harmless label (no path
parts, control or bidi-override characters, bounded length) for citations and the document list;
`fs_text` makes any name the file system gives valid text (a name in CP949 bytes, as unpacked from a
Korean Windows zip, is decoded as such), and `printable` escapes control characters wherever a
name reaches a terminal, so a name cannot forge output lines or send escape sequences.
"""

from __future__ import annotations

import errno
import os
import unicodedata
import uuid
from pathlib import Path

from . import failpoints
from .errors import IngestError
from .loaders import SUPPORTED

MAX_NAME = 120


def fs_text(name: str) -> str:
    """`name` as valid UTF-8 text: bytes the file system name had that are not UTF-8 (Python keeps them
    as lone surrogates) are read as CP949 when they are that, else shown as %NN."""
    if not any("\ud800" <= ch <= "\udfff" for ch in name):
        return name
    raw = os.fsencode(name)
    try:
        return raw.decode("cp949")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        return "".join(f"%{ord(ch) - 0xDC00:02X}" if "\udc80" <= ch <= "\udcff" else ch for ch in text)


def printable(text: str) -> str:
    """`text` for a terminal or a log line: control and format characters shown as escapes."""
    text = fs_text(str(text))
    if all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in text):
        return text
    return "".join(
        ch.encode("unicode_escape").decode() if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text
    )


def display_name(original: str) -> str:
    """A label for an uploaded file. Example: '../../etc/passwd' -> 'passwd'."""
    text = "".join(ch for ch in fs_text(str(original)) if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    text = text.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    if len(text) > MAX_NAME:  # keep the extension: it decides the loader
        stem, dot, suffix = text.rpartition(".")
        keep = dot and len(suffix) <= 8
        text = stem[: MAX_NAME - len(suffix) - 2] + "…" + dot + suffix if keep else text[:MAX_NAME]
    return text or "unnamed"


def save_upload(data: bytes, original: str, uploads_dir: Path, max_bytes: int) -> Path:
    """Write `data` to uploads_dir under a generated name; IngestError if too big, unsupported or disk full."""
    label = display_name(original)
    suffix = Path(label).suffix.lower()
    if suffix not in SUPPORTED:
        raise IngestError(f"{label}: unsupported type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
    if len(data) > max_bytes:
        raise IngestError(
            f"{label} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
            "(MAX_UPLOAD_MB): split the file or raise the limit"
        )
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = uploads_dir / f"{uuid.uuid4().hex}{suffix}"
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            failpoints.hit("upload.write")
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise IngestError(
                f"{label}: the disk holding {uploads_dir} is full; free some space and upload again"
            ) from exc
        raise IngestError(f"{label}: could not be stored ({exc.strerror or exc})") from exc
    return path
