r"""SLPT patch gather: time per call and its share of an SLPT training step.

  python benchmarks/patch_gather.py                      # official sizes
  python benchmarks/patch_gather.py --batch 64 --dtype bfloat16
  python benchmarks/patch_gather.py --model dslpt --backbone hrnet

Times, on random input at the official sizes (N = 98 landmarks, K = 7,
a 64 x 64 x 256 feature map from a 256 px crop, three stages):
  * the gather alone, forward and forward + backward (gradient to the
    feature map), once and for the three stages of a step;
  * the whole jitted SLPT/DSLPT training step (`benchmarks/train_step.py`'s
    step), and the gather's share of it = 3 x gather(fwd + bwd) / step.
On GPU the gather must not be the bottleneck of the step.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models import patch_gather as pg


def timed(fn, *args, steps=10):
  jax.block_until_ready(fn(*args))  # compile
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def gather_times(batch, points, k, size, channels, dtype, convention, steps):
  rng = np.random.default_rng(0)
  fmap = jnp.asarray(rng.normal(size=(batch, size, size, channels)), dtype)
  centres = jnp.asarray(rng.uniform(0, 1, (batch, points, 2)), jnp.float32)
  cot = jnp.asarray(rng.normal(size=(batch, points, k, k, channels)), dtype)

  def gather(f, c):
    lo, sz = pg.patch_boxes(c, 0.125, convention)
    return pg.gather_patches(f, lo, sz, k, convention)

  fwd = jax.jit(gather)
  bwd = jax.jit(jax.grad(lambda f, c: (gather(f, c) * cot).sum()))
  return timed(fwd, fmap, centres, steps=steps), timed(bwd, fmap, centres,
                                                      steps=steps)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--model', default='slpt', choices=['slpt', 'dslpt'])
  p.add_argument('--backbone', default=None,
                 help='default: hrnet_lite (slpt), hrnet (dslpt)')
  p.add_argument('--batch', type=int, default=16)
  p.add_argument('--points', type=int, default=98)
  p.add_argument('--dtype', default='float32',
                 choices=['float32', 'bfloat16'])
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--no-step', action='store_true',
                 help='time the gather only, not the training step')
  a = p.parse_args()
  dtype = jnp.bfloat16 if a.dtype == 'bfloat16' else jnp.float32
  dev = jax.local_devices()[0]
  print(f'jax {jax.__version__} on {dev.device_kind}', flush=True)
  fwd, both = gather_times(a.batch, a.points, 7, 64, 256, dtype, a.model,
                           a.steps)
  n = a.batch * a.points * 49
  print(f'gather ({a.model}) batch {a.batch} x {a.points} points x 7x7 '
        f'from 64x64x256 {a.dtype}: fwd {fwd * 1e3:.2f} ms, grad '
        f'{both * 1e3:.2f} ms ({n / fwd / 1e6:.1f} M samples/s fwd)',
        flush=True)
  if a.no_step:
    return
  import sys  # pylint: disable=g-import-not-at-top
  from pathlib import Path  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(Path(__file__).parent))
  import train_step  # pylint: disable=g-import-not-at-top
  backbone = a.backbone or ('hrnet_lite' if a.model == 'slpt' else 'hrnet')
  t0 = time.perf_counter()
  train_step.bench(backbone, a.batch, a.points, a.dtype, a.steps, 256,
                   None, None, a.model)
  del t0
  step = train_step.LAST['step_s']
  share = 3 * both / step
  print(f'gather share of the {a.model} ({backbone}) step: 3 stages x '
        f'{both * 1e3:.2f} ms = {3 * both * 1e3:.1f} ms of '
        f'{step * 1e3:.1f} ms ({share:.1%})', flush=True)


if __name__ == '__main__':
  main()
