#!/usr/bin/env bash
# Installs beanstalkd from Debian's packages if it is not on PATH.
set -euo pipefail
if command -v beanstalkd >/dev/null 2>&1 || [ -n "${BSJOBS_BEANSTALKD:-}" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
echo "beanstalkd not found: installing it with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq beanstalkd >/dev/null
# The package may start a system-wide service on 11300; the demo and tests
# never use it (they start their own on free loopback ports).
