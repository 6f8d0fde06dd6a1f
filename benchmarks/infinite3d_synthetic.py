r"""Infinite 3D landmarks (paper 001), measured exactly on synthetic faces.

  python benchmarks/infinite3d_synthetic.py \
      --workdir workdirs/infinite3d_demo \
      --queries3d workdirs/queries3d_demo --tufa workdirs/demo

Held-out loosely framed faces (`loose_framing`: the face 2-3x smaller than
the crop rule's and shifted up to ±25%, their own seed) have exact truth for
everything the model predicts. One `infinite3d` run folder is measured on:

  1. detector-free landmarks: inter-ocular NME (%) per trained layout on
     the loose images, against the same model on box-rule crops (1.2 x the
     true 98-point box) and on the crop rule after OpenCV's Haar cascade
     (what `jaxlm predict` uses; faces it misses are counted); the fraction
     of true landmarks inside the predicted RoI;
  2. head pose: geodesic rotation error (degrees) of the predicted head
     rotation (S's in-plane rotation composed) against the renderer's, and
     the per-angle MAE of yaw / pitch / roll;
  3. 3D shape: the predicted 3D landmarks in the camera frame against the
     true camera-frame points, after a similarity Procrustes alignment,
     normalised by the true 3D outer-eye-corner distance (%);
  4. visibility from the predicted 3D: a point is visible where the
     canonical surface normal at its query, rotated by the predicted pose,
     faces the camera (back-facing test only, the camera 8 head units away
     on the optical axis; no depth test),
     against the renderer's self-occlusion flags (accuracy, F1 of
     "visible");
  5. the query deformer D (trained with `data.semantic_queries`: tables
     without the layouts' conventions): D_j(p) - p against the true
     convention offset of layout j relative to the reference dataset's, in
     3D on the canonical face; and predictions with D left out (the
     semantic table as prompts) against convention-free truth;
  6. temporal stability on synthetic video (`SyntheticFaces.video`, one
     identity and look along a smooth pose/expression path, loose frames):
     jitter = mean over frames of |e_t - e_{t-1}| / iod with e = prediction
     - truth (true motion removed), and static jitter over copies of one
     frame with independent pixel noise; for this model, and with
     `--queries3d` / `--tufa`, those run folders on box-rule crops of the
     true box of every frame; each also through a One-Euro filter
     (`jaxlm/one_euro.py`).

Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jaxlm import layouts
from jaxlm.metrics import jitter
from jaxlm.data import query_tables
from jaxlm.data.synthetic import SyntheticFaces, canonical, render
from jaxlm.data.synthetic import template
from jaxlm.errors import JaxlmError
from jaxlm.inference import Predictor
from jaxlm.one_euro import filter_track

TRAINED = ('syn98', 'syn68', 'syn29')


def iod(points, layout):
  a, b = layouts.get(layout).outer_eye_corners
  return float(np.linalg.norm(points[a] - points[b]))


def tight_box(faces, i, pose=None, face=None):
  """The 98-point landmark box (x0, y0, x1, y1) of item i: the crop rule's
  'true box'."""
  p = faces.project_queries(i, canonical.layout_queries('syn98'), pose=pose,
                            face=face)['points']
  return (*p.min(0), *p.max(0))


def inside(points, quad):
  """(N,) bool: points inside the convex quadrilateral `quad` (4, 2)."""
  ok = np.ones(len(points), bool)
  for k in range(4):
    a, b = quad[k], quad[(k + 1) % 4]
    cross = ((b[0] - a[0]) * (points[:, 1] - a[1]) -
             (b[1] - a[1]) * (points[:, 0] - a[0]))
    ok &= cross >= 0
  return ok


def geodesic_deg(r1, r2):
  c = (np.trace(r1.T @ r2) - 1) / 2
  return float(np.degrees(np.arccos(np.clip(c, -1, 1))))


def procrustes_error(pred, truth):
  """Mean distance after the similarity that best maps pred onto truth."""
  p, t = pred - pred.mean(0), truth - truth.mean(0)
  u, s, vt = np.linalg.svd(p.T @ t)
  d = np.sign(np.linalg.det(u @ vt))
  s[-1] *= d
  u[:, -1] *= d
  r = u @ vt
  scale = s.sum() / (p ** 2).sum()
  return float(np.linalg.norm(scale * p @ r - t, axis=-1).mean())


def predict(pred, image, prompts, box=None, crop=None):
  """`Predictor.detect` of one image (landmarks in image pixels and the
  family's description): the crop rule on `box`, the whole image without
  one, or with crop=True and no box the Haar cascade's face (None when it
  finds none)."""
  try:
    return pred.detect(image, prompts, box=box,
                       crop=box is not None if crop is None else crop)
  except JaxlmError:  # the cascade found no face
    return None


def section_landmarks(pred, args):
  print('\n## 1. Detector-free landmarks (inter-ocular NME %, loose '
        'images)\n')
  print('| layout | S on the loose image | box-rule crop (true box) | '
        'Haar + crop rule (found %) | true points in the RoI % |')
  print('|---|---|---|---|---|')
  rows = {}
  for k, layout in enumerate(TRAINED):
    faces = SyntheticFaces(layout, args.faces, seed=args.seed + k,
                           image_size=pred.size, loose_framing=True)
    prompts = pred.prompts(layout)
    e_s, e_box, e_haar, found, cover = [], [], [], 0, []
    for i in range(args.faces):
      item = faces[i]
      gt = item['landmarks']
      norm = iod(gt, layout)
      out = predict(pred, item['image'], prompts)
      e_s.append(np.linalg.norm(out['landmarks'] - gt, axis=-1).mean() /
                 norm)
      cover.append(inside(gt, out['described']['roi']).mean())
      out = predict(pred, item['image'], prompts, tight_box(faces, i))
      e_box.append(np.linalg.norm(out['landmarks'] - gt, axis=-1).mean() /
                   norm)
      out = predict(pred, item['image'], prompts, crop=True)
      if out is not None:
        found += 1
        e_haar.append(np.linalg.norm(out['landmarks'] - gt, axis=-1).mean()
                      / norm)
    rows[layout] = np.mean(e_s)
    h = f'{100 * np.mean(e_haar):.2f}' if e_haar else '—'
    print(f'| {layout} | {100 * np.mean(e_s):.2f} | '
          f'{100 * np.mean(e_box):.2f} | {h} ({100 * found / args.faces:.0f})'
          f' | {100 * np.mean(cover):.2f} |')
  return rows


def section_pose_shape_visibility(pred, args):
  layout = 'syn98'
  faces = SyntheticFaces(layout, args.faces, seed=args.seed,
                         image_size=pred.size, loose_framing=True)
  prompts = pred.prompts(layout)
  q_sem = canonical.layout_queries(layout, convention=False)
  uv_c = q_sem.uv_on(canonical.CANONICAL)
  normals = render.surface_normals(uv_c[:, 0], uv_c[:, 1],
                                   canonical.CANONICAL)
  geo, ang, shape, vis_p, vis_t = [], [], [], [], []
  geo0, shape0 = [], []  # baselines: a frontal head, the template itself
  template_pts = q_sem.canonical().astype(np.float64)
  for i in range(args.faces):
    item = faces[i]
    out = predict(pred, item['image'], prompts)
    d = out['described']
    if 'rotation' not in d:
      print('\n(2D head: no pose, 3D shape or visibility)')
      return
    cam = faces.geometry(i).camera
    r_pred = np.asarray(d['rotation'], np.float64)
    geo.append(geodesic_deg(r_pred, cam.rotation))
    geo0.append(geodesic_deg(np.eye(3), cam.rotation))
    pose = np.array([d['head_pose/yaw'], d['head_pose/pitch'],
                     d['head_pose/roll']], np.float64)
    ang.append(np.abs(pose - np.array(cam.euler)))
    truth = faces.camera_points(i, canonical.layout_queries(layout))
    l3 = np.asarray(d['landmarks3d'], np.float64)
    x_pred = l3 @ r_pred.T
    a, b = layouts.get(layout).outer_eye_corners
    shape.append(procrustes_error(x_pred, truth) /
                 np.linalg.norm(truth[a] - truth[b]))
    shape0.append(procrustes_error(template_pts, truth) /
                  np.linalg.norm(truth[a] - truth[b]))
    # back-facing test: camera at the origin of X = R L + t; the view
    # direction from a point is -X; the normal rotates with R
    x_cam = x_pred + np.asarray([0.0, 0.0, -8.0])
    n_cam = normals @ r_pred.T
    vis_p.append(np.einsum('ij,ij->i', n_cam, -x_cam) > 0)
    vis_t.append(item['visible'])
  ang = np.mean(ang, axis=0)
  print('\n## 2. Head pose (syn98 loose faces, degrees)\n')
  print('| geodesic mean | median | yaw MAE | pitch MAE | roll MAE | '
        'frontal guess, geodesic mean |')
  print('|---|---|---|---|---|---|')
  print(f'| {np.mean(geo):.2f} | {np.median(geo):.2f} | {ang[0]:.2f} | '
        f'{ang[1]:.2f} | {ang[2]:.2f} | {np.mean(geo0):.2f} |')
  print('\n## 3. 3D shape (Procrustes-aligned, % of the 3D outer-eye '
        'distance)\n')
  print(f'mean {100 * np.mean(shape):.2f}, median '
        f'{100 * np.median(shape):.2f} (the canonical template itself: '
        f'{100 * np.mean(shape0):.2f})')
  vp, vt = np.concatenate(vis_p), np.concatenate(vis_t)
  tp = np.sum(vp & vt)
  f1 = 2 * tp / max(np.sum(vp) + np.sum(vt), 1)
  print('\n## 4. Visibility from the predicted 3D (back-facing test)\n')
  tn = np.sum(~vp & ~vt)
  print(f'accuracy {100 * np.mean(vp == vt):.2f}% ("all visible": '
        f'{100 * np.mean(vt):.2f}%), F1(visible) {100 * f1:.2f}%, '
        f'self-occluded points found {100 * tn / max(np.sum(~vt), 1):.1f}% '
        f'(truly self-occluded {100 * np.mean(~vt):.1f}% of points, '
        f'predicted {100 * np.mean(~vp):.1f}%)')


def section_deformer(pred, args):
  names = [d for d, _ in pred.datasets]
  if 'query_deformer' not in pred.variables['params']:
    print('\n## 5. Query deformer: not in this model')
    return
  ref = pred.config.model.deformer_reference or names[0]
  print(f'\n## 5. Query deformer (reference {ref})\n')
  print('| layout | mean ‖D_j(p) − p‖ | mean ‖true offset‖ | mean ‖D − '
        'truth‖ | NME % with D | NME % without D (vs convention-free '
        'truth) |')
  print('|---|---|---|---|---|---|')
  ref_layout = pred.config.data.train[ref].layout
  for k, name in enumerate(names):
    layout = pred.config.data.train[name].layout
    sem = query_tables.layout_queries(layout, semantic=True)
    moved = np.asarray(pred.prompts(name))
    conv = query_tables.layout_queries(layout)
    # the reference's convention moves the shared frame at its groups
    offset = conv - sem
    ref_offset = np.zeros_like(offset)
    ref_groups = template.conventions(ref_layout)
    spec = layouts.get(layout)
    for group, (du, dv) in ref_groups.items():
      if group not in spec.groups:
        continue
      idx = np.asarray(spec.groups[group])
      uv = template.layout_uv(layout, canonical.CANONICAL, convention=False)
      uv2 = uv.copy()
      uv2[idx, 0] += np.sign(uv[idx, 0]) * du
      uv2[idx, 1] += dv
      p0 = template.surface(uv[idx, 0], uv[idx, 1], canonical.CANONICAL)
      p1 = template.surface(uv2[idx, 0], uv2[idx, 1], canonical.CANONICAL)
      ref_offset[idx] = p1 - p0
    want = offset - ref_offset
    got = moved - sem
    faces = SyntheticFaces(layout, args.faces // 2, seed=args.seed + 10 + k,
                           image_size=pred.size, loose_framing=True)
    with_d, without_d = [], []
    free = canonical.layout_queries(layout, convention=False)
    for i in range(len(faces)):
      item = faces[i]
      gt = item['landmarks']
      norm = iod(gt, layout)
      out = predict(pred, item['image'], moved)
      with_d.append(np.linalg.norm(out['landmarks'] - gt, axis=-1).mean() /
                    norm)
      gt_free = faces.project_queries(i, free)['points']
      out = predict(pred, item['image'], sem)
      without_d.append(np.linalg.norm(out['landmarks'] - gt_free,
                                      axis=-1).mean() / norm)
    print(f'| {name} | {np.linalg.norm(got, axis=-1).mean():.4f} | '
          f'{np.linalg.norm(want, axis=-1).mean():.4f} | '
          f'{np.linalg.norm(got - want, axis=-1).mean():.4f} | '
          f'{100 * np.mean(with_d):.2f} | {100 * np.mean(without_d):.2f} |')


def section_video(runs, args):
  layout = 'syn98'
  faces = SyntheticFaces(layout, args.videos, seed=args.seed + 50,
                         image_size=runs[0][1].size, loose_framing=True)
  filt = dict(rate=30.0, min_cutoff=args.min_cutoff, beta=args.beta)
  print(f'\n## 6. Temporal stability ({args.videos} videos x '
        f'{args.frames} frames, {layout}; jitter % of iod per frame)\n')
  print('| model | input | NME % | jitter | jitter, One-Euro | static jitter '
        '| static, One-Euro |')
  print('|---|---|---|---|---|---|---|')
  for name, pred, loose in runs:
    prompts = pred.prompts(layout)
    res = dict(nme=[], jit=[], jit_f=[], st=[], st_f=[])
    for v in range(args.videos):
      vid = faces.video(v, args.frames)
      truth = vid['landmarks']
      norms = np.array([iod(t, layout) for t in truth])
      tracks = []
      for t in range(args.frames):
        box = None if loose else tight_box(
            faces, v, pose=vid['poses'][t], face=vid['faces'][t])
        tracks.append(predict(pred, vid['images'][t], prompts,
                              box)['landmarks'])
      tracks = np.stack(tracks).astype(np.float64)
      # One-Euro on pixels of a face ~iod; beta scaled by 1 / iod
      kw = dict(filt, beta=filt['beta'] / norms.mean())
      res['nme'].append(np.mean(np.linalg.norm(tracks - truth, axis=-1)
                                .mean(-1) / norms))
      res['jit'].append(jitter(tracks, truth, norms))
      res['jit_f'].append(jitter(filter_track(tracks, **kw), truth, norms))
      copies = faces.static_copies(v, args.copies)
      box = None if loose else tight_box(faces, v)
      st = np.stack([predict(pred, im, prompts, box)['landmarks']
                     for im in copies['images']]).astype(np.float64)
      st_truth = np.broadcast_to(copies['landmarks'], st.shape)
      st_norm = np.full(len(st), iod(copies['landmarks'], layout))
      res['st'].append(jitter(st, st_truth, st_norm))
      res['st_f'].append(jitter(filter_track(st, **kw), st_truth, st_norm))
    m = {k: 100 * np.mean(v) for k, v in res.items()}
    what = 'loose frame (S)' if loose else 'box-rule crop, true box'
    print(f'| {name} | {what} | {m["nme"]:.2f} | {m["jit"]:.3f} | '
          f'{m["jit_f"]:.3f} | {m["st"]:.3f} | {m["st_f"]:.3f} |')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', default='workdirs/infinite3d_demo')
  p.add_argument('--queries3d', default='', help='a queries3d run folder')
  p.add_argument('--tufa', default='', help='a TUFA run folder')
  p.add_argument('--faces', type=int, default=128)
  p.add_argument('--seed', type=int, default=301)
  p.add_argument('--videos', type=int, default=4)
  p.add_argument('--frames', type=int, default=48)
  p.add_argument('--copies', type=int, default=8)
  p.add_argument('--min-cutoff', type=float, default=1.0)
  p.add_argument('--beta', type=float, default=0.5)
  p.add_argument('--only', default='', help='comma-separated sections')
  args = p.parse_args(argv)
  pred = Predictor(args.workdir)
  only = set(args.only.split(',')) if args.only else set('123456')
  print(f'# {args.workdir} (step {pred.step}), {args.faces} held-out loose '
        f'faces per layout (seed {args.seed}), {pred.size} px')
  t0 = time.time()
  if '1' in only:
    section_landmarks(pred, args)
  if only & set('234'):
    section_pose_shape_visibility(pred, args)
  if '5' in only:
    section_deformer(pred, args)
  if '6' in only:
    runs = [('infinite3d', pred, True)]
    for label, folder in (('queries3d', args.queries3d),
                          ('tufa', args.tufa)):
      if folder:
        runs.append((label, Predictor(folder), False))
    section_video(runs, args)
  print(f'\n({time.time() - t0:.0f} s)')


if __name__ == '__main__':
  main()
