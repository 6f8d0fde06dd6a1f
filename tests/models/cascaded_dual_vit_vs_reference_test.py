"""Parity of the heatmap cascade (LensMaster / CD-ViT, paper 000) with
independent PyTorch references written here from the published behaviour:
torch primitives (`nn.MultiheadAttention(batch_first=True)`, `nn.LayerNorm`,
`nn.Conv2d`, `nn.BatchNorm2d`, `nn.PReLU`, `F.softmax`, `F.max_pool2d`,
`F.smooth_l1_loss`) and an AWing written from its formula. Our parameters
(random) are copied into the torch modules; BatchNorm runs on random
running statistics (inference) and on batch statistics (training)."""

import numpy as np
import pytest

torch = pytest.importorskip('torch')
nn_t = torch.nn
F = torch.nn.functional

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.models import heatmap
from jaxlm.models.cascaded_dual_vit import CascadedDualViT
from jaxlm.models.coord_conv import CoordConv
from jaxlm.models.dual_vit import DualViTBlock
from jaxlm.models.heading_net import HeadingNet

RNG = np.random.default_rng(0)


def _t(a):
  return torch.from_numpy(np.array(a, np.float32))


# ---- torch references, written from the description ----------------------

class TorchDoubleConv(nn_t.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv1 = nn_t.Conv2d(cin, cout, 3, padding=1, bias=False)
    self.bn1 = nn_t.BatchNorm2d(cout)
    self.conv2 = nn_t.Conv2d(cout, cout, 3, padding=1, bias=False)
    self.bn2 = nn_t.BatchNorm2d(cout)
    self.shortcut = (None if cin == cout else
                     nn_t.Conv2d(cin, cout, 3, padding=1, bias=False))

  def forward(self, x):
    y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
    return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class TorchLayer(nn_t.Module):
  def __init__(self, d, heads):
    super().__init__()
    self.norm1, self.norm2 = nn_t.LayerNorm(d), nn_t.LayerNorm(d)
    self.attn = nn_t.MultiheadAttention(d, heads, batch_first=True)
    self.fc1, self.fc2 = nn_t.Linear(d, d), nn_t.Linear(d, d)

  def forward(self, t):
    y = self.norm1(t)
    t = t + self.attn(y, y, y)[0]
    return t + self.fc2(F.gelu(self.fc1(self.norm2(t))))


class TorchDual(nn_t.Module):
  """NCHW. Spatial tokens: patches; channel tokens: embedded channels."""

  def __init__(self, c, s, heads=4, p=2):
    super().__init__()
    d, g = c // 2 * p * p, s // p
    self.p, self.c = p, c
    self.spatial_embed = nn_t.Conv2d(c, d, p, stride=p)
    self.channel_embed = nn_t.Conv2d(c, d, p, stride=p)
    self.spatial = TorchLayer(d, heads)
    self.channel = TorchLayer(g * g, heads)
    self.fuse = TorchDoubleConv(c, c)

  def unpatch(self, tokens_bhwd):
    b, g, _, _ = tokens_bhwd.shape
    p, c2 = self.p, self.c // 2
    x = tokens_bhwd.reshape(b, g, g, p, p, c2)  # (dy, dx, c), c fastest
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c2, g * p, g * p)

  def forward(self, x):
    e = self.spatial_embed(x)  # (B, D, g, g)
    b, d, g, _ = e.shape
    t = self.spatial(e.flatten(2).transpose(1, 2))  # (B, g*g, D)
    spatial = self.unpatch(t.reshape(b, g, g, d))
    t = self.channel(self.channel_embed(x).flatten(2))  # (B, D, g*g)
    channel = self.unpatch(t.transpose(1, 2).reshape(b, g, g, d))
    return self.fuse(torch.cat([channel, spatial], 1))


