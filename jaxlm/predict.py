"""`jaxlm predict`: one image -> landmarks in image pixels, overlay, JSON.

The model side is `inference.Predictor`; this module reads the image,
chooses the prompts and writes what the command promises.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from jaxlm import plots
from jaxlm.errors import JaxlmError
from jaxlm.inference import (Predictor, add_description, detect_faces,
                             load_image)

log = logging.getLogger('jaxlm')


def parse_box(text: str) -> list[float]:
  """'x0,y0,x1,y1' -> four floats, or JaxlmError."""
  try:
    box = [float(v) for v in text.split(',')]
  except ValueError:
    box = []
  if len(box) != 4:
    raise JaxlmError(f'--box {text!r}: expected x0,y0,x1,y1')
  return box


def predict_image(checkpoint, image_path, *, box=None, crop: str = 'face',
                  layout: str | None = None, out: str | None = None,
                  json_path: str | None = None,
                  detector: str = 'haar') -> dict:
  """Predicts the landmarks of one image with a run folder's model.

  Args:
    checkpoint: a run folder or one of its step folders.
    box: 'x0,y0,x1,y1' face box in image pixels (default: the largest
      face `detector` finds: 'haar' or 'blazeface[-short|-back]',
      `inference.detect_faces`).
    crop: 'face' (crop the box by the official rule) or 'none' (the image
      is the model input).
    layout: a training dataset or layout name, or an (N, 2) `.npy` of
      prompts in [0, 1] crop units (default: the first training dataset);
      for the 3D-query family also any layout with a 3D query table, and
      the `.npy` holds (N, 3) points of the canonical face.
    out: overlay PNG to write; json_path: landmarks JSON to write.

  Returns:
    {'image', 'num_points', 'landmarks' (image pixels), 'layout' (the
    dataset, layout or prompt file used), 'step' (the checkpoint's), 'box'
    (the face box used, image pixels; None with crop 'none'), 'crop',
    'uncertainty' (pixels, families that have one), and what the family
    describes (`Family.describe`; e.g. the RoI, head pose, camera and 3D
    landmarks of infinite3d; a name 'a/b' is key b of group a)}.
  """
  if crop not in ('face', 'none'):
    raise JaxlmError(f'--crop {crop!r}: expected "face" or "none"')
  image = load_image(image_path)
  box = parse_box(box) if box else None
  pred = Predictor(checkpoint)
  if not layout:
    layout = pred.datasets[0][0]
    log.info('layout %s (the first training dataset; --layout chooses '
             'another)', layout)
  prompts = pred.prompts(layout)
  if box is None and crop == 'face':
    faces = detect_faces(image, max_faces=1, detector=detector)
    if not faces:
      raise JaxlmError(f'no face found by the {detector} detector; pass '
                       f'--box x0,y0,x1,y1, --crop none, or another '
                       f'--detector')
    box = faces[0].box
  found = pred.detect(image, prompts, box=box, crop=crop == 'face')
  points = found['landmarks']
  described = found['described']
  if out:
    plots.save_rgb(out, overlay(image, points, found['box'], described,
                                pred.layout_name(layout)))
    log.info('wrote %s', out)
  result = dict(image=str(image_path), num_points=len(points),
                landmarks=points.round(2).tolist(), layout=str(layout),
                step=pred.step, box=found['box'], crop=crop)
  if found['uncertainty'] is not None:  # per-landmark std, pixels
    result['uncertainty'] = found['uncertainty'].round(3).tolist()
  add_description(result, described, pred.family.name)
  if json_path:
    try:
      Path(json_path).parent.mkdir(parents=True, exist_ok=True)
      Path(json_path).write_text(json.dumps(result, indent=1))
    except OSError as e:
      raise JaxlmError(f'cannot write {json_path}: {e.strerror or e}'
                       ) from None
    log.info('wrote %s', json_path)
  return result


def overlay(image, points, box, described, layout=None, min_size=256):
  """The `--out` picture: the face box, the landmarks joined along the
  layout's contours, what the family describes (an RoI, head axes) and a
  legend; an image smaller than `min_size` is enlarged first."""
  big, s = plots.enlarge(image, min_size)
  pts = np.asarray(points) * s
  img = plots.draw_landmarks(big, pts, layout=layout, legend=True,
                             box=None if box is None else np.asarray(box) * s)
  scaled = {k: (np.asarray(v) * s if np.ndim(v) == 2 and np.shape(v)[1] == 2
                else v) for k, v in described.items()}
  return plots.draw_description(img, scaled, pts)
