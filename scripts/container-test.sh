#!/usr/bin/env bash
# make container-test: build Dockerfile and Dockerfile.optimized with buildah (no Docker engine needed),
# run each image's own command, check /_stcore/health answers 200 and a question is answered with a
# generated tiny GGUF mounted read-only, then print both image sizes.
#
# A local Debian bookworm (debootstrap) stands in for the nvidia/cuda base images and CUDA is off:
# there is no GPU or CUDA toolkit here. Everything else is the real build: the same Dockerfiles,
# pip behind the host's CA bundle (passed as a build secret), llama.cpp compiled inside the image.
#
# llama.cpp is the images' portable build (scripts/build_llama.py --mode portable); its wheel cache is
# this machine's (LLAMA_WHEEL_CACHE, mounted into the build): a wheel whose key (flags, compiler)
# matches is reused, otherwise it is compiled inside the image and kept there for the next build.
# Each image's llama.cpp libraries are then checked with objdump (scripts/check_cpu_code.py
# --portable: no AMX anywhere, no AVX where every CPU loads it, no AVX-512 in the AVX2-class variants).
#
# Env: CA_BUNDLE (default the system bundle), WHEELS (a local wheel folder, e.g. one that holds the
# CPU torch wheel when download.pytorch.org is unreachable), PORT (default 18501), KEEP=1 keeps images.
set -euo pipefail
cd "$(dirname "$0")/.."

CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PORT=${PORT:-18501}
WORK=build/container-test
BASE=localhost/ai-chat-debian:bookworm
PY=${PY:-.venv/bin/python}
BUILDAH=(buildah --storage-driver vfs)
log() { printf '\n== %s\n' "$*"; }

