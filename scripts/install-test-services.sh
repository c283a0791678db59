#!/usr/bin/env bash
# Debian packages the tests run for real: Chromium for the browser tests (Playwright's own browser
# download is not used) and PostgreSQL, whose server the store tests start on a private socket.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "install Debian's ${need[*]} to run every test (apt-get install ${need[*]})" >&2; exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
echo "installed ${need[*]}"
