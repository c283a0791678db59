"""The llama.cpp build: no AMX code in what is installed, wheels keyed by CPU, portable layout,
a native build from another CPU refused, and every install path going through scripts/build_llama.py."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import subprocess
import sys
import zipfile
from dataclasses import replace

import pytest

from rag import llama_build
from rag.config import PROJECT_ROOT
from rag.engine import Engine
from rag.events import Done


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_cpu_code = load_script("check_cpu_code")
build_llama = load_script("build_llama")


def cpuinfo(tmp_path, name, flags):
    path = tmp_path / name
    path.write_text(f"processor\t: 0\nmodel name\t: test CPU\nflags\t\t: {flags}\n\n")
    return path


def test_the_installed_build_is_native_without_amx_and_its_code_has_no_amx():
    info = llama_build.build_info()
    assert info["mode"] == "native" and "-mno-amx-tile" in info["cflags"] and "-DLLAVA_BUILD=OFF" in info["cmake_args"]
    lib = llama_build.package_dir() / "lib"
    assert not list(lib.glob("libmtmd*")), "the multimodal library is not built"
    assert check_cpu_code.check(lib, portable=False) == []
    assert check_cpu_code.levels_used(lib / "libggml-cpu.so")["amx"] == 0


def test_the_checker_finds_amx_and_avx512_code(tmp_path):
    src = tmp_path / "k.c"
    src.write_text(
        'void amx(void) { __asm__ volatile ("tilezero %tmm4"); }\n'
        'void wide(void) { __asm__ volatile ("vaddps %zmm1, %zmm2, %zmm3"); }\n'
        'void avx(void) { __asm__ volatile ("vaddps %ymm1, %ymm2, %ymm3"); }\n'
    )
    lib = tmp_path / "libggml-cpu-x64.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    assert check_cpu_code.levels_used(lib) == {"avx": 1, "avx512": 1, "amx": 1}
    problems = check_cpu_code.check(tmp_path, portable=True)
    assert problems == ["libggml-cpu-x64.so uses amx instructions (at most none allowed)"]
    assert check_cpu_code.check(tmp_path, portable=False) == [
        "libggml-cpu-x64.so uses amx instructions (at most avx512 allowed)"
    ]


def print_key(*args, env=None):
    out = subprocess.run(
        [sys.executable, "scripts/build_llama.py", "--print-key", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**(env or {}), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return out.stdout.strip()


def test_a_wheel_built_for_another_cpu_is_never_reused(tmp_path):
    """The cache key holds the CPU's instruction sets for native builds (pip's cache does not)."""
    avx512 = cpuinfo(tmp_path, "a", "fpu sse4_2 avx avx2 fma f16c bmi2 avx512f avx512bw hypervisor")
    avx2 = cpuinfo(tmp_path, "b", "fpu sse4_2 avx avx2 fma f16c bmi2 hypervisor")
    other_vm = cpuinfo(tmp_path, "c", "fpu sse4_2 avx avx2 fma f16c bmi2 avx512f avx512bw constant_tsc")
    key = {
        n: print_key(env={"AI_CHAT_CPUINFO": str(p)})
        for n, p in {"avx512": avx512, "avx2": avx2, "other_vm": other_vm}.items()
    }
    assert key["avx512"] != key["avx2"]
    assert key["avx512"] == key["other_vm"]  # flags that are not instruction sets do not matter
    portable = {print_key("--mode", "portable", env={"AI_CHAT_CPUINFO": str(p)}) for p in (avx512, avx2)}
    assert len(portable) == 1  # a portable build runs anywhere: one wheel for all CPUs
    assert print_key("--cuda", "on") != print_key()
    # install and the images look only in the slot of their own key and build with pip's cache off
    source = (PROJECT_ROOT / "scripts" / "build_llama.py").read_text()
    assert '"--no-cache-dir"' in source and 'args.cache / config["key"]' in source


def fake_wheel(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("llama_cpp_python-0.3.36.dist-info/RECORD", "stale,,\n")
    return path


def test_a_portable_wheel_puts_the_cpu_variants_next_to_libggml_without_amx(tmp_path):
    wheel = fake_wheel(
        tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl",
        {
            "llama_cpp/__init__.py": b"",
            "llama_cpp/lib/libggml.so": b"ggml",
            "bin/libggml-cpu-x64.so": b"x64",
            "bin/libggml-cpu-haswell.so": b"haswell",
            "bin/libggml-cpu-sapphirerapids.so": b"amx",
            "llama_cpp_python-0.3.36.dist-info/METADATA": b"Name: llama-cpp-python\n",
        },
    )
    config = {"key": "k1", "mode": "portable"}
    out = build_llama.finish_wheel(wheel, config, tmp_path / "out")
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"llama_cpp/lib/libggml-cpu-x64.so", "llama_cpp/lib/libggml-cpu-haswell.so"} <= names
        assert not any("sapphirerapids" in n or n.startswith("bin/") for n in names)
        assert json.loads(z.read(build_llama.BUILD_INFO)) == config
        record = z.read("llama_cpp_python-0.3.36.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.split(",")
            if digest:
                data = z.read(name)
                expect = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expect}" and int(size) == len(data)
        assert len(record) == len(names)


def test_a_native_build_from_another_cpu_is_refused_before_it_can_crash(
    settings, tiny_model, embedder, corpus, tmp_path, monkeypatch
):
    built_for = {"mode": "native", "cpu_flags": ["avx", "avx2", "avx512f", "avx512bw", "fma"]}
    assert llama_build.cpu_mismatch(built_for, ["avx", "avx2", "avx512f", "avx512bw", "fma", "amx_tile"]) is None
    why = llama_build.cpu_mismatch(built_for, ["avx", "avx2", "fma"])
    assert "compiled for another CPU: this one lacks avx512bw, avx512f" in why and "make install" in why
    assert llama_build.cpu_mismatch({"mode": "portable", "cpu_flags": []}, []) is None
    # the installed build through the engine, on a CPU that lacks what it was compiled for
    monkeypatch.setenv("AI_CHAT_CPUINFO", str(cpuinfo(tmp_path, "old", "fpu sse2")))
    engine = Engine(replace(settings, model_path=tiny_model, max_tokens=8), embedder=embedder)
    engine.ingest([corpus[0]])
    done = [e for e in engine.ask("What is the parking permit number?", wait_for_model=True) if isinstance(e, Done)][-1]
    assert done.retrieval_only and "COPPERLANTERN" in done.answer
    assert "tiny.gguf: not loaded: llama-cpp-python was compiled for another CPU" in done.reason


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.optimized"])
def test_images_build_llama_portable_through_the_one_script(name):
    text = (PROJECT_ROOT / name).read_text()
    assert "scripts/build_llama.py" in text and "--mode portable" in text
    assert "CMAKE_ARGS" not in text  # the flags live in scripts/build_llama.py only
    assert "!scripts/build_llama.py" in (PROJECT_ROOT / ".dockerignore").read_text()


def test_local_installs_and_the_gpu_line_use_the_script():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "$(PY) scripts/build_llama.py --python $(PY)" in makefile
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "CUDA=on .venv/bin/python scripts/build_llama.py" in readme
    assert 'CMAKE_ARGS="-DGGML_CUDA=on" .venv/bin/pip' not in readme
