"""The pure train step, one for every model family (jit it with `jit_step`).

The step asks the model's family (`jaxlm.models.FAMILIES`) for its loss and
its final landmarks; it never tests which family it trains. Models with
BatchNorm update their `batch_stats` in the step; under `jax.jit` with a
batch sharded over devices the statistics are those of the global batch
(XLA reduces across devices), i.e. synchronised BatchNorm.
"""

from __future__ import annotations

import jax
import optax

from jaxlm.models.materialize import CPU_COMPILER_OPTIONS
from jaxlm.train import frozen as frozen_lib
from jaxlm.train import sharding
from jaxlm.train.batch_metrics import make_batch_nme
from jaxlm.train.state import TrainState


def batch_eyes(num_anchors: int, train_layouts):
  """Outer eye corners when every batch holds all points of one layout in
  order (`data.num_anchors` 0, one training layout): `train_nme` is then
  inter-ocular; None otherwise (random anchor subsets: box-normalised)."""
  if num_anchors == 0 and len({l.name for l in train_layouts}) == 1:
    return tuple(train_layouts[0].outer_eye_corners)
  return None


def make_train_step(model, family, tx, schedule, train_layouts,
                    ema_decay: float = 0.0, mesh=None,
                    eyes: tuple[int, int] | None = None, frozen=()):
  """(state, batch) -> (state, metrics): one optimizer step on the family's
  loss; BatchNorm statistics updated when the state has them; dropout keys
  derived from the state's rng and step (the same on resume); and
  ema <- decay * ema + (1 - decay) * params when the state has an EMA.
  With a `mesh`, metrics include `train_nme` of the batch's last
  prediction, reduced across devices (`batch_metrics.py`, shard_map;
  inter-ocular with `eyes`, see `batch_eyes`). Parameters matching the
  `frozen` patterns (`train.frozen`, `frozen.py`) get no gradient and stay
  bit-identical, in `params` and in the EMA."""
  loss_of = family.loss(model, train_layouts)
  batch_nme = make_batch_nme(mesh, eyes) if mesh is not None else None

  def train_step(state: TrainState, batch):
    dropout = jax.random.fold_in(jax.random.wrap_key_data(state.rng),
                                 state.step)
    has_bn = state.batch_stats is not None
    mask = frozen_lib.frozen_mask(state.params, frozen) if frozen else None

    def loss_fn(params):
      if mask is not None:
        params = frozen_lib.stop_frozen_gradients(mask, params)
      out = model.apply(state.variables(params), batch['image'],
                        point_index=batch['point_index'], train=True,
                        rngs={'dropout': dropout},
                        mutable=['batch_stats'] if has_bn else False)
      out, updates = out if has_bn else (out, {})
      loss, aux = loss_of(out, batch)
      if batch_nme is not None:
        aux = dict(aux, train_nme=batch_nme(
            jax.lax.stop_gradient(family.landmarks(out)), batch['target'],
            batch['weight']))
      return loss, (aux, updates.get('batch_stats'))

    (loss, (aux, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if mask is not None:
      params = frozen_lib.keep_frozen(mask, params, state.params)
    metrics = dict(loss=loss, grad_norm=optax.tree.norm(grads),
                   lr=schedule(state.step), **aux)
    ema = state.ema
    if ema is not None:
      ema = jax.tree_util.tree_map(
          lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
      if mask is not None:
        ema = frozen_lib.keep_frozen(mask, ema, state.ema)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state, ema=ema,
                              batch_stats=batch_stats)
    return new_state, metrics

  return train_step


def jit_step(train_step, state_shardings, batch_shardings, mesh):
  """The jitted step: state and batch placed as given, metrics replicated,
  the input state donated. On CPU meshes it is compiled so that XLA:CPU
  keeps optimisation barriers (`models/materialize.py`: the models'
  materialisation points and `jax.checkpoint`'s)."""
  cpu = mesh.devices.flat[0].platform == 'cpu'
  return jax.jit(train_step, in_shardings=(state_shardings, batch_shardings),
                 out_shardings=(state_shardings, sharding.replicated(mesh)),
                 donate_argnums=0,
                 compiler_options=CPU_COMPILER_OPTIONS if cpu else None)
