"""The parameter EMA: its update, its place in the checkpoint, its use."""

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxlm import checkpoints
from jaxlm.train.loop import setup, train


def test_one_step_moves_the_ema_by_one_minus_decay(tiny):
  cfg = tiny()
  exp = setup(cfg)
  n = sum(k for _, k in exp.datasets)
  table = np.random.default_rng(0).uniform(0.2, 0.8, (n, 2)).astype(
      np.float32)
  size = cfg.data.image_size
  state = exp.init_state(table, ema=True)()
  rng = np.random.default_rng(1)
  a = cfg.data.num_anchors
  batch = dict(image=rng.integers(0, 255, (2, size, size, 3), np.uint8),
               point_index=rng.integers(0, n, (2, a)).astype(np.int32),
               target=rng.uniform(0, 1, (2, a, 2)).astype(np.float32),
               weight=np.ones((2, a), np.float32))
  p0 = state.params
  new, _ = jax.jit(exp.train_step(ema_decay=0.9))(state, batch)
  jax.tree_util.tree_map(
      lambda e, x0, x1: np.testing.assert_allclose(
          e, 0.9 * x0 + 0.1 * x1, rtol=1e-6, atol=1e-7), new.ema, p0,
      new.params)


@pytest.mark.slow
def test_ema_is_checkpointed_resumed_and_used_for_inference(tmp_path, tiny):
  def cfg():
    c = tiny(steps=4)
    c.train.ema_decay = 0.5
    return c
  train(cfg(), tmp_path / 'full', progress=False)
  train(cfg(), tmp_path / 'part', progress=False, stop_at=2)
  train(cfg(), tmp_path / 'part', progress=False)
  trees = [ocp.StandardCheckpointer().restore(
      (tmp_path / r / 'checkpoints' / '4' / 'state').absolute())
           for r in ('full', 'part')]
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(
      x, y, rtol=1e-5, atol=1e-6), trees[0]['ema'], trees[1]['ema'])
  _, _, variables, _ = checkpoints.load_run(tmp_path / 'full')
  jax.tree_util.tree_map(np.testing.assert_array_equal, variables['params'],
                         trees[0]['ema'])
  diff = jax.tree_util.tree_map(lambda e, p: float(np.abs(e - p).max()),
                                trees[0]['ema'], trees[0]['params'])
  assert max(jax.tree_util.tree_leaves(diff)) > 0  # the EMA lags behind
