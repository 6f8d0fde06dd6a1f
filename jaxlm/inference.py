"""Inference: jitted predict functions and `Predictor` (image -> landmarks).

Nothing here imports the trainer: a model is its family's module built from
a run folder's config, with the run's variables (`checkpoints.load_run`).

Coordinates: the model sees and predicts [0, 1] crop units (pixel / input
size); `Predictor.detect` maps them back to image pixels through the crop's
affine. Face box: given, or the largest face of OpenCV's bundled Haar
cascade; the crop is the official rule's square (1.2x the box's longer side)
resized to the model input, or the whole image (`crop=False`).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import jax
import numpy as np

from jaxlm import checkpoints, models
from jaxlm.data import crop as crop_lib
from jaxlm.data import query_tables
from jaxlm.errors import JaxlmError
from jaxlm.one_euro import OneEuroFilter


def make_predict(model, family, with_uncertainty: bool = True,
                 with_description: bool = False):
  """(variables, images (B, S, S, 3), prompts (N, D) or (B, N, D), D the
  family's `prompt_dim`) ->
  (landmarks (B, N, 2), standard deviation (B, N, 2) or None), crop units.
  The deviation is None for families without one or when not asked for.
  With `with_description`, a third element: the family's `describe` of the
  outputs ({} for families without one)."""
  std_of = family.uncertainty if with_uncertainty else None
  describe = family.describe if with_description else None

  def predict(variables, images, prompts):
    out = model.apply(variables, images, prompts)
    result = family.landmarks(out), (std_of(out) if std_of else None)
    if with_description:
      result += (describe(out) if describe else {},)
    return result

  return predict


def dataset_prompts(model, variables, name: str):
  """(N, D) prompts that predict training dataset `name`'s layout (its
  aligned mean shape in crop units, or its 3D query table)."""
  return model.apply(variables, name, method=type(model).dataset_prompts)


def load_image(path) -> np.ndarray:
  """RGB uint8 image, or JaxlmError naming the file."""
  path = Path(path)
  if not path.is_file():
    raise JaxlmError(f'image not found: {path}')
  data = np.fromfile(path, np.uint8)
  img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
  if img is None:
    raise JaxlmError(f'cannot decode {path} as an image')
  return img[..., ::-1].copy()


def detect_face(image_rgb) -> tuple[float, float, float, float]:
  """Largest frontal face (x0, y0, x1, y1) by OpenCV's Haar cascade."""
  xml = os.path.join(cv2.data.haarcascades,
                     'haarcascade_frontalface_default.xml')
  cascade = cv2.CascadeClassifier(xml)
  if cascade.empty():
    raise JaxlmError(f'cannot load the OpenCV face cascade {xml}; pass --box')
  grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
  faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                   minSize=(24, 24))
  if len(faces) == 0:
    raise JaxlmError('no face found by the OpenCV cascade; pass --box '
                     'x0,y0,x1,y1 or --crop none')
  x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
  return float(x), float(y), float(x + w), float(y + h)


def crop_image(image_rgb, size: int, box=None, crop: bool = True):
  """The model input of an image: ((S, S, 3) uint8 crop, (2, 3) image ->
  crop affine, the box used or None).

  box: (x0, y0, x1, y1) image pixels (default: the Haar cascade's largest
  face), cropped by the official rule's square; crop=False resizes the
  whole image to the input instead."""
  h, w = image_rgb.shape[:2]
  if crop:
    if box is None:
      box = detect_face(image_rgb)
    crop_lib.check_box(box, w, h)
    m = crop_lib.square_crop_affine(box, size)
  else:
    box = None
    m = np.array([[size / w, 0, 0], [0, size / h, 0]], np.float64)
  return crop_lib.warp(image_rgb, m, size), m, box


