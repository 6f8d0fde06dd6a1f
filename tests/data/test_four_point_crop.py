"""The FFHQ-style 4-point alignment (Chandran et al., CVPR 2023, §3.1).

Expected values are worked out by hand or from the FFHQ quad formula written
out here, not from jaxlm.data.crop. Points are (x, y) image pixels, y down;
points are ordered e_l, e_r, m_l, m_r (image-left / image-right of an
upright face).
"""

import numpy as np
import pytest

from jaxlm import layouts
from jaxlm.data import crop
from jaxlm.data.synthetic import SyntheticFaces
from jaxlm.errors import JaxlmError

# Upright frontal face: eye-to-eye (40, 0), eye midpoint (120, 100), mouth
# midpoint (120, 150), eye-to-mouth (0, 50).
FACE = np.array([[100., 100.], [140., 100.], [105., 150.], [135., 150.]])


def _rotation(deg):
  t = np.deg2rad(deg)
  return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _ffhq_quad(pts):
  """FFHQ's quad from its formula: corners c-x-y, c-x+y, c+x+y, c+x-y."""
  e_l, e_r, m_l, m_r = pts
  eye_avg = (e_l + e_r) / 2
  eye_to_eye = e_r - e_l
  eye_to_mouth = (m_l + m_r) / 2 - eye_avg
  x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
  x /= np.hypot(*x)
  x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
  y = np.flipud(x) * [-1, 1]
  c = eye_avg + eye_to_mouth * 0.1
  return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def test_upright_face_by_hand():
  # side = max(4 * 40, 3.6 * 50) = 180; centre = (120, 100 + 0.1 * 50)
  # = (120, 105); x axis (40, 0) - rot90(0, 50) = (40, 0) - (-50, 0) = (90, 0):
  # no rotation. Scale 256 / 180 = 64 / 45.
  out = 256
  m = crop.four_point_affine(FACE, out)
  s = 64 / 45
  np.testing.assert_allclose(m[:, :2], [[s, 0], [0, s]], atol=1e-12)
  np.testing.assert_allclose(crop.apply_affine(m, [[120, 105]])[0],
                             [128, 128], atol=1e-9)
  # Eye midpoint is 5 px above the centre: 128 - 5 * 64 / 45 = 128 - 64 / 9.
  np.testing.assert_allclose(crop.apply_affine(m, [[120, 100]])[0],
                             [128, 128 - 64 / 9], atol=1e-9)
  # The crop side (x from 30 to 210 at the centre row) spans out_size.
  a, b = crop.apply_affine(m, [[30, 105], [210, 105]])
  np.testing.assert_allclose(b - a, [out, 0], atol=1e-9)
  # Same square as the box rule on box (30, 15, 210, 195) with factor 1.
  np.testing.assert_allclose(
      m, crop.square_crop_affine((30, 15, 210, 195), out, 1.0), atol=1e-9)


def test_mouth_distance_or_eye_distance_sets_the_side():
  # Eye-dominated: e2e = 60, e2m = 30 -> side max(240, 108) = 240.
  pts = np.array([[70., 100.], [130., 100.], [90., 130.], [110., 130.]])
  m = crop.four_point_affine(pts, 120)
  assert np.linalg.det(m[:, :2]) == pytest.approx((120 / 240) ** 2)
  np.testing.assert_allclose(crop.apply_affine(m, [[100, 103]])[0],
                             [60, 60], atol=1e-9)


@pytest.mark.parametrize('deg', [30, -75, 135, 180])
def test_rotation_equivariance(deg):
  r = _rotation(deg)
  pivot = np.array([37., -12.])
  rotated = (FACE - pivot) @ r.T + pivot
  m0 = crop.four_point_affine(FACE, 256)
  m1 = crop.four_point_affine(rotated, 256)
  # The crop undoes the rotation: the mapped points are identical.
  np.testing.assert_allclose(crop.apply_affine(m1, rotated),
                             crop.apply_affine(m0, FACE), atol=1e-9)
  np.testing.assert_allclose(m1[:, :2] @ r, m0[:, :2], atol=1e-12)


def test_scale_and_translation_equivariance():
  k, t = 2.5, np.array([-300., 41.])
  moved = FACE * k + t
  m0 = crop.four_point_affine(FACE, 192)
  m1 = crop.four_point_affine(moved, 192)
  np.testing.assert_allclose(crop.apply_affine(m1, moved),
                             crop.apply_affine(m0, FACE), atol=1e-9)
  np.testing.assert_allclose(m1[:, :2] * k, m0[:, :2], atol=1e-12)


