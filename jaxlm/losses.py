"""Training losses. Coordinates in [0, 1] crop units."""

from __future__ import annotations

import jax.numpy as jnp


def weighted_l1(pred, target, weight):
  """TUFA's L1 loss (thesis Eq. 6.12), averaged over all decoder layers.

  Args:
    pred: (L, B, N, 2) predictions of every decoder layer.
    target: (B, N, 2) ground truth.
    weight: (B, N) per-landmark weights; 0 removes a point (invisible or
      missing), as MERL-RAV's self-occluded points need.

  Returns:
    scalar: sum_l sum w |pred_l - target| / (L * 2 * sum w); with all weights
    1 this is the mean absolute error over every coordinate, as nn.L1Loss.
  """
  err = jnp.abs(pred - target[None]).sum(-1)  # (L, B, N)
  denom = jnp.maximum(weight.sum(), 1.0) * 2.0
  return (err * weight[None]).sum(axis=(1, 2)).mean() / denom
