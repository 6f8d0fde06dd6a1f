"""Input pipelines (grain): sources -> examples -> mixed, masked batches.

Sources (`sources.py`) give faces by index. TFDS faces go through a *view*
first: training decodes the JPEG and applies the official augmentation as
one affine (`TrainView`, data/augment.py); evaluation takes the reference
crop (`sources.EvalFaces`).

Training examples carry
  image: (S, S, 3) uint8 RGB, the model input (crop space);
  point_index: (N_a,) int32 global indices of the kept anchors into the
    concatenated semantic-alignment tables (see models.semantic_alignment);
  target: (N_a, 2) float32 landmarks in [0, 1] crop units (pixel / S);
  weight: (N_a,) float32 loss weights (0 for points without a position,
    whose target is 0 rather than NaN);
  example_id: int32 dataset number * 2^24 + the face's index in it.
Anchor masking (thesis §6.2.1): each example keeps `num_anchors` random points
of its layout, so examples of every layout batch together. With
`pad_anchors` (families whose `Family.pad_anchors` is set), a layout with
fewer points keeps all of them and repeats them with weight 0, so a dense
layout trains beside sparse ones; otherwise that is a config error.
`num_anchors` 0 keeps every point in layout order (SLPT and DSLPT).

Evaluation examples carry the full layout: landmarks (N, 2) crop pixels
(NaN where a point has no position), visible, `valid` (False on padding rows
of the last batch) and, for TFDS faces, `to_image` (2x3 crop -> original
image pixels) and `box` (the face box in image pixels).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data import augment as augment_lib
from jaxlm.data.crop import REFERENCE_SIZE, STORE_SIZE
from jaxlm.data.sources import DatasetSpec, Subset, TfdsFaces, decode_jpeg
from jaxlm.errors import JaxlmError


def _reduce_factor(image_size: int) -> int:
  """Largest JPEG DCT scaling that keeps >= 1 source pixel per output pixel."""
  r = 1
  while r < 8 and REFERENCE_SIZE / (2 * r) >= image_size:
    r *= 2
  return r


class TrainView:
  """Stored record -> augmented training sample (a grain random map)."""

  def __init__(self, layout: str, image_size: int, crop_factor: float,
               cfg: augment_lib.AugmentConfig):
    self.image_size = image_size
    self.perm = np.asarray(layouts_lib.get(layout).flip_permutation)
    self.cfg = dataclasses.replace(cfg, reference_factor=crop_factor)
    self.reduce = _reduce_factor(image_size)

  def __call__(self, record, rng: np.random.Generator):
    r = self.reduce
    image = decode_jpeg(record['image'], r)
    # DCT-scaled pixel i covers stored pixels [r i, r i + r).
    points = (np.asarray(record['landmarks'], np.float64) - (r - 1) / 2) / r
    c = (STORE_SIZE / 2 - (r - 1) / 2) / r
    image, points, visible, _ = augment_lib.augment(
        rng, self.cfg, image, points, record['visible'], (c, c),
        REFERENCE_SIZE / r, self.image_size, self.perm)
    return dict(image=image, landmarks=points.astype(np.float32),
                visible=visible, index=record['index'])


def augment_config(cfg) -> augment_lib.AugmentConfig:
  """AugmentConfig from `data.augment` (absent: the official defaults)."""
  if cfg is None:
    return augment_lib.AugmentConfig()
  fields = {f.name for f in dataclasses.fields(augment_lib.AugmentConfig)}
  unknown = sorted(set(cfg.keys()) - fields)
  if unknown:
    raise JaxlmError(f'config key data.augment.{unknown[0]}: unknown; known: '
                     f'{", ".join(sorted(fields))}')
  return augment_lib.AugmentConfig(**cfg.to_dict())


class _TrainExample:
  """Sample -> training example with anchor masking (a grain RandomMap)."""

  def __init__(self, offset, num_points, num_anchors, image_size,
               mask_invisible, dataset_id=0):
    self.offset, self.num_points = offset, num_points
    self.dataset_id = dataset_id
    self.num_anchors, self.image_size = num_anchors, image_size
    self.mask_invisible = mask_invisible

  def __call__(self, sample, rng: np.random.Generator):
    pad = max(self.num_anchors - self.num_points, 0)
    if self.num_anchors:
      keep = rng.choice(self.num_points, self.num_anchors - pad,
                        replace=False)
    else:  # no masking: every point, in layout order (SLPT/DSLPT)
      keep = np.arange(self.num_points)
    # A layout with fewer points than num_anchors keeps all of them, then
    # repeats them (in the same random order) with weight 0.
    keep = np.concatenate([keep, keep[np.arange(pad) % len(keep)]])
    target = np.asarray(sample['landmarks'], np.float32)[keep]
    has_position = np.isfinite(target).all(axis=1)
    has_position[len(keep) - pad:] = False
    weight = has_position.astype(np.float32)
    if self.mask_invisible:
      weight *= sample['visible'][keep]
    return dict(
        image=sample['image'],
        point_index=(self.offset + keep).astype(np.int32),
        target=np.where(has_position[:, None], target / self.image_size,
                        0.0).astype(np.float32),
        weight=weight,
        # which face this is: dataset number * 2^24 + its index there
        example_id=np.int32(self.dataset_id * 2**24 + int(sample['index'])))


def train_dataset(specs: list[DatasetSpec], offsets: dict[str, int], *,
                  num_anchors: int, image_size: int, batch_size: int,
                  seed: int, mask_invisible: bool = False,
                  pad_anchors: bool = False,
                  process_index: int = 0, process_count: int = 1,
                  worker_count: int = 0, read_threads: int = 1,
                  augment: augment_lib.AugmentConfig | None = None):
  """Infinite iterator dataset of mixed, anchor-masked training batches.

  Each dataset is sharded by process, shuffled (differently every epoch) and
  repeated, then the datasets are mixed by their weights. TFDS faces are
  decoded and augmented (`augment`, default the official parameters);
  synthetic faces are used as rendered. `worker_count` > 0 decodes/renders
  in that many worker processes.
  """
  augment = augment or augment_lib.AugmentConfig()
  parts = []
  for i, spec in enumerate(specs):
    if num_anchors > spec.num_points and not pad_anchors:
      raise JaxlmError(f'config key data.num_anchors: {num_anchors} anchors '
                       f'exceed the {spec.num_points} points of dataset '
                       f'{spec.name!r}')
    ds = grain.MapDataset.source(spec.source)
    ds = ds[process_index::process_count]
    ds = ds.shuffle(seed=seed + 7919 * i).repeat()
    faces = spec.source.source if isinstance(spec.source, Subset) else \
        spec.source
    if isinstance(faces, TfdsFaces):
      ds = ds.random_map(TrainView(spec.layout, image_size,
                                   faces.crop_factor, augment),
                         seed=seed + 15485863 * i + 1)
    ds = ds.random_map(
        _TrainExample(offsets[spec.name], spec.num_points, num_anchors,
                      image_size, mask_invisible, dataset_id=i),
        seed=seed + 104729 * i)
    parts.append(ds)
  ds = grain.MapDataset.mix(parts, [s.weight for s in specs])
  ds = ds.batch(batch_size, drop_remainder=True)
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                            prefetch_buffer_size=4))
  if worker_count > 0:
    # grain's workers read absl flags; outside an absl app they are unparsed.
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=worker_count, per_worker_buffer_size=2))
  return it


def mean_shape(source, num: int, image_size: int) -> np.ndarray:
  """Mean landmarks (N, 2) in [0, 1] crop units of the first `num` items.

  Uses the source's `landmarks(i)` when it has one (no image decoding),
  else the items' `landmarks`; points without a position are left out of
  their point's mean.
  """
  num = min(num, len(source))
  get = getattr(source, 'landmarks', None) or (lambda i: source[i]['landmarks'])
  shape = np.nanmean(np.stack([get(i) for i in range(num)]), axis=0)
  if not np.isfinite(shape).all():
    raise JaxlmError(f'{source!r}: some landmark has no position in any of '
                     f'the first {num} faces; raise data.mean_shape_samples')
  return (shape / image_size).astype(np.float32)


def eval_batches(source, batch_size: int) -> Iterator[dict]:
  """Batches of a whole source in order; the last is padded (valid False)."""
  n = len(source)
  for start in range(0, n, batch_size):
    idx = list(range(start, min(start + batch_size, n)))
    samples = [source[i] for i in idx]
    pad = batch_size - len(samples)
    samples += [samples[-1]] * pad
    batch = dict(valid=np.arange(batch_size) < len(idx))
    for key in ('image', 'landmarks', 'visible', 'index', 'to_image', 'box'):
      if key in samples[0]:
        batch[key] = np.stack([np.asarray(s[key]) for s in samples])
    yield batch
