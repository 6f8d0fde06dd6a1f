r"""The heatmap cascade (LensMaster, paper 000) measured on synthetic faces.

  python benchmarks/lensmaster_synthetic.py --workdir workdirs/lensmaster_demo

Prints Markdown tables:
  1. held-out inter-ocular NME (%) of every cascade stage (the model's
     `stages` output, each stage's own soft-argmax) on the run's evaluation
     datasets, beside the mean shape's;
  2. each stage's mean heatmap maximum (the confidence `predict --json`
     reports) and its rank correlation with the per-face NME;
  3. soft-argmax of an exact target Gaussian (sigma 1 / sqrt 2 cells, the
     training target) at distances from the border of a 32-cell map: the
     inward bias in cells (`models/heatmap.py`).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import layouts, metrics
from jaxlm.data import pipeline, sources
from jaxlm.inference import Predictor
from jaxlm.models import heatmap


def _rank(x):
  return np.argsort(np.argsort(x)).astype(np.float64)


def stage_table(pred: Predictor, batch_size: int = 32):
  size = pred.size
  apply = jax.jit(lambda v, x: pred.model.apply(v, x))
  rows = []
  for name, ecfg in pred.config.data.eval.items():
    layout = layouts.get(ecfg.layout)
    source = sources.eval_source(sources.make_source(
        name, ecfg, size, pred.config.data.get('data_dir', '')))
    nmes, conf, base = [], [], []
    mean = np.asarray(pred.family.mean_shapes(
        pred.variables['constants'])) * size
    for batch in pipeline.eval_batches(source, batch_size):
      out = apply(pred.variables, batch['image'])
      keep = batch['valid']
      gt = np.asarray(batch['landmarks'], np.float64)[keep]
      lo, hi = np.nanmin(gt, axis=1), np.nanmax(gt, axis=1)
      norm = metrics.normaliser(gt, layout, 'inter_ocular',
                                np.concatenate([lo, hi], -1))
      stages = np.asarray(out['stages'], np.float64)[:, keep] * size
      nmes.append(np.stack([metrics.nme(s, gt, norm) for s in stages], -1))
      conf.append(np.asarray(out['heatmaps'].max(axis=(-2, -1)))[:, keep]
                  .mean(-1).T)
      base.append(metrics.nme(np.broadcast_to(mean, gt.shape), gt, norm))
    nmes, conf = np.concatenate(nmes), np.concatenate(conf)
    base = np.concatenate(base)
    rows.append((name, nmes, conf, base))
  t = rows[0][1].shape[1]
  print('## Held-out NME per cascade stage (%)\n')
  print('| dataset | faces | ' + ' | '.join(f'stage {i + 1}' for i in
                                            range(t)) + ' | mean shape |')
  print('|---|---|' + '---|' * (t + 1))
  for name, nmes, _, base in rows:
    print(f'| {name} | {len(nmes)} | ' + ' | '.join(
        f'{100 * v:.2f}' for v in nmes.mean(0)) + f' | {100 * base.mean():.2f} |')
  print('\n## Heatmap maximum (confidence) per stage\n')
  print('| dataset | ' + ' | '.join(f'stage {i + 1} mean max' for i in
                                     range(t)) + ' | Spearman(last max, NME) |')
  print('|---|' + '---|' * (t + 1))
  for name, nmes, conf, _ in rows:
    rho = np.corrcoef(_rank(conf[:, -1]), _rank(nmes[:, -1]))[0, 1]
    print(f'| {name} | ' + ' | '.join(f'{v:.3f}' for v in conf.mean(0)) +
          f' | {rho:+.2f} |')


def border_table(cells: int = 32):
  print('\n## Soft-argmax of the exact training target near a border\n')
  print(f'| true column (cells, of {cells}) | estimate | bias (cells) |')
  print('|---|---|---|')
  for u in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 16.3):
    c = jnp.asarray([[[u, cells / 2]]], jnp.float32)
    g = heatmap.gaussian_target(c, cells, cells)
    est, _ = heatmap.soft_argmax(jnp.log(g).transpose(0, 2, 3, 1))
    e = float(est[0, 0, 0])
    print(f'| {u:.2f} | {e:.4f} | {e - u:+.4f} |')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True, help='a lensmaster run folder')
  a = p.parse_args(argv)
  stage_table(Predictor(a.workdir))
  border_table()


if __name__ == '__main__':
  main()
