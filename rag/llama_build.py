"""Which llama.cpp build is installed, and whether it can run on this CPU.

`scripts/build_llama.py` compiles llama-cpp-python and records what for in
`llama_cpp/ai_chat_build.json`: a *native* build uses this CPU's instruction sets (minus AMX), a
*portable* one ships every x86-64 variant of ggml's CPU backend as its own library and llama.cpp
picks the best one at run time. This module (standard library only: the build script imports it
before anything else is installed) reads that record, refuses a native build that was compiled for a
CPU with instruction sets this one lacks (it would die with SIGILL at the first answer), loads the
portable build's backend libraries, and names the CPU variant in use.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

RECORD = "ai_chat_build.json"
# /proc/cpuinfo flags that name instruction sets (the rest, such as "hypervisor", differ between
# machines that run the same code)
_ISA = re.compile(
    r"^(sse|ssse|avx|amx|fma|f16c|bmi|popcnt|movbe|abm|aes|pclmul|sha|vaes|vpclmul|gfni|adx|"
    r"lzcnt|xsave|cx16|rdrand|rdseed|vnni)"
)


def isa_flags(cpuinfo: str | os.PathLike | None = None) -> list[str]:
    """This CPU's instruction-set flags (first processor of /proc/cpuinfo; AI_CHAT_CPUINFO overrides
    the file, for tests). Read once per file and process."""
    return list(_isa_flags(str(cpuinfo or os.environ.get("AI_CHAT_CPUINFO") or "/proc/cpuinfo")))


@functools.lru_cache(maxsize=8)
def _isa_flags(path: str) -> tuple[str, ...]:
    try:
        match = re.search(r"^flags\s*:\s*(.*)$", Path(path).read_text(errors="replace"), re.M)
    except OSError:
        return ()
    return tuple(sorted({f for f in match.group(1).split() if _ISA.match(f)})) if match else ()


def package_dir() -> Path | None:
    spec = importlib.util.find_spec("llama_cpp")
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def build_info() -> dict:
    """The installed build's record; {} for a llama-cpp-python not built by scripts/build_llama.py."""
    return dict(_build_info())


@functools.lru_cache(maxsize=1)
def _build_info() -> dict:  # the installed package does not change under a running process
    pkg = package_dir()
    try:
        return json.loads((pkg / RECORD).read_text()) if pkg else {}
    except (OSError, ValueError):
        return {}


def cpu_mismatch(info: dict | None = None, flags: list[str] | None = None) -> str | None:
    """Why the installed native build cannot run on this CPU, or None when it can (or is portable)."""
    info = build_info() if info is None else info
    if info.get("mode") != "native" or not info.get("cpu_flags"):
        return None
    have = set(isa_flags() if flags is None else flags)
    missing = sorted(set(info["cpu_flags"]) - have)  # recorded by build_llama.py through isa_flags()
    if not missing:
        return None
    return (
        f"llama-cpp-python was compiled for another CPU: this one lacks {', '.join(missing[:6])}"
        f"{' ...' if len(missing) > 6 else ''}, so llama.cpp would crash (SIGILL) at the first answer; "
        "rebuild it on this machine with `make install` (or build a portable one: "
        "LLAMA_BUILD=portable python scripts/build_llama.py)"
    )


def load_backends() -> None:
    """A portable build's backends are libraries llama.cpp looks for next to the executable; ours sit
    in llama_cpp/lib, so they are loaded from there before the first model (no-op for other builds)."""
    pkg = package_dir()
    if pkg is None or not any((pkg / "lib").glob("libggml-cpu-*.so")):
        return
    import llama_cpp.llama_cpp  # noqa: F401  (loads libllama and, through its soname, libggml)

    # the registry is libggml's: open the very file libllama linked (wheels hold copies, not symlinks,
    # so libggml.so and libggml.so.0 would be two libraries with two registries)
    lib = ctypes.CDLL(str(next(p for p in (pkg / "lib" / "libggml.so.0", pkg / "lib" / "libggml.so") if p.exists())))
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    if lib.ggml_backend_reg_count() == 0:
        lib.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        lib.ggml_backend_load_all_from_path(str(pkg / "lib").encode())


_variant: str | None = None


def cpu_variant() -> str | None:
    """The CPU backend library this process runs ('icelake', 'haswell', ... for a portable build;
    'native' for one compiled for this CPU), None before llama.cpp is loaded."""
    global _variant
    if _variant is None and "llama_cpp" in sys.modules:  # nothing of llama.cpp is mapped before
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:
            return None
        if found := re.search(r"libggml-cpu-([\w.]+?)\.so", maps):
            _variant = found.group(1)
        elif "libggml-cpu.so" in maps:
            _variant = build_info().get("mode", "unknown")
    return _variant


def describe() -> dict:
    """For `rag status` and the panel: how llama.cpp was built and which CPU code runs."""
    info = build_info()
    return {
        "mode": info.get("mode", "unrecorded"),
        "key": info.get("key"),
        "cuda": info.get("cuda"),
        "cpu_variant": cpu_variant(),
        "cpu_mismatch": cpu_mismatch(info),
    }
