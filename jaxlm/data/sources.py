"""Datasets as random-access sources of faces, one per config entry.

Sources: 'synthetic' (rendered faces, already crops at image_size) or
'tfds' (faces built by jaxlm.data.tfds: a stored 448 px crop per face).
`make_source` builds one from a `data.train.<name>` / `data.eval.<name>`
entry, `dataset_specs` every entry of a group, `eval_source` the evaluation
view of a TFDS split (the reference crop, 1.2 x box; 1.32 for COFW, with
the affine back to the original image, where NME is computed).

Items are dicts: `image` (S, S, 3) uint8 RGB, `landmarks` (N, 2) pixels of
that image (NaN where a point has no position), `visible` (N,), `index`;
TFDS evaluation items add `to_image` (2x3 crop -> original image pixels)
and `box` (the face box in image pixels).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.config import SOURCE_DEFAULTS, TRAIN_ENTRY_DEFAULTS
from jaxlm.data import augment as augment_lib
from jaxlm.data import crop as crop_lib
from jaxlm.data import synthetic
from jaxlm.data.crop import REFERENCE_SIZE, STORE_SIZE
from jaxlm.errors import JaxlmError


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset of the config (`data.train.<name>` / `data.eval.<name>`)."""
  name: str
  layout: str
  source: object  # random access: __len__, __getitem__ -> sample dict
  weight: float = 1.0

  @property
  def num_points(self) -> int:
    return layouts_lib.get(self.layout).num_points


class TfdsFaces:
  """Random access to one split of a face dataset built by jaxlm.data.tfds.

  Items are the stored records (see face_builder.py). `landmarks(i)` gives
  a face's landmarks in pixels of the evaluation crop at `image_size`.
  """

  def __init__(self, name: str, tfds_name: str, split: str, layout: str,
               data_dir: str, image_size: int):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from jaxlm.data import tfds as builders  # registers  # noqa: F401
    self.name, self.split, self.image_size = name, split, image_size
    where = f'dataset {name!r} (tfds_name {tfds_name!r}, split {split!r})'
    try:
      builder = tfds.builder(tfds_name, data_dir=data_dir or None)
    except Exception as e:  # unknown name or config
      raise JaxlmError(f'{where}: {e}; known builders: '
                       f'{", ".join(sorted(builders.BUILDERS))}') from None
    if not builder.is_prepared():
      raise JaxlmError(
          f'{where}: not built under data_dir {data_dir or "(TFDS default)"}'
          f'; build it once with `jaxlm build {tfds_name} --manual_dir '
          f'<downloaded files> --data_dir {data_dir or "<dir>"}`')
    if split not in builder.info.splits:
      raise JaxlmError(f'{where}: no such split; built splits: '
                       f'{", ".join(builder.info.splits)}')
    built_layout = builder.builder_config.layout
    if built_layout != layout:
      raise JaxlmError(f'{where}: config layout {layout!r} but the data '
                       f'was built with layout {built_layout!r}')
    self.crop_factor = float(builder.builder_config.crop_factor)
    self.source = builder.as_data_source(split=split)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index):
    return {**self.source[int(index)], 'index': int(index)}

  def __repr__(self):
    return f'TfdsFaces({self.name!r}, split={self.split!r}, n={len(self)})'

  def landmarks(self, index: int) -> np.ndarray:
    m = eval_affine(self.image_size)
    return crop_lib.apply_affine(m, self[index]['landmarks']).astype(
        np.float32)


def eval_affine(image_size: int) -> np.ndarray:
  """Stored-crop pixels -> evaluation crop pixels (the reference square)."""
  c = STORE_SIZE / 2
  return augment_lib.reference_affine((c, c), REFERENCE_SIZE, image_size)


