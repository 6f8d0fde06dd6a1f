"""`train.frozen`: frozen parameters stay bit-identical, take no optimizer
state and no gradient, for any family; bad patterns are config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.errors import JaxlmError
from jaxlm.train import frozen
from jaxlm.train.loop import setup

PARAMS = {'encoder': {'blocks_0': {'kernel': jnp.ones((2, 2))},
                      'blocks_1': {'kernel': jnp.ones((2, 2)),
                                   'bias': jnp.ones(2)},
                      'norm': {'scale': jnp.ones(2)}},
          'head': {'kernel': jnp.ones((2, 3))}}


def _frozen_paths(patterns):
  mask = frozen.frozen_mask(PARAMS, patterns)
  leaves = jax.tree_util.tree_flatten_with_path(mask)[0]
  return sorted(frozen.param_path(p) for p, f in leaves if f)


def test_patterns_match_subtrees_wildcards_and_negations():
  assert _frozen_paths(('encoder',)) == [
      'encoder/blocks_0/kernel', 'encoder/blocks_1/bias',
      'encoder/blocks_1/kernel', 'encoder/norm/scale']
  assert _frozen_paths(('encoder', '!encoder/blocks_1', '!encoder/norm')) == [
      'encoder/blocks_0/kernel']
  assert _frozen_paths(('*/kernel',)) == [
      'encoder/blocks_0/kernel', 'encoder/blocks_1/kernel', 'head/kernel']
  assert _frozen_paths(('encoder/blocks_[01]/kernel',)) == [
      'encoder/blocks_0/kernel', 'encoder/blocks_1/kernel']
  # a prefix of a name is not a match: 'encoder/block' is no block
  with pytest.raises(JaxlmError, match=r"train.frozen: 'encoder/block' "
                     r'matches no parameter .*encoder, head'):
    frozen.frozen_mask(PARAMS, ('encoder/block',))
  with pytest.raises(JaxlmError, match='not a parameter path pattern'):
    frozen.frozen_mask(PARAMS, ('!',))


def _batch(cfg, n, seed=1):
  rng = np.random.default_rng(seed)
  size, a = cfg.data.image_size, cfg.data.num_anchors
  return dict(image=rng.integers(0, 255, (2, size, size, 3), np.uint8),
              point_index=rng.integers(0, n, (2, a)).astype(np.int32),
              target=rng.uniform(0, 1, (2, a, 2)).astype(np.float32),
              weight=np.ones((2, a), np.float32))


def test_frozen_encoder_is_bit_identical_and_has_no_adam_state(tiny):
  cfg = tiny()
  cfg.train.frozen = ('encoder', '!encoder/norm')
  cfg.optim.lr = 1e-2  # large steps: a leak would show
  exp = setup(cfg)
  n = sum(k for _, k in exp.datasets)
  table = np.random.default_rng(0).uniform(0.2, 0.8, (n, 2)).astype(
      np.float32)
  state = exp.init_state(table, ema=True)()
  p0 = jax.tree_util.tree_map(np.asarray, state.params)
  step = jax.jit(exp.train_step(ema_decay=0.9))
  for i in range(2):
    state, metrics = step(state, _batch(cfg, n, seed=i))
  assert np.isfinite(float(metrics['loss']))
  enc0, enc = p0['encoder'], state.params['encoder']
  for tree in (state.params, state.ema):
    for name in enc0:
      if name != 'norm':
        jax.tree_util.tree_map(np.testing.assert_array_equal,
                               tree['encoder'][name], enc0[name])
  # the rest trains: the unfrozen final norm and the decoder move
  assert np.abs(enc['norm']['scale'] - enc0['norm']['scale']).max() > 0
  moved = [float(np.abs(a - b).max()) for a, b in zip(
      jax.tree_util.tree_leaves({k: v for k, v in state.params.items()
                                 if k != 'encoder'}),
      jax.tree_util.tree_leaves({k: v for k, v in p0.items()
                                 if k != 'encoder'}))]
  assert max(moved) > 0
  # Adam keeps moments only for the trained leaves
  n_state = sum(x.size for x in jax.tree_util.tree_leaves(state.opt_state)
                if x.ndim > 0)
  mask = frozen.frozen_mask(state.params, cfg.train.frozen)
  n_frozen, n_all = frozen.count(mask, state.params)
  assert n_frozen > 0.3 * n_all
  assert n_state == 2 * (n_all - n_frozen)


def _flops(compiled):
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost['flops'])


def test_frozen_leaves_get_no_gradient_in_the_step(tiny):
  """Through `stop_gradient` the frozen encoder's backward pass is not
  compiled at all (XLA's flop count drops by more than the encoder's
  forward cost)."""
  cfg = tiny()
  cfg.train.frozen = ('encoder',)
  exp = setup(cfg)
  n = sum(k for _, k in exp.datasets)
  table = np.full((n, 2), 0.5, np.float32)
  batch = _batch(cfg, n)
  state = exp.init_state(table)()
  mask = frozen.frozen_mask(state.params, cfg.train.frozen)

  def loss(params, stop):
    if stop:
      params = frozen.stop_frozen_gradients(mask, params)
    out = exp.model.apply(state.variables(params), batch['image'],
                          point_index=batch['point_index'])
    return sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(out))

  grad_flops = [_flops(jax.jit(jax.grad(lambda p, s=s: loss(p, s))).lower(
      state.params).compile()) for s in (False, True)]
  fwd = _flops(jax.jit(lambda p: loss(p, False)).lower(state.params).compile())
  # dropping the backward of an encoder that costs E forward saves ~2E;
  # the encoder is well over a third of this tiny model's forward
  assert grad_flops[0] - grad_flops[1] > 0.5 * fwd, (grad_flops, fwd)


def test_a_typo_in_train_frozen_is_a_config_error(tiny):
  cfg = tiny()
  cfg.train.frozen = ('encodr',)
  exp = setup(cfg)
  table = np.full((sum(k for _, k in exp.datasets), 2), 0.5, np.float32)
  with pytest.raises(JaxlmError, match="train.frozen: 'encodr' matches no"):
    exp.init_state(table)()
