"""Patch gather vs a direct per-point formula and torch's grid_sample."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlm.models import patch_gather as pg


def _features(b=2, h=9, w=9, c=5, seed=0):
  return np.random.default_rng(seed).normal(size=(b, h, w, c)).astype(
      np.float32)


def _direct(feat, x, y, convention):
  """One point, written out: the four neighbours and their weights."""
  h, w = feat.shape[:2]
  if convention == 'slpt':
    px, py = x * (w - 1), y * (h - 1)
  else:
    px, py = x * w - 0.5, y * h - 0.5
  px, py = min(max(px, 0.0), w - 1.0), min(max(py, 0.0), h - 1.0)
  x0, y0 = int(np.floor(px)), int(np.floor(py))
  x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
  ax, ay = px - x0, py - y0
  return ((1 - ax) * (1 - ay) * feat[y0, x0] + ax * (1 - ay) * feat[y0, x1] +
          (1 - ax) * ay * feat[y1, x0] + ax * ay * feat[y1, x1])


@pytest.mark.parametrize('convention', pg.CONVENTIONS)
def test_bilinear_sample_matches_the_direct_formula(convention):
  feat = _features()
  rng = np.random.default_rng(1)
  # inside, on grid points, and outside the map (clamped to the border)
  pts = np.concatenate([rng.uniform(0, 1, (2, 40, 2)),
                        np.array([[[0, 0], [1, 1], [0.5, 0.25], [-0.2, 1.3]]] *
                                 2)], axis=1).astype(np.float32)
  got = np.asarray(pg.bilinear_sample(jnp.asarray(feat), jnp.asarray(pts),
                                      convention))
  want = np.array([[_direct(feat[b], *pts[b, p], convention)
                    for p in range(pts.shape[1])] for b in range(2)])
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_boxes_follow_the_two_official_rules():
  c = jnp.array([[[0.05, 0.5], [0.5, 0.97], [0.3, 0.4]]])
  lo, size = pg.patch_boxes(c, 0.125, 'slpt')  # clipped at the border
  np.testing.assert_allclose(lo, [[[0, 0.375], [0.375, 0.845], [0.175,
                                                                0.275]]],
                             atol=1e-6)
  np.testing.assert_allclose(size, [[[0.175, 0.25], [0.25, 0.155],
                                     [0.25, 0.25]]], atol=1e-6)
  lo, size = pg.patch_boxes(c, 0.125, 'dslpt')  # fixed size, shifted inside
  np.testing.assert_allclose(lo, [[[0, 0.375], [0.375, 0.75], [0.175,
                                                               0.275]]],
                             atol=1e-6)
  np.testing.assert_allclose(size, np.full((1, 3, 2), 0.25), atol=1e-6)
  # per-landmark half-sizes (DSLPT's later stages)
  half = jnp.array([[[0.1], [0.05], [0.02]]])
  lo, size = pg.patch_boxes(c, half, 'dslpt')
  np.testing.assert_allclose(size[0, :, 0], [0.2, 0.1, 0.04], atol=1e-6)
  np.testing.assert_allclose(lo[0, 1], [0.45, 0.9], atol=1e-6)


def test_patch_grid_order_is_rows_y_columns_x():
  lo = jnp.array([[[0.1, 0.2]]])
  size = jnp.array([[[0.6, 0.3]]])
  g = np.asarray(pg.patch_grid(lo, size, 4))[0, 0]
  assert g.shape == (4, 4, 2)
  np.testing.assert_allclose(g[0, :, 0], [0.1, 0.3, 0.5, 0.7], atol=1e-6)
  np.testing.assert_allclose(g[:, 0, 1], [0.2, 0.3, 0.4, 0.5], atol=1e-6)
  np.testing.assert_allclose(g[2, 3], [0.7, 0.4], atol=1e-6)


@pytest.mark.parametrize('convention', pg.CONVENTIONS)
def test_patches_match_torch_grid_sample(convention):
  torch = pytest.importorskip('torch')
  feat = _features(b=3, h=16, w=16, c=8, seed=2)
  rng = np.random.default_rng(3)
  centres = rng.uniform(-0.05, 1.05, (3, 11, 2)).astype(np.float32)
  half = 0.125 if convention == 'slpt' else rng.uniform(
      0.02, 0.2, (3, 11, 1)).astype(np.float32)
  k = 7
  lo, size = pg.patch_boxes(jnp.asarray(centres), half, convention)
  got = np.asarray(pg.gather_patches(jnp.asarray(feat), lo, size, k,
                                     convention))
  assert got.shape == (3, 11, k, k, 8)
  grid = np.asarray(pg.patch_grid(lo, size, k)).reshape(3, 11 * k, k, 2)
  want = torch.nn.functional.grid_sample(
      torch.from_numpy(feat).permute(0, 3, 1, 2),
      torch.from_numpy(grid * 2 - 1), mode='bilinear', padding_mode='border',
      align_corners=convention == 'slpt')
  want = want.permute(0, 2, 3, 1).reshape(3, 11, k, k, 8).numpy()
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_gradients_reach_features_only():
  feat = jnp.asarray(_features(b=1, h=8, w=8, c=3))
  pts = jnp.asarray(np.random.default_rng(4).uniform(0, 1, (1, 6, 2)),
                    jnp.float32)
  f = lambda fm, p: pg.bilinear_sample(fm, p, 'dslpt').sum()
  g_feat, g_pts = jax.grad(f, argnums=(0, 1))(feat, pts)
  np.testing.assert_array_equal(np.asarray(g_pts), 0)
  # each point spreads weight 1 over its neighbours, once per channel
  np.testing.assert_allclose(float(g_feat.sum()), 6 * 3, rtol=1e-5)


def test_unknown_convention_is_an_error():
  with pytest.raises(ValueError, match='unknown patch convention'):
    pg.patch_boxes(jnp.zeros((1, 1, 2)), 0.1, 'bogus')
