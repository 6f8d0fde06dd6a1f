"""The One-Euro filter against hand-computed steps and its two limits."""

import numpy as np
import pytest

from jaxlm.one_euro import OneEuroFilter, filter_track


def test_first_steps_by_hand():
  f = OneEuroFilter(rate=10.0, min_cutoff=1.0, beta=0.5, d_cutoff=2.0)
  assert f(np.array([1.0])) == 1.0
  # frame 2: dx = 10, d̂x = α(2) 10, cut-off 1 + 0.5 |d̂x|
  a_d = 1 / (1 + 10 / (2 * np.pi * 2.0))
  cutoff = 1.0 + 0.5 * a_d * 10.0
  a = 1 / (1 + 10 / (2 * np.pi * cutoff))
  np.testing.assert_allclose(f(np.array([2.0])), 1.0 + a)


def test_rest_is_smoothed_and_fast_motion_followed():
  rng = np.random.default_rng(0)
  t = np.arange(300) / 30.0
  noise = rng.normal(0, 1.0, (300, 2))
  still = filter_track(noise, rate=30, min_cutoff=0.5, beta=0.0)
  assert np.abs(np.diff(still[50:], axis=0)).mean() < 0.2 * np.abs(
      np.diff(noise[50:], axis=0)).mean()
  ramp = np.stack([200 * t, 0 * t], -1)  # 200 units / s
  slow = filter_track(ramp, rate=30, min_cutoff=0.5, beta=0.0)
  fast = filter_track(ramp, rate=30, min_cutoff=0.5, beta=1.0)
  lag = lambda y: np.abs(y[-1, 0] - ramp[-1, 0])
  assert lag(fast) < 0.1 * lag(slow)


def test_shape_change_and_bad_settings_are_errors():
  f = OneEuroFilter()
  f(np.zeros((3, 2)))
  with pytest.raises(ValueError, match='shape'):
    f(np.zeros((4, 2)))
  with pytest.raises(ValueError, match='min_cutoff'):
    OneEuroFilter(min_cutoff=0)
