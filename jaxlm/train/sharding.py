"""Device mesh and sharding rules of the training state and batches.

Mesh axes ('data', 'fsdp', 'tensor') from `config.mesh` (-1: all remaining
devices). Batches are split over ('data', 'fsdp'); parameters follow a short
logical-axis table: each parameter's dimensions get logical names from the
first rule whose pattern matches its path ('embed', 'mlp', ...), and
LOGICAL_TO_MESH maps those names to mesh axes. A dimension that the mesh
axis does not divide stays replicated, so every mesh works with every model
(at worst as plain data parallelism). Optimizer moments follow their
parameter (their paths end with the parameter's path).
"""

from __future__ import annotations

import re

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxlm.checkpoints import key_path
from jaxlm.errors import JaxlmError

AXES = ('data', 'fsdp', 'tensor')

# (pattern on 'a/b/kernel' paths, logical names of the dimensions)
PARAM_RULES = (
    (r'(qkv|fc1|query|key|value|linear1)/kernel$', ('embed', 'mlp')),
    (r'(proj|fc2|out|linear2)/kernel$', ('mlp', 'embed')),
    (r'patch_embed/kernel$', (None, None, None, 'embed')),
    (r'(pos_embed|cls_token|register_tokens)$', (None, None, 'embed')),
)
LOGICAL_TO_MESH = {'batch': ('data', 'fsdp'), 'embed': 'fsdp',
                   'mlp': 'tensor'}


def make_mesh(mesh_cfg=None, devices=None) -> jax.sharding.Mesh:
  """The ('data', 'fsdp', 'tensor') mesh of `config.mesh`."""
  devices = list(devices if devices is not None else jax.devices())
  mesh_cfg = mesh_cfg or {}
  shape = [int(mesh_cfg.get(a, -1 if a == 'data' else 1)) for a in AXES]
  if shape.count(-1) > 1:
    raise JaxlmError('config key mesh: at most one axis may be -1')
  known = int(np.prod([s for s in shape if s != -1]))
  if -1 in shape:
    if len(devices) % known:
      raise JaxlmError(f'config key mesh: {len(devices)} devices do not '
                       f'divide into {dict(zip(AXES, shape))}')
    shape[shape.index(-1)] = len(devices) // known
  n = int(np.prod(shape))
  if n > len(devices):
    raise JaxlmError(f'config key mesh: {dict(zip(AXES, shape))} needs {n} '
                     f'devices, {len(devices)} available')
  return jax.make_mesh(tuple(shape), AXES,
                       axis_types=(jax.sharding.AxisType.Auto,) * 3,
                       devices=devices[:n])


def _mesh_axes(logical, dim: int, mesh) -> object:
  axes = LOGICAL_TO_MESH.get(logical) if logical else None
  if axes is None:
    return None
  names = axes if isinstance(axes, tuple) else (axes,)
  size = int(np.prod([mesh.shape[a] for a in names]))
  return axes if size > 1 and dim % size == 0 else None


def spec_for(path: str, shape, mesh) -> P:
  for pattern, logical in PARAM_RULES:
    if re.search(pattern, path) and len(logical) == len(shape):
      return P(*[_mesh_axes(name, d, mesh) for name, d in zip(logical, shape)])
  return P()


def state_shardings(abstract_state, mesh):
  """NamedSharding for every leaf of an (abstract) train state."""
  return jax.tree_util.tree_map_with_path(
      lambda keys, x: NamedSharding(mesh, spec_for(key_path(keys), x.shape,
                                                   mesh)
                                    if np.ndim(x) else P()),
      abstract_state)


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(LOGICAL_TO_MESH['batch']))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh):
  """The global batch must split over the data-parallel devices (which span
  all processes) and into equal per-process shards."""
  n = mesh.shape['data'] * mesh.shape['fsdp']
  if batch_size % n or batch_size % jax.process_count():
    raise JaxlmError(f'config key train.batch_size: {batch_size} does not '
                     f'split over {n} data-parallel devices and '
                     f'{jax.process_count()} processes')


def global_batch(local: dict, sharding: NamedSharding) -> dict:
  """A process's batch shard -> global jax.Arrays sharded over the batch."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}
