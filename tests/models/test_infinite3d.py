"""Infinite 3D landmarks (paper 001): S + 3D head + D as one family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm import models
from jaxlm.errors import JaxlmError
from jaxlm.models import head3d, infinite3d

TINY = 'tiny:depths=1-1-1-1:dims=8-16-16-16'
FAST_RNG = 'rbg'
DATASETS = (('syn98', 98), ('syn29', 29))
SIZE = 32


def build(**kw):
  c = models.get('infinite3d').default_config()
  c.variant = TINY
  c.predictor_width = 32
  c.crop_size = SIZE
  c.stn_size = 32
  for k, v in kw.items():
    c[k] = v
  return models.build(c, DATASETS)


def init(model, table=None):
  v = jax.jit(lambda: models.init_variables(
      model, jax.random.key(0, impl=FAST_RNG), SIZE, 4))()
  v = dict(v)
  if table is None:
    table = jax.random.normal(jax.random.key(1), (127, 3)) * 0.5
  v['constants'] = models.get('infinite3d').with_query_table(v['constants'],
                                                            table)
  return v


@jax.jit
def perturbed(params):
  """params + 0.01 N(0, 1): the zero-initialised heads then matter."""
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(2, impl=FAST_RNG), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [
      p + 0.01 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


_JITTED = {}


def apply(m, v, x, prompts=None, **kw):
  """m.apply, jitted once per model and keyword set."""
  key = (id(m), tuple(sorted(kw)))
  if key not in _JITTED:
    _JITTED[key] = jax.jit(lambda v, x, p, **kw: m.apply(v, x, p, **kw))
  return _JITTED[key](v, x, prompts, **kw)


@pytest.fixture(scope='module')
def model():
  """The full model (S, 3D head, D over two datasets): (module, initial
  variables, perturbed variables)."""
  m = build()
  v = init(m)
  return m, v, dict(v, params=perturbed(v['params']))


def images(b=2, seed=0):
  return jax.random.uniform(jax.random.key(seed), (b, SIZE, SIZE, 3),
                            maxval=255.0)


def test_untrained_model_is_the_template_through_the_identity(model):
  m, v, _ = model
  index = jnp.array([[0, 5, 97], [98, 100, 126]])
  out = apply(m, v, images(), point_index=index)
  np.testing.assert_allclose(out['theta'],
                             np.broadcast_to(np.eye(2, 3), (2, 2, 3)))
  # R = I, t = (0, 0, -8), f = 8, no offset, D the identity at start:
  q = np.asarray(v['constants']['queries'])[np.asarray(index)]
  screen = 8.0 * q[..., :2] / (8.0 - q[..., 2:])
  np.testing.assert_allclose(out['landmarks'], (screen + 1) / 2, atol=1e-5)
  np.testing.assert_allclose(out['points3d'], q, atol=1e-6)
  # the RoI is the whole image (pixel edges: half a pixel outside the
  # first and last pixel centres)
  e = 0.5 / SIZE
  np.testing.assert_allclose(
      out['roi'][0], [[-e, -e], [1 - e, -e], [1 - e, 1 - e], [-e, 1 - e]],
      atol=1e-6)
  # σ' = 1 at start (zero head), and θ = I: σ = 1
  np.testing.assert_allclose(out['log_var'], 0.0, atol=1e-6)


def test_prompts_of_a_training_dataset_equal_its_point_index(model):
  """Evaluation asks with `dataset_prompts` (D applied to the table);
  training with point_index: the same prediction."""
  m, _, v = model
  x = images()
  index = jnp.tile(jnp.arange(98, 127)[None], (2, 1))
  by_index = apply(m, v, x, point_index=index)
  prompts = m.apply(v, 'syn29', method=type(m).dataset_prompts)
  table = np.asarray(v['constants']['queries'])[98:]
  assert np.abs(np.asarray(prompts) - table).max() > 1e-4  # D moved it
  by_prompts = apply(m, v, x, prompts)
  np.testing.assert_allclose(by_prompts['landmarks'], by_index['landmarks'],
                             atol=1e-5)
  # the reference dataset is not moved
  np.testing.assert_allclose(
      m.apply(v, 'syn98', method=type(m).dataset_prompts),
      np.asarray(v['constants']['queries'])[:98], atol=1e-7)
  # the 3D head's landmarks are its 3D points projected (the pose and
  # camera outputs explain the 2D prediction exactly)
  out = by_index
  screen, _ = head3d.project(out['points3d'], out['rotation'],
                             out['translation'], out['focal'])
  g = np.asarray(screen) + 1.0 / SIZE
  th = np.asarray(out['theta'])
  gi = np.einsum('bij,bnj->bni', th[:, :, :2], g) + th[:, None, :, 2]
  np.testing.assert_allclose(out['landmarks'], (gi - 1.0 / SIZE + 1) / 2,
                             rtol=1e-5,
                             atol=1e-5)
  assert np.abs(th - np.eye(2, 3)).max() > 1e-3  # S is not the identity


def test_gradient_reaches_the_spatial_transformer_and_the_pose(model):
  m, _, v = model
  index = jnp.tile(jnp.arange(0, 127, 7)[None], (2, 1))  # both datasets
  target = jax.random.uniform(jax.random.key(5), index.shape + (2,))
  loss_fn = models.get('infinite3d').loss(m, ())

  def loss(params):
    out, _ = m.apply(dict(v, params=params), images(), point_index=index,
                     train=True, mutable=['batch_stats'])
    return loss_fn(out, dict(target=target,
                             weight=jnp.ones(index.shape)))[0]

  g = jax.jit(jax.grad(loss))(v['params'])
  stn_head = g['spatial_transformer']['head']['kernel']
  pose = g['pose_camera']['out']['kernel']
  deformer = g['query_deformer']['out']['kernel']
  for grad in (stn_head, pose, deformer):
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0


def test_inplane_rotation_of_a_similarity():
  phi = 0.4
  theta = jnp.array([[[1.3 * np.cos(phi), -1.3 * np.sin(phi), 0.1],
                      [1.3 * np.sin(phi), 1.3 * np.cos(phi), -0.2]]])
  r = np.asarray(infinite3d.inplane_rotation(theta))[0]
  want = np.array([[np.cos(phi), -np.sin(phi), 0], [np.sin(phi), np.cos(phi),
                                                    0], [0, 0, 1]])
  np.testing.assert_allclose(r, want, atol=1e-6)


def test_without_stn_and_3d_head_the_untrained_landmark_is_the_centre():
  """Half-pixel conventions by hand: I' (32 px) is I (64 px) resampled by
  the identity; the untrained 2D head predicts I''s centre, pixel 16 of 32
  (pixel centres at integers), i.e. sampler coordinate (2 * 16 + 1) / 32 -
  1 = 1/32, which is pixel ((1/32 + 1) * 64 - 1) / 2 = 32.5 of I: crop
  units 32.5 / 64."""
  m = build(stn='none', head='2d', deformer=False)
  v = init(m)
  x = jax.random.uniform(jax.random.key(3), (1, 64, 64, 3), maxval=255.0)
  out = apply(m, v, x, point_index=jnp.arange(3)[None])
  assert 'points3d' not in out and 'spatial_transformer' not in v['params']
  np.testing.assert_allclose(out['landmarks'], 32.5 / 64, atol=1e-6)
  np.testing.assert_allclose(out['theta'][0], np.eye(2, 3))
  # I' is I resampled: pixel 16 of I' is the mean of I's pixels 32 and 33
  crop, _ = m.apply(v, x, method=type(m).normalise)
  np.testing.assert_allclose(crop[0, 16, 16],
                             np.asarray(x[0, 32:34, 32:34]).mean((0, 1)),
                             rtol=1e-5)


def test_offset_scale_scales_the_offsets_only(model):
  """δ = offset_scale x P's output (0.1 slows the offsets against the
  pose head); nothing else of the model changes."""
  m, _, v = model
  index = jnp.tile(jnp.arange(0, 127, 9)[None], (2, 1))
  one = apply(m, v, images(), point_index=index)
  out = apply(build(offset_scale=0.1), v, images(), point_index=index)
  assert m.offset_scale == 1.0
  assert np.abs(one['offset']).max() > 1e-4
  np.testing.assert_allclose(out['offset'], 0.1 * one['offset'], rtol=1e-4,
                             atol=1e-7)
  np.testing.assert_allclose(out['points3d'] - out['offset'],
                             one['points3d'] - one['offset'], atol=1e-6)
  for k in ('rotation', 'translation', 'focal', 'theta', 'log_var'):
    np.testing.assert_allclose(out[k], one[k], rtol=1e-5, atol=1e-6)


def test_roi_outside_by_hand():
  """Distances past the shrunk RoI, in its half side, for an axis-aligned
  RoI and the same RoI turned by 90 degrees (corners TL, TR, BR, BL)."""
  square = jnp.array([[[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]])
  turned = jnp.array([[[0.6, 0.2], [0.6, 0.6], [0.2, 0.6], [0.2, 0.2]]])
  points = jnp.array([[[0.4, 0.4], [0.7, 0.4], [0.4, 0.1], [0.59, 0.21]]])
  # half side 0.2: (0.7, 0.4) is 1.5 half sides from the centre in x,
  # (0.4, 0.1) 1.5 in y, (0.59, 0.21) 0.95 in both
  expected = [0.0, 0.6, 0.6, 0.05]
  for roi in (square, turned):
    np.testing.assert_allclose(
        infinite3d.roi_outside(roi, points, 0.1)[0], expected, atol=1e-6)
  np.testing.assert_allclose(
      infinite3d.roi_outside(square, points, 0.0)[0], [0, 0.5, 0.5, 0],
      atol=1e-6)


def test_roi_prior_pulls_the_rois_edge_over_outside_points(model):
  """With roi_prior the loss grows by its weight x the mean distance
  outside, reports the share of points outside the RoI, and its gradient
  reaches S."""
  m, _, v = model
  index = jnp.tile(jnp.arange(0, 127, 7)[None], (2, 1))
  out = apply(m, v, images(), point_index=index)
  outside = infinite3d.roi_outside(out['roi'], out['landmarks'], 0.1)
  # targets: the model's own landmarks, pushed past the RoI's right edge
  target = out['landmarks'].at[:, :4, 0].set(out['roi'][:, 1:2, 0] + 0.1)
  batch = dict(target=target, weight=jnp.ones(index.shape))
  plain = models.get('infinite3d').loss(m, ())
  ruled = build(roi_prior=2.0)
  with_roi = models.get('infinite3d').loss(ruled, ())
  (l0, _), (l1, metrics) = plain(out, batch), with_roi(out, batch)
  far = infinite3d.roi_outside(out['roi'], target, 0.1)
  assert float(far.mean()) > float(outside.mean())
  np.testing.assert_allclose(l1 - l0, 2.0 * far.mean(), rtol=1e-5)
  # the 4 pushed points, and those of the others already outside the RoI
  missed = 4 + (outside[:, 4:] > 0.1).sum(1)
  np.testing.assert_allclose(metrics['roi_missed'],
                             missed.mean() / index.shape[1], rtol=1e-6)

  def term(params):
    o = ruled.apply(dict(v, params=params), images(), point_index=index)
    return with_roi(o, batch)[0] - plain(o, batch)[0]

  g = jax.jit(jax.grad(term))(v['params'])
  assert np.abs(g['spatial_transformer']['head']['kernel']).max() > 0
  assert np.abs(g['pose_camera']['out']['kernel']).max() == 0


@pytest.mark.parametrize('key,value', [('stn', 'perspective'),
                                       ('head', '4d'),
                                       ('stn_padding', 'reflect'),
                                       ('stn_depth', 20),
                                       ('init_zoom', 0.0),
                                       ('offset_scale', 0.0),
                                       ('roi_prior', -1.0),
                                       ('roi_margin', 1.0)])
def test_bad_settings_name_their_key(key, value):
  with pytest.raises(JaxlmError, match=f'model.{key}'):
    build(**{key: value})


def test_the_real_data_recipe_builds_and_validates():
  from conftest import ROOT  # pylint: disable=g-import-not-at-top
  from jaxlm import config as config_lib, layouts
  path = ROOT / 'configs' / 'infinite3d_convnext_multi.py'
  c = config_lib.validate(config_lib.load_config(str(path)))
  assert 'jaxlm train --config configs/infinite3d_convnext_multi.py' in \
      path.read_text()
  datasets = [(k, layouts.get(v.layout).num_points)
              for k, v in c.data.train.items()]
  m = models.build(c.model, datasets)
  shapes = models.abstract_variables(m, c.data.image_size)
  n = sum(x.size for x in jax.tree_util.tree_leaves(shapes['params']))
  assert 35e6 < n < 80e6  # ConvNeXt-T 28M + ResNet-18 11M + predictor
  assert m.deformer_reference == [k for k, _ in datasets].index('wflw')
