r"""Training-step throughput on 1, 2, 4, 8 simulated CPU devices.

  python benchmarks/scaling.py [--variant Ti/16:depth=4] [--per-device-batch 4]

Runs benchmarks/train_step.py in a fresh process per device count (XLA's
--xla_force_host_platform_device_count), data-parallel mesh N x 1 x 1 and a
global batch of N x per-device batch. This checks that the sharded path
scales without errors or recompilation surprises; the simulated devices
share this machine's cores, so absolute img/s only mean something on real
accelerators.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--variant', default='Ti/16:depth=4')
  p.add_argument('--per-device-batch', type=int, default=4)
  p.add_argument('--image-size', type=int, default=96)
  p.add_argument('--prompts', type=int, default=29)
  p.add_argument('--devices', type=int, nargs='+', default=[1, 2, 4, 8])
  p.add_argument('--steps', type=int, default=5)
  a = p.parse_args()
  print(f'{os.cpu_count()} CPU cores; {a.variant}, {a.image_size}px, '
        f'{a.per_device_batch} images per device')
  for n in a.devices:
    env = dict(os.environ, JAX_PLATFORMS='cpu',
               XLA_FLAGS=f'--xla_force_host_platform_device_count={n}')
    out = subprocess.run(
        [sys.executable, str(ROOT / 'benchmarks' / 'train_step.py'),
         '--variant', a.variant, '--batch', str(n * a.per_device_batch),
         '--image-size', str(a.image_size), '--prompts', str(a.prompts),
         '--steps', str(a.steps), '--mesh', f'{n},1,1'],
        cwd=ROOT, env=env, capture_output=True, text=True)
    line = [l for l in out.stdout.splitlines() if 'img/s' in l]
    if out.returncode or not line:
      print(f'{n} devices: failed\n{out.stderr[-2000:]}')
      continue
    print(f'{n} devices: {line[-1]}', flush=True)


if __name__ == '__main__':
  main()
