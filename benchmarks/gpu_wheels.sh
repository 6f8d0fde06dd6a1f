#!/usr/bin/env bash
# Wheels of what jaxlm needs beyond the lent GPU machines' image, for a
# machine without the internet (benchmarks/gpu_suite.sh installs them).
#
#   bash benchmarks/gpu_wheels.sh [DIR]     # default .whl (git-ignored)
#
# Run it where pip reaches the package index. The image (Python 3.12, x86-64;
# /work/.library/device/KINDS.md lists its packages) has JAX with CUDA,
# flax, optax, orbax, OpenCV, etils, protobuf, pyarrow, ...; it lacks the
# ones below. Binary ones are fetched for CPython 3.12 manylinux x86-64;
# pure-Python ones are built here if the index has no wheel (promise). The
# versions are the ones jaxlm is tested with. About 10 MB in all.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
BINARY=(grain==0.2.18 array_record==0.8.6 dm-tree==0.1.10)
PURE=(ml_collections==1.1.0 tensorboardX==2.6.5 tensorflow-datasets==4.9.10
      portpicker==1.6.0 immutabledict==4.3.1 promise==2.3
      simple-parsing==0.1.9 docstring_parser==0.18.0
      tensorflow-metadata==1.21.0 termcolor==3.3.0 toml==0.10.2)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$DIR" "${BINARY[@]}"
"$PY" -m pip wheel -q --no-deps -w "$DIR" "${PURE[@]}"
ls -l "$DIR"
du -sh "$DIR"
