"""Direct regression (paper 003): size, API, BatchNorm, family record."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxlm import models
from jaxlm.errors import JaxlmError
from jaxlm.models.direct_regression import DirectRegression, preprocess

N, B, S = 68, 2, 32


def _images(seed=0, b=B):
  return np.random.default_rng(seed).integers(0, 256, (b, S, S, 3),
                                              dtype=np.uint8)


def _fwd(model, v, x, *args, **kw):
  """Outputs in train mode (batch statistics): an untrained network's
  running statistics (mean 0, var 1) would shrink its features to ~0."""
  return model.apply(v, x, *args, train=True, mutable=['batch_stats'],
                     **kw)[0]


@pytest.fixture(scope='module')
def grey():
  model = DirectRegression(num_points=N)
  v = model.init(jax.random.key(0), _images())
  return model, v


def test_parameter_count_is_resnet18_with_a_68_point_head(grey):
  _, v = grey
  assert set(v) == {'params', 'batch_stats', 'constants'}
  assert set(v['params']) == {'backbone', 'head'}
  # torchvision's ResNet-18 without fc (11,176,512) with a 1-channel stem
  # (-64*49*2) and Linear(512 -> 136) (+69,768)
  assert models.num_params(v['params']) == 11_240_008
  assert v['params']['backbone']['conv1']['kernel'].shape == (7, 7, 1, 64)
  assert 'bias' not in v['params']['backbone']['conv1']
  assert v['params']['head']['kernel'].shape == (512, 2 * N)
  assert v['constants']['mean_shape'].shape == (N, 2)


def test_outputs_point_index_and_prompts(grey):
  model, v = grey
  x = _images(1)
  out = _fwd(model, v, x)
  assert out.shape == (B, N, 2) and out.dtype == jnp.float32
  assert float(jnp.abs(out[0] - out[1]).max()) > 1e-4  # depends on the image
  # point_index selects points, modulo N (one layout)
  index = jnp.array([[5, 0, 67, 5 + N], [1, 2, 3, 2 * N + 4]])
  picked = _fwd(model, v, x, point_index=index)
  assert picked.shape == (B, 4, 2)
  np.testing.assert_allclose(
      picked, np.take_along_axis(np.asarray(out),
                                 np.asarray(index % N)[..., None], 1),
      atol=1e-6)
  np.testing.assert_allclose(picked[0, 0], picked[0, 3], atol=1e-7)
  # prompts only fix N: their positions do not matter
  for prompts in (jnp.zeros((N, 2)), jnp.full((B, N, 2), 0.7)):
    np.testing.assert_allclose(_fwd(model, v, x, prompts), out, atol=1e-6)
  for wrong in (jnp.zeros((N - 1, 2)), jnp.zeros((B, 98, 2))):
    with pytest.raises(ValueError, match='prompts'):
      model.apply(v, x, wrong)
  # dataset_prompts is the mean-shape constant
  v2 = {**v, 'constants': {'mean_shape': jnp.full((N, 2), 0.25)}}
  np.testing.assert_allclose(
      model.apply(v2, 'w300', method=lambda m, n: m.dataset_prompts(n)),
      0.25)


def test_zero_head_predicts_the_crop_centre(grey):
  model, v = grey
  head = jax.tree_util.tree_map(jnp.zeros_like, v['params']['head'])
  v = {**v, 'params': {**v['params'], 'head': head}}
  out = model.apply(v, _images(2))
  np.testing.assert_allclose(out, 0.5, atol=1e-7)


def test_grey_input_ignores_colour_and_rgb_variant_does_not(grey):
  model, v = grey
  x = _images(3).astype(np.float32)
  luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
  grey_rgb = np.repeat(luma[..., None], 3, axis=-1)  # same luma, no colour
  # (float rounding of the luma, amplified by batch statistics of 2 faces)
  np.testing.assert_allclose(_fwd(model, v, x), _fwd(model, v, grey_rgb),
                             atol=2e-4)
  rgb = DirectRegression(num_points=N, in_channels=3)
  v3 = rgb.init(jax.random.key(0), x)
  assert v3['params']['backbone']['conv1']['kernel'].shape == (7, 7, 3, 64)
  assert models.num_params(v3['params']) == 11_240_008 + 2 * 64 * 49
  a, b = _fwd(rgb, v3, x), _fwd(rgb, v3, grey_rgb)
  assert a.shape == (B, N, 2)
  assert float(jnp.abs(a - b).max()) > 1e-2


def test_batch_norm_statistics_update_only_in_train_mode(grey):
  model, v = grey
  x = _images(4)
  out, upd = model.apply(v, x, train=True, mutable=['batch_stats'])
  assert out.shape == (B, N, 2)
  old, new = v['batch_stats'], upd['batch_stats']
  changed = jax.tree_util.tree_map(
      lambda a, b: bool(jnp.abs(a - b).max() > 1e-6), old, new)
  assert all(jax.tree_util.tree_leaves(changed))
  # torch's momentum 0.1: mean <- 0.9 mean + 0.1 batch mean (stem BN)
  stem = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)),
                 use_bias=False).apply(
                     {'params': v['params']['backbone']['conv1']},
                     preprocess(jnp.asarray(x), 1))
  np.testing.assert_allclose(
      new['backbone']['bn1']['mean'],
      0.9 * old['backbone']['bn1']['mean'] + 0.1 * stem.mean(axis=(0, 1, 2)),
      rtol=1e-4, atol=1e-7)
  _, same = model.apply(v, x, train=False, mutable=['batch_stats'])
  jax.tree_util.tree_map(np.testing.assert_array_equal, old,
                         same['batch_stats'])
  # train mode normalises with the batch's statistics: different outputs
  assert float(jnp.abs(out - model.apply(v, x)).max()) > 1e-4


def test_family_record_build_and_loss():
  fam = models.get('regression')
  c = fam.default_config()
  assert dict(c) == dict(name='regression', variant='resnet18',
                         in_channels=1, dtype='float32', remat='none')
  assert not fam.anchor_masking and fam.uncertainty is None
  model = models.build(c, (('w300', 68),))
  assert isinstance(model, DirectRegression) and model.num_points == 68
  assert model.in_channels == 1 and model.dtype == jnp.float32
  with pytest.raises(JaxlmError, match='data.train'):
    models.build(c, (('w300', 68), ('wflw', 98)))
  with pytest.raises(JaxlmError, match='model.variant'):
    models.build(ml_collections.ConfigDict({**c, 'variant': 'resnet34'}),
                 (('w300', 68),))
  with pytest.raises(JaxlmError, match='model.in_channels'):
    models.build(ml_collections.ConfigDict({**c, 'in_channels': 2}),
                 (('w300', 68),))
  with pytest.raises(JaxlmError, match='model.dtype'):
    models.build(ml_collections.ConfigDict({**c, 'dtype': 'f16'}),
                 (('w300', 68),))
  out = jnp.full((2, 3, 2), 0.5)
  batch = dict(target=jnp.zeros((2, 3, 2)),
               weight=jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
  loss, metrics = fam.loss(model, None)(out, batch)
  assert float(loss) == pytest.approx(0.25)
  assert set(metrics) == {'mse'} and float(metrics['mse']) == float(loss)
  assert fam.landmarks(out) is out


@pytest.mark.parametrize('name', ['regression_demo',
                                  'regression_resnet18_300w'])
def test_configs_load_validate_and_build(name):
  from conftest import ROOT
  from jaxlm import config as config_lib
  from jaxlm.data import pipeline
  path = ROOT / 'configs' / f'{name}.py'
  c = config_lib.validate(config_lib.load_config(str(path)))
  assert 'jaxlm train --config configs/' + name in path.read_text()
  assert c.model.name == 'regression' and c.data.num_anchors == 0
  assert c.optim.name == 'adam' and c.data.image_size == 224
  (train_name, train_cfg), = c.data.train.items()
  assert train_cfg.layout in ('300w68', 'syn68')
  assert all(e.prompts == train_name for e in c.data.eval.values())
  pipeline.augment_config(c.data.augment)  # every key is known
  model = models.build(c.model, ((train_name, 68),))
  assert model.num_points == 68 and model.in_channels == 1
