"""The augmentation keeps landmarks on their image content."""

import cv2
import numpy as np
import pytest

from jaxlm import layouts
from jaxlm.data import augment as aug
from jaxlm.data import crop as crop_lib

SIZE, OUT, SIDE = 448, 256, 256.0
CENTRE = (SIZE / 2, SIZE / 2)


def _marked_image(n, rng):
  """Noise with n discs of distinct colours; returns image, centres, colours."""
  image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
  hues = np.linspace(0, 179, n, endpoint=False).astype(np.uint8)
  colours = cv2.cvtColor(np.stack([hues, np.full(n, 255, np.uint8),
                                   np.full(n, 255, np.uint8)], -1)[None],
                         cv2.COLOR_HSV2RGB)[0].astype(int)
  # Points spread over the reference square, at least 14 px apart.
  pts = []
  while len(pts) < n:
    p = rng.uniform(SIZE / 2 - 100, SIZE / 2 + 100, 2)
    if all(np.linalg.norm(p - q) > 14 for q in pts):
      pts.append(p)
  pts = np.round(np.asarray(pts))
  for p, c in zip(pts, colours):
    cv2.circle(image, (int(p[0]), int(p[1])), 6, tuple(int(v) for v in c), -1)
  return image, pts, colours


CASES = {
    'rotation': dict(rotation_std=15.0),
    'scale': dict(scale_std=0.05),
    'shift': dict(shift_std=0.05),
    'flip': dict(flip_prob=1.0),
    'shear': dict(shear_prob=1.0),
    'all_geometry': dict(rotation_std=15.0, scale_std=0.05, shift_std=0.05,
                         flip_prob=0.5, shear_prob=1 / 3),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_landmarks_stay_on_their_marks(case):
  rng = np.random.default_rng(0)
  lay = layouts.get('cofw29')
  image, pts, colours = _marked_image(lay.num_points, rng)
  cfg = aug.AugmentConfig.off(**CASES[case])
  perm = np.asarray(lay.flip_permutation)
  flips = 0
  for trial in range(8):
    out, p, vis, m = aug.augment(np.random.default_rng(trial), cfg, image,
                                 pts, np.ones(len(pts), bool), CENTRE, SIDE,
                                 OUT, perm)
    assert out.shape == (OUT, OUT, 3)
    np.testing.assert_allclose(p, crop_lib.apply_affine(m, pts)[
        perm if m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0] < 0 else slice(None)])
    flipped = np.linalg.det(m[:, :2]) < 0
    flips += flipped
    expected = colours[perm] if flipped else colours
    for j, (x, y) in enumerate(p):
      xi, yi = int(round(x)), int(round(y))
      if 2 <= xi < OUT - 2 and 2 <= yi < OUT - 2:
        got = out[yi, xi].astype(int)
        assert np.abs(got - expected[j]).max() <= 12, (case, trial, j)
  if case == 'flip':
    assert flips == 8


def test_no_augmentation_is_the_reference_crop():
  cfg = aug.AugmentConfig.off()
  m, flipped = aug.sample_geometry(np.random.default_rng(0), cfg, CENTRE,
                                   SIDE, OUT)
  assert not flipped
  np.testing.assert_allclose(m, aug.reference_affine(CENTRE, SIDE, OUT))
  corners = np.array([[SIZE / 2 - SIDE / 2] * 2, [SIZE / 2 + SIDE / 2] * 2])
  np.testing.assert_allclose(crop_lib.apply_affine(m, corners), [[0, 0], [OUT, OUT]])


