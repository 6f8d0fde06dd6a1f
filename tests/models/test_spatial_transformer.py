"""The spatial transformer (Infinite 3D Landmarks): its initial transform,
RoI and resampled image, the gradient reaching its localiser, the
similarity parameterisation and the point mappings."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models import affine_sampler
from jaxlm.models.spatial_transformer import (CORNERS, SpatialTransformer,
                                              initial_parameters,
                                              parameters_to_theta)

# XLA's RngBitGenerator: the trunk's initialisers compile much faster
FAST_RNG = 'rbg'
SIZE = 16  # input side; the localiser sees it at 32 px


def images(b=2, size=SIZE):
  return jax.random.uniform(jax.random.key(3), (b, size, size, 3),
                            maxval=255.0)


@pytest.fixture(scope='module')
def identity():
  """The model at init (similarity, init_zoom 1, I' as large as I): its
  output and the gradient of sum(I' * w) with respect to its head, from one
  compiled function."""
  m = SpatialTransformer(out_size=SIZE, localiser_size=32)
  x = images()
  v = jax.jit(m.init)(jax.random.key(0, impl=FAST_RNG), x)
  w = jax.random.normal(jax.random.key(4), (2, SIZE, SIZE, 3))

  @jax.jit
  def run(v, x, w):
    def loss(head):
      out = m.apply({**v, 'params': {**v['params'], 'head': head}}, x)
      return (out['image'] * w).sum(), out
    return jax.grad(loss, has_aux=True)(v['params']['head'])

  grads, out = run(v, x, w)
  return x, out, grads


def test_identity_at_init_reads_the_image_back(identity):
  x, out, _ = identity
  eye = np.broadcast_to(np.eye(2, 3, dtype=np.float32), (2, 2, 3))
  np.testing.assert_array_equal(out['theta'], eye)
  np.testing.assert_array_equal(out['roi'],
                                np.broadcast_to(CORNERS, (2, 4, 2)))
  assert out['image'].shape == (2, SIZE, SIZE, 3)
  assert out['image'].dtype == jnp.float32
  np.testing.assert_allclose(out['image'], x, rtol=0, atol=1e-3)


def test_gradient_of_a_loss_on_the_image_reaches_the_head(identity):
  _, _, grads = identity
  for name in ('kernel', 'bias'):
    leaf = np.asarray(grads[name])
    assert np.isfinite(leaf).all()
    assert np.abs(leaf).max() > 0, name
  # every parameter (log s, phi, t_x, t_y) gets a gradient
  assert (np.abs(np.asarray(grads['bias'])) > 0).all()


def test_init_zoom_is_the_central_crop():
  """An affine S at init_zoom 0.5 onto half the side: exactly the central
  crop, pixel for pixel (output centre i at input pixel centre
  i + SIZE / 4)."""
  m = SpatialTransformer(out_size=SIZE // 2, kind='affine',
                         localiser_size=32, init_zoom=0.5)
  x = images()
  out, _ = jax.jit(m.init_with_output)(jax.random.key(0, impl=FAST_RNG), x)
  zoom = np.broadcast_to(np.array([[0.5, 0, 0], [0, 0.5, 0]], np.float32),
                         (2, 2, 3))
  np.testing.assert_array_equal(out['theta'], zoom)
  np.testing.assert_array_equal(
      out['roi'], np.broadcast_to(0.5 * np.array(CORNERS), (2, 4, 2)))
  q = SIZE // 4
  np.testing.assert_allclose(out['image'], x[:, q:3 * q, q:3 * q], rtol=0,
                             atol=1e-3)


def test_initial_similarity_is_exactly_the_zoom():
  """s = init_zoom to the bit, also where exp(float32(log z)) != z."""
  zooms = np.linspace(0.1, 2.0, 39)
  for z in zooms:
    p = jnp.asarray(initial_parameters('similarity', z))[None]
    theta = np.asarray(parameters_to_theta('similarity', p, z))
    want = np.array([[[z, 0, 0], [0, z, 0]]], np.float32)
    np.testing.assert_array_equal(theta, want)


def test_similarity_parameters_map_to_theta_as_documented():
  # s = 2, phi = 30 degrees: s cos phi = sqrt 3, s sin phi = 1
  p = jnp.array([[math.log(2.0), math.pi / 6, 0.25, -0.5],
                 [0.0, 0.0, 0.0, 0.0]])
  want = np.array([[[math.sqrt(3), -1, 0.25], [1, math.sqrt(3), -0.5]],
                   [[1, 0, 0], [0, 1, 0]]])
  for init_zoom in (1.0, 0.7):
    np.testing.assert_allclose(parameters_to_theta('similarity', p,
                                                   init_zoom),
                               want, rtol=1e-6, atol=1e-6)
  a = jnp.arange(6.0)[None]
  np.testing.assert_array_equal(parameters_to_theta('affine', a),
                                [[[0, 1, 2], [3, 4, 5]]])
  np.testing.assert_allclose(initial_parameters('similarity', 0.5),
                             [math.log(0.5), 0, 0, 0], rtol=1e-7)
  np.testing.assert_array_equal(initial_parameters('affine', 0.5),
                                [0.5, 0, 0, 0, 0.5, 0])


@jax.jit
def _point_maps(theta, pts, centres):
  inv = affine_sampler.invert_affine(theta)
  into = affine_sampler.transform_points(pts, inv)
  return dict(
      back=affine_sampler.transform_points(into, theta),
      composed=affine_sampler.transform_points(
          affine_sampler.transform_points(pts, theta), inv),
      inv_inv=affine_sampler.invert_affine(inv),
      centres=affine_sampler.transform_points(centres, theta),
      grid=affine_sampler.affine_grid(theta, (4, 6)))


def test_points_map_into_the_resampled_image_and_back():
  rng = np.random.default_rng(0)
  theta = np.eye(2, 3) * 0.8 + 0.2 * rng.standard_normal((3, 2, 3))
  pts = rng.uniform(-1, 1, (3, 5, 2))
  xs = affine_sampler.pixel_centres(6)
  ys = affine_sampler.pixel_centres(4)
  centres = np.stack(np.meshgrid(xs, ys), -1).reshape(1, 24, 2)
  r = _point_maps(*(jnp.asarray(a, jnp.float32) for a in
                    (theta, pts, np.repeat(centres, 3, 0))))
  np.testing.assert_allclose(r['back'], pts, atol=1e-5)
  np.testing.assert_allclose(r['composed'], pts, atol=1e-5)
  np.testing.assert_allclose(r['inv_inv'], theta, atol=1e-5)
  # transform_points agrees with the sample grid at the pixel centres
  np.testing.assert_allclose(r['centres'].reshape(3, 4, 6, 2), r['grid'],
                             atol=1e-6)


@pytest.mark.parametrize('field, value', [('kind', 'projective'),
                                          ('padding_mode', 'reflection'),
                                          ('init_zoom', 0.0)])
def test_bad_settings_are_named(field, value):
  m = SpatialTransformer(out_size=8, localiser_size=32, **{field: value})
  with pytest.raises(ValueError, match=str(value)):
    jax.eval_shape(m.init, jax.random.key(0, impl=FAST_RNG), images())