need() {
  command -v "$1" >/dev/null && return
  [ "$(id -u)" = 0 ] || { echo "container-test needs $1 (apt-get install $2) and root" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null
}
need buildah buildah
need debootstrap debootstrap

mkdir -p "$WORK"
if ! "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  log "base image: debootstrap bookworm (minbase) -> $BASE"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  ctr=$("${BUILDAH[@]}" from scratch)
  mnt=$("${BUILDAH[@]}" mount "$ctr")
  cp -a "$WORK/rootfs/." "$mnt/"
  "${BUILDAH[@]}" umount "$ctr" >/dev/null
  "${BUILDAH[@]}" commit --quiet "$ctr" "$BASE" >/dev/null
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
  rm -rf "$WORK/rootfs"
fi

build_args=(--isolation chroot --format docker --layers --secret "id=ca_bundle,src=$CA_BUNDLE"
            --build-arg CUDA=off --build-arg BASE="$BASE"
            --build-arg BUILD_BASE="$BASE" --build-arg RUNTIME_BASE="$BASE")
# CPU torch comes from download.pytorch.org; where that is unreachable, from a local wheel folder
# (WHEELS, else the host pip's own find-links), mounted into the build
if ! curl -s -o /dev/null --max-time 10 https://download.pytorch.org/whl/cpu/torch/; then
  WHEELS=${WHEELS:-$("$PY" -m pip config get global.find-links 2>/dev/null || true)}
  ls "${WHEELS:-/nonexistent}"/torch-*cpu*.whl >/dev/null 2>&1 || {
    echo "download.pytorch.org is unreachable and no CPU torch wheel was found; set WHEELS=<folder>" >&2; exit 2; }
fi
if [ -n "${WHEELS:-}" ]; then
  echo "local wheels: $WHEELS"
  build_args+=(--volume "$(realpath "$WHEELS"):/wheels:ro" --build-arg PIP_FIND_LINKS=/wheels
               --build-arg TORCH_INDEX_URL=)
fi

LLAMA_WHEEL_CACHE=${LLAMA_WHEEL_CACHE:-$HOME/.cache/ai-chat/llama-wheels}
mkdir -p "$LLAMA_WHEEL_CACHE"
build_args+=(--volume "$(realpath "$LLAMA_WHEEL_CACHE"):/llama-wheels" --build-arg LLAMA_WHEEL_CACHE=/llama-wheels)

check_cpu_code() {  # $1 image: disassemble its llama.cpp libraries
  local ctr mnt lib rc=0
  ctr=$("${BUILDAH[@]}" from "$1")
  mnt=$("${BUILDAH[@]}" mount "$ctr")
  lib=$(ls -d "$mnt"/opt/venv/lib/python3*/site-packages/llama_cpp/lib)
  log "$1: CPU code of llama.cpp (objdump)"
  "$PY" scripts/check_cpu_code.py "$lib" --portable || rc=$?
  "${BUILDAH[@]}" umount "$ctr" >/dev/null
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
  return $rc
}

# the model the images answer with: generated here, mounted read-only
mkdir -p "$WORK/models"
[ -s "$WORK/models/tiny.gguf" ] || "$PY" -m rag make-model "$WORK/models/tiny.gguf" --preset tiny >/dev/null

check_image() {  # $1 image: run its CMD, wait for health, ask one question, stop it
  local image=$1 name=$2 state="$WORK/state-$2" ctr pid cmd code=000
  rm -rf "$state" && mkdir -p "$state"/{index,cache,data} && chmod -R 777 "$state"
  ctr=$("${BUILDAH[@]}" from --name "ai-chat-test-$name" "$image")
  local mounts=(-v "$PWD/$WORK/models:/app/models:ro" -v "$PWD/$state/index:/app/index"
                -v "$PWD/$state/cache:/app/cache" -v "$PWD/$state/data:/app/data")
  mapfile -t cmd < <("${BUILDAH[@]}" inspect --type image --format '{{range .Docker.Config.Cmd}}{{println .}}{{end}}' "$image" | sed '/^$/d')
  log "$name: run the image's command: ${cmd[*]} (port $PORT)"
  "${BUILDAH[@]}" run --isolation chroot "${mounts[@]}" "$ctr" -- "${cmd[@]/--server.port=8501/--server.port=$PORT}" \
    >"$WORK/$name-server.log" 2>&1 &
  pid=$!
  for _ in $(seq 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/_stcore/health" || true)
    [ "$code" = 200 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  echo "GET /_stcore/health -> $code"
  local ok=0
  if [ "$code" = 200 ]; then
    log "$name: index the bundled user guide and ask a question inside the image (tiny GGUF mounted)"
    "${BUILDAH[@]}" run --isolation chroot "${mounts[@]}" "$ctr" -- python -m rag ingest samples/user-guide.md \
      >"$WORK/$name-answer.log" 2>&1 \
    && "${BUILDAH[@]}" run --isolation chroot "${mounts[@]}" "$ctr" -- \
      python -m rag ask "How do I add documents?" --json >"$WORK/$name-answer.json" 2>>"$WORK/$name-answer.log" \
    && "${BUILDAH[@]}" run --isolation chroot "${mounts[@]}" "$ctr" -- \
      python -m rag status --json >"$WORK/$name-status.json" 2>>"$WORK/$name-answer.log" \
    && "$PY" - "$WORK/$name-answer.json" "$WORK/$name-status.json" <<'EOF' && ok=1
import json, sys
done = json.loads(open(sys.argv[1]).read())
assert done["completion_tokens"] > 0 and not done["retrieval_only"] and done["sources"], done
print(f"answered by the model: {done['completion_tokens']} tokens, {len(done['sources'])} sources "
      f"({done['sources'][0]['source']}), {done['total_ms']:.0f} ms")
build = json.loads(open(sys.argv[2]).read())["llama_build"]
assert build["mode"] == "portable" and build["cpu_variant"] not in (None, "sapphirerapids"), build
print(f"llama.cpp portable build {build['key']}: CPU variant picked on this host: {build['cpu_variant']}")
EOF
  fi
  kill "$pid" 2>/dev/null || true
  pkill -f -- "--server.port=$PORT" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  "${BUILDAH[@]}" rm "$ctr" >/dev/null
  if [ "$ok" != 1 ]; then
    echo "FAILED: $name (server log: $WORK/$name-server.log, answer log: $WORK/$name-answer.log)" >&2
    tail -20 "$WORK/$name-server.log" "$WORK/$name-answer.log" >&2 || true
    return 1
  fi
}

for pair in "Dockerfile:ai-chat:plain" "Dockerfile.optimized:ai-chat:slim"; do
  file=${pair%%:*} tag=${pair#*:}
  log "build $file -> localhost/$tag (CUDA=off, base $BASE)"
  start=$(date +%s)
  "${BUILDAH[@]}" bud "${build_args[@]}" -f "$file" -t "$tag" . >"$WORK/build-${tag##*:}.log" 2>&1 \
    || { tail -30 "$WORK/build-${tag##*:}.log" >&2; exit 1; }
  echo "built in $(( $(date +%s) - start )) s"
  check_cpu_code "localhost/$tag"
  check_image "localhost/$tag" "${tag##*:}"
done

log "image sizes (CPU builds on the Debian stand-in base)"
"${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}  {{.Size}}' | grep -E 'ai-chat(-debian)?:' || true
echo "container-test: both images built, healthy and answering"
