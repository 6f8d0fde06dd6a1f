"""Pure train and predict steps (jit them at the call site).

Every model family has its loss (TUFA: L1 over all decoder layers; SLPT:
inter-ocular-normalised L2 over stages and layers; DSLPT: Gaussian NLL in
patch units). Models with BatchNorm (the CNN backbones of SLPT/DSLPT) update
their `batch_stats` in the step; under `jax.jit` with a batch sharded over
devices the statistics are those of the global batch (XLA reduces across
devices), i.e. synchronised BatchNorm.
"""

from __future__ import annotations

import jax
import optax

from jaxlm import losses
from jaxlm.models.dslpt import DSLPT, uncertainty
from jaxlm.models.slpt import SLPT
from jaxlm.train.batch_metrics import make_batch_nme
from jaxlm.train.state import TrainState


def final_landmarks(outputs):
  """(B, N, 2) last prediction of a model's outputs."""
  if isinstance(outputs, dict):  # SLPT/DSLPT: last stage, last layer
    return outputs['landmarks'][-1, -1]
  return outputs[-1]  # TUFA: last decoder layer


def make_loss(model, eyes: tuple[int, int] | None = None):
  """(outputs, batch) -> (loss, metrics) of the model's family.

  eyes: outer eye corner indices of the layout (SLPT's normaliser).
  """
  if isinstance(model, DSLPT):
    def dslpt_loss(out, batch):
      loss, stages = losses.gaussian_nll(
          out['offset'], out['variance'], out['box_min'], out['box_size'],
          batch['target'], batch['weight'])
      return loss, {f'nll_stage{i + 1}': v for i, v in enumerate(stages)}
    return dslpt_loss
  if isinstance(model, SLPT):
    if eyes is None:
      raise ValueError('SLPT\'s loss needs the layout\'s eye corners')
    def slpt_loss(out, batch):
      loss, stages = losses.normalized_l2(out['landmarks'], batch['target'],
                                          batch['weight'], eyes)
      return loss, {f'nme_stage{i + 1}': v for i, v in enumerate(stages)}
    return slpt_loss

  def tufa_loss(pred, batch):
    loss = losses.weighted_l1(pred, batch['target'], batch['weight'])
    last = losses.weighted_l1(pred[-1:], batch['target'], batch['weight'])
    return loss, {'l1_last_layer': last}
  return tufa_loss


def make_train_step(model, tx, schedule, ema_decay: float = 0.0,
                    eyes: tuple[int, int] | None = None, mesh=None):
  """(state, batch) -> (state, metrics): one optimizer step on the model's
  loss; BatchNorm statistics updated when the state has them; dropout keys
  derived from the state's rng and step (the same on resume); and
  ema <- decay * ema + (1 - decay) * params when the state has an EMA.
  With a `mesh`, metrics include `train_nme` of the batch's last
  prediction, reduced across devices (`batch_metrics.py`, shard_map)."""
  loss_of = make_loss(model, eyes)
  batch_nme = None
  if mesh is not None:
    batch_nme = make_batch_nme(
        mesh, eyes if isinstance(model, SLPT) else None)

  def train_step(state: TrainState, batch):
    dropout = jax.random.fold_in(jax.random.wrap_key_data(state.rng),
                                 state.step)
    has_bn = state.batch_stats is not None

    def loss_fn(params):
      variables = {'params': params, 'constants': state.constants}
      if has_bn:
        variables['batch_stats'] = state.batch_stats
      out = model.apply(variables, batch['image'],
                        point_index=batch['point_index'], train=True,
                        rngs={'dropout': dropout},
                        mutable=['batch_stats'] if has_bn else False)
      out, updates = out if has_bn else (out, {})
      loss, aux = loss_of(out, batch)
      if batch_nme is not None:
        aux = dict(aux, train_nme=batch_nme(
            jax.lax.stop_gradient(final_landmarks(out)), batch['target'],
            batch['weight']))
      return loss, (aux, updates.get('batch_stats'))

    (loss, (aux, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(loss=loss, grad_norm=optax.tree.norm(grads),
                   lr=schedule(state.step), **aux)
    ema = state.ema
    if ema is not None:
      ema = jax.tree_util.tree_map(
          lambda e, p: ema_decay * e + (1.0 - ema_decay) * p, ema, params)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state, ema=ema,
                              batch_stats=batch_stats)
    return new_state, metrics

  return train_step


def make_predict(model):
  """(variables, images, prompts) -> last landmarks (B, N, 2)."""

  def predict(variables, images, prompts):
    return final_landmarks(model.apply(variables, images, prompts))

  return predict


def make_predict_with_uncertainty(model):
  """(variables, images, prompts) -> (landmarks (B, N, 2), standard
  deviation (B, N, 2) in crop units, or None for models without one)."""

  def predict(variables, images, prompts):
    out = model.apply(variables, images, prompts)
    std = uncertainty(out) if isinstance(model, DSLPT) else None
    return final_landmarks(out), std

  return predict


def make_dataset_prompts(model):
  """(variables, name) -> the aligned mean shape (N, 2) of a dataset."""

  def prompts(variables, name):
    return model.apply(variables, name, method=type(model).dataset_prompts)

  return prompts
