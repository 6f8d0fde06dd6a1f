"""The 3D-query family (paper 002): F, M, P and the family hooks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm import models
from jaxlm.errors import JaxlmError
from jaxlm.models import queries3d

TINY = 'tiny:depths=1-1-1-1:dims=8-16-16-16'
# XLA's RngBitGenerator compiles in a fraction of threefry's time (the
# initialisers' random draws dominate a tiny model's compile on CPU)
FAST_RNG = 'rbg'
DATASETS = (('syn98', 98), ('syn29', 29))


def build(**kw):
  c = models.get('queries3d').default_config()
  c.variant = TINY
  c.predictor_width = 32
  for k, v in kw.items():
    c[k] = v
  return models.build(c, DATASETS)


@jax.jit
def _perturbed(params):
  """params + 0.05 N(0, 1): the zero-initialised head then matters."""
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(2, impl=FAST_RNG), len(leaves))
  return jax.tree_util.tree_unflatten(tree, [
      p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def variables(model, seed=0):
  """(initial variables, variables with a query table and a perturbed,
  non-zero head)."""
  init = jax.jit(lambda: models.init_variables(
      model, jax.random.key(seed, impl=FAST_RNG), 32, 4))()
  v = dict(init)
  table = jax.random.normal(jax.random.key(1), (127, 3))
  v['constants'] = models.get('queries3d').with_query_table(v['constants'],
                                                           table)
  v['params'] = _perturbed(v['params'])
  return init, v


_JITTED = {}


def apply(m, v, x, prompts=None, **kw):
  """m.apply, jitted once per model and keyword set."""
  key = (id(m), tuple(sorted(kw)))
  if key not in _JITTED:
    _JITTED[key] = jax.jit(lambda v, x, p, **kw: m.apply(v, x, p, **kw))
  return _JITTED[key](v, x, prompts, **kw)


@pytest.fixture(scope='module')
def mlp():
  m = build()
  return (m,) + variables(m)


@pytest.fixture(scope='module')
def transformer():
  m = build(predictor='transformer', predictor_width=32, predictor_heads=4,
            predictor_depth=2)
  return m, variables(m)[1]


def images(b=2, size=32):
  return jax.random.randint(jax.random.key(3), (b, size, size, 3), 0, 256
                            ).astype(jnp.uint8)


def test_point_index_gathers_the_query_table(mlp):
  m, _, v = mlp
  idx = jnp.array([[0, 5, 98, 126], [3, 99, 100, 1]])
  by_index = apply(m, v, images(), point_index=idx)
  table = v['constants']['queries']
  by_prompt = apply(m, v, images(), jnp.take(table, idx, axis=0))
  for k in ('landmarks', 'log_var'):
    np.testing.assert_allclose(by_index[k], by_prompt[k], rtol=1e-5,
                               atol=1e-6)
  assert by_index['landmarks'].shape == (2, 4, 2)
  assert by_index['log_var'].shape == (2, 4)
  # dataset_prompts is the dataset's slice of the table
  p29 = m.apply(v, 'syn29', method=type(m).dataset_prompts)
  np.testing.assert_array_equal(p29, table[98:])


@pytest.mark.parametrize('kind', ['mlp', 'transformer'])
def test_queries_are_independent_in_the_mlp_and_see_each_other_in_the_transformer(
    kind, request):
  fixture = request.getfixturevalue(kind)
  m, v = fixture[0], fixture[-1]  # the model, perturbed variables
  q = jax.random.normal(jax.random.key(4), (6, 3))
  full = apply(m, v, images(1), q)['landmarks'][0]
  perm = np.array([5, 2, 0, 1, 4, 3])
  permuted = apply(m, v, images(1), q[perm])['landmarks'][0]
  np.testing.assert_allclose(permuted, full[perm], rtol=1e-5, atol=1e-6)
  alone = apply(m, v, images(1), q[:2])['landmarks'][0]
  if kind == 'mlp':
    np.testing.assert_allclose(alone, full[:2], rtol=1e-5, atol=1e-6)
  else:
    assert np.abs(alone - full[:2]).max() > 1e-5


def test_untrained_head_predicts_the_centre_with_unit_sigma(mlp):
  m, v, _ = mlp
  out = apply(m, v, images(), jnp.ones((5, 3)))
  np.testing.assert_allclose(out['landmarks'], 0.5)
  np.testing.assert_allclose(out['log_var'], 0.0)
  # sigma 1 in screen units = 1/2 in crop units, on both axes
  np.testing.assert_allclose(queries3d.uncertainty(out), 0.5)


def test_loss_is_the_nll_in_screen_units():
  fam = models.get('queries3d')
  loss = fam.loss(None, ())
  out = dict(landmarks=jnp.array([[[0.6, 0.5]]]), log_var=jnp.zeros((1, 1)))
  batch = dict(target=jnp.array([[[0.5, 0.5]]]), weight=jnp.ones((1, 1)))
  value, metrics = loss(out, batch)
  # screen error 2 * 0.1 = 0.2: 0 + 0.04 / 2
  assert float(value) == pytest.approx(0.02, rel=1e-5)
  assert float(metrics['error_screen']) == pytest.approx(0.2, rel=1e-5)


@pytest.mark.parametrize('extractor,variant', [('mobilenet_v3', 'small'),
                                               ('vit', 'Ti/16:depth=1'),
                                               ('resnet', '18')])
def test_other_feature_extractors(extractor, variant):
  m = build(extractor=extractor, variant=variant)
  shapes = models.abstract_variables(m, 32)
  out = jax.eval_shape(lambda v: m.apply(v, images(), jnp.ones((7, 3))),
                       shapes)
  assert out['landmarks'].shape == (2, 7, 2)
  fam = models.get('queries3d')
  c = fam.complete(dict(name='queries3d', extractor=extractor,
                        variant=variant))
  assert (fam.encoder(c) is not None) == (extractor == 'vit')
  if extractor == 'vit':  # init.encoder's params path exists
    path, _ = fam.encoder(c)
    node = shapes['params']
    for key in path:
      node = node[key]
    assert 'patch_embed' in node


@pytest.mark.parametrize('extractor,variant', [('convnext', TINY),
                                               ('mobilenet_v3', 'small'),
                                               ('vit', 'Ti/16:depth=1'),
                                               ('resnet', '18')])
def test_flatten_pool_projects_the_whole_map(extractor, variant):
  m = build(extractor=extractor, variant=variant, pool='flatten',
            descriptor_dim=24)
  shapes = models.abstract_variables(m, 64)
  out = jax.eval_shape(lambda v: m.apply(v, images(2, 64), jnp.ones((7, 3))),
                       shapes)
  assert out['landmarks'].shape == (2, 7, 2)
  # the projection sees every cell of F's 64 / 32 = 2 x 2 (ViT: 4 x 4) map
  cells = 16 if extractor == 'vit' else 4
  kernel = shapes['params']['flat_proj']['kernel'].shape
  assert kernel[1] == 24 and kernel[0] % cells == 0


def test_predictor_width_0_is_the_papers():
  for predictor, width in (('mlp', 512), ('transformer', 768)):
    m = build(predictor=predictor, predictor_width=0)
    assert m.predictor_width == width


def test_bad_settings_are_errors_naming_the_key():
  with pytest.raises(JaxlmError, match='model.extractor:'):
    build(extractor='vgg')
  with pytest.raises(JaxlmError, match='model.variant:'):
    build(variant='huge')
  with pytest.raises(JaxlmError, match='model.predictor:'):
    build(predictor='rnn')
  with pytest.raises(JaxlmError, match='model.pool:'):
    build(pool='max')
  with pytest.raises(JaxlmError, match='model.predictor_width'):
    build(predictor='transformer', predictor_width=30, predictor_heads=4)
  m = build()
  v = models.abstract_variables(m, 32)
  with pytest.raises(ValueError, match=r'\(N, 3\)'):
    jax.eval_shape(lambda v: m.apply(v, images(), jnp.ones((4, 2))), v)
