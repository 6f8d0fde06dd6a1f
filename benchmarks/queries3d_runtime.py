r"""Inference speed of the 3D-query models vs the number of queries (Fig. 14).

  python benchmarks/queries3d_runtime.py
  python benchmarks/queries3d_runtime.py --batch 1 8 --queries 68 1000
  python benchmarks/queries3d_runtime.py --tiny   # the demo's extractor

Paper 002 §4.7 "Runtime Analysis" / Fig. 14: frames per second against the
number of decoded queries for each predictor. Here: img/s of the jitted
forward pass (images -> landmarks and log-variance; forward only), the
median of up to `--runs` timed calls after one warm-up call, for N = 68,
1,000, 10,000, 50,000 queries, with the paper-size model: F a ConvNeXt
'tiny' (224 px), M the 3 -> 64 query encoder, P the MLP (width 512,
depth 4) or the transformer (width 768, 4 blocks, 8 heads), random weights
(`models.build` of a `queries3d` config). The baseline row is F alone.
`--tiny`: the demo's extractor and input size (`configs/queries3d_demo.py`).

The queries are points of the canonical face C (canonical 3D head
coordinates; `canonical.random_surface_uv`); the outputs are landmarks in
[0, 1] crop units. The transformer's attention scores are (B, heads, N, N):
a configuration whose scores and softmax would need more than
`--max-attention-gib` (2 x B x heads x N² x 4 bytes) prints 'skipped'
instead of running. Prints the JAX backend and devices, then one Markdown
table; runs unchanged on a GPU.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import models
from jaxlm.config import load_config
from jaxlm.data.synthetic import canonical
from jaxlm.models import queries3d

PREDICTORS = {  # the paper's sizes (§4.7)
    'MLP': dict(predictor='mlp', predictor_width=512, predictor_depth=4),
    'transformer': dict(predictor='transformer', predictor_width=768,
                        predictor_depth=4, predictor_heads=8),
}


def random_variables(abstract, seed: int = 0):
  """Random values of the shapes in `abstract` (speed does not depend on
  them): weights N(0, 0.02), LayerNorm scales 1, biases 0."""
  rng = np.random.default_rng(seed)

  def fill(path, x):
    if x.ndim >= 2:
      return jnp.asarray(rng.normal(0, 0.02, x.shape).astype(x.dtype))
    if 'scale' in jax.tree_util.keystr(path):
      return jnp.ones(x.shape, x.dtype)
    return jnp.zeros(x.shape, x.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def attention_gib(batch: int, heads: int, n: int) -> float:
  """Scores and probabilities of one attention layer, float32, GiB."""
  return 2 * batch * heads * n * n * 4 / 2**30


def cell(batch: int, sec: float, runs: int) -> str:
  """'img/s (ms per call, runs)'."""
  rate = batch / sec
  return (f'{rate:,.1f}' if rate >= 10 else f'{rate:.3g}') + \
      f' ({1e3 * sec:,.1f} ms, {runs} runs)'


def time_call(fn, args, runs: int, budget_s: float) -> tuple[float, int]:
  """Median seconds of `fn(*args)` over up to `runs` calls (at least 3,
  fewer past `budget_s`), after one warm-up call (the compile)."""
  jax.block_until_ready(fn(*args))
  times = []
  start = time.perf_counter()
  while len(times) < runs and (len(times) < 3 or
                               time.perf_counter() - start < budget_s):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), len(times)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--queries', type=int, nargs='+',
                 default=[68, 1000, 10000, 50000])
  p.add_argument('--batch', type=int, nargs='+', default=[1])
  p.add_argument('--predictors', nargs='+', default=list(PREDICTORS),
                 choices=list(PREDICTORS))
  p.add_argument('--variant', default='tiny', help="ConvNeXt size")
  p.add_argument('--image-size', type=int, default=224)
  p.add_argument('--tiny', action='store_true',
                 help="the demo's tiny ConvNeXt and input size")
  p.add_argument('--dtype', default='float32',
                 choices=['float32', 'bfloat16'])
  p.add_argument('--runs', type=int, default=10)
  p.add_argument('--budget-s', type=float, default=20.0,
                 help='stop timing a configuration after this (>= 3 runs)')
  p.add_argument('--max-attention-gib', type=float, default=8.0)
  args = p.parse_args(argv)

  variant, size = args.variant, args.image_size
  if args.tiny:
    demo = load_config('configs/queries3d_demo.py')
    variant, size = demo.model.variant, demo.data.image_size
  dev = jax.devices()[0]
  print(f'# jax {jax.__version__}, backend {jax.default_backend()}, '
        f'{jax.device_count()} device(s): {dev.device_kind}; ConvNeXt '
        f'{variant!r} at {size} px, {args.dtype}; median of up to '
        f'{args.runs} runs after a warm-up\n')

  rows = []  # (what, N, {batch: cell})
  rng = np.random.default_rng(0)
  images = {b: jnp.asarray(rng.integers(0, 256, (b, size, size, 3),
                                        dtype=np.uint8))
            for b in args.batch}

  feats = queries3d.extractor('convnext', variant, 0.0, jnp.dtype(args.dtype))
  fvars = random_variables(jax.eval_shape(
      lambda: feats.init(jax.random.key(0), images[args.batch[0]])))
  f_apply = jax.jit(feats.apply)
  cells = {}
  for b in args.batch:
    sec, n = time_call(f_apply, (fvars, images[b]), args.runs, args.budget_s)
    cells[b] = cell(b, sec, n)
  rows.append(('F alone (ConvNeXt)', '—', cells))

  for name in args.predictors:
    c = models.get('queries3d').default_config()
    c.extractor, c.variant, c.dtype = 'convnext', variant, args.dtype
    c.update(PREDICTORS[name])
    model = models.build(c, (('syn98', 98),))
    variables = random_variables(models.abstract_variables(model, size))
    forward = jax.jit(model.apply)
    for n_q in args.queries:
      q = jnp.asarray(canonical.surface_queries(
          canonical.random_surface_uv(n_q, 1)).canonical())
      cells = {}
      for b in args.batch:
        need = attention_gib(b, c.predictor_heads, n_q)
        if name == 'transformer' and need > args.max_attention_gib:
          cells[b] = f'skipped (attention would need {need:,.1f} GiB)'
          continue
        sec, n = time_call(forward, (variables, images[b], q), args.runs,
                           args.budget_s)
        cells[b] = cell(b, sec, n)
      rows.append((f'{name} (width {c.predictor_width})', f'{n_q:,}', cells))
      print(f'  {rows[-1][0]}, N={n_q:,}: {cells}', flush=True)

  print()
  print('| model | queries N | ' + ' | '.join(
      f'img/s, batch {b}' for b in args.batch) + ' |')
  print('|---|---|' + '---|' * len(args.batch))
  for what, n_q, cells in rows:
    print(f'| {what} | {n_q} | ' + ' | '.join(cells[b] for b in args.batch)
          + ' |')


if __name__ == '__main__':
  main()
