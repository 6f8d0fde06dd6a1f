#!/usr/bin/env bash
# Train (and evaluate) one config on this host.
#   launch/local.sh configs/tufa_demo.py workdirs/demo [--config.key=value ...]
#   DRY_RUN=1 launch/local.sh ...        # print what would run
#   NUM_PROCESSES=2 DEVICES_PER_PROCESS=4 launch/local.sh ...
#       # real multi-process JAX on this machine (CPU collectives via gloo),
#       # each process simulating DEVICES_PER_PROCESS CPU devices; logs in
#       # WORKDIR/logs/process_<i>.log
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
run() { if [ -n "${DRY_RUN:-}" ]; then echo "+ $*"; else "$@"; fi; }
JAXLM="${JAXLM:-.venv/bin/jaxlm}"
[ -n "${SKIP_INSTALL:-}" ] || run make install
n=${NUM_PROCESSES:-1}
if [ "$n" -le 1 ]; then
  run "$JAXLM" train --config "$config" --workdir "$workdir" --eval "$@"
  exit 0
fi
port=${COORDINATOR_PORT:-$((20000 + RANDOM % 20000))}
flags=""
[ -n "${DEVICES_PER_PROCESS:-}" ] && \
  flags="--xla_force_host_platform_device_count=$DEVICES_PER_PROCESS"
run mkdir -p "$workdir/logs"
pids=()
for ((i = 0; i < n; i++)); do
  envs=(JAXLM_COORDINATOR="127.0.0.1:$port" JAXLM_NUM_PROCESSES="$n"
        JAXLM_PROCESS_ID="$i" JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
        XLA_FLAGS="${XLA_FLAGS:-} $flags")
  if [ -n "${DRY_RUN:-}" ]; then
    printf '+ env'; printf ' %q' "${envs[@]}" "$JAXLM" train --config \
        "$config" --workdir "$workdir" --eval "$@"
    printf ' > %q 2>&1 &\n' "$workdir/logs/process_$i.log"
  else
    env "${envs[@]}" "$JAXLM" train --config "$config" --workdir "$workdir" \
        --eval "$@" > "$workdir/logs/process_$i.log" 2>&1 &
    pids+=($!)
  fi
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
[ $status -eq 0 ] || echo "a process failed; see $workdir/logs/" >&2
exit $status
