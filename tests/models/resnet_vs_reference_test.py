"""jaxlm's ResNet-34/50 trunk vs transformers' ResNetModel (PyTorch).

transformers' ResNet (torchvision v1.5 layout: stride in the 3x3 of a
Bottleneck, 1x1 stride-2 shortcut with BatchNorm) is an independent
implementation. Its weights, with random BatchNorm running statistics, are
mapped by name onto jaxlm's module tree; the four stage outputs C2..C5 must
agree after jaxlm's 1x1 lateral convolutions (applied to transformers'
stages in NumPy).
"""

import jax
import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from jaxlm.checkpoints import unflatten  # noqa: E402
from jaxlm.convert.rules import conv  # noqa: E402
from jaxlm.models import vit  # noqa: E402
from jaxlm.models.resnet import ResNet  # noqa: E402

pytestmark = pytest.mark.slow


def random_bn_resnet(cfg, seed: int, bn_seed: int):
  """transformers' ResNetModel of `cfg` in eval mode, its BatchNorm scales,
  biases and running statistics random (so that a wrong mapping shows)."""
  torch.manual_seed(seed)
  model = transformers.ResNetModel(cfg).eval()
  g = torch.Generator().manual_seed(bn_seed)
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


def _hf(depth):
  basic = depth == 34
  cfg = transformers.ResNetConfig(
      layer_type='basic' if basic else 'bottleneck', depths=[3, 4, 6, 3],
      hidden_sizes=[64, 128, 256, 512] if basic else [256, 512, 1024, 2048],
      embedding_size=64)
  return random_bn_resnet(cfg, depth, 1)


def to_jaxlm(sd):
  """{'params', 'batch_stats'} of jaxlm's torchvision-named ResNet modules
  from a ResNetModel state dict."""
  flat = {}
  for key, t in sd.items():
    a = t.numpy()
    parts = key.split('.')
    if parts[-1] == 'num_batches_tracked':
      continue
    if parts[0] == 'embedder':
      mod = 'conv1' if parts[2] == 'convolution' else 'bn1'
    else:  # encoder.stages.S.layers.K.(shortcut|layer.J).(convolution|norm.)
      s, k = int(parts[2]), int(parts[4])
      block = f'layer{s + 1}_{k}'
      if parts[5] == 'shortcut':
        sub = 'downsample_0' if parts[6] == 'convolution' else 'downsample_1'
      else:
        j = int(parts[6]) + 1
        sub = f'conv{j}' if parts[7] == 'convolution' else f'bn{j}'
      mod = f'{block}/{sub}'
    leaf = parts[-1]
    if leaf == 'weight' and a.ndim == 4:
      flat[f'params/{mod}/kernel'] = conv(a)
    elif leaf == 'weight':
      flat[f'params/{mod}/scale'] = a
    elif leaf == 'bias':
      flat[f'params/{mod}/bias'] = a
    else:
      flat[f'batch_stats/{mod}/{ {"running_mean": "mean", "running_var": "var"}[leaf]}'] = a
  return unflatten(flat)


@pytest.mark.parametrize('depth', [34, 50])
def test_stages_match_transformers_resnet(depth):
  hf = _hf(depth)
  img = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(
      np.float32)
  model = ResNet(depth, out_dim=32)
  init = model.init(jax.random.key(0), img)
  ours = to_jaxlm(hf.state_dict())
  rng = np.random.default_rng(1)
  for k in range(4):  # O(1) laterals (their init is N(0, 0.001))
    c = init['params'][f'lateral_{k}']['kernel'].shape[2]
    ours['params'][f'lateral_{k}'] = dict(
        kernel=rng.normal(0, c**-0.5, (1, 1, c, 8)).astype(np.float32),
        bias=rng.normal(0, 0.1, 8).astype(np.float32))
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_equal(
      np.shape(a), np.shape(b)), init['params'], ours['params'])
  got = model.apply(ours, img)
  x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
  with torch.no_grad():
    out = hf(torch.from_numpy(x.transpose(0, 3, 1, 2)).float(),
             output_hidden_states=True)
  stages = [h.numpy().transpose(0, 2, 3, 1) for h in out.hidden_states[1:]]
  assert [s.shape[1] for s in stages] == [16, 8, 4, 2]
  for k, (g, s) in enumerate(zip(got, stages)):
    lat = ours['params'][f'lateral_{k}']
    want = s @ np.asarray(lat['kernel'])[0, 0] + np.asarray(lat['bias'])
    assert np.abs(want).max() > 0.5
    np.testing.assert_allclose(np.asarray(g), want, atol=1e-4 * max(
        1.0, np.abs(want).max()), err_msg=f'C{k + 2}')
