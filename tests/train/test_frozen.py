"""`train.frozen`: frozen parameters stay bit-identical, take no optimizer
state and no gradient, for any family; bad patterns are config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm import checkpoints
from jaxlm.config import to_json
from jaxlm.errors import JaxlmError
from jaxlm.train import frozen, loop
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


def test_the_train_step_does_not_compute_the_frozen_backward(tiny):
  """The compiled step itself (`train/step.py`): with the encoder frozen
  XLA's flop count drops by about the encoder's backward (here to 0.57 of
  the full step), which `keep_frozen` and `set_to_zero` alone would not
  do."""
  steps = []
  for patterns in ((), ('encoder',)):
    cfg = tiny()
    cfg.train.frozen = patterns
    exp = setup(cfg)
    n = sum(k for _, k in exp.datasets)
    state = exp.init_state(np.full((n, 2), 0.5, np.float32))()
    steps.append(_flops(jax.jit(exp.train_step()).lower(
        state, _batch(cfg, n)).compile()))
  assert steps[1] < 0.75 * steps[0], steps


def test_a_typo_in_train_frozen_is_a_config_error_at_setup(tiny):
  cfg = tiny()
  cfg.train.frozen = ('encodr',)
  with pytest.raises(JaxlmError, match="train.frozen: 'encodr' matches no"):
    setup(cfg)


def test_resuming_with_other_frozen_parameters_is_refused(tiny, tmp_path):
  """Another train.frozen is another optimizer-state tree: the run folder
  names the setting instead of failing to restore."""
  cfg = tiny()
  checkpoints.write_run_metadata(tmp_path, to_json(cfg), setup(cfg).datasets)
  cfg.train.frozen = ('encoder',)
  with pytest.raises(JaxlmError, match=r"train.frozen: \[\] -> "
                     r"\['encoder'\]; use a new --workdir .*init.checkpoint"):
    loop._check_same_run(setup(cfg), tmp_path)