@pytest.mark.parametrize('pts', [
    FACE,
    # A tilted, asymmetric face where the eye-to-eye term sets the side.
    np.array([[210., 95.], [268., 120.], [205., 150.], [240., 168.]]),
    # A tilted face where the eye-to-mouth term sets the side.
    np.array([[50., 60.], [80., 52.], [66., 130.], [88., 126.]]),
])
def test_matches_the_ffhq_quad(pts):
  out = 224
  m = crop.four_point_affine(pts, out)
  # c-x-y (top-left), c-x+y (bottom-left), c+x+y (bottom-right) and c+x-y
  # (top-right) go to the crop's corners in that order.
  np.testing.assert_allclose(
      crop.apply_affine(m, _ffhq_quad(pts)),
      [[0, 0], [0, out], [out, out], [out, 0]], atol=1e-9)
  # A similarity: equal column norms, orthogonal columns, det > 0.
  a = m[:, :2]
  assert np.linalg.det(a) > 0
  np.testing.assert_allclose(a.T @ a, np.eye(2) * np.linalg.det(a),
                             atol=1e-12)


def test_four_points_picks_layout_indices():
  lm = SyntheticFaces('syn98', 2).landmarks(0)
  p = crop.four_points(lm, 'syn98')
  np.testing.assert_allclose(p, lm[[96, 97, 76, 82]], atol=1e-6)
  assert p[0, 0] < p[1, 0] and p[2, 0] < p[3, 0]  # image-left first
  m = crop.four_point_affine(p, 128)
  image = SyntheticFaces('syn98', 2)[0]['image']
  assert crop.warp(image, m, 128).shape == (128, 128, 3)
  # The aligned face: its eye midpoint is on the crop's vertical centre line.
  eyes = crop.apply_affine(m, p[:2]).mean(0)
  assert abs(eyes[0] - 64) < 64 * 0.1 and eyes[1] < 64


def test_four_points_other_layouts():
  rng = np.random.default_rng(0)
  lm = rng.uniform(0, 100, (68, 2))
  p = crop.four_points(lm, layouts.get('300w68'))  # a Layout works too
  np.testing.assert_allclose(p[0], lm[36:42].mean(0))
  np.testing.assert_allclose(p[1], lm[42:48].mean(0))
  np.testing.assert_allclose(p[2:], lm[[48, 54]])
  for name, want in [('cofw29', [16, 17, 22, 23]),
                     ('aflw19', [7, 10, 15, 17]),
                     ('celeba5', [0, 1, 3, 4])]:
    lm = rng.uniform(0, 100, (layouts.get(name).num_points, 2))
    np.testing.assert_allclose(crop.four_points(lm, name), lm[want])
  batch = rng.uniform(0, 100, (3, 98, 2))
  np.testing.assert_allclose(crop.four_points(batch, 'wflw98'),
                             batch[:, [96, 97, 76, 82]])


def test_four_points_errors():
  with pytest.raises(JaxlmError, match='nosuch'):
    crop.four_points(np.zeros((98, 2)), 'nosuch')
  with pytest.raises(JaxlmError, match='98'):
    crop.four_points(np.zeros((68, 2)), 'wflw98')


def test_degenerate_input_raises():
  with pytest.raises(JaxlmError, match='coincide'):
    crop.four_point_affine(np.full((4, 2), 7.0))
  bad = FACE.copy()
  bad[2, 1] = np.nan
  with pytest.raises(JaxlmError, match='finite'):
    crop.four_point_affine(bad)
  bad[2, 1] = np.inf
  with pytest.raises(JaxlmError, match='finite'):
    crop.four_point_affine(bad)
  with pytest.raises(JaxlmError, match=r'\(4, 2\)'):
    crop.four_point_affine(FACE[:3])
  # Mouth above the eyes with the upright eye order (a mirrored face):
  # eye-to-eye (40, 0) equals rot90 of eye-to-mouth (0, -40), no x axis.
  mirrored = np.array([[100., 100.], [140., 100.], [110., 60.], [130., 60.]])
  with pytest.raises(JaxlmError, match='mirrored'):
    crop.four_point_affine(mirrored)
