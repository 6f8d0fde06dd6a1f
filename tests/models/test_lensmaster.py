"""The heatmap cascade family (LensMaster, paper 000): soft-argmax against
exact Gaussians, the heatmap <-> crop conversion, outputs, the loss by hand,
and the config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT
from jaxlm import losses, models
from jaxlm.config import load_config
from jaxlm.errors import JaxlmError
from jaxlm.models import heatmap, lensmaster

# an 8 x 8 heatmap (XLA's CPU backend aborts on a bf16 channel-split
# attention of head width 1, i.e. a 4 x 4 map: `ynn_emitter.cc` check
# failure, at a size no real model has)
TINY = dict(variant='Ti/16:depth=1:layerscale=1:registers=4:rope=100:eps=5',
            backbone_input=128, width=16, stages=2, blocks_per_stage=1)


def _cells(rng, n, lo, hi):
  return rng.uniform(lo, hi, (1, n, 2)).astype(np.float32)


def test_soft_argmax_of_an_exact_gaussian_recovers_it_away_from_borders():
  """The target Gaussian (sigma 1/sqrt 2 cells, sum 1) read back by
  soft-argmax (logits = its log): < 1e-3 cells anywhere 3 cells or more
  from the border of a 32 x 32 map."""
  cells = _cells(np.random.default_rng(0), 200, 3.0, 28.0)
  g = heatmap.gaussian_target(jnp.asarray(cells), 32, 32)  # (1, N, H, W)
  got, probs = heatmap.soft_argmax(jnp.log(g).transpose(0, 2, 3, 1))
  assert float(jnp.abs(got - cells).max()) < 1e-3
  np.testing.assert_allclose(np.asarray(probs), np.asarray(g), atol=1e-6)


def test_soft_argmax_is_biased_inward_at_the_border():
  """Near a border the Gaussian is cut: the estimate moves inward, by
  what `heatmap.py`'s docstring states (+0.29 cells on the border, +0.02
  one cell in)."""
  u = np.array([0.0, 0.5, 1.0, 2.0], np.float32)
  cells = np.stack([u, np.full_like(u, 16.0)], -1)[None]
  g = heatmap.gaussian_target(jnp.asarray(cells), 32, 32)
  got, _ = heatmap.soft_argmax(jnp.log(g).transpose(0, 2, 3, 1))
  bias = np.asarray(got[0, :, 0]) - u
  assert np.all(bias[:3] > 0) and abs(bias[3]) < 2e-3
  assert bias[0] > bias[1] > bias[2]
  np.testing.assert_allclose(bias[[0, 2]], [0.29, 0.02], atol=0.005)


def test_heatmap_and_crop_units_convert_exactly_both_ways():
  s, h = 256, 32
  # corner-aligned: the first and last pixel centres are the first and
  # last cell centres
  np.testing.assert_allclose(heatmap.to_heatmap(0.5 / s, h, s), 0.0)
  np.testing.assert_allclose(heatmap.to_heatmap((s - 0.5) / s, h, s), h - 1)
  # the official unit coordinate i / 255 of pixel index i is cells / 31
  i = 100.0
  np.testing.assert_allclose(heatmap.to_heatmap((i + 0.5) / s, h, s) / 31,
                             i / 255, rtol=1e-6)
  c = np.random.default_rng(1).uniform(-0.1, 1.1, (5, 7, 2))
  np.testing.assert_allclose(
      heatmap.from_heatmap(heatmap.to_heatmap(c, h, s), h, s), c, atol=1e-12)


def _build(**kw):
  cfg = models.get('lensmaster').default_config()
  cfg.update({**TINY, **kw})
  return models.build(cfg, (('syn98', 98),))


def test_outputs_point_index_heatmap_max_and_bf16():
  m = _build()
  img = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), np.uint8)
  v = jax.jit(m.init)(jax.random.key(0), img)
  out = jax.jit(m.apply)(v, img)
  assert out['stages'].shape == (2, 2, 98, 2)  # (T, B, N, 2)
  assert out['heatmaps'].shape == (2, 2, 98, 8, 8)  # 128 / 16 cells
  np.testing.assert_allclose(np.asarray(out['heatmaps'].sum((-2, -1))), 1.0,
                             rtol=1e-5)
  idx = np.array([[5, 7, 9], [0, 97, 5]], np.int32)
  sub = jax.jit(lambda v, i: m.apply(v, img, point_index=i))(v, idx)
  np.testing.assert_allclose(
      np.asarray(sub['stages']),
      np.asarray(out['stages'])[:, np.arange(2)[:, None], idx], atol=1e-6)
  conf = lensmaster.describe(out)['values']['heatmap_max']
  assert conf.shape == (2, 98) and 0 < float(conf.min()) <= 1
  assert set(v['params']) == {'encoder', 'projector', 'projector_bn',
                              'cascade'}
  with pytest.raises(ValueError, match='29 prompts for a model of 98'):
    m.apply(v, img, jnp.zeros((29, 2)))
  # bf16 compute, the same float32 weights: untrained heatmaps are near
  # uniform, so compare their deviations from it
  out16 = jax.jit(_build(dtype='bfloat16').apply)(v, img)
  assert out16['stages'].dtype == jnp.float32
  dev = [np.asarray(o['heatmaps'] - 1 / 64).reshape(-1) for o in (out, out16)]
  assert np.corrcoef(*dev)[0, 1] > 0.99
  spread = float(jnp.abs(out['stages'] - 0.5).max())
  assert float(jnp.abs(out['stages'] - out16['stages']).max()) < 0.1 * spread


def test_heading_net_backbone_gives_an_eighth_of_the_crop():
  m = _build(backbone='heading_net')
  img = np.zeros((1, 64, 64, 3), np.uint8)
  v = jax.eval_shape(m.init, jax.random.key(0), img)
  assert jax.eval_shape(m.apply, v, img)['heatmaps'].shape == (2, 1, 98, 8, 8)
  assert models.get('lensmaster').encoder(
      models.get('lensmaster').complete(dict(name='lensmaster',
                                             backbone='heading_net'))) is None


def test_loss_is_zero_for_a_perfect_heatmap_and_follows_the_formula():
  rng = np.random.default_rng(2)
  s, h, n = 64, 8, 5
  target = rng.uniform(0.2, 0.8, (2, n, 2)).astype(np.float32)
  goal = heatmap.gaussian_target(heatmap.to_heatmap(target, h, s), h, h)
  cells, probs = heatmap.soft_argmax(jnp.log(goal).transpose(0, 2, 3, 1))
  perfect = dict(stages=heatmap.from_heatmap(cells, h, s)[None],
                 heatmaps=probs[None])
  weight = np.ones((2, n), np.float32)
  awing, coord = lensmaster.stage_losses(perfect, target, weight, s)
  assert float(awing[0]) < 1e-6 and float(coord[0]) < 1e-6  # border bias
  # a uniform heatmap against the target, by hand (weight 1 for all points)
  flat = jnp.full_like(probs, 1.0 / (h * h))[None]
  out = dict(stages=jnp.full((1, 2, n, 2), 0.5), heatmaps=flat)
  awing, coord = lensmaster.stage_losses(out, target, weight, s, beta=1.0)
  want_a = (losses.adaptive_wing(flat[0], goal) *
            losses.heatmap_weight_map(goal)).mean()
  u01 = heatmap.to_heatmap(target, h, s) / (h - 1)
  p01 = heatmap.to_heatmap(jnp.full_like(target, 0.5), h, s) / (h - 1)
  want_c = (0.5 * (p01 - u01)**2).mean()
  np.testing.assert_allclose(float(awing[0]), float(want_a), rtol=1e-5)
  np.testing.assert_allclose(float(coord[0]), float(want_c), rtol=1e-5)
  # a weight-0 landmark does not count
  w0 = weight.copy()
  w0[:, 0] = 0
  bad = dict(stages=out['stages'].at[:, :, 0].set(9.0), heatmaps=flat)
  np.testing.assert_allclose(
      float(lensmaster.stage_losses(bad, target, w0, s)[1][0]),
      float(lensmaster.stage_losses(out, target, w0, s)[1][0]), rtol=1e-6)


@pytest.mark.parametrize('key,value,match', [
    ('backbone', 'resnet', 'model.backbone: unknown backbone'),
    ('width', 30, 'model.width: 30'),
    ('backbone_input', 72, 'model.backbone_input: 72'),
    ('stages', 0, 'model.stages'),
    ('backbone_input', 96, 'channel tokens of width 9'),
])
def test_config_errors_name_the_key(key, value, match):
  cfg = models.get('lensmaster').default_config()
  cfg.update({**TINY, key: value})
  with pytest.raises(JaxlmError, match=match):
    models.build(cfg, (('syn98', 98),))
  with pytest.raises(JaxlmError, match='one landmark layout'):
    models.build(models.get('lensmaster').default_config(),
                 (('syn98', 98), ('syn68', 68)))


def test_gaussian_target_has_the_official_values():
  """exp(-d^2) / sum: peak 1/pi on a cell centre, 0.248 half a cell off
  along one axis; at (0.5, 0.5) off no cell reaches the weight map's 0.2."""
  g = heatmap.gaussian_target(jnp.asarray([[[10.0, 12.0], [10.5, 12.0],
                                            [10.5, 12.5]]]), 32, 32)
  peaks = np.asarray(g.max(axis=(-2, -1)))[0]
  np.testing.assert_allclose(peaks[:2], [1 / np.pi, 0.248], atol=2e-3)
  assert peaks[2] < 0.2
  w = np.asarray(losses.heatmap_weight_map(g))[0]
  assert (w[0] == 11).sum() == 9 and (w[2] == 11).sum() == 0


