"""Training-batch NME, reduced across devices with `jax.shard_map`.

The train step reports `train_nme`: the mean per-face NME of the last
prediction on the (global) training batch. The batch is split over the mesh
axes ('data', 'fsdp'); each device computes its faces' NME sum and count,
and one `psum` over those axes gives the global mean, so no device gathers
the other devices' predictions. Written per device with `shard_map` because
that is what it is: a local sum and a collective.

Normaliser: the inter-ocular distance when the batch holds every landmark
in layout order (SLPT / DSLPT, `eyes` given); otherwise (TUFA's random anchor
subsets) sqrt(w * h) of the box of the face's weighted anchors, which every
subset has.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from jaxlm.layouts import inter_ocular

BATCH_AXES = ('data', 'fsdp')


def _local_sums(pred, target, weight, eyes):
  err = jnp.sqrt(((pred - target) ** 2).sum(-1) + 1e-12)  # (b, n)
  count = weight.sum(-1)
  per_face = (err * weight).sum(-1) / jnp.maximum(count, 1.0)
  if eyes is not None:
    norm = inter_ocular(target, eyes)
  else:
    inf = jnp.where(weight[..., None] > 0, 0.0, jnp.inf)
    lo = (target + inf).min(axis=1)
    hi = (target - inf).max(axis=1)
    wh = jnp.clip(hi - lo, 0.0, None)
    norm = jnp.sqrt(wh[:, 0] * wh[:, 1])
  valid = (count > 0) & (norm > 1e-6)
  nme = jnp.where(valid, per_face / jnp.where(valid, norm, 1.0), 0.0)
  return nme.sum(), valid.sum().astype(jnp.float32)


def make_batch_nme(mesh, eyes: tuple[int, int] | None = None):
  """(pred (B, N, 2), target, weight (B, N)) -> scalar mean NME of the
  batch; inputs sharded (or not) over the mesh's batch axes."""
  axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names)

  def per_device(pred, target, weight):
    total, count = _local_sums(pred, target, weight, eyes)
    total, count = jax.lax.psum((total, count), axes)
    return total / jnp.maximum(count, 1.0)

  spec = P(axes)
  return jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec, spec),
                       out_specs=P())
