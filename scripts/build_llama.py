"""Build and install llama-cpp-python the one way this project does: make install, both Dockerfiles
and the README's GPU line all come through here, so the flags live in one place.

    python scripts/build_llama.py --python .venv/bin/python              # native (local installs)
    python scripts/build_llama.py --python /opt/venv/bin/python --mode portable   # images
    CUDA=on python scripts/build_llama.py --python .venv/bin/python       # + CUDA kernels

Modes:
  native    llama.cpp's own -march=native (as fast as this CPU allows) minus AMX, see AMX_OFF.
  portable  no -march=native: every x86-64 CPU variant of the CPU backend is built as its own library
            (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS) and llama.cpp picks the best one the CPU running
            it supports, at run time; the AMX variant is left out. The baseline variant ("x64") runs
            on any x86-64 CPU; rag/llama_backends.py loads them.

Wheels are kept in LLAMA_WHEEL_CACHE (default ~/.cache/ai-chat/llama-wheels) under a key made of
everything that decides the machine code: the pinned version, mode, CMake arguments, compiler flags,
compiler version and, for native builds, this CPU's instruction-set flags. pip's own wheel cache is
never used for llama-cpp-python (it is keyed by the source only and would hand a wheel compiled for
another CPU to this one). The installed package carries llama_cpp/ai_chat_build.json (the key and
what it was built for), which rag/llama_build.py reads to refuse a native build from another CPU.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_INFO = "llama_cpp/ai_chat_build.json"

# llama.cpp's AMX kernels crash with SIGILL ("tilezero") on AMX CPUs (Sapphire Rapids and later): its
# worker threads run tile instructions without the per-thread XTILEDATA permission and the tile
# config is optimised away (upstream PR ggml-org/llama.cpp#26954, open when this was written).
# Explicit -mno-* flags win over -march=native in GCC and clang wherever they appear, so these keep
# every other instruction set native. Drop AMX_OFF and AMX_VARIANTS once the pinned llama-cpp-python
# vendors a llama.cpp with that fix (and tests/test_llama_build.py's AMX check with them).
AMX_OFF = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
AMX_VARIANTS = ("sapphirerapids",)  # GGML_CPU_ALL_VARIANTS' variants built with AMX_TILE/AMX_INT8

# Only what the app loads: the multimodal library (mtmd, LLAVA_BUILD) is never imported by it.
COMMON_ARGS = ["-DLLAVA_BUILD=OFF"]
MODE_ARGS = {
    "native": ["-DGGML_NATIVE=ON"],
    # llama.cpp's own defaults (-march=native, AMX allowed, mtmd built): only the reference of
    # `make bench-build` and of the install-time figure; never installed (it crashes on AMX CPUs)
    "portable": ["-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"],
    "upstream": [],
}


def pinned_version() -> str:
    text = (ROOT / "requirements_minimal.txt").read_text()
    match = re.search(r"^llama-cpp-python==(\S+)", text, re.M)
    if not match:
        raise SystemExit("requirements_minimal.txt does not pin llama-cpp-python==VERSION")
    return match.group(1)


def _llama_build():
    """rag/llama_build.py (standard library only), without importing the rag package."""
    spec = importlib.util.spec_from_file_location("llama_build", ROOT / "rag" / "llama_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return cc
    return out.splitlines()[0] if out else cc


def build_config(mode: str, cuda: str, cuda_archs: str, extra_cmake: str) -> dict:
    args = (COMMON_ARGS if mode != "upstream" else []) + MODE_ARGS[mode]
    if cuda == "on":
        args += ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}"]
    args += extra_cmake.split()
    flags = AMX_OFF if mode == "native" else ""
    config = {
        "package": "llama-cpp-python",
        "version": pinned_version(),
        "mode": mode,
        "cuda": cuda,
        "cmake_args": args,
        "cflags": " ".join(filter(None, [os.environ.get("CFLAGS", ""), flags])),
        "cxxflags": " ".join(filter(None, [os.environ.get("CXXFLAGS", ""), flags])),
        "compiler": compiler(),
        "machine": os.uname().machine,
        # a native build is only for CPUs with these instruction sets; a portable one for any
        "cpu_flags": _llama_build().isa_flags() if mode in ("native", "upstream") else [],
    }
    blob = json.dumps(config, sort_keys=True).encode()
    config["key"] = f"{config['version']}-{mode}-cuda{cuda}-{hashlib.sha256(blob).hexdigest()[:16]}"
    return config


def build_wheel(python: str, config: dict, out_dir: Path) -> Path:
    env = dict(
        os.environ, CMAKE_ARGS=" ".join(config["cmake_args"]), CFLAGS=config["cflags"], CXXFLAGS=config["cxxflags"]
    )
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="llama-wheel-") as tmp:
        cmd = [
            python,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-cache-dir",
            "--no-binary",
            "llama-cpp-python",
            "-w",
            tmp,
            f"llama-cpp-python=={config['version']}",
        ]
        print(
            f"build_llama: compiling llama-cpp-python {config['version']} ({config['mode']}, "
            f"CUDA {config['cuda']}): CMAKE_ARGS={env['CMAKE_ARGS']!r} CFLAGS={env['CFLAGS']!r}",
            flush=True,
        )
        began = time.monotonic()
        subprocess.run(cmd, check=True, env=env)
        print(f"build_llama: compiled in {time.monotonic() - began:.0f} s", flush=True)
        (wheel,) = Path(tmp).glob("llama_cpp_python-*.whl")
        return finish_wheel(wheel, config, out_dir)


def finish_wheel(wheel: Path, config: dict, out_dir: Path) -> Path:
    """Copy `wheel` into out_dir with the build record added; for a portable build, the CPU variant
    libraries moved next to libggml (upstream installs them into site-packages/bin) and the AMX ones
    dropped. RECORD is rewritten to match."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel.name
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as src:
        for info in src.infolist():
            if info.is_dir() or info.filename.endswith(".dist-info/RECORD"):
                continue
            name, data = info.filename, src.read(info)
            base = name.rsplit("/", 1)[-1]
            if base.startswith("libggml-cpu-") and ".so" in base:
                if any(f"-{variant}." in base for variant in AMX_VARIANTS):
                    continue
                name = f"llama_cpp/lib/{base}"
            files[name] = data
    files[BUILD_INFO] = json.dumps(config, indent=1, sort_keys=True).encode()
    (dist_info,) = {n.split("/", 1)[0] for n in files if n.split("/", 1)[0].endswith(".dist-info")}
    record = [f"{n},sha256={_b64sha(d)},{len(d)}" for n, d in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if name.endswith(".so") or ".so." in name else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    os.replace(tmp, target)
    return target


def _b64sha(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def installed_key(python: str) -> str | None:
    code = (
        "import importlib.util, json, pathlib; s = importlib.util.find_spec('llama_cpp'); "
        f"p = s and pathlib.Path(s.submodule_search_locations[0]).parent / {BUILD_INFO!r}; "
        "print(json.loads(p.read_text())['key'] if p and p.exists() else '')"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the environment to install into")
    parser.add_argument("--mode", choices=sorted(MODE_ARGS), default=os.environ.get("LLAMA_BUILD", "native"))
    parser.add_argument("--cuda", choices=["on", "off"], default=os.environ.get("CUDA", "off"))
    parser.add_argument("--cuda-architectures", default=os.environ.get("CUDA_ARCHITECTURES", "75;80;86;89;90"))
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("LLAMA_WHEEL_CACHE", Path.home() / ".cache" / "ai-chat" / "llama-wheels")),
    )
    parser.add_argument("--print-key", action="store_true", help="print the build key and exit")
    parser.add_argument("--wheel-only", action="store_true", help="build (or find) the wheel, print its path")
    args = parser.parse_args()

    config = build_config(args.mode, args.cuda, args.cuda_architectures, os.environ.get("CMAKE_ARGS", ""))
    if args.print_key:
        print(config["key"])
        return
    if not args.wheel_only and installed_key(args.python) == config["key"]:
        print(f"build_llama: llama-cpp-python {config['key']} is installed")
        return
    slot = args.cache / config["key"]
    wheels = sorted(slot.glob("llama_cpp_python-*.whl"))
    if wheels:
        wheel = wheels[-1]
        print(f"build_llama: reusing {wheel} (built for this key)")
    else:
        wheel = build_wheel(args.python, config, slot)
    if args.wheel_only:
        print(wheel)
        return
    subprocess.run(
        [
            args.python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-cache-dir",
            "--force-reinstall",
            str(wheel),
        ],
        check=True,
    )
    print(f"build_llama: installed {wheel.name} ({config['key']})")


if __name__ == "__main__":
    main()
