#!/usr/bin/env bash
# Train (and evaluate) one config on this host.
#   launch/local.sh configs/tufa_demo.py workdirs/demo [--config.key=value ...]
#   DRY_RUN=1 launch/local.sh ...   # print what would run
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
run() { if [ -n "${DRY_RUN:-}" ]; then echo "+ $*"; else "$@"; fi; }
run make install
run .venv/bin/jaxlm train --config "$config" --workdir "$workdir" --eval "$@"
