"""Two llama.cpp builds side by side in one run: prompt processing and decode tok/s.

Each round runs every build in its own child process (alternating order) on the same generated GGUF:
it loads the model with the same settings, evaluates a PROMPT_TOKENS-token prompt (prompt processing:
the batched matrix kernels) and decodes DECODE_TOKENS tokens one by one (the single-token kernels).
Figures are medians over --rounds; the ratios are build / reference.

    make bench-build          # this venv's build vs llama.cpp's default (-march=native, AMX allowed)
    .venv/bin/python -m benchmarks.llama_build --build ours= --build upstream=build/llama-upstream

`--build NAME=DIR` puts DIR first on the child's PYTHONPATH (a `pip install --target` folder); an empty
DIR is this environment's llama-cpp-python. The first build is the one measured, the last the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag.config import PROJECT_ROOT
from rag.modelgen import PRESETS, write_model

PROMPT_TOKENS = 256
DECODE_TOKENS = 64


def child(model: str, threads: int) -> dict:
    """One measurement in this process: load, prompt, decode."""
    from rag import llama_build

    llama_build.load_backends()
    from llama_cpp import Llama

    llm = Llama(
        model_path=model,
        n_ctx=PROMPT_TOKENS + DECODE_TOKENS + 8,
        n_batch=PROMPT_TOKENS,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    prompt = [(i * 7919) % (llm.n_vocab() - 10) + 5 for i in range(PROMPT_TOKENS)]
    began = time.perf_counter()
    llm.eval(prompt)
    pp_s = time.perf_counter() - began
    began = time.perf_counter()
    for i in range(DECODE_TOKENS):
        llm.eval([(i * 104729) % (llm.n_vocab() - 10) + 5])
    decode_s = time.perf_counter() - began
    info = llama_build.describe()
    llm.close()
    return {
        "pp_tps": PROMPT_TOKENS / pp_s,
        "decode_tps": DECODE_TOKENS / decode_s,
        "mode": info["mode"],
        "cpu_variant": info["cpu_variant"],
    }


def run_child(path: str, model: Path, threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.llama_build", "--child", str(model), "--threads", str(threads)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"build {path or '(this venv)'} failed (exit {out.returncode}): {out.stderr[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--preset", default="0.5b", choices=sorted(PRESETS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.threads)))
        return
    builds = dict(b.split("=", 1) for b in args.build) or {"ours": ""}
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        model = write_model(Path(tmp) / f"{args.preset}.gguf", PRESETS[args.preset])
        for path in builds.values():
            run_child(path, model, args.threads)  # warm the page cache and each build's first start
        got: dict[str, list[dict]] = {name: [] for name in builds}
        for r in range(args.rounds):
            order = list(builds.items()) if r % 2 == 0 else list(reversed(builds.items()))
            for name, path in order:
                got[name].append(run_child(path, model, args.threads))
    print(
        f"model: generated {args.preset} shape ({model.name}), {args.threads} threads, "
        f"{args.rounds} rounds, medians; prompt {PROMPT_TOKENS} tokens, decode {DECODE_TOKENS} tokens"
    )
    summary = {}
    for name, runs in got.items():
        summary[name] = {k: statistics.median(r[k] for r in runs) for k in ("pp_tps", "decode_tps")}
        summary[name].update(mode=runs[0]["mode"], cpu_variant=runs[0]["cpu_variant"])
        print(
            f"  {name:10s} build {summary[name]['mode']:10s} CPU code {summary[name]['cpu_variant'] or '?':12s} "
            f"prompt {summary[name]['pp_tps']:7.1f} tok/s   decode {summary[name]['decode_tps']:6.1f} tok/s"
        )
    first, ref = next(iter(summary)), list(summary)[-1]
    if first != ref:
        for k, label in (("pp_tps", "prompt processing"), ("decode_tps", "decode")):
            ratio = summary[first][k] / summary[ref][k]
            print(f"  {label}: {first} / {ref} = {ratio:.3f} ({'within' if ratio >= 0.95 else 'OUTSIDE'} 5%)")
    out = PROJECT_ROOT / "bench-results" / "llama-build.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"preset": args.preset, "rounds": args.rounds, "threads": args.threads, "builds": summary}, indent=1)
    )


if __name__ == "__main__":
    main()
