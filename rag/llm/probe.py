"""Load a GGUF and run it once in a child process before the server loads it.

llama.cpp reports most bad files as errors, but some (a corrupt tensor, a file from a newer format,
a model far larger than memory) end in an abort, a segfault or the OOM killer, and a CPU kernel that
uses an instruction this CPU does not allow ends in SIGILL at the first prompt. Any of these would
take the whole app with it. The probe loads the model on the CPU in a child process with the app's
CPU settings (threads, batch sizes, KV cache type, flash attention), evaluates a short prompt (the
batched matrix kernels) and decodes a few tokens (the single-token kernels); only a file that ran
there is loaded in-process. A pass is remembered in CACHE_DIR per file (name, size, mtime) and per
llama.cpp build, CPU and kernel settings, so it costs one extra short run per new model file.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .. import failpoints, llama_build
from ..errors import ModelError

TIMEOUT_S = 600.0
RECORD = "model-probe.json"
PROBE_CTX = 256  # enough for the prompt below and the decoded tokens; small and quick to allocate
PROMPT = "The pump room is checked every morning; the key is kept in the red box by the door. " * 4
PROMPT_TOKENS = 64  # a batch: the matrix-matrix kernels prompt processing uses (AMX's among them)
DECODE_TOKENS = 4  # one token at a time: the matrix-vector kernels of decoding
# kernels depend on these; the context size and thread count (which follow free memory) do not
KERNEL_SETTINGS = ("type_k", "type_v", "flash_attn")
SIGNALS = {  # what a signal that ends llama.cpp usually means, in words for the reason line
    "SIGILL": "an instruction this CPU does not allow",
    "SIGSEGV": "an invalid memory access",
    "SIGBUS": "a bus error: the mapped file changed or could not be read",
    "SIGABRT": "llama.cpp stopped on a failed check",
    "SIGFPE": "an arithmetic fault",
    "SIGKILL": "killed: out of memory, or by another process",
}


def probe_kwargs(llama_kwargs: dict | None) -> dict:
    """The child's Llama() arguments: the app's CPU settings, all layers on the CPU, a small context."""
    kw = dict(llama_kwargs or {})
    kw.update(n_ctx=PROBE_CTX, n_gpu_layers=0, use_mmap=True)
    kw["n_batch"] = min(int(kw.get("n_batch") or 512), PROBE_CTX)
    kw["n_ubatch"] = min(int(kw.get("n_ubatch") or kw["n_batch"]), kw["n_batch"])
    return kw


def probe_key(fingerprint: str, kwargs: dict) -> str:
    """What a pass is remembered under: the file, the llama.cpp build, this CPU and the kernel settings."""
    parts = [
        llama_build.build_info().get("key") or _lib_stamp(),
        llama_build.isa_flags(),
        {k: kwargs.get(k) for k in KERNEL_SETTINGS},
    ]
    return f"{fingerprint}:{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]}"


def _lib_stamp() -> list:
    pkg = llama_build.package_dir()
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in (pkg / "lib").glob("*.so*")) if pkg else []


def probe(
    path: Path, fingerprint: str, cache_dir: Path, llama_kwargs: dict | None = None, timeout_s: float = TIMEOUT_S
) -> None:
    """Return if `path` loads and runs in a child llama.cpp; ModelError saying why it does not."""
    if why := llama_build.cpu_mismatch():
        raise ModelError(f"{path.name}: not loaded: {why}; answering from your documents only")
    kwargs = probe_kwargs(llama_kwargs)
    key = probe_key(fingerprint, kwargs)
    record = Path(cache_dir) / RECORD
    passed = _read(record)
    if passed.get(str(path)) == key:
        return
    cmd = [sys.executable, "-X", "faulthandler", "-m", "rag.llm.probe", str(path), json.dumps(kwargs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"{path.name}: loading and running it took longer than {timeout_s:.0f} s in a test "
            "run; check the file and the disk, or use a smaller model"
        ) from None
    if proc.returncode != 0 or "probe: ok" not in proc.stdout:
        raise ModelError(_reason(path, proc))
    passed[str(path)] = key
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
    said = [
        line
        for line in lines
        if any(w in line.lower() for w in ("error", "failed", "unknown", "invalid", "assert", "abort"))
    ]
    detail = "; ".join(said[-3:]) or (lines[-1] if lines else "no message")
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        what = f"{name}: {SIGNALS[name]}" if name in SIGNALS else name
        if "probe: loaded" in proc.stdout:  # it loaded, then died evaluating: a CPU kernel
            return (
                f"{path.name}: llama.cpp crashed running this model on this CPU ({what}; {detail[:200]}). "
                "The app kept running and answers from your documents only; rebuild llama-cpp-python "
                "for this machine with `make install` (scripts/build_llama.py: native without AMX, or "
                "LLAMA_BUILD=portable), or try another model file"
            )
        return (
            f"{path.name}: llama.cpp crashed while loading it ({what}; {detail[:200]}). The app kept "
            "running and answers from your documents only; the file is corrupt, too large for this "
            "machine, or needs a newer llama-cpp-python"
        )
    return (
        f"{path.name}: llama.cpp cannot load it ({detail[:300]}); answering from your documents only. "
        "Check that it is a complete GGUF of a supported architecture (re-download it), or update "
        "llama-cpp-python"
    )


def main() -> None:
    """Child side: load on the CPU with the app's settings, evaluate a prompt, decode a few tokens."""
    import itertools
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash here is expected to be possible: no core file
    llama_build.load_backends()
    from llama_cpp import Llama

    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else probe_kwargs(None)
    failpoints.hit("probe.load")
    llm = Llama(model_path=sys.argv[1], verbose=True, **kwargs)
    print("probe: loaded", flush=True)
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True)[:PROMPT_TOKENS]
    failpoints.hit("probe.decode")
    generated = list(itertools.islice(llm.generate(tokens, top_k=1, temp=0.0), DECODE_TOKENS))
    llm.close()
    print(f"probe: ok ({len(tokens)} prompt tokens, {len(generated)} decoded)", flush=True)


if __name__ == "__main__":
    main()
