"""SLPT / DSLPT modules: stages, shared weights, patch sizes, BatchNorm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models import patch_gather as pg
from jaxlm.models.dslpt import DSLPT, next_half_size, uncertainty
from jaxlm.models.hrnet import HRNet
from jaxlm.models.resnet import ResNet
from jaxlm.models.slpt import SLPT

N = 5
KW = dict(num_points=N, backbone='vit:Ti/16:depth=1', width=32, num_heads=2,
          num_layers=2, mlp_dim=32, patch=3)


def _init(model, size=32, b=2):
  x = np.random.default_rng(0).uniform(0, 255, (b, size, size, 3))
  index = jnp.tile(jnp.arange(N), (b, 1))
  v = model.init(jax.random.key(0), x, point_index=index)
  v['constants']['mean_shape'] = jnp.asarray(
      np.random.default_rng(1).uniform(0.2, 0.8, (N, 2)), jnp.float32)
  return v, x, index


def test_stages_share_one_transformer_and_follow_the_last_layer():
  model = SLPT(**KW)
  v, x, index = _init(model)
  out = model.apply(v, x, point_index=index)
  assert out['landmarks'].shape == (3, 2, 2, N, 2)
  assert set(v['params']) == {'backbone', 'patch_embed', 'transformer',
                              'head', 'landmark_query', 'structure_encoding'}
  # stage 1 is centred on the mean shape, stage s+1 on stage s's last layer
  centres = [jnp.broadcast_to(v['constants']['mean_shape'], (2, N, 2))] + [
      out['landmarks'][s, -1] for s in range(2)]
  for s, half in enumerate(model.half_sizes):
    lo, size = pg.patch_boxes(centres[s], half, 'slpt')
    np.testing.assert_allclose(out['box_min'][s], lo, atol=1e-6)
    np.testing.assert_allclose(out['box_size'][s], size, atol=1e-6)
  # landmark = box_min + box_size * offset, for every layer
  np.testing.assert_allclose(
      out['landmarks'], out['box_min'][:, None] +
      out['box_size'][:, None] * out['offset'], atol=1e-6)
  # prompts = the mean shape gives the same as point_index over all points
  same = model.apply(v, x, v['constants']['mean_shape'])
  np.testing.assert_allclose(same['landmarks'], out['landmarks'], atol=1e-5)


def test_later_stages_get_no_gradient_through_their_centres():
  model = SLPT(**KW)
  v, x, index = _init(model)

  def last_stage(params):
    out = model.apply({**v, 'params': params}, x, point_index=index)
    return out['landmarks'][-1, -1].sum()

  # d(stage 3) / d(head bias) comes from stage 3's own head output only:
  # box_size3 * 1 per coordinate (the centres are stop-gradient; with
  # gradients through them the earlier stages' heads would add to it).
  g = jax.grad(last_stage)(v['params'])
  out = model.apply(v, x, point_index=index)
  want = np.asarray(out['box_size'][-1]).sum(axis=(0, 1))
  np.testing.assert_allclose(g['head']['bias'], want, rtol=1e-5)


def test_dslpt_sizes_patches_from_the_variance():
  model = DSLPT(**{**KW, 'backbone': 'vit:Ti/16:depth=1'})
  v, x, index = _init(model)
  out = model.apply(v, x, point_index=index)
  assert out['variance'].shape == (3, 2, 2, N, 2)
  assert float(out['variance'].min()) > 0 and float(out['variance'].max()) < 1
  half = 0.125
  for s in range(3):
    np.testing.assert_allclose(out['box_size'][s],
                               np.broadcast_to(2 * np.asarray(half), (2, N, 2)),
                               atol=1e-6)
    v_last = np.asarray(out['variance'][s, -1])
    half = half * np.clip(12 * v_last.max(-1, keepdims=True), 0.5, 0.7)
  np.testing.assert_allclose(
      next_half_size(0.1, jnp.array([[[0.01, 0.05], [0.2, 0.1]]])),
      [[[0.1 * 0.6], [0.1 * 0.7]]], atol=1e-7)
  std = uncertainty(out)
  np.testing.assert_allclose(std, np.sqrt(out['variance'][-1, -1]) *
                             out['box_size'][-1], rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('backbone,levels', [('hrnet_lite', 1),
                                             ('resnet34', 4)])
def test_cnn_backbones_keep_batchnorm_state(backbone, levels):
  model = SLPT(**{**KW, 'backbone': backbone})
  v, x, index = _init(model, size=64)
  assert 'batch_stats' in v
  out, upd = model.apply(v, x, point_index=index, train=True,
                         rngs={'dropout': jax.random.key(1)},
                         mutable=['batch_stats'])
  changed = jax.tree_util.tree_map(
      lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
      v['batch_stats'], upd['batch_stats'])
  assert all(jax.tree_util.tree_leaves(changed))
  maps = (HRNet('lite', 32) if backbone == 'hrnet_lite' else
          ResNet(34, 32)).init_with_output(jax.random.key(0), x)[0]
  assert len(maps) == levels
  assert maps[0].shape[1:3] == (16, 16)  # stride 4
  assert sum(m.shape[-1] for m in maps) == 32
  assert out['landmarks'].shape == (3, 2, 2, N, 2)
