"""AI-CHAT engine: local retrieval-augmented chat over your documents. Never imports streamlit.

The names below are the public surface the UI (ui/, app.py) uses; they are imported on first
access, so child processes (`python -m rag.parse_worker`, `rag.llm.probe`) stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_PUBLIC = {
    "Engine": "engine",
    "Settings": "config",
    "PROJECT_ROOT": "config",
    "SAMPLE_GUIDE": "config",
    "RagError": "errors",
    "Done": "events",
    "Error": "events",
    "Hits": "events",
    "Notice": "events",
    "Status": "events",
    "Token": "events",
    "EngineStatus": "status",
    "DEMO_MODEL_NOTE": "status",
    "DocumentList": "status",
    "UploadNote": "status",
    "BackendStatus": "llm.base",
    "md_escape": "export",
    "to_markdown": "export",
    "to_json": "export",
    "export_file_name": "export",
    "HistoryError": "errors",
    "Viewer": "accounts",
    "history_owner": "engine",
    "serve_in_thread": "api",
}
__all__ = [
    "DEMO_MODEL_NOTE",
    "PROJECT_ROOT",
    "SAMPLE_GUIDE",
    "BackendStatus",
    "DocumentList",
    "Done",
    "Engine",
    "EngineStatus",
    "Error",
    "Hits",
    "Notice",
    "RagError",
    "Settings",
    "Status",
    "Token",
    "UploadNote",
    "HistoryError",
    "Viewer",
    "export_file_name",
    "history_owner",
    "serve_in_thread",
    "md_escape",
    "to_json",
    "to_markdown",
]

if TYPE_CHECKING:
    from .accounts import Viewer
    from .api import serve_in_thread
    from .config import PROJECT_ROOT, SAMPLE_GUIDE, Settings
    from .engine import Engine, history_owner
    from .errors import HistoryError, RagError
    from .events import Done, Error, Hits, Notice, Status, Token
    from .export import export_file_name, md_escape, to_json, to_markdown
    from .llm.base import BackendStatus
    from .status import DEMO_MODEL_NOTE, DocumentList, EngineStatus, UploadNote


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
