"""The query encoder M and predictor P of continuous landmarks (paper 002 §3).

A landmark is asked for by a 3D query q_k: a point of a canonical 3D face
(head coordinates, x right, y down, z towards the camera, half-width about
1). M lifts it to an embedding (2-layer MLP R^3 -> R^64, GELU); P maps the
image descriptor f (from the feature extractor F) and each query embedding
to that landmark's 2D position and confidence. Two predictors (paper §4.7):

  'mlp': a 4-layer MLP on concat(f, M(q_k)), each query alone (cost linear
    in the number of queries, nearly flat next to F);
  'transformer': concat(f, M(q_k)) projected to `width` (768), then pre-norm
    ViT blocks (`vit.Block`, 8 heads) over the sequence of queries, so
    the queries of one face see each other.

Output (B, N, 3): (μ_x, μ_y) in screen units [-1, 1] (the crop's left/top
edge at -1) and s, the log-variance of an isotropic Gaussian (σ² = e^s,
screen units²). The last layer starts at zero: every untrained prediction is
the crop centre with σ = 1. The MLP layers start with variance 1 / fan_in
(LeCun normal, as PyTorch's nn.Linear up to its uniform shape): ViT's
N(0, 0.02) would shrink a 3D query to ~1e-3 after two layers, and the
predictor would take thousands of steps to see it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.models.remat import checkpointed
from jaxlm.models.vit import Block

PREDICTORS = ('mlp', 'transformer')
mlp_init = nn.initializers.lecun_normal()


def gelu(x):
  return jax.nn.gelu(x, approximate=False)


class QueryEncoder(nn.Module):
  """M: (..., 3) canonical points -> (..., dim) embeddings (2 layers, GELU)."""
  dim: int = 64
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, queries):
    x = queries.astype(self.dtype)
    x = gelu(nn.Dense(self.dim, dtype=self.dtype, kernel_init=mlp_init,
                      name='fc1')(x))
    return nn.Dense(self.dim, dtype=self.dtype, kernel_init=mlp_init,
                    name='fc2')(x)


def _output(x, outputs: int = 3):
  """Zero-initialised head, float32: (μ_x, μ_y, s), or `outputs` values
  (the 3D head of `infinite3d.py`: a 3D offset and s)."""
  return nn.Dense(outputs, kernel_init=nn.initializers.zeros,
                  name='out')(x.astype(jnp.float32))


class MLPPredictor(nn.Module):
  """P (MLP): concat(f, M(q_k)) -> `depth` Dense layers of `width` with
  GELU (the last of them the 3-output head)."""
  width: int = 512
  depth: int = 4
  dtype: jnp.dtype = jnp.float32
  outputs: int = 3

  @nn.compact
  def __call__(self, x):
    for i in range(self.depth - 1):
      x = gelu(nn.Dense(self.width, dtype=self.dtype, kernel_init=mlp_init,
                        name=f'fc{i + 1}')(x))
    return _output(x, self.outputs)


class TransformerPredictor(nn.Module):
  """P (transformer): concat(f, M(q_k)) -> Dense(width) -> `depth` pre-norm
  blocks of `heads` heads over the N queries -> LayerNorm -> head."""
  width: int = 768
  depth: int = 4
  heads: int = 8
  mlp_ratio: int = 4
  dtype: jnp.dtype = jnp.float32
  outputs: int = 3
  remat: str = 'none'  # of each block (`remat.POLICIES`)

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.width, dtype=self.dtype, kernel_init=mlp_init,
                 name='embed')(x)
    block = checkpointed(Block, self.remat)
    for i in range(self.depth):
      x = block(self.heads, self.mlp_ratio * self.width, self.dtype,
                name=f'block{i}')(x)
    x = nn.LayerNorm(1e-6, dtype=self.dtype, name='norm')(x)
    return _output(x, self.outputs)


def make_predictor(kind: str, width: int, depth: int, heads: int, dtype,
                   outputs: int = 3, remat: str = 'none') -> nn.Module:
  """P of `kind` ('mlp' or 'transformer'; ValueError naming the known
  ones otherwise); `remat` rematerialises the transformer's blocks (the
  MLP's layers are too small to be worth it)."""
  if kind == 'mlp':
    return MLPPredictor(width, depth, dtype, outputs=outputs)
  if kind == 'transformer':
    return TransformerPredictor(width, depth, heads, dtype=dtype,
                                outputs=outputs, remat=remat)
  raise ValueError(f'unknown predictor {kind!r}; known: '
                   f'{", ".join(PREDICTORS)}')


def predict_queries(features, embeddings, predictor: nn.Module):
  """P over every query: features (B, D), embeddings (B, N, E) ->
  (B, N, predictor.outputs)."""
  f = jnp.broadcast_to(features[:, None, :].astype(embeddings.dtype),
                       embeddings.shape[:2] + features.shape[-1:])
  return predictor(jnp.concatenate([f, embeddings], axis=-1))
