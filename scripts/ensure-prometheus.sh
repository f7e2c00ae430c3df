#!/usr/bin/env bash
# Installs promtool (Debian package prometheus) if it is not on PATH: the
# metrics test checks the worker's metrics with `promtool check metrics`.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "promtool not found: installing the prometheus package with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus >/dev/null
# The package may start a Prometheus server on :9090; the tests never use it.
