"""Direct coordinate regression with a ResNet-18 (paper 003).

Sharif et al., "Facial Landmark Detection Using Deep Learning: A
Comprehensive Approach with Resnet18": a ResNet-18 whose first convolution
takes a greyscale image regresses the 2N coordinates of one landmark layout
(68 points of 300W), trained with the mean squared error and Adam.

  images (B, S, S, 3) RGB in [0, 255]
    -> greyscale, ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B (unrounded;
       `in_channels=3` keeps RGB) -> (x / 255 - 0.5) / 0.5
    -> ResNet-18 trunk (`resnet.ResNetTrunk`) -> C5 (B, S/32, S/32, 512)
    -> global average pool (B, 512) -> Linear(512 -> 2N)
    -> (B, N, 2) centred coordinates, + 0.5 -> crop units.

Coordinates: (x, y) in [0, 1] crop units (pixel / S, the image's top-left
corner at 0), as every jaxlm family. The head regresses target - 0.5, so a
zero head predicts the crop centre. BatchNorm as PyTorch's defaults
(momentum 0.1, i.e. flax momentum 0.9; eps 1e-5), its running statistics in
`batch_stats` (flax averages the biased batch variance, torch the unbiased
one: the same for any real batch size up to a factor n / (n - 1)). The head
starts as torch's nn.Linear (kernel and bias U(+-1 / sqrt(512))).

Model API (`family.py`): `point_index` (B, N') selects predicted points
(`index % N`: one layout, so its offset in the point table is 0); `prompts`
(N, 2) or (B, N, 2) only fixes N: a different N is an error, and the
positions are ignored (the model regresses every point from the image
alone). With neither, all N points in layout order. Output: (B, N', 2)
float32 crop units. `constants/mean_shape` (N, 2) holds the training mean
shape (filled by the trainer); `dataset_prompts` returns it, so evaluation
can pass it as prompts, but it does not change the prediction.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.errors import JaxlmError
from jaxlm.models.family import Family, compute_dtype
from jaxlm.models.remat import remat_of
from jaxlm.models.resnet import ResNetTrunk

# model.variant -> ResNet depth
VARIANTS = {'resnet18': 18}
# ITU-R BT.601 luma weights (those of cv2.COLOR_RGB2GRAY)
GREY_WEIGHTS = (0.299, 0.587, 0.114)
TORCH_BN_MOMENTUM = 0.9  # flax convention: torch's default momentum 0.1


def to_grey(images):
  """(B, H, W, 3) RGB [0, 255] -> (B, H, W, 1) float32 luma, unrounded."""
  x = images.astype(jnp.float32)
  return (x @ jnp.asarray(GREY_WEIGHTS, jnp.float32))[..., None]


def preprocess(images, in_channels: int = 1):
  """RGB [0, 255] -> (x / 255 - 0.5) / 0.5 of the grey (in_channels 1) or
  RGB (3) image, float32 in [-1, 1]."""
  x = to_grey(images) if in_channels == 1 else images.astype(jnp.float32)
  return (x / 255.0 - 0.5) / 0.5


def _torch_linear_init(fan_in: int):
  bound = fan_in**-0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


class DirectRegression(nn.Module):
  """ResNet -> global average pool -> Linear(512 -> 2N) (paper 003).

  Attributes:
    num_points: N landmarks of the (single) training layout.
    variant: the trunk, 'resnet18'.
    in_channels: 1 (greyscale, the paper) or 3 (RGB).
    dtype: compute dtype of the trunk (the head and outputs are float32).
    remat: rematerialisation of the trunk's blocks (`remat.POLICIES`).
  """
  num_points: int = 68
  variant: str = 'resnet18'
  in_channels: int = 1
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  def mean_shape(self):
    return self.variable('constants', 'mean_shape', jnp.zeros,
                         (self.num_points, 2), jnp.float32).value

  @nn.compact
  def __call__(self, images, prompts=None, *, point_index=None,
               train: bool = False):
    if self.variant not in VARIANTS:
      raise ValueError(f'unknown regression variant {self.variant!r}; known: '
                       f'{", ".join(VARIANTS)}')
    if self.in_channels not in (1, 3):
      raise ValueError(f'in_channels {self.in_channels}: 1 (grey) or 3 (RGB)')
    if prompts is not None and prompts.shape[-2] != self.num_points:
      raise ValueError(f'{prompts.shape[-2]} prompts for a model of '
                       f'{self.num_points} landmarks (regression predicts its '
                       f'one layout; prompt positions are ignored)')
    self.mean_shape()
    x = preprocess(images, self.in_channels)
    x = ResNetTrunk(VARIANTS[self.variant], self.in_channels,
                    TORCH_BN_MOMENTUM, self.dtype, self.remat,
                    name='backbone')(x, train)
    x = x.astype(jnp.float32).mean(axis=(1, 2))  # (B, C)
    head = nn.Dense(2 * self.num_points,
                    kernel_init=_torch_linear_init(x.shape[-1]),
                    bias_init=_torch_linear_init(x.shape[-1]), name='head')
    out = head(x).reshape(x.shape[0], self.num_points, 2) + 0.5
    if point_index is not None:
      index = (point_index % self.num_points)[..., None]  # (B, N', 1)
      out = jnp.take_along_axis(out, index, axis=1)
    return out

  def dataset_prompts(self, name: str):
    """(N, 2) the training mean shape (one layout; fixes N only)."""
    del name
    return self.get_variable('constants', 'mean_shape')


def defaults():
  return dict(
      variant='resnet18',  # the trunk (VARIANTS)
      in_channels=1,  # 1: greyscale input as the paper; 3: RGB
      dtype='float32',
      remat='none')  # 'blocks' | 'dots': `remat.POLICIES`


def build(c, datasets):
  """(model config, datasets) -> DirectRegression of the one training
  layout."""
  if len(datasets) != 1:
    raise JaxlmError(f'config key data.train: {c.name} regresses one '
                     f'landmark layout from one training dataset, got '
                     f'{len(datasets)} ({", ".join(n for n, _ in datasets)})')
  if c.variant not in VARIANTS:
    raise JaxlmError(f'config key model.variant: unknown {c.name} variant '
                     f'{c.variant!r} (known: {", ".join(VARIANTS)})')
  if c.in_channels not in (1, 3):
    raise JaxlmError(f'config key model.in_channels: {c.in_channels!r} is '
                     f'neither 1 (greyscale) nor 3 (RGB)')
  return DirectRegression(num_points=int(datasets[0][1]), variant=c.variant,
                          in_channels=int(c.in_channels),
                          dtype=compute_dtype(c), remat=remat_of(c))


def _loss(model, train_layouts):
  """MSE on crop-unit coordinates, weighted per landmark (paper 003)."""
  del model, train_layouts

  def regression_loss(out, batch):
    mse = losses.weighted_mse(out, batch['target'], batch['weight'])
    return mse, {'mse': mse}
  return regression_loss


FAMILY = Family(name='regression', defaults=defaults, build=build,
                loss=_loss, landmarks=lambda outputs: outputs,
                anchor_masking=False)