class TorchCoordConv(nn_t.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv = nn_t.Conv2d(cin + 3, cout, 3, padding=1)

  def forward(self, x):
    b, _, h, w = x.shape
    row = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
    col = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
    r = torch.sqrt(row**2 + col**2)
    return self.conv(torch.cat([x, row, col, r / r.max()], 1))


class TorchCascade(nn_t.Module):
  def __init__(self, c, s, n, stages, blocks):
    super().__init__()
    self.stages = nn_t.ModuleList(nn_t.Sequential(*[
        m for _ in range(blocks) for m in (TorchCoordConv(c, c),
                                           TorchDual(c, s))])
                                  for _ in range(stages))
    self.merges = nn_t.ModuleList(TorchDoubleConv(2 * c, c)
                                  for _ in range(stages - 1))
    self.heads = nn_t.ModuleList(nn_t.Conv2d(c, n, 1) for _ in range(stages))

  def forward(self, f):
    out, h = [], None
    for i, stage in enumerate(self.stages):
      x = f if i == 0 else self.merges[i - 1](torch.cat([f, h], 1))
      h = stage(x)
      out.append(self.heads[i](h))
    return out


# ---- copying our parameters into torch ------------------------------------

def _conv(m, p):
  m.weight.data = _t(np.transpose(p['kernel'], (3, 2, 0, 1)))
  if m.bias is not None:
    m.bias.data = _t(p['bias'])


def _dense(m, p):
  m.weight.data, m.bias.data = _t(np.asarray(p['kernel']).T), _t(p['bias'])


def _ln(m, p):
  m.weight.data, m.bias.data = _t(p['scale']), _t(p['bias'])


def _bn(m, p, s):
  m.weight.data, m.bias.data = _t(p['scale']), _t(p['bias'])
  m.running_mean.data, m.running_var.data = _t(s['mean']), _t(s['var'])


def _layer(m, p):
  _ln(m.norm1, p['norm1'])
  _ln(m.norm2, p['norm2'])
  a = p['attn']
  m.attn.in_proj_weight.data = _t(np.concatenate(
      [np.asarray(a[k]['kernel']).T for k in ('query', 'key', 'value')]))
  m.attn.in_proj_bias.data = _t(np.concatenate(
      [a[k]['bias'] for k in ('query', 'key', 'value')]))
  _dense(m.attn.out_proj, a['out'])
  _dense(m.fc1, p['fc1'])
  _dense(m.fc2, p['fc2'])


def _double(m, p, s):
  _conv(m.conv1, p['conv1'])
  _conv(m.conv2, p['conv2'])
  _bn(m.bn1, p['bn1'], s['bn1'])
  _bn(m.bn2, p['bn2'], s['bn2'])
  if m.shortcut is not None:
    _conv(m.shortcut, p['shortcut'])


def _dual(m, p, s):
  _conv(m.spatial_embed, p['spatial_embed'])
  _conv(m.channel_embed, p['channel_embed'])
  _layer(m.spatial, p['spatial'])
  _layer(m.channel, p['channel'])
  _double(m.fuse, p['fuse'], s['fuse'])


def _random_stats(stats):
  """Random running statistics (var > 0) in place of the initial 0 / 1."""
  return jax.tree_util.tree_map_with_path(
      lambda path, x: (RNG.uniform(0.5, 2.0, x.shape) if path[-1].key == 'var'
                       else RNG.normal(0, 0.5, x.shape)).astype(np.float32),
      stats)


def _nhwc(x):
  return np.transpose(x.detach().numpy(), (0, 2, 3, 1))


def _inputs(b, s, c):
  return RNG.normal(0, 1, (b, s, s, c)).astype(np.float32)


def test_dual_block_matches_torch_inference_and_training():
  c, s = 16, 8
  x = _inputs(2, s, c)
  ours = DualViTBlock(num_heads=4, patch=2)
  v = ours.init(jax.random.key(1), x)
  v = dict(params=v['params'], batch_stats=_random_stats(v['batch_stats']))
  ref = TorchDual(c, s)
  _dual(ref, v['params'], v['batch_stats'])
  ref.eval()
  with torch.no_grad():
    want = _nhwc(ref(_t(x).permute(0, 3, 1, 2)))
  got = np.asarray(ours.apply(v, x))
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
  ref.train()  # batch statistics (BN's training mode)
  with torch.no_grad():
    want = _nhwc(ref(_t(x).permute(0, 3, 1, 2)))
  got, _ = ours.apply(v, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=1e-5)


def test_coord_conv_matches_torch():
  x = _inputs(2, 6, 5)
  ours = CoordConv(7)
  v = ours.init(jax.random.key(2), x)
  ref = TorchCoordConv(5, 7)
  _conv(ref.conv, v['params']['conv'])
  with torch.no_grad():
    want = _nhwc(ref(_t(x).permute(0, 3, 1, 2)))
  np.testing.assert_allclose(np.asarray(ours.apply(v, x)), want, atol=1e-5)


def test_cascade_matches_torch_stage_by_stage():
  c, s, n, stages, blocks = 16, 8, 5, 3, 2
  x = _inputs(2, s, c)
  ours = CascadedDualViT(n, stages=stages, blocks_per_stage=blocks)
  v = ours.init(jax.random.key(3), x)
  p, st = v['params'], _random_stats(v['batch_stats'])
  ref = TorchCascade(c, s, n, stages, blocks)
  for i in range(stages):
    for j in range(blocks):
      _conv(ref.stages[i][2 * j].conv, p[f'stage_{i}_coord_{j}']['conv'])
      _dual(ref.stages[i][2 * j + 1], p[f'stage_{i}_dual_{j}'],
            st[f'stage_{i}_dual_{j}'])
    _conv(ref.heads[i], p[f'head_{i}'])
    if i:
      _double(ref.merges[i - 1], p[f'merge_{i}'], st[f'merge_{i}'])
  ref.eval()
  with torch.no_grad():
    want = [_nhwc(o) for o in ref(_t(x).permute(0, 3, 1, 2))]
  got = np.asarray(ours.apply(dict(params=p, batch_stats=st), x))
  assert got.shape == (stages, 2, s, s, n)
  for i in range(stages):
    np.testing.assert_allclose(got[i], want[i], atol=5e-5, rtol=1e-4)


class TorchIRSE(nn_t.Module):
  def __init__(self, cin, d, stride):
    super().__init__()
    self.bn1, self.bn2 = nn_t.BatchNorm2d(cin), nn_t.BatchNorm2d(d)
    self.conv1 = nn_t.Conv2d(cin, d, 3, 1, 1, bias=False)
    self.prelu = nn_t.PReLU(d)
    self.conv2 = nn_t.Conv2d(d, d, 3, stride, 1, bias=False)
    self.se1 = nn_t.Conv2d(d, max(d // 16, 1), 1, bias=False)
    self.se2 = nn_t.Conv2d(max(d // 16, 1), d, 1, bias=False)
    self.stride, self.same = stride, cin == d
    if not self.same:
      self.shortcut = nn_t.Conv2d(cin, d, 1, stride, bias=False)
      self.shortcut_bn = nn_t.BatchNorm2d(d)

  @staticmethod
  def ws(conv, x):  # output x sqrt(2 / fan_in)
    k = conv.weight
    return conv(x) * (2.0 / (k.shape[1] * k.shape[2] * k.shape[3]))**0.5

  def forward(self, x):
    y = self.prelu(self.ws(self.conv1, self.bn1(x)))
    y = self.bn2(self.ws(self.conv2, y))
    s = F.adaptive_avg_pool2d(y, 1)
    y = y * torch.sigmoid(self.ws(self.se2, F.relu(self.ws(self.se1, s))))
    short = (F.max_pool2d(x, 1, self.stride) if self.same else
             self.shortcut_bn(self.ws(self.shortcut, x)))
    return y + short


def test_heading_net_matches_torch():
  widths = (32, 64, 48)
  x = _inputs(2, 32, 3)
  ours = HeadingNet(widths)
  v = ours.init(jax.random.key(4), x)
  p, st = v['params'], _random_stats(v['batch_stats'])
  units, cin = [], 3
  for g, d in enumerate(widths):
    for u in range(3):
      m = TorchIRSE(cin, d, 2 if u == 0 else 1)
      q, s = p[f'group{g}_unit{u}'], st[f'group{g}_unit{u}']
      _bn(m.bn1, q['bn1'], s['bn1'])
      _bn(m.bn2, q['bn2'], s['bn2'])
      for name in ('conv1', 'conv2', 'se1', 'se2'):
        _conv(getattr(m, name), q[name.replace('se', 'se_fc')])
      m.prelu.weight.data = _t(q['prelu']['alpha'])
      if cin != d:
        _conv(m.shortcut, q['shortcut'])
        _bn(m.shortcut_bn, q['shortcut_bn'], s['shortcut_bn'])
      units.append(m)
      cin = d
  ref = nn_t.Sequential(*units).eval()
  with torch.no_grad():
    want = _nhwc(ref(_t(x).permute(0, 3, 1, 2)))
  got = np.asarray(ours.apply(dict(params=p, batch_stats=st), x))
  assert got.shape == (2, 4, 4, 48)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


# ---- heatmap pieces and losses -----------------------------------------------

def torch_awing(pred, target, omega=14.0, theta=0.5, epsilon=1.0, alpha=2.1):
  """Wang et al.'s Adaptive Wing loss, from the paper's Eq. 6-7."""
  delta = (pred - target).abs()
  a = alpha - target
  big_a = (omega * (1 / (1 + (theta / epsilon)**a)) * a *
           (theta / epsilon)**(a - 1) * (1 / epsilon))
  big_c = theta * big_a - omega * torch.log(1 + (theta / epsilon)**a)
  return torch.where(delta < theta,
                     omega * torch.log(1 + (delta / epsilon)**a),
                     big_a * delta - big_c)


def test_adaptive_wing_matches_formula_in_torch_with_gradients():
  target = RNG.uniform(0, 1, (3, 4, 6, 6)).astype(np.float32)
  pred = (target + RNG.normal(0, 0.6, target.shape)).astype(np.float32)
  pt = _t(pred).requires_grad_()
  want = torch_awing(pt, _t(target))
  want.sum().backward()
  got, grad = jax.value_and_grad(
      lambda p: losses.adaptive_wing(p, target).sum())(pred)
  np.testing.assert_allclose(float(got), want.sum().item(), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grad), pt.grad.numpy(), rtol=1e-4,
                             atol=1e-5)
  # both branches are exercised
  d = np.abs(pred - target)
  assert (d < 0.5).any() and (d >= 0.5).any()


def test_weight_map_is_torch_max_pool():
  target = RNG.uniform(0, 0.3, (2, 3, 7, 5)).astype(np.float32)
  want = 10 * (F.max_pool2d(_t(target), 3, 1, 1) >= 0.2).float() + 1
  np.testing.assert_array_equal(
      np.asarray(losses.heatmap_weight_map(target)), want.numpy())


@pytest.mark.parametrize('beta', [1.0, 0.001, 0.0])
def test_smooth_l1_matches_torch(beta):
  a = RNG.uniform(0, 1, (4, 9, 2)).astype(np.float32)
  b = RNG.uniform(0, 1, (4, 9, 2)).astype(np.float32)
  want = F.smooth_l1_loss(_t(a), _t(b), beta=beta).item()
  np.testing.assert_allclose(float(losses.smooth_l1(a, b, beta).mean()), want,
                             rtol=1e-6)


def test_public_code_call_trains_with_beta_one():
  """`F.smooth_l1_loss(pred, target, 0.001)` (the public code's call) puts
  0.001 into `size_average`: the loss is the beta = 1 loss."""
  a = RNG.uniform(0, 1, (4, 9, 2)).astype(np.float32)
  b = RNG.uniform(0, 1, (4, 9, 2)).astype(np.float32)
  import warnings  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    official = F.smooth_l1_loss(_t(a), _t(b), 0.001).item()
  np.testing.assert_allclose(official, float(losses.smooth_l1(a, b, 1.0)
                                             .mean()), rtol=1e-6)
  assert abs(official - float(losses.smooth_l1(a, b, 0.001).mean())) > 1e-2


def test_soft_argmax_matches_torch_softmax():
  logits = RNG.normal(0, 3, (2, 5, 6, 4)).astype(np.float32)  # (B, H, W, N)
  cells, probs = heatmap.soft_argmax(logits)
  p = F.softmax(_t(logits).permute(0, 3, 1, 2).reshape(2, 4, -1), -1)
  p = p.reshape(2, 4, 5, 6)
  np.testing.assert_allclose(np.asarray(probs), p.numpy(), atol=1e-6)
  cols = torch.arange(6.).view(1, 1, 1, 6)
  rows = torch.arange(5.).view(1, 1, 5, 1)
  want = torch.stack([(p * cols).sum((2, 3)), (p * rows).sum((2, 3))], -1)
  np.testing.assert_allclose(np.asarray(cells), want.numpy(), atol=1e-5)


def test_stage_weights():
  np.testing.assert_allclose(np.asarray(losses.cascade_stage_weights(8)),
                             [1.2**-(7 - i) for i in range(8)], rtol=1e-6)
  assert float(losses.cascade_stage_weights(8)[-1]) == 1.0


def test_awing_is_continuous_at_theta():
  y = jnp.asarray([0.0, 0.3, 1.0])
  lo = losses.adaptive_wing(y + 0.5 - 1e-6, y)
  hi = losses.adaptive_wing(y + 0.5, y)
  np.testing.assert_allclose(np.asarray(lo), np.asarray(hi), atol=1e-4)
