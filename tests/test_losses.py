import numpy as np
import jax.numpy as jnp
import pytest

from jaxlm.losses import weighted_l1


def test_l1_by_hand_over_layers():
  target = jnp.zeros((1, 2, 2))
  pred = jnp.stack([jnp.array([[[1.0, 0.0], [0.0, 0.0]]]),   # sum |.| = 1
                    jnp.array([[[1.0, 1.0], [1.0, 1.0]]])])  # sum |.| = 4
  # layer means: 1/4 and 4/4 -> average 0.625
  assert float(weighted_l1(pred, target, jnp.ones((1, 2)))) == pytest.approx(0.625)


def test_zero_weight_points_do_not_count():
  target = jnp.zeros((1, 2, 2))
  pred = jnp.array([[[[0.5, 0.5], [100.0, -100.0]]]])
  w = jnp.array([[1.0, 0.0]])
  assert float(weighted_l1(pred, target, w)) == pytest.approx(0.5)
  assert float(weighted_l1(pred, target, jnp.zeros((1, 2)))) == 0.0


def test_slpt_normalized_l2_by_hand():
  from jaxlm.losses import normalized_l2
  target = jnp.array([[[0.0, 0.0], [0.5, 0.0], [0.25, 0.5]]])  # iod = 0.5
  pred = target[None, None] + jnp.array(
      [[[[0.03, 0.04], [0.0, 0.0], [0.0, 0.1]]]])  # errors 0.05, 0, 0.1
  stack = jnp.concatenate([pred, pred * 0 + target, pred], axis=0)  # 3 stages
  stack = jnp.concatenate([stack, stack], axis=1)  # 2 identical layers
  loss, stages = normalized_l2(stack, target, jnp.ones((1, 3)), (0, 1))
  per = (0.05 + 0 + 0.1) / 3 / 0.5
  np.testing.assert_allclose(stages, [per, 0, per], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(loss, 0.2 * per + 0.5 * per, rtol=1e-4)
  # a point with weight 0 is left out of the mean
  _, stages = normalized_l2(stack, target, jnp.array([[1.0, 1.0, 0.0]]),
                            (0, 1))
  np.testing.assert_allclose(stages[0], 0.05 / 2 / 0.5, rtol=1e-4)


def test_dslpt_gaussian_nll_matches_scipy():
  from scipy import stats
  from jaxlm.losses import gaussian_nll
  rng = np.random.default_rng(0)
  s, l, b, n = 3, 2, 2, 4
  offset = rng.uniform(0, 1, (s, l, b, n, 2)).astype(np.float32)
  var = rng.uniform(0.05, 0.9, (s, l, b, n, 2)).astype(np.float32)
  lo = rng.uniform(0, 0.5, (s, b, n, 2)).astype(np.float32)
  size = rng.uniform(0.1, 0.3, (s, b, n, 2)).astype(np.float32)
  target = rng.uniform(0, 1, (b, n, 2)).astype(np.float32)
  g = (target - lo) / size
  nll = -np.log(stats.norm.pdf(g[:, None], offset, np.sqrt(var)) + 1e-9)
  want = nll.mean(axis=(1, 2, 3, 4))
  loss, stages = gaussian_nll(offset, var, lo, size, target,
                              np.ones((b, n), np.float32))
  np.testing.assert_allclose(stages, want, rtol=1e-4)
  np.testing.assert_allclose(loss, (np.array([0.2, 0.3, 0.5]) * want).sum(),
                             rtol=1e-4)


def test_isotropic_gaussian_nll_is_twice_torchs_with_a_shared_variance():
  torch = pytest.importorskip('torch')
  from jaxlm.losses import isotropic_gaussian_nll
  rng = np.random.default_rng(0)
  mean = rng.normal(size=(3, 5, 2)).astype(np.float32)
  target = rng.normal(size=(3, 5, 2)).astype(np.float32)
  log_var = rng.normal(size=(3, 5)).astype(np.float32)
  log_var[0, 0] = -30.0  # below the 1e-6 clamp: both clamp it
  var = np.repeat(np.exp(log_var)[..., None], 2, axis=-1)
  ref = torch.nn.functional.gaussian_nll_loss(
      torch.from_numpy(mean), torch.from_numpy(target), torch.from_numpy(var),
      eps=1e-6, reduction='mean')
  ours = isotropic_gaussian_nll(mean, target, log_var, np.ones((3, 5)))
  np.testing.assert_allclose(float(ours), 2 * float(ref), rtol=1e-5)
  # weight 0 removes a landmark: the mean over the kept ones only
  w = np.ones((3, 5), np.float32)
  w[1, 2:] = 0
  keep = w.astype(bool)
  ref = torch.nn.functional.gaussian_nll_loss(
      torch.from_numpy(mean[keep]), torch.from_numpy(target[keep]),
      torch.from_numpy(var[keep]), eps=1e-6, reduction='mean')
  ours = isotropic_gaussian_nll(mean, target, log_var, w)
  np.testing.assert_allclose(float(ours), 2 * float(ref), rtol=1e-5)


def test_isotropic_gaussian_nll_by_hand():
  from jaxlm.losses import isotropic_gaussian_nll
  # error (0.3, 0.4): |e|^2 = 0.25; sigma^2 = e^0 = 1 -> 0 + 0.125
  # second point exact, sigma^2 = e^-2 -> -2
  mean = jnp.array([[[0.3, 0.4], [1.0, 1.0]]])
  target = jnp.array([[[0.0, 0.0], [1.0, 1.0]]])
  out = isotropic_gaussian_nll(mean, target, jnp.array([[0.0, -2.0]]),
                               jnp.ones((1, 2)))
  assert float(out) == pytest.approx((0.125 - 2.0) / 2)
