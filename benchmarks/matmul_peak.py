r"""What this machine's matrix products reach: GFLOP/s of XLA and of torch.

  python benchmarks/matmul_peak.py
  python benchmarks/matmul_peak.py --shapes 2056x384x1536 2048x2048x2048 \
      --dtype float32 --rounds 5

The ceiling of any training step on a CPU: a step of F FLOPs (XLA's cost
analysis, or torch's FlopCounterMode) cannot take less than F / (the
products' GFLOP/s). Each shape MxKxN is one (M, K) @ (K, N) product, timed
with JAX (jitted, XLA:CPU's own choice of kernel) and, when torch imports,
with torch (MKL / oneDNN), alternating, `--rounds` times; printed are the
medians. The defaults are ViT-S/16's MLP at batch 8 (257 tokens x 8 = 2056
rows, 384 <-> 1536) and a large square product.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_time(fn, rounds: int, inner: int) -> float:
  times = []
  for _ in range(rounds):
    t = time.perf_counter()
    for _ in range(inner):
      fn()
    times.append((time.perf_counter() - t) / inner)
  return float(np.median(times))


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--shapes', nargs='+',
                 default=['2056x384x1536', '2056x1536x384', '2048x2048x2048'])
  p.add_argument('--dtype', default='float32',
                 choices=['float32', 'bfloat16'])
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument('--inner', type=int, default=5,
                 help='products per timed round')
  a = p.parse_args()
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = None
  print(f'jax {jax.__version__} on {jax.local_devices()[0].device_kind}' +
        (f'; torch {torch.__version__}, {torch.get_num_threads()} threads'
         if torch else '; torch not installed'), flush=True)
  print('| shape MxKxN | GFLOP | jax GFLOP/s | torch GFLOP/s |\n'
        '|---|---|---|---|')
  rng = np.random.default_rng(0)
  for shape in a.shapes:
    m, k, n = (int(v) for v in shape.split('x'))
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    gflop = 2.0 * m * k * n / 1e9
    xj = jnp.asarray(x, a.dtype)
    wj = jnp.asarray(w, a.dtype)
    dot = jax.jit(jnp.matmul)
    jax.block_until_ready(dot(xj, wj))
    rows = {'jax': lambda: jax.block_until_ready(dot(xj, wj))}
    if torch is not None:
      xt = torch.from_numpy(x).to(getattr(torch, a.dtype))
      wt = torch.from_numpy(w).to(getattr(torch, a.dtype))
      torch.matmul(xt, wt)
      rows['torch'] = lambda: torch.matmul(xt, wt)
    times = {name: [] for name in rows}
    for _ in range(a.rounds):  # alternate, so load hits both alike
      for name, fn in rows.items():
        times[name].append(_median_time(fn, 1, a.inner))
    rate = {name: gflop / float(np.median(t)) for name, t in times.items()}
    print(f'| {shape} | {gflop:.2f} | {rate["jax"]:.0f} | ' +
          (f'{rate["torch"]:.0f} |' if 'torch' in rate else '- |'),
          flush=True)


if __name__ == '__main__':
  main()
