"""The seams the design relies on, checked on the source: rag/ never imports streamlit, the UI uses
only the names `rag` exports, and only the chain knows which kinds of backend exist."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rag
from rag.config import PROJECT_ROOT

RAG = PROJECT_ROOT / "rag"
UI_FILES = [PROJECT_ROOT / "app.py", *sorted((PROJECT_ROOT / "ui").glob("*.py"))]


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file; names is [] for `import x`."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out.append((base, [a.name for a in node.names]))
    return out


def test_rag_never_imports_streamlit():
    for path in RAG.rglob("*.py"):
        assert not any(m.split(".")[0] == "streamlit" for m, _ in imports(path)), path
    # and at run time: every module of the package imported, streamlit still absent
    code = (
        "import pkgutil, importlib, sys, rag\n"
        "for m in pkgutil.walk_packages(rag.__path__, 'rag.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_the_ui_imports_only_the_public_names_of_rag():
    public = set(rag.__all__)
    for path in UI_FILES:
        for module, names in imports(path):
            if module.split(".")[0] != "rag":
                continue
            assert module == "rag" and set(names) <= public, f"{path.name}: from {module} import {names}"
    for name in public:
        assert getattr(rag, name) is not None  # every exported name resolves


def test_only_the_chain_switches_on_the_backend_kind():
    allowed = {RAG / "llm" / "chain.py", RAG / "llm" / "endpoints.py", RAG / "config.py"}
    for path in [*RAG.rglob("*.py"), *UI_FILES]:
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                assert not {"local", "openai"} & set(names), f"{path}:{node.lineno} compares with a backend kind"
