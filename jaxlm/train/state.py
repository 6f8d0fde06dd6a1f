"""Training state and optimizer (thesis §6.3.3: AdamW, multistep x0.1 decay)."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxlm import models
from jaxlm.errors import JaxlmError
from jaxlm.train import frozen as frozen_lib


@flax.struct.dataclass
class TrainState:
  """Everything a step changes, as one pytree.

  params: trainable parameters; constants: non-trained model variables (the
  datasets' mean shapes); rng: raw uint32 key data (checkpoint friendly);
  ema: an exponential moving average of params (`train.ema_decay` > 0),
  else None; batch_stats: BatchNorm running statistics of CNN backbones,
  else None. All of it is saved in one checkpoint.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  constants: Any
  rng: jax.Array
  ema: Any = None
  batch_stats: Any = None

  def variables(self, params=None):
    """The variables `model.apply` takes (with `params` instead of the
    state's own, when given)."""
    return models.variables(self.params if params is None else params,
                            self.constants, self.batch_stats)


def learning_rate_schedule(optim_cfg, total_steps: int):
  """Linear warmup, then x`decay_factor` at each fraction in `decay_at`."""
  lr = float(optim_cfg.lr)
  boundaries = {int(f * total_steps): float(optim_cfg.decay_factor)
                for f in optim_cfg.decay_at}
  main = optax.piecewise_constant_schedule(lr, boundaries)
  warmup = int(optim_cfg.warmup_steps)
  if warmup <= 0:
    return main
  return optax.join_schedules(
      [optax.linear_schedule(lr / max(warmup, 1), lr, warmup),
       lambda s: main(s + warmup)], [warmup])


def make_optimizer(optim_cfg, total_steps: int, frozen=()):
  """optax AdamW (weight decay on matrices only) with optional clipping;
  the parameters matching `frozen` (`train.frozen` patterns, `frozen.py`)
  get `set_to_zero` and no optimizer state."""
  if optim_cfg.name not in ('adamw', 'adam'):
    raise JaxlmError(f'config key optim.name: unknown optimizer '
                     f'{optim_cfg.name!r} (known: adamw, adam)')
  schedule = learning_rate_schedule(optim_cfg, total_steps)
  decay_mask = lambda params: jax.tree_util.tree_map(lambda p: p.ndim >= 2,
                                                     params)
  if optim_cfg.name == 'adam':  # SLPT's optimizer: no weight decay
    tx = optax.adam(schedule, b1=optim_cfg.b1, b2=optim_cfg.b2)
  else:
    tx = optax.adamw(schedule, b1=optim_cfg.b1, b2=optim_cfg.b2,
                     weight_decay=optim_cfg.weight_decay, mask=decay_mask)
  if optim_cfg.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(optim_cfg.grad_clip), tx)
  if frozen:
    tx = optax.multi_transform(
        {frozen_lib.TRAINED: tx, frozen_lib.FROZEN: optax.set_to_zero()},
        lambda params: frozen_lib.labels(params, frozen))
  return tx, schedule


def create_state(model, family, tx, image_size: int, num_anchors: int,
                 seed: int, mean_table, ema: bool = False, query_table=None):
  """Initialises a TrainState: params from `seed`, the family's mean-shape
  table set to `mean_table` (and its 3D query table to `query_table`, for
  families with one), an EMA copy of the params when `ema`."""
  rng = jax.random.key(seed)
  init_rng, rng = jax.random.split(rng)
  variables = models.init_variables(model, init_rng, image_size,
                                    max(num_anchors, 1))
  constants = family.with_mean_shapes(variables['constants'],
                                      jnp.asarray(mean_table))
  if query_table is not None:
    constants = family.with_query_table(constants, jnp.asarray(query_table))
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), constants=constants,
                    rng=jax.random.key_data(rng),
                    ema=jax.tree_util.tree_map(jnp.copy, params) if ema
                    else None,
                    batch_stats=variables.get('batch_stats'))
