"""Direct regression (paper 003) against independent implementations.

* The ResNet-18 trunk vs transformers' ResNetModel (PyTorch) with one input
  channel, in eval mode with random BatchNorm running statistics: its
  weights are copied onto jaxlm's module tree by a mapping written here,
  and the last hidden state (C5) must agree.
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

pytestmark = pytest.mark.slow


def _hf_resnet18():
  cfg = transformers.ResNetConfig(
      num_channels=1, layer_type='basic', depths=[2, 2, 2, 2],
      hidden_sizes=[64, 128, 256, 512], embedding_size=64)
  torch.manual_seed(18)
  model = transformers.ResNetModel(cfg).eval()
  g = torch.Generator().manual_seed(2)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape,
                                               generator=g))
        m.running_var.copy_(0.5 + torch.rand(m.running_var.shape,
                                             generator=g))
  return model


def _module_name(parts):
  """transformers' module path -> jaxlm's (torchvision names)."""
  if parts[0] == 'embedder':  # embedder.embedder.(convolution|normalization)
    return 'conv1' if parts[2] == 'convolution' else 'bn1'
  # encoder.stages.S.layers.K.shortcut.(convolution|normalization)
  # encoder.stages.S.layers.K.layer.J.(convolution|normalization)
  block = f'layer{int(parts[2]) + 1}_{int(parts[4])}'
  if parts[5] == 'shortcut':
    sub = 'downsample_0' if parts[6] == 'convolution' else 'downsample_1'
  else:
    j = int(parts[6]) + 1
    sub = f'conv{j}' if parts[7] == 'convolution' else f'bn{j}'
  return f'{block}/{sub}'


def _to_jaxlm(state_dict):
  """{'params': ..., 'batch_stats': ...} of ResNetTrunk from a ResNetModel
  state dict; every tensor but num_batches_tracked is used."""
  tree = {'params': {}, 'batch_stats': {}}
  for key, t in state_dict.items():
    parts = key.split('.')
    leaf, a = parts[-1], t.numpy()
    if leaf == 'num_batches_tracked':
      continue
    collection, name = {
        'weight': ('params', 'kernel' if a.ndim == 4 else 'scale'),
        'bias': ('params', 'bias'),
        'running_mean': ('batch_stats', 'mean'),
        'running_var': ('batch_stats', 'var')}[leaf]
    if a.ndim == 4:  # torch (out, in, kh, kw) -> flax (kh, kw, in, out)
      a = a.transpose(2, 3, 1, 0)
    node = tree[collection]
    for p in _module_name(parts[:-1]).split('/'):
      node = node.setdefault(p, {})
    assert name not in node, key
    node[name] = np.ascontiguousarray(a)
  return tree


def test_resnet18_trunk_matches_transformers_resnet():
  hf = _hf_resnet18()
  img = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(
      np.float32)
  x = np.array(preprocess(img, 1))  # (2, 64, 64, 1) in [-1, 1]
  trunk = ResNetTrunk(18, in_channels=1)
  init = jax.eval_shape(trunk.init, jax.random.key(0), x)
  ours = _to_jaxlm(hf.state_dict())
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
