import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.losses import weighted_l1
from jaxlm.models.tufa import TUFA

DATASETS = (('a', 5), ('b', 3))


def _model(dtype=jnp.float32):
  return TUFA(variant='Ti/16:depth=1', datasets=DATASETS, decoder_layers=2,
              decoder_heads=3, decoder_mlp=64, head_hidden=16, dtype=dtype)


@pytest.fixture(scope='module')
def setup():
  m = _model()
  img = jax.random.randint(jax.random.key(1), (2, 64, 64, 3), 0, 255
                           ).astype(jnp.uint8)
  v = m.init(jax.random.key(0), img, point_index=jnp.zeros((2, 4), jnp.int32))
  return m, v, img


def test_outputs_every_layer_in_crop_units(setup):
  m, v, img = setup
  out = m.apply(v, img, point_index=jnp.array([[0, 1, 5, 7]] * 2))
  assert out.shape == (2, 2, 4, 2)  # (layers, batch, anchors, xy)
  assert out.dtype == jnp.float32


def test_any_number_of_prompts_zero_shot(setup):
  m, v, img = setup
  for n in (1, 7, 40):
    prompts = jax.random.uniform(jax.random.key(n), (n, 2))
    assert m.apply(v, img, prompts).shape == (2, 2, n, 2)


def test_permuting_prompts_permutes_landmarks(setup):
  """The decoder has no order: each landmark follows its own prompt."""
  m, v, img = setup
  prompts = jax.random.uniform(jax.random.key(3), (2, 6, 2))
  perm = np.array([3, 0, 5, 1, 4, 2])
  a = m.apply(v, img, prompts)
  b = m.apply(v, img, prompts[:, perm])
  np.testing.assert_allclose(np.asarray(a)[:, :, perm], b, atol=1e-5)


def test_point_index_uses_mean_shape_plus_alignment(setup):
  m, v, img = setup
  mean = jax.random.uniform(jax.random.key(4), (8, 2))
  v2 = {'params': v['params'],
        'constants': {'alignment': {'mean_shape': mean}}}
  idx = jnp.array([[5, 6, 7]] * 2)  # dataset 'b'
  by_index = m.apply(v2, img, point_index=idx)
  by_prompt = m.apply(v2, img, mean[5:8])
  np.testing.assert_allclose(by_index, by_prompt, atol=1e-6)
  np.testing.assert_allclose(
      m.apply(v2, 'b', method=TUFA.dataset_prompts), mean[5:8])


def test_loss_gradient_reaches_alignment_offsets(setup):
  m, v, img = setup
  idx = jnp.array([[0, 2, 4]] * 2)
  target = jnp.full((2, 3, 2), 0.3)

  def loss(params):
    pred = m.apply({'params': params, 'constants': v['constants']}, img,
                   point_index=idx)
    return weighted_l1(pred, target, jnp.ones((2, 3)))

  g = jax.grad(loss)(v['params'])
  ga = np.asarray(g['alignment']['a'])
  assert np.abs(ga[[0, 2, 4]]).sum() > 0
  np.testing.assert_array_equal(ga[[1, 3]], 0)  # unused anchors
  np.testing.assert_array_equal(g['alignment']['b'], 0)  # other dataset


def test_bfloat16_close_to_float32(setup):
  m, v, img = setup
  prompts = jax.random.uniform(jax.random.key(5), (6, 2))
  a = np.asarray(m.apply(v, img, prompts))
  b = np.asarray(_model(jnp.bfloat16).apply(v, img, prompts))
  cos = (a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)
  assert cos > 0.999
  assert np.abs(a - b).max() < 0.05


def test_exactly_one_of_prompts_or_index(setup):
  m, v, img = setup
  with pytest.raises(ValueError, match='exactly one'):
    m.apply(v, img)


def test_cross_attention_weights_per_layer_and_head(setup):
  """The capture path: (layers, B, heads, N, patches) weights summing to 1
  over the patches, landmarks equal to the normal forward's."""
  from jaxlm.models.tufa import cross_attention
  m, v, img = setup
  prompts = jax.random.uniform(jax.random.key(5), (6, 2))
  out, w = cross_attention(m, v, img, prompts)
  assert w.shape == (2, 2, 3, 6, 16)  # 2 layers, 3 heads, 4x4 patches
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(out, m.apply(v, img, prompts))
  assert not np.allclose(w[0], w[1])  # each layer its own
