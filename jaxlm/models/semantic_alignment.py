"""Semantic alignment embeddings (thesis §6.2.2).

Each training dataset i gets a learnable offset table A_i (N_i, 2), initialised
to zero and added to that dataset's mean shape before prompt encoding. The
mean shapes are constants computed from the training annotations; they live in
the `constants` variable collection (saved with the checkpoint, not trained).

All tables are concatenated in dataset order, so a mixed batch selects its
anchors with one gather of global point indices: dataset i's point j has
index `offset_i + j` (see `point_offsets`). Coordinates are [0, 1] crop units.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


def point_offsets(datasets: Sequence[tuple[str, int]]) -> dict[str, int]:
  """{dataset: index of its first point in the concatenated table}."""
  out, total = {}, 0
  for name, n in datasets:
    out[name] = total
    total += n
  return out


class SemanticAlignment(nn.Module):
  """Aligned anchors: mean shape + learnable offset, per dataset.

  Attributes:
    datasets: ((name, num_points), ...) of the training datasets, in order.
  """
  datasets: tuple[tuple[str, int], ...]

  def setup(self):
    if not self.datasets:
      raise ValueError('SemanticAlignment needs at least one dataset')
    self.offsets = [
        self.param(name, nn.initializers.zeros, (n, 2), jnp.float32)
        for name, n in self.datasets
    ]
    total = sum(n for _, n in self.datasets)
    self.mean_shape = self.variable('constants', 'mean_shape', jnp.full,
                                    (total, 2), 0.5, jnp.float32)

  def table(self):
    """(sum N_i, 2) aligned anchors of every dataset, concatenated."""
    return self.mean_shape.value + jnp.concatenate(self.offsets, axis=0)

  def __call__(self, point_index):
    """Aligned anchors (..., 2) of global point indices (...)."""
    return jnp.take(self.table(), point_index, axis=0)

  def dataset_anchors(self, name: str):
    """(N_i, 2) aligned mean shape of one dataset (inference prompts)."""
    start = point_offsets(self.datasets)[name]
    n = dict(self.datasets)[name]
    return self.table()[start:start + n]


def validate_mean_shapes(datasets, mean_shapes: dict[str, np.ndarray]):
  """Concatenates per-dataset mean shapes, checking names and shapes."""
  parts = []
  for name, n in datasets:
    if name not in mean_shapes:
      raise KeyError(f'no mean shape for dataset {name!r}')
    m = np.asarray(mean_shapes[name], np.float32)
    if m.shape != (n, 2):
      raise ValueError(f'mean shape of {name!r} has shape {m.shape}, '
                       f'expected ({n}, 2)')
    parts.append(m)
  return np.concatenate(parts, axis=0)
