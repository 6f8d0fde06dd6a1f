"""Direct regression (paper 003) against independent implementations.

* The ResNet-18 trunk vs transformers' ResNetModel (PyTorch) with one input
  channel, in eval mode with random BatchNorm running statistics: its
  weights are copied onto jaxlm's module tree by the mapping of
  resnet_vs_reference_test.py, and the last hidden state (C5) must agree.
* The greyscale conversion vs OpenCV's RGB -> GRAY (which rounds to uint8).
* `weighted_mse` vs torch.nn.MSELoss, and by hand with weights 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from jaxlm.losses import weighted_mse  # noqa: E402
from jaxlm.models.direct_regression import preprocess, to_grey  # noqa: E402
from jaxlm.models.resnet import ResNetTrunk  # noqa: E402
from resnet_vs_reference_test import random_bn_resnet, to_jaxlm  # noqa: E402

pytestmark = pytest.mark.slow


def _hf_resnet18():
  return random_bn_resnet(transformers.ResNetConfig(
      num_channels=1, layer_type='basic', depths=[2, 2, 2, 2],
      hidden_sizes=[64, 128, 256, 512], embedding_size=64), 18, 2)


def test_resnet18_trunk_matches_transformers_resnet():
  hf = _hf_resnet18()
  img = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(
      np.float32)
  x = np.array(preprocess(img, 1))  # (2, 64, 64, 1) in [-1, 1]
  trunk = ResNetTrunk(18, in_channels=1)
  init = jax.eval_shape(trunk.init, jax.random.key(0), x)
  ours = to_jaxlm(hf.state_dict())
  # the mapping fills exactly jaxlm's tree, shape for shape
  assert (jax.tree_util.tree_structure(init) ==
          jax.tree_util.tree_structure(ours))
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_equal(
      a.shape, np.shape(b)), init, ours)
  got = np.asarray(trunk.apply(ours, x))
  with torch.no_grad():
    want = hf(torch.from_numpy(x.transpose(0, 3, 1, 2))).last_hidden_state
  want = want.numpy().transpose(0, 2, 3, 1)
  assert got.shape == want.shape == (2, 2, 2, 512)
  scale = np.abs(want).max()
  assert scale > 0.5
  assert np.abs(got - want).max() <= 1e-4 * scale


def test_grey_matches_opencv():
  import cv2
  rng = np.random.default_rng(3)
  img = rng.integers(0, 256, (2, 17, 23, 3), dtype=np.uint8)
  img[0, 0, :3] = [[255, 255, 255], [0, 0, 0], [255, 0, 0]]
  got = np.asarray(to_grey(jnp.asarray(img)))
  assert got.shape == (2, 17, 23, 1) and got.dtype == np.float32
  want = np.stack([cv2.cvtColor(i, cv2.COLOR_RGB2GRAY) for i in img])
  err = np.abs(got[..., 0] - want.astype(np.float32))
  assert err.max() <= 0.5 + 1e-3  # OpenCV rounds to uint8
  assert err.max() > 0.05  # ours does not
  np.testing.assert_allclose(got[0, 0, :3, 0], [255, 0, 0.299 * 255],
                             atol=1e-3)
  # normalisation (x / 255 - 0.5) / 0.5 of the grey image
  np.testing.assert_allclose(np.asarray(preprocess(jnp.asarray(img), 1)),
                             got / 127.5 - 1.0, atol=1e-6)


def test_weighted_mse_matches_torch_mse_loss():
  rng = np.random.default_rng(4)
  pred = rng.uniform(0, 1, (3, 68, 2)).astype(np.float32)
  target = rng.uniform(0, 1, (3, 68, 2)).astype(np.float32)
  want = torch.nn.MSELoss()(torch.from_numpy(pred), torch.from_numpy(target))
  got = weighted_mse(jnp.asarray(pred), jnp.asarray(target),
                     jnp.ones((3, 68)))
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


def test_weighted_mse_by_hand_with_zero_weights():
  target = jnp.zeros((2, 2, 2))
  pred = jnp.array([[[0.1, 0.2], [9.0, 9.0]],    # point 1 has weight 0
                    [[0.0, 0.3], [0.4, 0.0]]])
  weight = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  # (0.01 + 0.04 + 0.09 + 0.16) / (3 points * 2 coordinates)
  assert float(weighted_mse(pred, target, weight)) == pytest.approx(
      0.30 / 6, rel=1e-6)
  assert float(weighted_mse(pred, target, jnp.zeros((2, 2)))) == 0.0
