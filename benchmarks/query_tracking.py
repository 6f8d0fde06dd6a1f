r"""Tracking clicked points with optimised 3D queries vs Lucas-Kanade flow.

  python benchmarks/query_tracking.py --workdir workdirs/queries3d_demo

Paper 002 §4.2 and Fig. 7: a user clicks points on one frame of a video;
query optimisation (`jaxlm/query_optimization.py`) finds their 3D queries,
which the model then predicts on every frame, against frame-to-frame
optical flow. Here the video is exact: for each of `--identities`
synthetic people (`SyntheticFaces.render_pose`: one identity and look), a
`--frames`-frame sequence turns the head from yaw 0 to ±`--max-yaw`
(alternating sides) with a small pitch nod, each frame framed as the
dataset frames faces (the image is the model input; `--fixed-camera`
keeps frame 0's scale and centre instead). The clicks are fixed surface
points (u, v) of the canonical face C (`POINTS`: eye corners, nose tip,
mouth corners, cheeks, a jaw point), carried to each identity by the
warp, so their true pixels and self-occlusion flags are known on every
frame (`project_queries(..., pose=)`).

Methods, from the true pixels of frame 0:
  query: optimise the K queries on frame 0 (Adam, `--steps`), predict them
    on every frame (one batched forward pass);
  C's point (no fit): the canonical query of the surface point itself
    (what a user who knew the point on C would ask; the model's own
    tracking error, without the fit);
  LK: OpenCV's pyramidal Lucas-Kanade (`cv2.calcOpticalFlowPyrLK`,
    winSize 15x15, maxLevel 3), frame to frame from frame 0 on grey
    images; a point LK loses (status 0) keeps its last position.

Errors on frames 1.. in pixels of the model input and as NME (% of that
frame's inter-ocular distance: syn98's outer eye corners), separately
where the point is visible and where it is self-occluded (occluders are
off). Prints one Markdown table and the command line.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import jax
import numpy as np

from jaxlm import layouts
from jaxlm.data.synthetic import SyntheticFaces, canonical
from jaxlm.inference import Predictor, make_predict
from jaxlm.query_optimization import QueryOptimizer

# The clicked points: surface coordinates (u, v) of C (u < 0: the image's
# left at yaw 0; the eye and mouth corners are syn98's points on C).
POINTS = {
    'outer eye corner L': (-0.41, -0.066),
    'inner eye corner L': (-0.21, -0.074),
    'inner eye corner R': (0.21, -0.074),
    'outer eye corner R': (0.41, -0.066),
    'nose tip': (0.0, 0.25),
    'mouth corner L': (-0.19, 0.47),
    'mouth corner R': (0.19, 0.47),
    'cheek L': (-0.5, 0.3),
    'cheek R': (0.5, 0.3),
    'jaw L': (-0.697, 0.714),
}
LK_PARAMS = dict(winSize=(15, 15), maxLevel=3,
                 criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT,
                           30, 0.01))


def sequence_angles(identity: int, frames: int, max_yaw: float,
                    max_pitch: float) -> np.ndarray:
  """(F, 3) yaw, pitch, roll (degrees): yaw 0 -> ±max_yaw (the side
  alternates by identity), pitch one nod of ±max_pitch."""
  t = np.linspace(0.0, 1.0, frames)
  side = 1.0 if identity % 2 == 0 else -1.0
  return np.stack([side * max_yaw * t, max_pitch * np.sin(2 * np.pi * t),
                   np.zeros(frames)], -1)


def render_sequence(faces, index, angles, queries, fixed_camera=False):
  """Frames (F, S, S, 3) of one identity, the truth of `queries` on each
  (F, K, 2) pixels and (F, K) visible, and each frame's inter-ocular
  distance (F,) in pixels. Each frame is framed by the dataset's rule, or
  (`fixed_camera`) as frame 0."""
  eyes = list(layouts.get('syn98').outer_eye_corners)
  syn98 = canonical.layout_queries('syn98')
  images, points, visible, iod = [], [], [], []
  first = None
  for yaw, pitch, roll in angles:
    frame = faces.render_pose(index, yaw, pitch, roll, keep_framing=first)
    if fixed_camera and first is None:
      first = frame['pose']
    truth = faces.project_queries(index, queries, pose=frame['pose'])
    ref = faces.project_queries(index, syn98, pose=frame['pose'])['points']
    images.append(frame['image'])
    points.append(truth['points'])
    visible.append(truth['visible'])
    iod.append(layouts.inter_ocular(ref, eyes))
  return (np.stack(images), np.stack(points), np.stack(visible),
          np.array(iod))


def track_lk(images, start) -> np.ndarray:
  """(F, K, 2) Lucas-Kanade tracks of `start` (K, 2) pixels of frame 0."""
  grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
  pts = np.asarray(start, np.float32).reshape(-1, 1, 2)
  out = [pts[:, 0].copy()]
  for prev, nxt in zip(grey[:-1], grey[1:]):
    new, status, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, pts, None,
                                              **LK_PARAMS)
    ok = status.reshape(-1).astype(bool)
    pts = np.where(ok[:, None, None], new, pts).astype(np.float32)
    out.append(pts[:, 0].copy())
  return np.stack(out)


def summary(err_px, iod, visible):
  """{(visible|self-occluded|all): (point-frames, NME %, error px)} over
  frames 1.. of (N, F, K) errors."""
  err, vis = err_px[:, 1:], visible[:, 1:]
  nme = 100 * err / iod[:, 1:, None]
  rows = {}
  for name, sel in (('visible', vis), ('self-occluded', ~vis),
                    ('all', np.ones_like(vis))):
    n = int(sel.sum())
    rows[name] = (n, float(nme[sel].mean()) if n else float('nan'),
                  float(err[sel].mean()) if n else float('nan'))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', default='workdirs/queries3d_demo')
  p.add_argument('--identities', type=int, default=8)
  p.add_argument('--frames', type=int, default=21)
  p.add_argument('--max-yaw', type=float, default=55.0)
  p.add_argument('--max-pitch', type=float, default=8.0)
  p.add_argument('--seed', type=int, default=301)
  p.add_argument('--steps', type=int, default=150, help='Adam steps')
  p.add_argument('--fixed-camera', action='store_true',
                 help="keep frame 0's scale and centre (no reframing)")
  args = p.parse_args(argv)

  pred = Predictor(args.workdir)
  size = pred.size
  faces = SyntheticFaces('syn98', args.identities, seed=args.seed,
                         image_size=size)
  queries = canonical.surface_queries(np.array(list(POINTS.values())))
  opt = QueryOptimizer(pred, args.steps)
  predict = jax.jit(make_predict(pred.model, pred.family, False))
  t0 = time.time()
  errs = {'query (ours)': [], "C's point (no fit)": [], 'Lucas-Kanade': []}
  iods, vis, fit_res, start_res = [], [], [], []
  for i in range(args.identities):
    angles = sequence_angles(i, args.frames, args.max_yaw, args.max_pitch)
    images, truth, visible, iod = render_sequence(
        faces, i, angles, queries, args.fixed_camera)
    fit = opt(images[0], truth[0])
    fit_res.append(fit.residual)
    start_res.append(np.sqrt(fit.loss[0]) * size)
    mu = np.asarray(predict(pred.variables, images, fit.queries)[0]) * size
    mu_c = np.asarray(predict(pred.variables, images,
                              queries.canonical())[0]) * size
    lk = track_lk(images, truth[0])
    errs['query (ours)'].append(np.linalg.norm(mu - truth, axis=-1))
    errs["C's point (no fit)"].append(np.linalg.norm(mu_c - truth, axis=-1))
    errs['Lucas-Kanade'].append(np.linalg.norm(lk - truth, axis=-1))
    iods.append(iod)
    vis.append(visible)
  iods, vis = np.stack(iods), np.stack(vis)
  fit_res, start_res = np.stack(fit_res), np.stack(start_res)

  print(f'# {args.workdir} (step {pred.step}, {size} px), '
        f'{args.identities} identities x {args.frames} frames (yaw 0 -> '
        f'±{args.max_yaw:g}°, pitch ±{args.max_pitch:g}°, '
        f'{"fixed camera" if args.fixed_camera else "reframed"}), '
        f'{len(POINTS)} clicked points; jax {jax.__version__} on '
        f'{jax.default_backend()} ({time.time() - t0:.0f} s)')
  print(f'# query fit on frame 0: residual mean {fit_res.mean():.3f} px '
        f'(max {fit_res.max():.3f}), from the dense sample\'s '
        f'{start_res.mean():.2f} px; mean inter-ocular distance '
        f'{iods.mean():.1f} px\n')
  print('| method | points (frames 1..) | point-frames | NME % (iod) | '
        'error px |')
  print('|---|---|---|---|---|')
  for method, e in errs.items():
    for where, (n, nme, px) in summary(np.stack(e), iods, vis).items():
      print(f'| {method} | {where} | {n} | {nme:.2f} | {px:.2f} |')
  cmd = sys.argv[1:] if argv is None else list(argv)
  print(f"\n$ python benchmarks/query_tracking.py {' '.join(cmd)}".rstrip())


if __name__ == '__main__':
  main()