def decode_jpeg(data: bytes, reduce: int = 1) -> np.ndarray:
  """RGB uint8 of a stored JPEG, optionally decoded at 1/reduce size."""
  flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
          4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
  image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
  if image is None:
    raise JaxlmError(f'corrupt JPEG in the built dataset ({len(data)} bytes)')
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class EvalFaces:
  """A TfdsFaces split as evaluation samples (the reference crop)."""

  def __init__(self, faces: TfdsFaces):
    self.faces = faces
    self.m = eval_affine(faces.image_size)
    self.to_stored = crop_lib.invert_affine(self.m)

  def __len__(self):
    return len(self.faces)

  def __getitem__(self, index):
    rec = self.faces[index]
    image = crop_lib.warp(decode_jpeg(rec['image']), self.m,
                                   self.faces.image_size)
    to_image = np.asarray(rec['to_image'], np.float64)
    return dict(
        image=image,
        landmarks=crop_lib.apply_affine(self.m, rec['landmarks']).astype(
            np.float32),
        visible=np.asarray(rec['visible'], bool),
        to_image=to_image @ np.vstack([self.to_stored, [0, 0, 1]]),
        box=np.asarray(rec['box'], np.float64), index=int(index))


def make_source(name: str, cfg, image_size: int, data_dir: str = ''):
  """A random-access source for one dataset entry of the config."""
  kind = cfg.get('source', 'synthetic')
  d = SOURCE_DEFAULTS.get(kind, {})  # entries of old runs may lack them
  if kind == 'synthetic':
    try:
      return synthetic.SyntheticFaces(
          cfg.layout, size=cfg.size, seed=cfg.seed, image_size=image_size,
          occlusion_prob=cfg.get('occlusion_prob', d['occlusion_prob']),
          max_yaw=cfg.get('max_yaw', d['max_yaw']),
          loose_framing=bool(cfg.get('loose_framing', d['loose_framing'])))
    except KeyError as e:
      raise JaxlmError(f'config key data.*.{name}.layout: {e.args[0]}') \
          from None
  if kind == 'tfds':
    return TfdsFaces(name, cfg.tfds_name, cfg.split, cfg.layout,
                     cfg.get('data_dir', d['data_dir']) or data_dir,
                     image_size)
  raise JaxlmError(f'dataset {name!r}: unknown data source {kind!r} '
                   f'(known: synthetic, tfds)')


def eval_source(source):
  """The evaluation view of a source (TFDS faces -> reference crops)."""
  return EvalFaces(source) if isinstance(source, TfdsFaces) else source


def dataset_specs(group_cfg, image_size: int,
                  data_dir: str = '') -> list[DatasetSpec]:
  """DatasetSpecs of `data.train` or `data.eval`, in config order."""
  specs = []
  for name, cfg in group_cfg.items():
    if cfg.layout not in layouts_lib.LAYOUTS:
      raise JaxlmError(f'dataset {name!r}: unknown layout {cfg.layout!r} '
                       f'(known: {", ".join(sorted(layouts_lib.LAYOUTS))})')
    source = make_source(name, cfg, image_size, data_dir)
    d = TRAIN_ENTRY_DEFAULTS  # entries of old runs may lack them
    limit = int(cfg.get('limit', d['limit']) or 0)
    if limit:
      source = Subset(source, limit, int(cfg.get('limit_seed',
                                                 d['limit_seed'])))
    specs.append(DatasetSpec(name, cfg.layout, source,
                             float(cfg.get('weight', d['weight']))))
  return specs


class Subset:
  """`limit` faces of a source drawn at random (seeded): few-shot training
  sets (thesis §6.3.6 selects its training samples at random)."""

  def __init__(self, source, limit: int, seed: int = 0):
    if limit > len(source):
      raise JaxlmError(f'{source!r}: limit {limit} exceeds its {len(source)} '
                       f'faces')
    self.source = source
    self.indices = np.sort(np.random.default_rng(seed).choice(
        len(source), limit, replace=False))
    self.crop_factor = getattr(source, 'crop_factor', None)

  def __len__(self):
    return len(self.indices)

  def __getitem__(self, i):
    item = dict(self.source[int(self.indices[int(i)])])
    item['index'] = int(self.indices[int(i)])
    return item

  def landmarks(self, i):
    get = getattr(self.source, 'landmarks', None)
    j = int(self.indices[int(i)])
    return get(j) if get else self.source[j]['landmarks']

  def __repr__(self):
    return f'Subset({self.source!r}, {len(self)})'