class Predictor:
  """A run folder's model, loaded for inference (any family)."""

  def __init__(self, checkpoint):
    run = checkpoints.load_run(checkpoint)
    self.config, self.datasets, self.step = run.config, run.datasets, run.step
    self.family = models.family_of(self.config.model)
    self.model = models.build(self.config.model, self.datasets)
    self.size = self.config.data.image_size
    checkpoints.check_tree(models.abstract_variables(self.model, self.size),
                           run.variables, f'checkpoint {checkpoint}')
    self.variables = jax.tree_util.tree_map(jax.numpy.asarray, run.variables)
    self._predict = jax.jit(make_predict(self.model, self.family,
                                         with_description=True))

  def prompts(self, layout_or_file):
    """Prompts from a training dataset/layout name or a .npy file: (N, 2)
    anchors in crop units, or (N, 3) canonical 3D queries for the 3D-query
    families (which also take any layout with a query table by name)."""
    names = [d for d, _ in self.datasets]
    spec = str(layout_or_file)
    dim = self.family.prompt_dim
    what = ('anchors in [0, 1] crop units' if dim == 2 else
            'points of the canonical 3D face')
    if spec.endswith('.npy'):
      try:
        p = np.load(spec, allow_pickle=False)
      except (OSError, ValueError) as e:
        raise JaxlmError(f'cannot read prompt file {spec}: {e}') from None
      if not np.issubdtype(p.dtype, np.number):
        raise JaxlmError(f'prompt file {spec} holds {p.dtype} values; '
                         f'expected (N, {dim}) numbers, {what}')
      if p.ndim != 2 or p.shape[1] != dim or not len(p):
        raise JaxlmError(f'prompt file {spec} has shape {p.shape}; expected '
                         f'(N, {dim}) {what} for model {self.family.name}')
      if not np.all(np.isfinite(p)):
        raise JaxlmError(f'prompt file {spec} has non-finite values')
      self.family.check_prompts(len(p), self.datasets, f'prompt file {spec}')
      return p.astype(np.float32)
    layouts = {d: self.config.data.train[d].layout for d in names}
    match = [d for d in names if spec in (d, layouts[d])]
    if match:
      return np.asarray(dataset_prompts(self.model, self.variables,
                                        match[0]))
    if dim == 3 and spec in query_tables.known_layouts():
      return query_tables.layout_queries(spec)  # zero-shot layout
    extra = (f' or a layout with a 3D query table '
             f'({", ".join(query_tables.known_layouts())})' if dim == 3
             else '')
    raise JaxlmError(f'--layout {spec!r}: not a training dataset or layout '
                     f'of this model ({", ".join(names)}){extra}; pass an '
                     f'(N, {dim}) .npy prompt file for other shapes')

  def __call__(self, image_rgb, prompts, box=None, crop=True):
    """Landmarks (N, 2) in image pixels, and the image->crop affine used."""
    out = self.detect(image_rgb, prompts, box, crop)
    return out['landmarks'], out['affine']

  def detect(self, image_rgb, prompts, box=None, crop=True) -> dict:
    """{'landmarks': (N, 2) image pixels, 'affine': image->crop (2, 3),
    'box': the face box used (None without a crop), 'uncertainty': (N, 2)
    standard deviation in image pixels where the family has one, else
    None, 'described': the family's `describe` (points and lengths in image
    pixels; {} for families without one)}."""
    x, m, box = crop_image(image_rgb, self.size, box, crop)
    pred, std, described = self._predict(self.variables, x[None], prompts)
    inv = crop_lib.invert_affine(m)
    pts = crop_lib.apply_affine(inv, np.asarray(pred)[0] * self.size)
    out = dict(landmarks=pts.astype(np.float32), affine=m, uncertainty=None,
               box=None if box is None else [float(v) for v in box],
               described=self._in_pixels(described, inv))
    if std is not None:  # independent x/y variances through the linear map
      var = (np.asarray(std)[0] * self.size)**2
      out['uncertainty'] = np.sqrt(var @ (inv[:, :2]**2).T).astype(np.float32)
    return out

  def track(self, frames, prompts, boxes=None, crop: bool = True,
            smooth: dict | None = None) -> np.ndarray:
    """Landmarks (T, N, 2) in image pixels of a video's frames (T, H, W, 3)
    RGB uint8, one `detect` per frame (`boxes`: one per frame, or None: the
    Haar cascade's, or with crop=False the whole frame), filtered over time
    with a One-Euro filter when `smooth` gives its settings (`one_euro.
    OneEuroFilter`: rate, min_cutoff, beta, d_cutoff; beta in 1 / pixel).
    A frame where the cascade finds no face raises its JaxlmError (pass
    `boxes`, or crop=False, for such videos)."""
    filt = OneEuroFilter(**smooth) if smooth is not None else None
    out = []
    for t, frame in enumerate(frames):
      box = None if boxes is None else boxes[t]
      pts = self.detect(frame, prompts, box=box, crop=crop)['landmarks']
      out.append(filt(pts) if filt is not None else pts)
    return np.stack(out).astype(np.float32)

  def _in_pixels(self, described, inv) -> dict:
    """The family's description of one image, points and lengths in image
    pixels (the crop -> image map `inv` is a similarity)."""
    scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    out = {}
    for name, p in described.get('points', {}).items():
      out[name] = crop_lib.apply_affine(inv, np.asarray(p)[0] * self.size)
    for name, v in described.get('lengths', {}).items():
      out[name] = float(np.asarray(v)[0]) * self.size * scale
    for name, v in described.get('values', {}).items():
      out[name] = np.asarray(v)[0]
    return out
