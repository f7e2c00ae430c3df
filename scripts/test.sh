#!/usr/bin/env bash
# Every test: unit, property, compile-fail (trybuild), doc, and integration
# tests against real beanstalkd processes each test starts on a free port,
# and the dashboard's test in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-beanstalkd.sh
bash scripts/ensure-prometheus.sh
bash scripts/ensure-chromium.sh
exec cargo test --workspace "$@"
