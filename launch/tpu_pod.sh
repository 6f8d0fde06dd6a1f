#!/usr/bin/env bash
# Train one config on every worker of a Cloud TPU pod slice.
#   launch/tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]
#   DRY_RUN=1 launch/tpu_pod.sh ...   # print the gcloud commands instead
# Copies this checkout (git archive of HEAD) to all workers, installs jaxlm
# with jax[tpu] into ~/jaxlm/.venv, and runs the same `jaxlm train` on
# --worker=all; jax.distributed.initialize() reads the TPU environment, so
# no coordinator address is needed. WORKDIR should be a gs:// path (shared
# by the workers). Each worker logs to ~/jaxlm/logs/<hostname>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
tpu=$1 zone=$2 config=$3 workdir=$4
shift 4
run() { if [ -n "${DRY_RUN:-}" ]; then printf '+'; printf ' %q' "$@"; echo;
        else "$@"; fi; }
archive=$(mktemp -u /tmp/jaxlm-XXXXXX).tar.gz
[ -n "${DRY_RUN:-}" ] || trap 'rm -f "$archive"' EXIT
run git archive --format=tar.gz -o "$archive" HEAD
gc=(gcloud compute tpus tpu-vm)
run "${gc[@]}" scp "$archive" "$tpu:jaxlm.tar.gz" --zone="$zone" --worker=all
setup='mkdir -p ~/jaxlm/logs && tar xzf ~/jaxlm.tar.gz -C ~/jaxlm && cd ~/jaxlm && python3 -m venv .venv && .venv/bin/pip install -q -e . "jax[tpu]"'
run "${gc[@]}" ssh "$tpu" --zone="$zone" --worker=all --command="$setup"
# Every argument quoted for the remote shell, none added: no overrides must
# not become one empty '' argument.
cmd=(.venv/bin/jaxlm train --no-progress --config "$config" --workdir "$workdir"
     "$@")
train="cd ~/jaxlm && $(printf '%q ' "${cmd[@]}")> logs/\$(hostname).log 2>&1"
run "${gc[@]}" ssh "$tpu" --zone="$zone" --worker=all --command="$train"
