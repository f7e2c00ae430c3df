#!/usr/bin/env bash
# Installs Chromium from Debian's packages if no Chromium is on PATH: the
# dashboard's browser test (bsjobs-web/tests/browser.rs) drives it headless.
set -euo pipefail
if [ -n "${BSJOBS_CHROMIUM:-}" ]; then
  exit 0
fi
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "chromium not found: installing it with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
