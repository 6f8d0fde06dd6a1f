"""DSLPT: dynamic sparse local patch transformer (thesis ch. 5).

SLPT (`slpt.py`) with two changes:

* Each landmark is a Gaussian in patch units: Linear(256 -> 512) -> ReLU,
  then a mean Linear(512 -> 2) and a variance Linear(512 -> 2) through a
  sigmoid (`variance`, in (0, 1) patch units squared). Trained with the
  Gaussian negative log-likelihood (`losses.gaussian_nll`).
* Patch sizes follow the uncertainty: the first stage's half-size is 0.125;
  then, per landmark, h' = h * clip(12 * max(v_x, v_y), 0.5, 0.7) from the
  last layer's variances, without gradient.

The patches are fixed-size boxes shifted to stay inside the image, sampled
with half-pixel centres (the 'dslpt' convention of `patch_gather.py`), and
the patch convolution has a bias.

Output adds `variance` (stages, layers, B, N, 2). Its square root times the
patch size is the per-landmark standard deviation in crop units
(`uncertainty`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.models import slpt
from jaxlm.models.family import Family
from jaxlm.models.slpt import SLPT

VARIANCE_SCALE = 12.0
SHRINK_RANGE = (0.5, 0.7)


class GaussianHead(nn.Module):
  hidden: int = 512

  @nn.compact
  def __call__(self, x):
    init = nn.initializers.xavier_uniform()
    x = nn.relu(nn.Dense(self.hidden, kernel_init=init, name='embedding')(x))
    mean = nn.Dense(2, kernel_init=init, name='mean')(x)
    variance = nn.sigmoid(nn.Dense(2, kernel_init=init, name='variance')(x))
    return mean, variance


def next_half_size(half, variance):
  """h * clip(12 * max(v_x, v_y), 0.5, 0.7) per landmark, no gradient.

  half: scalar or (B, N, 1); variance: (B, N, 2) of the last layer.
  """
  v = jax.lax.stop_gradient(variance).max(axis=-1, keepdims=True)
  return half * jnp.clip(VARIANCE_SCALE * v, *SHRINK_RANGE)


def uncertainty(outputs, stage: int = -1):
  """(B, N, 2) standard deviation in crop units of a stage's last layer."""
  return (jnp.sqrt(outputs['variance'][stage, -1]) *
          outputs['box_size'][stage])


class DSLPT(SLPT):
  """DSLPT (thesis ch. 5); attributes as SLPT's (`half_sizes[0]` is the
  first stage's half-size; the number of entries sets the stages)."""
  backbone: str = 'hrnet'
  head_hidden: int = 512

  convention = 'dslpt'
  patch_bias = True

  def make_head(self):
    return GaussianHead(self.head_hidden, name='head')

  def apply_head(self, head, feats):
    mean, variance = head(feats)
    return {'offset': mean, 'variance': variance}

  def next_half(self, stage, half, outputs):
    del stage
    return next_half_size(half, outputs['variance'][-1])


def _loss(model, train_layouts):
  """Gaussian negative log-likelihood in patch units (thesis §5.3)."""
  del model, train_layouts

  def dslpt_loss(out, batch):
    loss, stages = losses.gaussian_nll(
        out['offset'], out['variance'], out['box_min'], out['box_size'],
        batch['target'], batch['weight'])
    return loss, {f'nll_stage{i + 1}': v for i, v in enumerate(stages)}
  return dslpt_loss


FAMILY = Family(name='dslpt', defaults=lambda: slpt.defaults('hrnet'),
                build=slpt.builder(DSLPT), loss=_loss,
                landmarks=slpt.last_landmarks, uncertainty=uncertainty,
                encoder=slpt.vit_backbone)
