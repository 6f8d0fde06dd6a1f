"""Landmark metrics: NME with the standard normalisers, FR, AUC, CED.

All functions are NumPy (evaluation aggregates on the host). Landmarks are
(B, N, 2) in any consistent unit (pixels of the original image for reported
numbers); NMEs are fractions (multiply by 100 for %).
"""

from __future__ import annotations

import numpy as np

from jaxlm import layouts as layouts_lib

NORMALISERS = ('inter_ocular', 'inter_pupil', 'box', 'box_diag')


def _pupil_centres(gt, layout):
  return [gt[:, list(idx)].mean(axis=1) for idx in layout.pupils]


def normaliser(gt, layout: layouts_lib.Layout | str, kind='inter_ocular',
               boxes=None):
  """Per-sample normalising distance (B,).

  inter_ocular: distance between the outer eye corners (WFLW 60/72, 300W
  36/45, COFW 8/9). inter_pupil: between pupil centres (WFLW 96/97, COFW
  16/17, 300W the means of points 36-41 and 42-47). box: sqrt(w * h) of the
  ground-truth box (x0, y0, x1, y1); box_diag: its diagonal.
  """
  if isinstance(layout, str):
    layout = layouts_lib.get(layout)
  gt = np.asarray(gt, np.float64)
  if kind == 'inter_ocular':
    return layouts_lib.inter_ocular(gt, layout.outer_eye_corners)
  if kind == 'inter_pupil':
    a, b = _pupil_centres(gt, layout)
    return np.linalg.norm(a - b, axis=-1)
  if kind in ('box', 'box_diag'):
    if boxes is None:
      raise ValueError(f'normaliser {kind!r} needs ground-truth boxes')
    boxes = np.asarray(boxes, np.float64)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.sqrt(w * h) if kind == 'box' else np.sqrt(w * w + h * h)
  raise ValueError(f'unknown normaliser {kind!r}; known: {NORMALISERS}')


def nme(pred, gt, norm, mask=None):
  """Per-sample NME (B,): mean point-to-point distance / norm.

  mask (B, N) selects the points that count (e.g. visible ones, or those
  with a position: points outside the mask may be NaN); samples with no
  counted point get NaN.
  """
  pred = np.asarray(pred, np.float64)
  gt = np.asarray(gt, np.float64)
  d = np.linalg.norm(pred - gt, axis=-1)
  if mask is None:
    mean = d.mean(-1)
  else:
    mask = np.asarray(mask, bool)
    with np.errstate(invalid='ignore', divide='ignore'):
      mean = np.where(mask, d, 0.0).sum(-1) / mask.sum(-1)
  return mean / np.asarray(norm, np.float64)


def failure_rate(nmes, alpha=0.1):
  """FR@alpha: fraction of samples with NME > alpha."""
  return float(np.mean(np.asarray(nmes) > alpha))


def ced(nmes, alpha=0.1, step=1e-4):
  """Cumulative error distribution on the grid [0, alpha] (step 1e-4)."""
  nmes = np.sort(np.asarray(nmes, np.float64))
  grid = np.linspace(0.0, alpha, int(round(alpha / step)) + 1)
  frac = np.searchsorted(nmes, grid, side='right') / len(nmes)
  return grid, frac


def _simpson(y, x):
  """Composite Simpson's rule on a uniform grid (trapezoid on an odd tail)."""
  n = len(x) - 1
  h = x[1] - x[0]
  m = n - (n % 2)
  s = (y[0] + y[m] + 4 * y[1:m:2].sum() + 2 * y[2:m - 1:2].sum()) * h / 3
  if n % 2:
    s += 0.5 * h * (y[-2] + y[-1])
  return s


def auc(nmes, alpha=0.1, step=1e-4):
  """AUC@alpha: Simpson integral of the CED over [0, alpha], divided by alpha."""
  grid, frac = ced(nmes, alpha, step)
  return float(_simpson(frac, grid) / alpha)


def summarize(nmes, alpha=0.1) -> dict:
  """{'nme', 'fr', 'auc', 'count'} of per-sample NMEs (NaNs dropped)."""
  nmes = np.asarray(nmes, np.float64)
  nmes = nmes[np.isfinite(nmes)]
  if not len(nmes):
    return dict(nme=float('nan'), fr=float('nan'), auc=float('nan'), count=0)
  return dict(nme=float(nmes.mean()), fr=failure_rate(nmes, alpha),
              auc=auc(nmes, alpha), count=int(len(nmes)))


def breakdown(nmes, subsets: dict[str, np.ndarray], alpha=0.1) -> dict:
  """summarize() per named boolean subset mask (e.g. WFLW's attributes)."""
  nmes = np.asarray(nmes)
  return {k: summarize(nmes[np.asarray(m, bool)], alpha)
          for k, m in subsets.items()}


def jitter(pred, gt, norm) -> float:
  """Temporal jitter of a landmark track: the mean over frames t >= 1 and
  landmarks of |e_t - e_{t-1}| / norm_t, e = pred - gt (the true motion
  removed). pred, gt: (T, N, 2); norm: (T,) (e.g. the inter-ocular
  distance of each frame) or a scalar."""
  e = np.asarray(pred, np.float64) - np.asarray(gt, np.float64)
  step = np.linalg.norm(np.diff(e, axis=0), axis=-1).mean(-1)
  norm = np.broadcast_to(np.asarray(norm, np.float64), (len(e),))
  return float(np.mean(step / norm[1:]))
