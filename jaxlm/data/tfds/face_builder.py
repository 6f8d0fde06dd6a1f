"""The shared TFDS builder of the face datasets: pre-cropped faces.

Each face is stored as a JPEG of a square crop around its face box, wide
enough for every training augmentation, plus its landmarks in that crop's
pixel frame and the crop's affine back to the original photo:

  image       JPEG bytes of the stored crop, STORE_SIZE x STORE_SIZE RGB;
  landmarks   (N, 2) float32 stored-crop pixels, NaN where a point has no
              position (MERL-RAV self-occlusion);
  visible     (N,) bool, False for occluded points;
  to_image    (2, 3) float64 affine stored-crop pixels -> image pixels;
  box         (4,) float32 the face box x0 y0 x1 y1 in image pixels;
  image_path  bytes, the photo relative to manual_dir;
  attributes  (K,) int32, the builder's ATTRIBUTES (WFLW flags, ...).

The *reference square* is the crop rule of the official code: side
`crop_factor` (1.2; 1.32 for 29-point COFW) x the longer side of the face
box, centred on it. It occupies the central REFERENCE_SIZE = 256 pixels of
the stored crop, whose side is STORE_MARGIN = 1.75 reference sides: room
for rotation to 30 deg at scale 1.25 with shift and shear (data/augment.py).

Features avoid `tfds.features.Image` so that building and reading need no
TensorFlow; the files are ArrayRecord, so `tfds.data_source` gives random
access. A bad face (missing or corrupt image, malformed annotation, box
outside the image) stops the build with the file and line named; with
`skip_bad=True` it is skipped, counted and listed in `self.skipped`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Iterator

import cv2
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxlm import layouts
from jaxlm.data import crop as crop_lib
from jaxlm.data.crop import REFERENCE_SIZE, STORE_MARGIN, STORE_SIZE
from jaxlm.data.formats import FaceRecord, FormatError
from jaxlm.errors import JaxlmError

JPEG_QUALITY = 95

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FaceConfig(tfds.core.BuilderConfig):
  """A variant of a dataset: its splits and how its faces are cropped.

  Attributes:
    splits: split name -> callable(manual_dir, on_error) yielding FaceRecords.
    layout: landmark layout of every face.
    crop_factor: reference square side / face box side.
    box_rule: 'landmarks' (tight box of the landmarks, the official rule) or
      'annotation' (the dataset's own box: AFLW-19, CelebA-aligned).
  """
  splits: dict[str, Callable[..., Iterator[FaceRecord]]] = dataclasses.field(
      default_factory=dict)
  layout: str = ''
  crop_factor: float = 1.2
  box_rule: str = 'landmarks'


def reference_box(rec: FaceRecord, box_rule: str) -> np.ndarray:
  if box_rule == 'landmarks':
    p = rec.landmarks[rec.has_position]
    return np.concatenate([p.min(axis=0), p.max(axis=0)])
  return np.asarray(rec.box, np.float64)


def store_affine(box, crop_factor: float) -> np.ndarray:
  """Image pixels -> stored-crop pixels for face box `box`."""
  return crop_lib.square_crop_affine(box, STORE_SIZE,
                                     crop_factor * STORE_MARGIN)


def stored_crop(image: np.ndarray, m: np.ndarray) -> np.ndarray:
  """The stored crop; large downscales go through INTER_AREA first."""
  scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
  if scale < 0.5:  # bilinear warps alias when shrinking much
    h, w = image.shape[:2]
    f = 2 * scale
    small = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA)
    fx, fy = small.shape[1] / w, small.shape[0] / h
    # small pixel = (image pixel + 0.5) * f - 0.5
    to_small = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]])
    m = m @ np.vstack([crop_lib.invert_affine(to_small), [0, 0, 1]])
    image = small
  return crop_lib.warp(image, m, STORE_SIZE)


def encode_face(rec: FaceRecord, config: FaceConfig, manual_dir) -> dict:
  """One stored example of a record (raises FormatError on bad input)."""
  image = rec.load_image()
  h, w = image.shape[:2]
  p = rec.landmarks[rec.has_position]
  far = (p[:, 0] < -w) | (p[:, 0] > 2 * w) | (p[:, 1] < -h) | (p[:, 1] > 2 * h)
  if far.any():
    x, y = p[np.flatnonzero(far)[0]]
    raise FormatError(f'{rec.where}: landmark at ({x:g}, {y:g}) lies more '
                      f'than the image size outside the {w}x{h} image '
                      f'{rec.image_path}')
  box = reference_box(rec, config.box_rule)
  try:
    crop_lib.check_box(box, w, h, where=f'{rec.where}: face box')
  except JaxlmError as e:  # a malformed face: skippable like the others
    raise FormatError(str(e)) from None
  m = store_affine(box, config.crop_factor)
  ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(stored_crop(image, m),
                                               cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  if not ok:
    raise FormatError(f'{rec.image_path}: JPEG encoding failed')
  path = rec.image_path
  prefix = str(epath.Path(manual_dir)) + '/'
  if path.startswith(prefix):
    path = path[len(prefix):]
  example = dict(
      image=jpeg.tobytes(),
      landmarks=crop_lib.apply_affine(m, rec.landmarks).astype(np.float32),
      visible=np.asarray(rec.visible, bool),
      to_image=crop_lib.invert_affine(m),
      box=np.asarray(rec.box, np.float32),
      image_path=path.encode())
  return example


class FaceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the face dataset builders (see module docstring).

  Subclasses set VERSION, BUILDER_CONFIGS, MANUAL_DOWNLOAD_INSTRUCTIONS,
  and optionally ATTRIBUTES (names of the int attributes stored per face)
  and attribute_code (for string attributes).
  """

  ATTRIBUTES: tuple[str, ...] = ()
  HOMEPAGE = ''
  CITATION = ''

  def __init__(self, *, skip_bad: bool = False, file_format=None, **kwargs):
    super().__init__(file_format=file_format or 'array_record', **kwargs)
    self.skip_bad = skip_bad
    self.skipped: dict[str, list[str]] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    n = layouts.get(self.builder_config.layout).num_points
    t = tfds.features.Tensor
    features = dict(
        image=t(shape=(), dtype=np.object_),
        landmarks=t(shape=(n, 2), dtype=np.float32),
        visible=t(shape=(n,), dtype=np.bool_),
        to_image=t(shape=(2, 3), dtype=np.float64),
        box=t(shape=(4,), dtype=np.float32),
        image_path=t(shape=(), dtype=np.object_))
    if self.ATTRIBUTES:
      features['attributes'] = t(shape=(len(self.ATTRIBUTES),),
                                 dtype=np.int32)
    return tfds.core.DatasetInfo(
        builder=self,
        description=(f'{self.__doc__.strip().splitlines()[0]} Faces '
                     f'pre-cropped to {STORE_SIZE} px (reference square '
                     f'{REFERENCE_SIZE} px in the centre); layout '
                     f'{self.builder_config.layout}; attributes '
                     f'{list(self.ATTRIBUTES)}.'),
        features=tfds.features.FeaturesDict(features),
        # Keep the annotation files' order: evaluation reports and overlays
        # then follow the dataset's own numbering (training shuffles anyway).
        disable_shuffling=True,
        homepage=self.HOMEPAGE or None, citation=self.CITATION or None)

  def attribute_code(self, rec: FaceRecord, name: str) -> int:
    """The stored int of attribute `name` (-1: not annotated)."""
    v = rec.attributes.get(name, -1)
    if not isinstance(v, (int, np.integer)):
      raise TypeError(f'{type(self).__name__}: attribute {name}={v!r} needs '
                      f'an attribute_code mapping to int')
    return int(v)

  def _split_generators(self, dl_manager):
    manual_dir = dl_manager.manual_dir
    return {name: self._generate_examples(manual_dir, name, reader)
            for name, reader in self.builder_config.splits.items()}

  def _generate_examples(self, manual_dir, split, reader):
    skipped = self.skipped.setdefault(split, [])

    def on_error(e: FormatError):
      skipped.append(str(e))
      log.warning('skipping (skip_bad): %s', e)

    hint = ' (pass skip_bad=True / --skip_bad to skip such faces)'
    try:
      records = reader(manual_dir, on_error=on_error if self.skip_bad else None)
      for i, rec in enumerate(records):
        try:
          example = encode_face(rec, self.builder_config, manual_dir)
          if self.ATTRIBUTES:
            example['attributes'] = np.asarray(
                [self.attribute_code(rec, a) for a in self.ATTRIBUTES],
                np.int32)
        except FormatError as e:
          if not self.skip_bad:
            raise FormatError(f'{e}{hint}') from None
          on_error(e)
          continue
        yield i, example
    except FormatError as e:
      if 'not found' in str(e) and 'image file' not in str(e):
        raise FormatError(f'{e}. Expected files under manual_dir '
                          f'{manual_dir}:{self.MANUAL_DOWNLOAD_INSTRUCTIONS}'
                          ) from None
      if str(e).endswith(hint) or self.skip_bad:
        raise
      raise FormatError(f'{e}{hint}') from None
    if skipped:
      log.warning('%s/%s: skipped %d bad faces', self.name, split,
                  len(skipped))
