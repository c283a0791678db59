"""The deployment files say what the README promises (`make container-test` builds and runs them)."""

import re

import yaml

from rag.config import PROJECT_ROOT


def test_compose_reserves_a_gpu_binds_loopback_and_mounts_models_read_only():
    service = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]["ai-chat"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert all(p.startswith("127.0.0.1:") for p in service["ports"])
    assert "./models:/app/models:ro" in service["volumes"]
    assert service["restart"] == "unless-stopped" and "/_stcore/health" in " ".join(service["healthcheck"]["test"])
    assert service["build"]["dockerfile"] == "Dockerfile.optimized"


def test_dockerfiles_run_as_a_user_with_a_healthcheck_and_no_models_inside():
    for name in ("Dockerfile", "Dockerfile.optimized"):
        text = (PROJECT_ROOT / name).read_text()
        assert re.search(r"^USER app$", text, re.M) and "HEALTHCHECK" in text and "/_stcore/health" in text
        assert "requirements_minimal.txt" in text and "id=ca_bundle" in text and "EXPOSE 8501" in text
    optimized = (PROJECT_ROOT / "Dockerfile.optimized").read_text()
    assert "CUDA_MODULE_LOADING=LAZY" in optimized and "--mount=type=cache" in optimized
    runtime = optimized.split("AS runtime", 1)[1]
    assert "build-essential" not in runtime and "cmake" not in runtime  # no compiler at run time
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {"models/*", "*.gguf", ".venv", "index", "cache"} <= set(ignored)


def test_minimal_requirements_are_pinned_runtime_only():
    text = (PROJECT_ROOT / "requirements_minimal.txt").read_text()
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    pins = [line for line in lines if line]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[\w.+]+", p) for p in pins), pins
    assert not {"pytest", "ruff", "playwright", "fpdf2"} & {p.split("==")[0] for p in pins}
    assert "torch==2.13.0" in pins
