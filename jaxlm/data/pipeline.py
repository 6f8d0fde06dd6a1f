"""Input pipelines (grain): sources -> examples -> mixed, masked batches.

Training examples carry
  image: (S, S, 3) uint8 RGB, the model input (crop space);
  point_index: (N_a,) int32 global indices of the kept anchors into the
    concatenated semantic-alignment tables (see models.semantic_alignment);
  target: (N_a, 2) float32 landmarks in [0, 1] crop units (pixel / S);
  weight: (N_a,) float32 loss weights (0 for points without a position).
Anchor masking (thesis §6.2.1): each example keeps `num_anchors` random points
of its layout, so examples of every layout batch together.

Evaluation examples carry the full layout: landmarks (N, 2) pixels, visible,
and `valid` (False on padding rows of the last batch).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.data import synthetic
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


def make_source(name: str, cfg, image_size: int):
  """A random-access source for one dataset entry of the config."""
  kind = cfg.get('source', 'synthetic')
  if kind == 'synthetic':
    try:
      return synthetic.SyntheticFaces(
          cfg.layout, size=cfg.size, seed=cfg.seed, image_size=image_size,
          occlusion_prob=cfg.get('occlusion_prob', 0.4),
          max_yaw=cfg.get('max_yaw', 60.0))
    except KeyError as e:
      raise JaxlmError(f'config key data.*.{name}.layout: {e.args[0]}') \
          from None
  raise JaxlmError(
      f'dataset {name!r}: data source {kind!r} is not available in this '
      f'version of jaxlm (only "synthetic"); the TFDS builders for WFLW, 300W, '
      f'COFW and MERL-RAV come with jaxlm.data.tfds')


def dataset_specs(group_cfg, image_size: int) -> list[DatasetSpec]:
  """DatasetSpecs of `data.train` or `data.eval`, in config order."""
  specs = []
  for name, cfg in group_cfg.items():
    if cfg.layout not in layouts_lib.LAYOUTS:
      raise JaxlmError(f'dataset {name!r}: unknown layout {cfg.layout!r} '
                       f'(known: {", ".join(sorted(layouts_lib.LAYOUTS))})')
    specs.append(DatasetSpec(name, cfg.layout,
                             make_source(name, cfg, image_size),
                             float(cfg.get('weight', 1.0))))
  return specs


class _TrainExample:
  """Sample -> training example with anchor masking (a grain RandomMap)."""

  def __init__(self, offset, num_points, num_anchors, image_size,
               mask_invisible):
    self.offset, self.num_points = offset, num_points
    self.num_anchors, self.image_size = num_anchors, image_size
    self.mask_invisible = mask_invisible

  def __call__(self, sample, rng: np.random.Generator):
    keep = rng.choice(self.num_points, self.num_anchors, replace=False)
    weight = np.ones(self.num_anchors, np.float32)
    if self.mask_invisible:
      weight *= sample['visible'][keep]
    return dict(
        image=sample['image'],
        point_index=(self.offset + keep).astype(np.int32),
        target=(sample['landmarks'][keep] / self.image_size).astype(
            np.float32),
        weight=weight)


def train_dataset(specs: list[DatasetSpec], offsets: dict[str, int], *,
                  num_anchors: int, image_size: int, batch_size: int,
                  seed: int, mask_invisible: bool = False,
                  process_index: int = 0, process_count: int = 1,
                  worker_count: int = 0, read_threads: int = 1):
  """Infinite iterator dataset of mixed, anchor-masked training batches.

  Each dataset is sharded by process, shuffled (differently every epoch) and
  repeated, then the datasets are mixed by their weights. `worker_count` > 0
  decodes/renders in that many worker processes.
  """
  parts = []
  for i, spec in enumerate(specs):
    if num_anchors > spec.num_points:
      raise JaxlmError(f'config key data.num_anchors: {num_anchors} anchors '
                       f'exceed the {spec.num_points} points of dataset '
                       f'{spec.name!r}')
    ds = grain.MapDataset.source(spec.source)
    ds = ds[process_index::process_count]
    ds = ds.shuffle(seed=seed + 7919 * i).repeat()
    ds = ds.random_map(
        _TrainExample(offsets[spec.name], spec.num_points, num_anchors,
                      image_size, mask_invisible), seed=seed + 104729 * i)
    parts.append(ds)
  ds = grain.MapDataset.mix(parts, [s.weight for s in specs])
  ds = ds.batch(batch_size, drop_remainder=True)
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                            prefetch_buffer_size=4))
  if worker_count > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=worker_count, per_worker_buffer_size=2))
  return it


def mean_shape(source, num: int, image_size: int) -> np.ndarray:
  """Mean landmarks (N, 2) in [0, 1] crop units of the first `num` items.

  Uses the source's `landmarks(i)` when it has one (synthetic faces: no
  rendering needed), else the items' `landmarks`.
  """
  num = min(num, len(source))
  get = getattr(source, 'landmarks', None) or (lambda i: source[i]['landmarks'])
  return (np.mean([get(i) for i in range(num)], axis=0) / image_size).astype(
      np.float32)


def eval_batches(source, batch_size: int) -> Iterator[dict]:
  """Batches of a whole source in order; the last is padded (valid False)."""
  n = len(source)
  for start in range(0, n, batch_size):
    idx = list(range(start, min(start + batch_size, n)))
    samples = [source[i] for i in idx]
    pad = batch_size - len(samples)
    samples += [samples[-1]] * pad
    yield dict(
        image=np.stack([s['image'] for s in samples]),
        landmarks=np.stack([s['landmarks'] for s in samples]),
        visible=np.stack([s['visible'] for s in samples]),
        valid=np.arange(batch_size) < len(idx),
        index=np.asarray([s['index'] for s in samples]))
