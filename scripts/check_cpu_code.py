"""Check which x86 instruction sets llama.cpp's libraries use, by disassembling them (objdump).

    python scripts/check_cpu_code.py DIR [--portable]

Every library in DIR (a llama_cpp/lib folder) must be free of AMX tile instructions (llama.cpp's AMX
kernels crash, see scripts/build_llama.py). With --portable, DIR must hold a portable build: the
libraries every CPU loads (libllama, libggml, libggml-base) and the baseline CPU variants (x64, sse42)
use no AVX at all, the AVX2-class variants no AVX-512, and the baseline variant must be there. Prints
a line per library and exits non-zero on a violation.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

AMX = {
    "ldtilecfg",
    "sttilecfg",
    "tilerelease",
    "tilezero",
    "tileloadd",
    "tileloaddt1",
    "tilestored",
    "tdpbssd",
    "tdpbsud",
    "tdpbusd",
    "tdpbuud",
    "tdpbf16ps",
    "tdpfp16ps",
    "tcmmimfp16ps",
    "tcmmrlfp16ps",
}
# EVEX-only operands: zmm registers, mask registers, xmm/ymm16-31, embedded broadcast
AVX512 = re.compile(r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b|\{1to\d+\}")
LEVELS = ["none", "avx", "avx512", "amx"]
# the most each portable variant may use ("none": plain x86-64 / SSE)
PORTABLE_MAX = {
    "x64": "none",
    "sse42": "none",
    "sandybridge": "avx",
    "ivybridge": "avx",
    "piledriver": "avx",
    "haswell": "avx",
    "alderlake": "avx",
}
SHARED = ("libllama", "libggml-base", "libggml.")  # loaded on every CPU


def levels_used(lib: Path) -> dict[str, int]:
    """Counts of instructions per class in `lib`'s code."""
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, check=True
    ).stdout
    counts = {"avx": 0, "avx512": 0, "amx": 0}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].rstrip().endswith(":"):
            continue
        text = parts[-1].strip()
        mnemonic = text.split(" ", 1)[0]
        if mnemonic in AMX:
            counts["amx"] += 1
        elif AVX512.search(text):
            counts["avx512"] += 1
        elif mnemonic.startswith("v") and mnemonic not in ("verr", "verw"):
            counts["avx"] += 1
    return counts


def highest(counts: dict[str, int]) -> str:
    return max((lv for lv in ("avx", "avx512", "amx") if counts[lv]), key=LEVELS.index, default="none")


def allowed(name: str, portable: bool) -> str:
    if not portable:
        return "avx512"  # a native build may use whatever this CPU has, AMX excepted
    if name.startswith(SHARED):
        return "none"
    variant = re.match(r"libggml-cpu-([\w.]+?)\.so", name)
    return PORTABLE_MAX.get(variant.group(1), "avx512") if variant else "avx512"


def check(folder: Path, portable: bool) -> list[str]:
    libs = sorted(p for p in folder.glob("*.so*") if p.is_file() and not p.is_symlink())
    if not libs:
        return [f"no libraries in {folder}"]
    problems = []
    if portable and not (folder / "libggml-cpu-x64.so").exists():
        problems.append("the baseline CPU variant libggml-cpu-x64.so is missing")
    seen: set[bytes] = set()
    for lib in libs:
        digest = hashlib.sha256(lib.read_bytes()).digest()
        if digest in seen:  # wheels hold no symlinks: libx.so, libx.so.0 and libx.so.0.1 are copies
            continue
        seen.add(digest)
        counts = levels_used(lib)
        used, limit = highest(counts), allowed(lib.name, portable)
        ok = LEVELS.index(used) <= LEVELS.index(limit)
        print(
            f"{'ok ' if ok else 'BAD'} {lib.name:36s} uses {used:7s} (may use up to {limit}; "
            f"AVX {counts['avx']}, AVX-512 {counts['avx512']}, AMX {counts['amx']})"
        )
        if not ok:
            problems.append(f"{lib.name} uses {used} instructions (at most {limit} allowed)")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--portable", action="store_true")
    args = parser.parse_args()
    problems = check(args.folder, args.portable)
    for problem in problems:
        print(f"check_cpu_code: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
