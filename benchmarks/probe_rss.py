"""Child process: load the engine with the model and the embedder, answer once, report peak RSS."""

import json
import sys
from pathlib import Path

from rag.config import Settings
from rag.engine import Engine
from rag.events import Done


def peak_rss() -> int:
    """VmHWM: this process's own peak RSS (ru_maxrss is inherited from the forking parent)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    if sys.argv[1] == "--embedder-only":
        from rag.config import default_embed_model
        from rag.embeddings import load_embedder

        load_embedder(default_embed_model()).embed_batch(["warm up the embedder"] * 64)
        print(json.dumps({"peak_rss": peak_rss()}))
        return
    engine = Engine(Settings.from_env())
    engine.ingest([Path(sys.argv[1])])
    done = [e for e in engine.ask(sys.argv[2], wait_for_model=True) if isinstance(e, Done)][-1]
    model = engine.status().model
    plan = model.plan
    print(
        json.dumps(
            {
                "peak_rss": peak_rss(),
                "file_bytes": model.file_bytes,
                "kv_bytes": plan.kv_bytes,
                "compute_bytes": plan.compute_bytes,
                "use_mmap": plan["use_mmap"],
                "completion_tokens": done.completion_tokens,
            }
        )
    )


if __name__ == "__main__":
    main()
