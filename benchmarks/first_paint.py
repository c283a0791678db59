"""First paint of app.py vs a bare Streamlit page, in headless Chromium, side by side.

cold:    server process start -> chat input visible in a fresh browser context opened once the
         server listens
loading: a new tab 2 s after start, while the app still loads its parts in the background
warm:    a new tab once the server has settled (SETTLE_S after start)
The app runs with a 0.5B-shape Q4_0 GGUF in MODEL_PATH (or, with --model bundled, nothing placed:
the default demo model, as on a fresh clone) and an empty index (a first run: the bundled guide
is indexed in the background). Rounds alternate which page goes first; medians are reported.
Bar: cold app / cold bare <= 1.2.

    .venv/bin/python -m benchmarks.first_paint [--rounds 5] [--model bundled] [--conversations 200] [--cold-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.conversations import fill
from rag.config import PROJECT_ROOT, bundled_model
from rag.modelgen import PRESETS, write_model

CHAT_INPUT = '[data-testid="stChatInput"] textarea'
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BAR = 1.2
SETTLE_S = 25.0
KINDS = ("cold", "loading", "warm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, deadline_s: float = 60) -> None:
    """Return once the server accepts connections (polled every 10 ms), as a user's first request would.

    Pointing the browser at a port that refuses connections is not a fair stand-in: each failed
    navigation costs Chromium 0.05-0.2 s, which added 0.2-1.0 s of noise to either page's cold paint."""
    began = time.perf_counter()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.perf_counter() - began > deadline_s:
                raise RuntimeError(f"the server did not listen on port {port}") from None
            time.sleep(0.01)


def paint(browser, url: str, deadline_s: float = 120) -> float:
    """Seconds until the chat input is visible."""
    context = browser.new_context()
    page = context.new_page()
    began = time.perf_counter()
    page.goto(url, timeout=deadline_s * 1000)
    page.wait_for_selector(CHAT_INPUT, state="visible", timeout=deadline_s * 1000)
    elapsed = time.perf_counter() - began
    context.close()
    return elapsed


def measure(browser, script: str, env: dict, kinds: tuple[str, ...] = KINDS) -> dict[str, float]:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_listening(port, proc)
        paint(browser, url)
        cold = time.perf_counter() - began  # from process start
        if kinds == ("cold",):
            return {"cold": cold}
        time.sleep(max(0.0, 2.0 - (time.perf_counter() - began)))
        loading = paint(browser, url)
        time.sleep(max(0.0, SETTLE_S - (time.perf_counter() - began)))
        return {"cold": cold, "loading": loading, "warm": paint(browser, url)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--conversations", type=int, default=0, help="saved conversations (2 exchanges each) in the app's history"
    )
    parser.add_argument(
        "--model",
        choices=("0.5b", "bundled"),
        default="0.5b",
        help="0.5b: a generated 0.5B-shape Q4_0 GGUF in MODEL_PATH; bundled: nothing placed, the default demo model",
    )
    parser.add_argument(
        "--cold-only", action="store_true", help="only the cold paint: each round takes seconds, not half a minute"
    )
    args = parser.parse_args()
    kinds = ("cold",) if args.cold_only else KINDS
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="first-paint-"))
    if args.model == "bundled":
        model = bundled_model()
        if model is None:
            parser.error("the bundled demo model is not installed: run make install")
        (work / "models").mkdir()
        placed = {"MODELS_DIR": str(work / "models"), "BUNDLED_MODEL": "1"}  # what a fresh clone runs
    else:
        model = write_model(work / "qwen-0.5b-shape-q4_0.gguf", PRESETS["0.5b"])
        placed = {"MODEL_PATH": str(model)}
    saved = f"; {args.conversations} saved conversations" if args.conversations else ""
    print(f"model: {model.name} {model.stat().st_size / 2**20:.0f} MiB; {args.rounds} rounds{saved}", flush=True)
    names = ["app", "bare"] + (["app+history"] if args.conversations else [])
    times = {name: {kind: [] for kind in kinds} for name in names}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
        for r in range(args.rounds):  # noqa: B007
            order = names[r % len(names) :] + names[: r % len(names)]  # each page goes first in turn
            for name in order:
                data = work / f"round{r}-{name}"
                env = {
                    **placed,
                    "INDEX_DIR": str(data / "index"),
                    "CACHE_DIR": str(data / "cache"),
                    "DATA_DIR": str(data / "data"),
                }
                if name == "app+history":
                    fill(data / "data" / "conversations.sqlite", args.conversations, 2, seed=r)
                script = "benchmarks/bare_app.py" if name == "bare" else "app.py"
                got = measure(browser, script, env, kinds)
                for kind in kinds:
                    times[name][kind].append(got[kind])
                print(f"round {r + 1} {name:11}: " + ", ".join(f"{k} {got[k]:.2f} s" for k in kinds), flush=True)
        browser.close()
    shutil.rmtree(work, ignore_errors=True)
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    ratios = {kind: med["app"][kind] / med["bare"][kind] for kind in kinds}
    print()
    for kind in kinds:
        bar = f" (bar <= {BAR})" if kind == "cold" else ""
        spread = f" [{min(times['app'][kind]):.2f}-{max(times['app'][kind]):.2f}]"
        print(
            f"median {kind:7} first paint: app {med['app'][kind]:.2f} s{spread}, bare {med['bare'][kind]:.2f} s, "
            f"ratio {ratios[kind]:.2f}{bar}"
        )
    if args.conversations:
        history = {kind: med["app+history"][kind] / med["bare"][kind] for kind in kinds}
        ratios.update({f"{kind}+history": value for kind, value in history.items()})
        print(
            f"with {args.conversations} saved conversations: "
            + ", ".join(f"{kind} {med['app+history'][kind]:.2f} s, ratio {history[kind]:.2f}" for kind in kinds)
        )
    if args.json:
        args.json.write_text(json.dumps({"times": times, "median": med, "ratios": ratios}, indent=1))
    return 0 if max(v for k, v in ratios.items() if k.startswith("cold")) <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
