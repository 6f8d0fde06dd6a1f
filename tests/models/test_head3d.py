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


def test_a_direct_fit_of_the_2d_points_recovers_the_renderer_pose():
  """Identifiability of the head's parametrisation (6D rotation, t_z =
  -Z0 e^a, f = F0 e^b, no principal point): fitting only pose and camera of
  each face to the renderer's 2D landmarks (the canonical template's
  queries, offsets 0) by Adam from the frontal start recovers the pose
  (different identities: not exactly)."""
  import optax  # pylint: disable=g-import-not-at-top
  from jaxlm.data.synthetic import SyntheticFaces, canonical
  size, n = 64, 8
  faces = SyntheticFaces('syn98', n, seed=7, image_size=size)
  q = canonical.layout_queries('syn98', convention=False)
  pixels = []
  for i in range(n):  # `project_queries`' points (test_synthetic_truth.py)
    g, x = faces.geometry(i), faces.camera_points(i, q)
    pixels.append(g.focal * x[:, :2] / -x[:, 2:] + g.principal_point)
  target = jnp.asarray(2 * np.stack(pixels) / size - 1, jnp.float32)
  truth = np.stack([faces.geometry(i).rotation for i in range(n)])
  points = jnp.broadcast_to(jnp.asarray(q.canonical()), (n, len(q), 3))

  def camera(p):
    r = head3d.rotation_from_6d(p['six'] + jnp.array([1.0, 0, 0, 0, 1, 0]))
    t = jnp.concatenate([p['txy'], -head3d.Z0 * jnp.exp(p['a'])], -1)
    return r, t, head3d.F0 * jnp.exp(p['b'][:, 0])

  def loss(p):
    return ((head3d.project(points, *camera(p))[0] - target) ** 2).mean()

  opt = optax.adam(0.01)

  @jax.jit
  def fit(p):
    def step(carry, _):
      p, s = carry
      u, s = opt.update(jax.grad(loss)(p), s)
      return (optax.apply_updates(p, u), s), None
    return jax.lax.scan(step, (p, opt.init(p)), None, 300)[0][0]

  p = fit(dict(six=jnp.zeros((n, 6)), txy=jnp.zeros((n, 2)),
               a=jnp.zeros((n, 1)), b=jnp.zeros((n, 1))))

  def geodesic(r):
    c = (np.trace(np.swapaxes(r, -1, -2) @ truth, axis1=-2, axis2=-1) - 1)
    return np.degrees(np.arccos(np.clip(c / 2, -1, 1)))

  frontal = geodesic(np.eye(3)).mean()
  fitted = geodesic(np.asarray(camera(p)[0]))
  assert frontal > 15.0
  assert fitted.mean() < 6.0 and fitted.max() < 15.0, (fitted, frontal)
