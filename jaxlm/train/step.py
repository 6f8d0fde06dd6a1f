"""Pure train and predict steps (jit them at the call site)."""

from __future__ import annotations

import jax
import optax

from jaxlm import losses
from jaxlm.train.state import TrainState


def make_train_step(model, tx, schedule, ema_decay: float = 0.0):
  """(state, batch) -> (state, metrics): one AdamW step on the L1 loss, and
  ema <- decay * ema + (1 - decay) * params when the state has an EMA."""

  def train_step(state: TrainState, batch):
    def loss_fn(params):
      pred = model.apply({'params': params, 'constants': state.constants},
                         batch['image'], point_index=batch['point_index'],
                         train=True)
      loss = losses.weighted_l1(pred, batch['target'], batch['weight'])
      last = losses.weighted_l1(pred[-1:], batch['target'], batch['weight'])
      return loss, last

    (loss, last), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(loss=loss, l1_last_layer=last,
                   grad_norm=optax.tree.norm(grads),
                   lr=schedule(state.step))
    ema = state.ema
    if ema is not None:
      ema = jax.tree_util.tree_map(
          lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state, ema=ema)
    return new_state, metrics

  return train_step


def make_predict(model):
  """(variables, images, prompts) -> last-layer landmarks (B, N, 2)."""

  def predict(variables, images, prompts):
    return model.apply(variables, images, prompts)[-1]

  return predict


def make_dataset_prompts(model):
  """(variables, name) -> the aligned mean shape (N, 2) of a dataset."""

  def prompts(variables, name):
    return model.apply(variables, name, method=type(model).dataset_prompts)

  return prompts

