"""The 3D head's projection against the synthetic renderer's own camera, the
6D rotation, and the query deformer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.data.synthetic import render, template
from jaxlm.models import head3d
from jaxlm.models.query_deformer import QueryDeformer

KEY = jax.random.key(0, impl='rbg')


def _random_rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  return q if np.linalg.det(q) > 0 else -q


def test_6d_identity_and_round_trip():
  eye = head3d.rotation_from_6d(jnp.array([1.0, 0, 0, 0, 1.0, 0]))
  np.testing.assert_allclose(eye, np.eye(3), atol=1e-7)
  rng = np.random.default_rng(0)
  for _ in range(5):
    r = _random_rotation(rng)
    six = np.concatenate([r[:, 0] * 2.5, r[:, 1] + 0.3 * r[:, 0]])
    np.testing.assert_allclose(head3d.rotation_from_6d(jnp.asarray(six)), r,
                               atol=1e-5)


def test_6d_is_always_a_rotation():
  x = jax.random.normal(jax.random.key(1), (64, 6))
  r = np.asarray(head3d.rotation_from_6d(x))
  np.testing.assert_allclose(r @ r.transpose(0, 2, 1),
                             np.broadcast_to(np.eye(3), r.shape), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)


@pytest.mark.parametrize('angles', [(0, 0, 0), (35, -12, 20), (-58, 25, -28)])
def test_projection_equals_the_renderer_camera(angles):
  """The renderer's camera is the head's with t = (0, 0, -8), f = 16 scale /
  S screen units and the principal point at the head centre."""
  size, scale, centre = 96, 31.0, (51.5, 44.25)
  pose = render.Pose(*angles, scale, centre)
  cam = render.Camera(pose)
  face = template.sample_face_params(np.random.default_rng(3))
  uv = np.random.default_rng(4).uniform([-0.9, -0.9], [0.9, 0.9], (50, 2))
  p = template.surface(uv[:, 0], uv[:, 1], face)
  truth = cam.project(cam.to_camera(p))
  screen, depth = head3d.project(
      jnp.asarray(p[None], jnp.float32),
      jnp.asarray(render.rotation(*angles)[None], jnp.float32),
      jnp.array([[0.0, 0.0, -8.0]]), jnp.array([16.0 * scale / size]),
      jnp.asarray([[2 * centre[0] / size - 1, 2 * centre[1] / size - 1]]))
  pixels = (np.asarray(screen[0]) + 1) / 2 * size
  np.testing.assert_allclose(pixels, truth, atol=2e-3)
  np.testing.assert_allclose(depth[0], 8.0 - cam.to_camera(p)[:, 2],
                             atol=1e-5)
  xc = head3d.camera_points(
      jnp.asarray(p[None], jnp.float32),
      jnp.asarray(render.rotation(*angles)[None], jnp.float32),
      jnp.array([[0.0, 0.0, -8.0]]))[0]
  np.testing.assert_allclose(xc, cam.camera_frame(p), atol=1e-5)


def test_pose_camera_head_starts_at_identity():
  head = head3d.PoseCameraHead(principal_point=True)
  f = jax.random.normal(KEY, (2, 16))
  out, _ = head.init_with_output(KEY, f)
  np.testing.assert_allclose(out['rotation'], np.broadcast_to(np.eye(3),
                                                              (2, 3, 3)))
  np.testing.assert_allclose(out['translation'], [[0, 0, -head3d.Z0]] * 2)
  np.testing.assert_allclose(out['focal'], [head3d.F0] * 2)
  np.testing.assert_allclose(out['principal_point'], np.zeros((2, 2)))


def test_query_deformer_identity_at_start_and_reference_fixed():
  d = QueryDeformer(num_datasets=3)
  q = jax.random.normal(KEY, (2, 6, 3))
  ids = jnp.array([[0, 0, 1, 1, 2, 2]] * 2)
  params = d.init(KEY, q, ids)
  np.testing.assert_array_equal(d.apply(params, q, ids), q)
  # Any weights: the reference dataset stays the identity, others move.
  params = jax.tree_util.tree_map(
      lambda x: x + 0.1 * jax.random.normal(jax.random.key(2), x.shape),
      params)
  moved = np.asarray(d.apply(params, q, ids))
  np.testing.assert_array_equal(moved[:, :2], q[:, :2])
  assert np.abs(moved[:, 2:] - q[:, 2:]).min() > 0
  # The correction depends on the dataset: one point, two datasets.
  one = jnp.broadcast_to(q[:, :1], (2, 2, 3))
  two = np.asarray(d.apply(params, one, jnp.array([[1, 2]] * 2)))
  assert np.abs(two[:, 0] - two[:, 1]).max() > 1e-4


def test_euler_angles_invert_the_renderer_rotation():
  for angles in [(0, 0, 0), (35, -12, 20), (-58, 25, -28), (80, -70, 150)]:
    r = render.rotation(*angles)
    np.testing.assert_allclose(head3d.euler_angles(jnp.asarray(r)), angles,
                               atol=1e-4)
