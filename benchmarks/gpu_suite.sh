#!/usr/bin/env bash
# One GPU suite: every family's training, evaluation and end-to-end
# throughput on one device, into benchmarks/results/<date>-<device>.md
# (benchmarks/gpu_suite.py says what each part measures).
#
#   bash benchmarks/gpu_suite.sh                   # one H100/H200: <= 8 min
#   bash benchmarks/gpu_suite.sh --quick           # about 4 min
#   bash benchmarks/gpu_suite.sh --dry-run --out /tmp/suite   # any CPU
#   bash benchmarks/gpu_suite.sh --models tufa_s16,slpt --batch tufa_s16=512 \
#       --xla-flags '--xla_gpu_enable_latency_hiding_scheduler=true'
#
# Needs no internet. If jaxlm does not import (the lent GPU machines' image
# has JAX with CUDA but not jaxlm's lighter dependencies), it installs the
# wheels in .whl/ (made by `bash benchmarks/gpu_wheels.sh` where pip reaches
# the index; carry the folder with the call) into $JAXLM_DEPS and jaxlm
# itself with `pip install -e . --no-deps`. The whole run is stopped after
# SUITE_TIMEOUT seconds (default 480); the results file is rewritten after
# every measurement, so a stopped run still leaves what it measured.
#
# On a lent device machine (only $OUT comes back): make .whl here once, then
#   run(command='bash benchmarks/gpu_suite.sh --out $OUT', carry=['.whl'],
#       timeout_s=560)
# and copy the returned <date>-<device>.md (and .json) into
# benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEPS=${JAXLM_DEPS:-/tmp/jaxlm-deps}
start=$(date +%s)
probe='import jaxlm.train.loop, jaxlm.configs'
if ! "$PY" -c "$probe" 2>/dev/null; then
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing $(ls .whl/*.whl | wc -l) wheels from .whl into $DEPS"
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --upgrade --target "$DEPS" .whl/*.whl
    export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! "$PY" -c "$probe" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . \
      || echo "pip install -e . failed: running jaxlm from the source tree"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PY" -c 'import jaxlm.train.loop' || {
    echo "jaxlm does not import: missing dependencies above (make .whl with"\
         "benchmarks/gpu_wheels.sh and carry it)" >&2; exit 1; }
fi
echo "set up in $(( $(date +%s) - start )) s"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm \
    --format=csv,noheader || true
fi
export PYTHONUNBUFFERED=1
exec timeout --signal=INT "${SUITE_TIMEOUT:-480}" \
  "$PY" benchmarks/gpu_suite.py "$@"
