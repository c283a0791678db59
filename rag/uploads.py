"""Store uploaded files safely: generated names inside DATA_DIR/uploads, originals kept as metadata.

An uploaded name is never used as a path. `display_name` turns it into a harmless label (no path
parts, control or bidi-override characters, bounded length) for citations and the document list.
"""

from __future__ import annotations

import errno
import os
import unicodedata
import uuid
from pathlib import Path

from .errors import IngestError
from .loaders import SUPPORTED

MAX_NAME = 120


def display_name(original: str) -> str:
    """A label for an uploaded file. Example: '../../etc/passwd' -> 'passwd'."""
    text = "".join(ch for ch in str(original) if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
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
        raise IngestError(f"{label} is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
                          "(MAX_UPLOAD_MB): split the file or raise the limit")
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = uploads_dir / f"{uuid.uuid4().hex}{suffix}"
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise IngestError(f"{label}: the disk holding {uploads_dir} is full; free some space and upload again") \
                from exc
        raise IngestError(f"{label}: could not be stored ({exc.strerror or exc})") from exc
    return path
