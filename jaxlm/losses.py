"""Training losses. Coordinates in [0, 1] crop units."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlm.layouts import inter_ocular


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


# Stage weights of SLPT and DSLPT's coarse-to-fine loss (thesis §4.3, §5.3).
STAGE_WEIGHTS = (0.2, 0.3, 0.5)


def _stage_weights(num_stages: int):
  if num_stages == len(STAGE_WEIGHTS):
    return jnp.asarray(STAGE_WEIGHTS)
  return jnp.full((num_stages,), 1.0 / num_stages)  # other stage counts


def normalized_l2(landmarks, target, weight, eyes: tuple[int, int]):
  """SLPT's loss: per stage and layer, the mean landmark L2 distance over
  the ground-truth inter-ocular distance; layers averaged, stages weighted
  0.2 / 0.3 / 0.5 (equal weights for another number of stages).

  Args:
    landmarks: (S, L, B, N, 2) predictions of every stage and layer.
    target: (B, N, 2); weight: (B, N) (0 removes a point).
    eyes: indices of the outer eye corners in the N points.

  Returns:
    (loss, per-stage losses (S,)).
  """
  iod = inter_ocular(target, eyes)
  iod = jnp.maximum(iod, 1e-6)  # (B,)
  dist = jnp.sqrt(((landmarks - target) ** 2).sum(-1) + 1e-12)  # (S,L,B,N)
  per_face = (dist * weight).sum(-1) / jnp.maximum(weight.sum(-1), 1.0)
  per_stage = (per_face / iod).mean(axis=(1, 2))  # (S,)
  w = _stage_weights(landmarks.shape[0])
  return (w * per_stage).sum(), per_stage


def gaussian_nll(offset, variance, box_min, box_size, target, weight):
  """DSLPT's loss: -log(N(g; mu, v) + 1e-9) per coordinate, with the target
  g in patch units ((target - box_min) / box_size of each stage), averaged
  over layers, landmarks and coordinates; stages weighted 0.2 / 0.3 / 0.5.

  Args:
    offset, variance: (S, L, B, N, 2) predicted mean and variance in patch
      units; box_min, box_size: (S, B, N, 2) of each stage's patches.
    target: (B, N, 2); weight: (B, N).

  Returns:
    (loss, per-stage losses (S,)).
  """
  g = (target - box_min) / box_size  # (S, B, N, 2)
  density = jnp.exp(-(offset - g[:, None]) ** 2 / variance / 2.0) / jnp.sqrt(
      2.0 * jnp.pi * variance)
  nll = -jnp.log(density + 1e-9)  # (S, L, B, N, 2)
  w = weight[None, None, :, :, None]
  per_stage = (nll * w).sum(axis=(1, 2, 3, 4)) / jnp.maximum(
      w.sum() * nll.shape[1] * 2.0, 1.0)
  s = _stage_weights(offset.shape[0])
  return (s * per_stage).sum(), per_stage


def weighted_mse(pred, target, weight):
  """Mean squared error on coordinates, weighted per landmark (paper 003's
  MSE loss of direct regression).

  Args:
    pred, target: (B, N, 2) in crop units; target must be finite where the
      weight is 0 (the pipeline gives 0 there).
    weight: (B, N) per-landmark weights (0 removes a point).

  Returns:
    scalar: sum w (pred - target)^2 / (2 * sum w); with all weights 1 this is
    the mean over every coordinate, as torch.nn.MSELoss().
  """
  err = ((pred - target) ** 2).sum(-1)  # (B, N)
  denom = jnp.maximum(weight.sum(), 1.0) * 2.0
  return (err * weight).sum() / denom


MIN_VARIANCE = 1e-6  # the variance clamp of the 3D-query families' NLL


def isotropic_gaussian_nll(mean, target, log_var, weight):
  """Gaussian negative log-likelihood with one variance per landmark (paper
  002 §3, after Wood et al. 2022), the constant log 2π dropped:

    l_k = log σ_k² + ||x_k - μ_k||² / (2 σ_k²),  σ_k² = max(exp(s_k), 1e-6),

  the weighted mean over landmarks. It is twice
  torch.nn.functional.gaussian_nll_loss(μ, x, σ² (repeated per coordinate),
  eps=1e-6) on the same points (which averages over coordinates, not
  landmarks, and halves).

  Args:
    mean, target: (B, N, 2) predicted and true positions (one unit: the
      3D-query families use screen units [-1, 1]); target finite where the
      weight is 0.
    log_var: (B, N) predicted log-variance s.
    weight: (B, N) per-landmark weights (visibility; 0 removes a point).

  Returns:
    scalar: sum w l / sum w.
  """
  # log σ² = max(s, log 1e-6), without forming e^s (no overflow for s > 88)
  log_var = jnp.maximum(log_var, jnp.log(MIN_VARIANCE))
  err = ((mean - target) ** 2).sum(-1)  # (B, N)
  nll = log_var + 0.5 * err * jnp.exp(-log_var)
  return (nll * weight).sum() / jnp.maximum(weight.sum(), 1e-6)


# Adaptive Wing loss of the heatmap cascade (Wang et al. 2019, as CD-ViT's
# loss/awingLoss.py): omega, theta, epsilon, alpha.
AWING = dict(omega=14.0, theta=0.5, epsilon=1.0, alpha=2.1)


def adaptive_wing(pred, target, omega=14.0, theta=0.5, epsilon=1.0,
                  alpha=2.1):
  """Elementwise Adaptive Wing loss of heatmaps (same shapes), delta =
  |pred - target|, a = alpha - target:

    omega ln(1 + (delta / epsilon)^a)        if delta < theta
    A delta - C                              otherwise, with
    A = omega a (theta / epsilon)^(a - 1) / (epsilon (1 + (theta /
        epsilon)^a)),  C = theta A - omega ln(1 + (theta / epsilon)^a)

  (continuous at delta = theta). No reduction.
  """
  delta = jnp.abs(pred - target)
  a = alpha - target
  r = theta / epsilon
  big_a = omega * a * r**(a - 1) / (epsilon * (1 + r**a))
  big_c = theta * big_a - omega * jnp.log1p(r**a)
  # the power of a clipped delta: a negative base never reaches the unused
  # branch's gradient
  small = omega * jnp.log1p((jnp.minimum(delta, theta) / epsilon)**a)
  return jnp.where(delta < theta, small, big_a * delta - big_c)


def heatmap_weight_map(target, threshold: float = 0.2, weight: float = 10.0):
  """(B, N, H, W) target -> weight * [maxpool3x3(target) >= threshold] + 1
  (CD-ViT: cells near a peak count 11 times; 3x3 max pool, stride 1, pad 1
  with -inf, as torch's max_pool2d)."""
  pooled = jax.lax.reduce_window(target, -jnp.inf, jax.lax.max,
                                 (1, 1, 3, 3), (1, 1, 1, 1),
                                 ((0, 0), (0, 0), (1, 1), (1, 1)))
  return weight * (pooled >= threshold).astype(target.dtype) + 1.0


def smooth_l1(pred, target, beta: float = 1.0):
  """Elementwise smooth L1 (Huber / beta), torch's F.smooth_l1_loss:
  0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta; beta 0 is L1."""
  d = jnp.abs(pred - target)
  if beta == 0:
    return d
  return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def cascade_stage_weights(num_stages: int, base: float = 1.2):
  """CD-ViT's stage weights base^-(S - 1 - i): the last stage 1."""
  return jnp.asarray([base**-(num_stages - 1 - i) for i in range(num_stages)],
                     jnp.float32)
