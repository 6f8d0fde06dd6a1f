"""TUFA: task-agnostic unified face alignment (thesis ch. 6).

image -> ViT encoder -> patch tokens F, position embedding P
anchors (mean shape + semantic alignment, or any prompt shape) ->
structure prompts E -> prompt decoder(F, P, E) -> MLP -> coordinates.

Coordinates in and out are [0, 1] crop units (pixel / input size); the head
regresses *absolute* positions from every decoder layer.

Two ways to give the anchors:
  * `point_index` (B, N) int: global indices into the training datasets'
    aligned mean shapes (training, and evaluation on a training layout);
  * `prompts` (B, N, 2): any shape on the plane (zero-shot detection).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.models.attention import dense_init
from jaxlm.models.family import Family, compute_dtype
from jaxlm.models.prompt_decoder import (PromptDecoder,
                                         cross_attention_weights)
from jaxlm.models.remat import remat_of
from jaxlm.models.semantic_alignment import SemanticAlignment
from jaxlm.models.structure_prompt import encode_prompts
from jaxlm.models.vit import ViT, decode_variant


class CoordinateHead(nn.Module):
  """Linear(C -> hidden) -> ReLU -> Linear(hidden -> 2)."""
  hidden: int = 256

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(self.hidden, kernel_init=dense_init, name='fc1')(x))
    # Bias at the crop centre: untrained models start at the mean position.
    return nn.Dense(2, kernel_init=dense_init,
                    bias_init=nn.initializers.constant(0.5), name='fc2')(x)


class TUFA(nn.Module):
  """TUFA with a DINO ViT encoder.

  Attributes:
    variant: ViT variant, e.g. 'S/16', 'S/8', 'Ti/16:depth=4'.
    datasets: ((name, num_points), ...) training datasets, one semantic
      alignment table each.
    decoder_layers, decoder_heads, decoder_mlp: prompt decoder size (its width
      is the encoder's).
    head_hidden: hidden width of the coordinate MLP.
    pos_resize: how the ViT resizes its position embedding ('dino', 'size').
    pos_init: initial ViT position embedding, 'random' or 'sincos'.
    prompt_temperature: tau of Eq. 6.1-6.2 (10000 in the thesis); also used
      by the 'sincos' position-embedding init.
    pos_init_scale: amplitude of the 'sincos' position-embedding init.
    dtype: compute dtype (parameters stay float32; outputs are float32).
    remat: rematerialisation of the ViT blocks and decoder layers
      (`remat.POLICIES`).
  """
  variant: str = 'S/16'
  datasets: tuple[tuple[str, int], ...] = (('wflw', 98),)
  decoder_layers: int = 6
  decoder_heads: int = 6
  decoder_mlp: int = 1536
  head_hidden: int = 256
  pos_resize: str = 'dino'
  pos_init: str = 'random'
  prompt_temperature: float = 10000.0
  pos_init_scale: float = 1.0
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  def setup(self):
    self.width = decode_variant(self.variant)['width']
    self.encoder = ViT(self.variant, pos_resize=self.pos_resize,
                       pos_init=self.pos_init,
                       pos_temperature=self.prompt_temperature,
                       pos_init_scale=self.pos_init_scale,
                       dtype=self.dtype, remat=self.remat)
    self.alignment = SemanticAlignment(self.datasets)
    self.decoder = PromptDecoder(self.decoder_layers, self.decoder_heads,
                                 self.decoder_mlp, 0.0, self.dtype,
                                 self.remat)
    self.head = CoordinateHead(self.head_hidden)

  def __call__(self, images, prompts=None, *, point_index=None,
               train: bool = False):
    """Landmarks (num_layers, B, N, 2) in [0, 1] crop units.

    Args:
      images: (B, H, W, 3) RGB in [0, 255].
      prompts: (B, N, 2) or (N, 2) anchors in [0, 1] crop units, or None.
      point_index: (B, N) global point indices of aligned training anchors,
        used when `prompts` is None.
      train: unused by TUFA (no dropout), kept for a uniform model API.
    """
    del train
    if (prompts is None) == (point_index is None):
      raise ValueError('give exactly one of prompts and point_index')
    if prompts is None:
      prompts = self.alignment(point_index)
    if prompts.ndim == 2:
      prompts = jnp.broadcast_to(prompts, (images.shape[0],) + prompts.shape)
    memory, pos = self.encoder(images)
    emb = encode_prompts(prompts, self.width, self.prompt_temperature)
    feats = self.decoder(memory, pos, emb)
    return self.head(feats.astype(jnp.float32))

  def dataset_prompts(self, name: str):
    """(N, 2) aligned mean shape of training dataset `name`."""
    return self.alignment.dataset_anchors(name)


def cross_attention(model: TUFA, variables, images, prompts):
  """The prompts' cross-attention over the image patches, with the
  landmarks it gave: (landmarks (layers, B, N, 2) crop units, weights
  (layers, B, heads, N, gh * gw)), the patches row-major over the ViT's
  gh x gw grid (row y, column x; patch (i, j) covers crop units
  [j, j + 1] / gw x [i, i + 1] / gh). Args as `TUFA.__call__`'s prompts
  form. The normal forward computes no weights; this one asks the decoder
  to sow them (`attention.py`)."""
  out, state = model.apply(variables, images, prompts,
                           mutable=['intermediates'])
  return out, cross_attention_weights(state['intermediates']['decoder'])[0]


def _defaults():
  return dict(variant='S/16', decoder_layers=6, decoder_heads=6,
              decoder_mlp=1536, head_hidden=256, pos_resize='dino',
              pos_init='random', prompt_temperature=10000.0,
              pos_init_scale=1.0, dtype='float32',
              remat='none')  # 'blocks' | 'dots': `remat.POLICIES`


def _build(c, datasets):
  return TUFA(variant=c.variant, datasets=datasets,
              decoder_layers=c.decoder_layers, decoder_heads=c.decoder_heads,
              decoder_mlp=c.decoder_mlp, head_hidden=c.head_hidden,
              pos_resize=c.pos_resize, pos_init=c.pos_init,
              prompt_temperature=c.prompt_temperature,
              pos_init_scale=c.pos_init_scale, dtype=compute_dtype(c),
              remat=remat_of(c))


def _loss(model, train_layouts):
  """L1 over every decoder layer (Eq. 6.12); reports the last layer's."""
  del model, train_layouts

  def tufa_loss(pred, batch):
    loss = losses.weighted_l1(pred, batch['target'], batch['weight'])
    last = losses.weighted_l1(pred[-1:], batch['target'], batch['weight'])
    return loss, {'l1_last_layer': last}
  return tufa_loss


FAMILY = Family(
    name='tufa', defaults=_defaults, build=_build, loss=_loss,
    landmarks=lambda outputs: outputs[-1],  # the last decoder layer
    anchor_masking=True, any_prompts=True,
    mean_shape_path=('alignment', 'mean_shape'),
    encoder=lambda c: (('encoder',), c.variant))
