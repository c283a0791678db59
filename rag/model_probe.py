"""Load a GGUF once in a child process before the server loads it.

llama.cpp reports most bad files as errors, but some (a corrupt tensor, a file from a newer format,
a model far larger than memory) end in an abort, a segfault or the OOM killer, which would take the
whole app with it. The probe loads the model on the CPU (mmap, tiny context, no GPU) in a child
process; only a file that loaded there is loaded in-process. A file that passed is remembered by its
fingerprint (name, size, mtime) in CACHE_DIR, so the probe costs one extra load per new model file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import failpoints
from .config import child_env
from .errors import ModelError

TIMEOUT_S = 600.0
RECORD = "model-probe.json"


def probe(path: Path, fingerprint: str, cache_dir: Path, timeout_s: float = TIMEOUT_S) -> None:
    """Return if `path` loads in a child llama.cpp; ModelError saying why it does not."""
    record = Path(cache_dir) / RECORD
    passed = _read(record)
    if passed.get(str(path)) == fingerprint:
        return
    try:
        proc = subprocess.run([sys.executable, "-m", "rag.model_probe", str(path)], capture_output=True,
                              text=True, errors="replace", timeout=timeout_s, env=child_env())
    except subprocess.TimeoutExpired:
        raise ModelError(f"{path.name}: loading it took longer than {timeout_s:.0f} s in a test load; "
                         "check the file and the disk, or use a smaller model") from None
    if proc.returncode != 0 or "probe: ok" not in proc.stdout:
        raise ModelError(_reason(path, proc))
    passed[str(path)] = fingerprint
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(passed))
        os.replace(tmp, record)
    except OSError:
        pass  # not remembered: the next start probes again


def _read(record: Path) -> dict:
    try:
        data = json.loads(record.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _reason(path: Path, proc: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    said = [line for line in lines if any(w in line.lower() for w in ("error", "failed", "unknown", "invalid",
                                                                       "assert", "abort"))]
    detail = "; ".join(said[-3:]) or (lines[-1] if lines else "no message")
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return (f"{path.name}: llama.cpp crashed while loading it ({name}; {detail[:300]}). The app kept running "
                "and answers from your documents only; the file is corrupt, too large for this machine, or "
                "needs a newer llama-cpp-python")
    return (f"{path.name}: llama.cpp cannot load it ({detail[:300]}); answering from your documents only. "
            "Check that it is a complete GGUF of a supported architecture (re-download it), or update "
            "llama-cpp-python")


def main() -> None:
    """Child side: load on the CPU with a tiny context, report, exit."""
    from llama_cpp import Llama

    failpoints.hit("probe.load")
    llm = Llama(model_path=sys.argv[1], n_ctx=64, n_batch=32, n_gpu_layers=0, use_mmap=True, verbose=True)
    llm.close()
    print("probe: ok", flush=True)


if __name__ == "__main__":
    main()
