#!/usr/bin/env bash
# The Quick start demo: a worker and a producer against a private beanstalkd.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-beanstalkd.sh
exec cargo run -q -p bsjobs-examples --example demo