def test_a_landmark_far_outside_the_crop_keeps_the_loss_finite():
  s, h, n = 64, 8, 3
  target = np.array([[[0.5, 0.5], [-3.0, 0.5], [0.4, 5.0]]], np.float32)
  probs = jnp.full((1, 1, n, h, h), 1.0 / (h * h))
  out = dict(stages=jnp.full((1, 1, n, 2), 0.5), heatmaps=probs)
  for weight in (np.ones((1, n), np.float32),
                 np.array([[1.0, 0.0, 0.0]], np.float32)):
    def total(o, w=weight):
      a, c = lensmaster.stage_losses(o, target, w, s)
      return (a + c).sum()
    value, grad = jax.value_and_grad(total)(out)
    assert np.isfinite(float(value))
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(grad))


def _conv(cin, cout, k, bias):
  return cin * cout * k * k + (cout if bias else 0)


def _layer(d):  # 2 LayerNorms, MultiheadAttention (packed qkv), 2 Linears
  return 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * (d * d + d)


def _irse(cin, d):
  short = _conv(cin, d, 1, False) + 2 * d if cin != d else 0
  return (2 * cin + _conv(cin, d, 3, False) + d + _conv(d, d, 3, False) +
          2 * d + 2 * d * (d // 16) + short)


def test_parameter_count_is_the_public_architectures():
  """The WFLW recipe with CD-ViT's own backbone has the parameters counted
  by hand from the public code's layer list (8 stages of 2 x [CoordConv,
  dual block] + heads, 7 merges, 9 IR-SE units): 101,065,654."""
  c = 256
  dual = (_conv(c, 2 * c, 2, True) + _layer(2 * c) +       # spatial split
          _conv(c, 2 * c, 2, True) + _layer(16 * 16) +     # channel split
          2 * _conv(c, c, 3, False) + 2 * 2 * c)           # DoubleConv
  coord = _conv(c + 3, c, 3, True)
  merge = (_conv(2 * c, c, 3, False) + _conv(c, c, 3, False) +
           _conv(2 * c, c, 3, False) + 2 * 2 * c)
  head = _conv(c, 98, 1, True)
  widths, cin, backbone = (32, 64, 256), 3, 0
  for d in widths:
    backbone += _irse(cin, d) + 2 * _irse(d, d)
    cin = d
  want = backbone + 8 * (2 * dual + 2 * coord + head) + 7 * merge
  assert want == 101_065_654
  cfg = load_config(str(ROOT / 'configs' / 'lensmaster_dinov3_wflw.py') +
                    ':heading_net')
  m = models.build(cfg.model, (('wflw', 98),))
  params = models.abstract_variables(m, 256)['params']
  assert models.num_params(params) == want
  assert models.num_params(params['encoder']) == backbone