def test_geometry_parameters_follow_the_official_ranges():
  cfg = aug.AugmentConfig()
  rng = np.random.default_rng(1)
  angles, scales, shifts, shears, flips = [], [], [], [], 0
  for _ in range(3000):
    m, flipped = aug.sample_geometry(rng, cfg, CENTRE, SIDE, OUT)
    a = np.diag([-1.0, 1.0]) @ m[:, :2] if flipped else m[:, :2]
    flips += flipped
    # a = s * [[1, k], [0, 1]] @ R(theta): bottom row is s * (-sin, cos).
    s = np.hypot(a[1, 0], a[1, 1])
    theta = np.degrees(np.arctan2(-a[1, 0], a[1, 1]))
    c, sn = np.cos(np.radians(theta)), np.sin(np.radians(theta))
    shear = (a[0, 0] * c + a[0, 1] * sn) / s  # = 1: no other distortion
    k = (-a[0, 0] * sn + a[0, 1] * c) / s
    np.testing.assert_allclose(shear, 1.0, atol=1e-9)
    angles.append(theta)
    scales.append(OUT / s / (SIDE / 1.2))  # crop side / box side
    shears.append(k)
    centre_src = np.linalg.solve(m[:, :2], np.array([OUT / 2, OUT / 2]) -
                                 m[:, 2])
    shifts.append((centre_src - CENTRE) / (SIDE / 1.2))
  angles, scales, shifts, shears = map(np.asarray,
                                       (angles, scales, shifts, shears))
  assert np.abs(angles).max() <= 30 + 1e-6 and 12 < angles.std() < 16
  assert scales.min() >= 1.15 - 1e-9 and scales.max() <= 1.25 + 1e-9
  assert abs(scales.mean() - 1.2) < 0.005
  assert np.abs(shifts).max() <= 0.05 + 1e-9
  assert np.abs(shears).max() <= 0.2 + 1e-9
  assert 0.28 < np.mean(np.abs(shears) > 1e-12) < 0.39  # p = 1/3
  assert 0.45 < flips / 3000 < 0.55


def test_photometric_changes_pixels_not_geometry():
  rng = np.random.default_rng(2)
  image = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
  grey = aug.photometric(rng, aug.AugmentConfig.off(grey_prob=1.0), image)
  assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
  cfg = aug.AugmentConfig.off(colour_prob=1.0)
  for seed in range(5):
    out = aug.photometric(np.random.default_rng(seed), cfg, image)
    # brightness/contrast: one affine map of intensities for all pixels
    x, y = image.reshape(-1).astype(float), out.reshape(-1).astype(float)
    inside = (y > 0) & (y < 255)
    a, b = np.polyfit(x[inside], y[inside], 1)
    assert 0.3 - 0.01 <= a <= 1.3 + 0.01 and abs(b) <= 30 + 1 + 1e-6
  occ = aug.photometric(np.random.default_rng(3),
                        aug.AugmentConfig.off(occlusion_prob=1.0), image)
  changed = (occ != image).any(-1)
  ys, xs = np.nonzero(changed)
  assert changed.sum() > 0
  block = occ[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
  assert (block == block[0, 0]).all()  # one filled rectangle


def test_gamma_blur_and_noise_follow_their_definitions():
  rng = np.random.default_rng(4)
  image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
  # gamma: one monotone power curve 255 (x / 255)^g with g in [0.8, 1.2]
  out = aug.photometric(np.random.default_rng(0),
                        aug.AugmentConfig.off(gamma_prob=1.0), image)
  x = image.reshape(-1).astype(float) / 255
  y = out.reshape(-1).astype(float) / 255
  mid = (x > 0.1) & (x < 0.9)
  g = np.median(np.log(y[mid]) / np.log(x[mid]))
  assert 0.8 - 1e-3 <= g <= 1.2 + 1e-3
  np.testing.assert_allclose(y, x**g, atol=1 / 255 + 1e-3)
  # blur: a Gaussian filter with an odd kernel of 5-19 px (cv2's sigma)
  out = aug.photometric(np.random.default_rng(1),
                        aug.AugmentConfig.off(blur_prob=1.0), image)
  errs = {k: np.abs(cv2.GaussianBlur(image, (k, k), 0).astype(int) -
                    out.astype(int)).max() for k in range(5, 20, 2)}
  assert min(errs.values()) == 0
  assert out.std() < image.std()
  # noise: zero-mean, std within the range in grey levels (clipping aside)
  flat = np.full((64, 64, 3), 128, np.uint8)
  out = aug.photometric(np.random.default_rng(2),
                        aug.AugmentConfig.off(noise_prob=1.0), flat)
  d = out.astype(float) - 128
  assert abs(d.mean()) < 0.5 and 10 - 0.3 <= d.std() <= 14.2 + 0.3


def test_extras_off_leave_the_random_stream_of_existing_configs():
  """Probabilities of 0 draw nothing: with every transform off the
  photometric step consumes exactly the three coin flips it consumed before
  gamma, blur and noise existed (grey, colour, occlusion)."""
  image = np.random.default_rng(5).integers(0, 256, (32, 32, 3), np.uint8)
  cfg = aug.AugmentConfig.off()
  assert cfg.gamma_prob == cfg.blur_prob == cfg.noise_prob == 0
  r1 = np.random.default_rng(7)
  out = aug.photometric(r1, cfg, image)
  np.testing.assert_array_equal(out, image)
  r2 = np.random.default_rng(7)
  r2.random(3)
  assert r1.random() == r2.random()
