"""The query deformer D of infinite 3D landmarks (paper 001, Fig. 1).

Datasets annotate "the same" landmark at slightly different places (a
jaw line drawn higher, eye corners at the lid or at the white). Trained on
several at once, a model that shares one query per landmark learns their
average. D moves each dataset's queries on the canonical 3D face before
they are encoded:

  D_j(p) = p + MLP([p, e_j]),

e_j a learned embedding of dataset j. It is trained alongside the landmark
model with no extra supervision; the 3D analogue of TUFA's semantic
alignment (`semantic_alignment.py`).

Proposals where the paper is silent (measured in
`benchmarks/infinite3d_synthetic.py`): a 2-hidden-layer GELU MLP of width
64 on [p, e_j] with a 16-wide embedding; the output layer starts at zero (D
starts as the identity); one training dataset (`model.deformer_reference`,
by default the first in table order, i.e. by name) is the reference and
stays the identity, which fixes the frame that the others move in (without
it, every dataset and the 3D head could drift together).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.query_predictor import gelu, mlp_init


class QueryDeformer(nn.Module):
  """D: (queries (B, N, 3), dataset ids (B, N) int) -> deformed (B, N, 3).

  Attributes:
    num_datasets: training datasets (ids 0 .. num_datasets - 1).
    reference: the dataset kept at the identity.
    width, depth: the MLP's hidden width and number of hidden layers.
    embed_dim: width of the dataset embedding e_j.
  """
  num_datasets: int
  reference: int = 0
  width: int = 64
  depth: int = 2
  embed_dim: int = 16

  @nn.compact
  def __call__(self, queries, dataset_ids):
    e = nn.Embed(self.num_datasets, self.embed_dim,
                 embedding_init=nn.initializers.normal(1.0),
                 name='embed')(dataset_ids)
    x = jnp.concatenate([queries.astype(jnp.float32), e], axis=-1)
    for i in range(self.depth):
      x = gelu(nn.Dense(self.width, kernel_init=mlp_init,
                        name=f'fc{i + 1}')(x))
    delta = nn.Dense(3, kernel_init=nn.initializers.zeros, name='out')(x)
    keep = (dataset_ids != self.reference)[..., None]
    return queries + jnp.where(keep, delta, 0.0)
