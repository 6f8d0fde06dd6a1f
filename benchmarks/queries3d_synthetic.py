r"""Continuous landmarks from 3D queries, measured exactly on synthetic faces.

  python benchmarks/queries3d_synthetic.py \
      --workdir workdirs/queries3d_demo --tufa workdirs/demo

Held-out synthetic faces (their own seed) have exact truth for any point of
the canonical face, so one run folder of the `queries3d` family is measured
on (inter-ocular NME, %, in pixels of the 96/256 px image):
  1. the trained layouts (syn98, syn68, syn29) from their query tables;
  2. syn19, never trained on: zero-shot from its query table;
  3. points interpolated along the feature curves: 65 jaw points and 16
     per eye (thesis-style "denser than any dataset");
  4. a dense grid of ~2,000 surface points of the canonical face (visible
     ones scored);
  5. off-surface points: a grid 5% of the head half-width behind the
     surface, along the normal (visible ones scored);
and the confidence: Spearman correlation of σ with the error, calibration
P(|e| <= kσ) against the 2D Gaussian's 1 - exp(-k²/2) for k = 1, 2, 3, and
σ of visible vs self-occluded dense points. With `--tufa RUN`, a TUFA run
folder is measured on the same faces (its trained layouts, and zero-shot
syn19 from the layout's 2D mean shape on other faces), side by side.

NME normalisers: the layout's outer eye corners for 1-2; syn98's (the same
physical points, no convention) for 3-5. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from jaxlm import layouts, metrics
from jaxlm.data import pipeline
from jaxlm.data.synthetic import SyntheticFaces, canonical
from jaxlm.inference import Predictor, make_predict

TRAINED = ('syn98', 'syn68', 'syn29')


def query_sets():
  """{name: (Queries, normalising layout)} of every measured set."""
  sets = {l: (canonical.layout_queries(l), l) for l in TRAINED + ('syn19',)}
  jaw = canonical.curve_queries('jaw', 0, np.linspace(-1, 1, 65))
  eyes = [canonical.curve_queries('eye', s, np.arange(16) * np.pi / 8)
          for s in (-1, 1)]
  sets['curves (65 jaw + 2x16 eye)'] = (jaw + eyes[0] + eyes[1], 'syn98')
  sets['dense grid'] = (canonical.surface_queries(canonical.grid_uv(0.032)),
                        'syn98')
  sets['off-surface (5% behind)'] = (canonical.surface_queries(
      canonical.grid_uv(0.064), 0.05), 'syn98')
  return sets


def spearman(a, b):
  ra = np.argsort(np.argsort(a)).astype(np.float64)
  rb = np.argsort(np.argsort(b)).astype(np.float64)
  return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', default='workdirs/queries3d_demo')
  p.add_argument('--tufa', default='', help='a TUFA run folder to compare')
  p.add_argument('--faces', type=int, default=128)
  p.add_argument('--seed', type=int, default=201)
  p.add_argument('--batch', type=int, default=16)
  args = p.parse_args(argv)

  pred = Predictor(args.workdir)
  size = pred.size
  faces = SyntheticFaces('syn98', args.faces, seed=args.seed, image_size=size)
  sets = query_sets()
  print(f'# {args.workdir} (step {pred.step}), {args.faces} held-out faces '
        f'(seed {args.seed}), {size} px, jax {jax.__version__} on '
        f'{jax.default_backend()}')
  t0 = time.time()
  predict = jax.jit(make_predict(pred.model, pred.family))
  truth = {k: [faces.project_queries(i, q) for i in range(args.faces)]
           for k, (q, _) in sets.items()}
  eyes = {k: list(layouts.get(lay).outer_eye_corners)
          for k, (_, lay) in sets.items()}
  # the normaliser's points on each face (the layout's own eye corners)
  norm = {k: np.array([
      layouts.inter_ocular(faces.project_queries(
          i, canonical.layout_queries(lay))['points'], eyes[k])
      for i in range(args.faces)]) for k, (_, lay) in sets.items()}
  rows, conf = {}, {}
  for k, (q, _) in sets.items():
    prompts = q.canonical()
    errs, sig, vis = [], [], []
    for start in range(0, args.faces, args.batch):
      idx = range(start, min(start + args.batch, args.faces))
      images = np.stack([faces[i]['image'] for i in idx])
      mu, std = predict(pred.variables, images, prompts)
      mu, std = np.asarray(mu) * size, np.asarray(std)[..., 0] * size
      for j, i in enumerate(idx):
        t = truth[k][i]
        errs.append(np.linalg.norm(mu[j] - t['points'], axis=-1) /
                    norm[k][i])
        sig.append(std[j] / norm[k][i])
        vis.append(t['visible'])
    errs, sig, vis = map(np.stack, (errs, sig, vis))
    scored = vis if k not in TRAINED + ('syn19',) else np.ones_like(vis)
    face_nme = np.array([e[s].mean() for e, s in zip(errs, scored)])
    rows[k] = (100 * face_nme.mean(), 100 * np.mean(face_nme > 0.1),
               len(prompts), float(vis.mean()))
    conf[k] = (errs, sig, vis)
  print(f'({time.time() - t0:.0f} s)\n')

  tufa = {}
  if args.tufa:
    tufa = tufa_rows(args.tufa, faces, args)
  print('| queries | points | visible % | NME % | FR@0.1 % | TUFA NME % |')
  print('|---|---|---|---|---|---|')
  for k, (nme, fr, n, v) in rows.items():
    note = ' (zero-shot)' if k == 'syn19' else ''
    t = f'{tufa[k]:.2f}' if k in tufa else '—'
    print(f'| {k}{note} | {n} | {100 * v:.1f} | {nme:.2f} | {fr:.1f} | '
          f'{t} |')

  errs, sig, vis = conf['dense grid']
  e, s, v = errs.ravel(), sig.ravel(), vis.ravel()
  print('\nConfidence on the dense grid (all points, visible or not):')
  print(f'  Spearman(σ, error) = {spearman(s, e):.3f} (visible only '
        f'{spearman(s[v], e[v]):.3f})')
  for kk in (1, 2, 3):
    # an isotropic 2D Gaussian: P(|e| <= kσ) = 1 - exp(-k²/2)
    print(f'  P(|e| <= {kk}σ) = {np.mean(e <= kk * s):.3f} (Gaussian '
          f'{1 - np.exp(-kk * kk / 2):.3f})')
  print(f'  mean σ / iod: visible {s[v].mean():.4f}, self-occluded '
        f'{s[~v].mean() if (~v).any() else float("nan"):.4f} '
        f'({100 * (~v).mean():.1f}% of points); mean error: visible '
        f'{e[v].mean():.4f}, self-occluded '
        f'{e[~v].mean() if (~v).any() else float("nan"):.4f}')


def tufa_rows(workdir, faces, args):
  """TUFA's NME on the same faces: trained layouts from its prompts, syn19
  zero-shot from the layout's mean shape on other faces."""
  tp = Predictor(workdir)
  predict = jax.jit(make_predict(tp.model, tp.family, False))
  size = faces.image_size
  if tp.size != size:
    print(f'(TUFA run at {tp.size} px, queries3d at {size} px: TUFA is '
          f'measured on its own renders of the same faces)')
  view = SyntheticFaces('syn98', args.faces, seed=args.seed,
                        image_size=tp.size)
  out = {}
  names = [d for d, _ in tp.datasets]
  for lay in TRAINED + ('syn19',):
    if lay in [tp.config.data.train[d].layout for d in names]:
      prompts = tp.prompts(lay)
    else:
      calib = SyntheticFaces(lay, 512, seed=args.seed + 1000,
                             image_size=tp.size)
      prompts = pipeline.mean_shape(calib, 512, tp.size)
    q = canonical.layout_queries(lay)
    eyes = list(layouts.get(lay).outer_eye_corners)
    nmes = []
    for start in range(0, args.faces, args.batch):
      idx = range(start, min(start + args.batch, args.faces))
      images = np.stack([view[i]['image'] for i in idx])
      mu = np.asarray(predict(tp.variables, images, prompts)[0]) * tp.size
      for j, i in enumerate(idx):
        t = view.project_queries(i, q)['points']
        nmes.append(metrics.nme(mu[j][None], t[None], layouts.inter_ocular(
            t[None], eyes), np.ones((1, len(t)), bool))[0])
    out[lay] = 100 * float(np.mean(nmes))
  return out


if __name__ == '__main__':
  main()
