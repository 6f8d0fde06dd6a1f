"""Official SLPT / DSLPT checkpoint conversion vs a PyTorch reference.

The reference computes the official models with independent pieces: an
HRNetV2-W18 written with torch's Conv2d / BatchNorm2d (eval mode, random
running statistics) / F.interpolate(bilinear, align_corners=False), laid out
under the official key names (`backbone.stage3.0.fuse_layers.2.0.1.0.weight`,
...); the patches sampled with `torch.nn.functional.grid_sample` (SLPT:
boxes clipped to the image, align_corners=True; DSLPT: fixed-size boxes
shifted inside, align_corners=False; border padding); the patch convolution
`nn.Conv2d(d, d, K)` over (C, y, x) patches; `nn.MultiheadAttention` driven
as the official pre-norm inherent relation layers (the TUFA test's
`RefLayer`); the heads and the
coarse-to-fine loop (DSLPT: h' = h * clip(12 max v, 0.5, 0.7)). Its state
dict is saved under the official keys (with DataParallel's `module.` prefix
for DSLPT), converted with `jaxlm convert slpt|dslpt` and run through the
loaded checkpoint.
"""

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from tufa_vs_reference_test import RefLayer  # noqa: E402

from jaxlm import cli  # noqa: E402
from jaxlm.models import vit  # noqa: E402
from jaxlm.inference import Predictor  # noqa: E402

nn = torch.nn
F = torch.nn.functional
D, HEADS, FF, LAYERS, K, N = 256, 8, 1024, 2, 7, 98
WIDTHS = (18, 36, 72, 144)


def _bn(c):
  return nn.BatchNorm2d(c)


class RefBasic(nn.Module):

  def __init__(self, c):
    super().__init__()
    self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
    self.bn1 = _bn(c)
    self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
    self.bn2 = _bn(c)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    return F.relu(self.bn2(self.conv2(y)) + x)


class RefBottleneck(nn.Module):

  def __init__(self, cin, planes):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
    self.bn1 = _bn(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = _bn(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = _bn(planes * 4)
    self.downsample = (nn.Sequential(nn.Conv2d(cin, planes * 4, 1,
                                               bias=False), _bn(planes * 4))
                       if cin != planes * 4 else None)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = F.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    return F.relu(y + (self.downsample(x) if self.downsample else x))


class RefModule(nn.Module):
  """One HighResolutionModule: 4 BasicBlocks per branch, then fusion."""

  def __init__(self, nb):
    super().__init__()
    w = WIDTHS[:nb]
    self.branches = nn.ModuleList(
        [nn.Sequential(*[RefBasic(w[i]) for _ in range(4)])
         for i in range(nb)])
    fuse = []
    for i in range(nb):
      row = []
      for j in range(nb):
        if j > i:
          row.append(nn.Sequential(nn.Conv2d(w[j], w[i], 1, bias=False),
                                   _bn(w[i])))
        elif j == i:
          row.append(None)
        else:
          steps = []
          for k in range(i - j):
            last = k == i - j - 1
            out = w[i] if last else w[j]
            layers = [nn.Conv2d(w[j], out, 3, 2, 1, bias=False), _bn(out)]
            if not last:
              layers.append(nn.ReLU())
            steps.append(nn.Sequential(*layers))
          row.append(nn.Sequential(*steps))
      fuse.append(nn.ModuleList(row))
    self.fuse_layers = nn.ModuleList(fuse)

  def forward(self, xs):
    xs = [b(x) for b, x in zip(self.branches, xs)]
    out = []
    for i, row in enumerate(self.fuse_layers):
      y = xs[i]
      for j, f in enumerate(row):
        if j > i:
          y = y + F.interpolate(f(xs[j]), size=xs[i].shape[2:],
                                mode='bilinear', align_corners=False)
        elif j < i:
          y = y + f(xs[j])
      out.append(F.relu(y))
    return out


class RefHRNet(nn.Module):

  def __init__(self, modules, lite_head):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
    self.bn1 = _bn(64)
    self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
    self.bn2 = _bn(64)
    self.layer1 = nn.Sequential(RefBottleneck(64, 64),
                                *[RefBottleneck(256, 64) for _ in range(3)])
    self.transition1 = nn.ModuleList([
        nn.Sequential(nn.Conv2d(256, 18, 3, 1, 1, bias=False), _bn(18),
                      nn.ReLU()),
        nn.Sequential(nn.Sequential(nn.Conv2d(256, 36, 3, 2, 1, bias=False),
                                    _bn(36), nn.ReLU()))])
    self.stage2 = nn.Sequential(*[RefModule(2) for _ in range(modules[0])])
    self.transition2 = nn.ModuleList([None, None, nn.Sequential(
        nn.Sequential(nn.Conv2d(36, 72, 3, 2, 1, bias=False), _bn(72),
                      nn.ReLU()))])
    self.stage3 = nn.Sequential(*[RefModule(3) for _ in range(modules[1])])
    self.transition3 = nn.ModuleList([None, None, None, nn.Sequential(
        nn.Sequential(nn.Conv2d(72, 144, 3, 2, 1, bias=False), _bn(144),
                      nn.ReLU()))])
    self.stage4 = nn.Sequential(*[RefModule(4) for _ in range(modules[2])])
    if lite_head:
      self.head = nn.Sequential(nn.Conv2d(270, 270, 1), _bn(270), nn.ReLU(),
                                nn.Conv2d(270, D, 1))
    else:
      self.head = nn.Sequential(nn.Conv2d(270, D, 1))

  def _stage(self, stage, transition, ys):
    xs = [t(ys[-1]) if t is not None else ys[i]
          for i, t in enumerate(transition)]
    for m in stage:
      xs = m(xs)
    return xs

  def forward(self, x):
    x = F.relu(self.bn1(self.conv1(x)))
    x = self.layer1(F.relu(self.bn2(self.conv2(x))))
    ys = [t(x) for t in self.transition1]
    for m in self.stage2:
      ys = m(ys)
    ys = self._stage(self.stage3, self.transition2, ys)
    ys = self._stage(self.stage4, self.transition3, ys)
    up = [F.interpolate(y, size=ys[0].shape[2:], mode='bilinear',
                        align_corners=False) for y in ys[1:]]
    return self.head(torch.cat([ys[0]] + up, 1))


class RefBlock(nn.Module):

  def __init__(self):
    super().__init__()
    self.layers = nn.ModuleList([RefLayer(D, HEADS, FF)
                                 for _ in range(LAYERS)])
    self.norm = nn.LayerNorm(D)


class RefTransformer(nn.Module):

  def __init__(self):
    super().__init__()
    self.structure_encoding = nn.Parameter(torch.randn(1, N, D))
    self.landmark_query = nn.Parameter(torch.randn(1, N, D))
    self.Transformer_block = RefBlock()

  def forward(self, tokens):  # (B, N, D) -> (B, L, N, D)
    b = tokens.shape[0]
    pos = self.structure_encoding.expand(b, -1, -1).permute(1, 0, 2)
    query = self.landmark_query.expand(b, -1, -1).permute(1, 0, 2)
    memory = tokens.permute(1, 0, 2)
    t, outs = torch.zeros_like(query), []
    for layer in self.Transformer_block.layers:
      t = layer(t, memory, pos, query)
      outs.append(self.Transformer_block.norm(t))
    return torch.stack(outs).permute(2, 0, 1, 3)


class RefSLPT(nn.Module):

  def __init__(self, kind):
    super().__init__()
    self.kind = kind
    self.backbone = RefHRNet((1, 1, 1) if kind == 'slpt' else (1, 4, 3),
                             lite_head=kind == 'slpt')
    self.feature_extractor = nn.Conv2d(D, D, K, bias=kind == 'dslpt')
    self.feature_norm = nn.LayerNorm(D)  # in the official model, unused
    self.Transformer = RefTransformer()
    if kind == 'slpt':
      self.out_layer = nn.Linear(D, 2)
    else:
      self.embedding_layer = nn.Linear(D, 2 * D)
      self.out_mean_layer = nn.Linear(2 * D, 2)
      self.out_std_layer = nn.Linear(2 * D, 2)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
      for p in self.parameters():  # convolutions keep torch's init, so
        if p.ndim != 4:  # activations stay O(1) through the deep HRNet
          p.copy_(p + 0.05 * torch.randn(p.shape, generator=g))
      for m in self.modules():
        if isinstance(m, nn.BatchNorm2d):
          m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape,
                                                 generator=g))
          m.running_var.copy_(0.5 + torch.rand(m.running_var.shape,
                                               generator=g))

  def boxes(self, centres, half):
    lo = torch.clamp(centres - half, 0.0, 1.0)
    if self.kind == 'slpt':
      return lo, torch.clamp(centres + half, 0.0, 1.0) - lo
    lo = torch.where(lo > 1 - 2 * half, 1 - 2 * half, lo)
    return lo, 2 * half + 0 * lo

  def patches(self, fmap, lo, size):
    b = lo.shape[0]
    t = torch.linspace(0, 1, K)
    xs = lo[..., 0:1] + size[..., 0:1] * t  # (B, N, K)
    ys = lo[..., 1:2] + size[..., 1:2] * t
    grid = torch.stack([xs[:, :, None, :].expand(-1, -1, K, -1),
                        ys[:, :, :, None].expand(-1, -1, -1, K)], -1)
    out = F.grid_sample(fmap, grid.reshape(b, N * K, K, 2) * 2 - 1,
                        mode='bilinear', padding_mode='border',
                        align_corners=self.kind == 'slpt')  # (B, C, N*K, K)
    out = out.reshape(b, D, N, K, K).permute(0, 2, 1, 3, 4)
    return out.reshape(b * N, D, K, K)

  def forward(self, x, initial):
    fmap = self.backbone(x)
    b = x.shape[0]
    centres = initial.expand(b, -1, -1)
    half = torch.full_like(centres, 0.125)
    outs = []
    for stage in range(3):
      if self.kind == 'slpt':
        half = torch.full_like(centres, (0.125, 0.0625, 0.03125)[stage])
      lo, size = self.boxes(centres, half)
      tokens = self.feature_extractor(self.patches(fmap, lo, size))
      feats = self.Transformer(tokens.reshape(b, N, D))
      if self.kind == 'slpt':
        offset, var = self.out_layer(feats), None
      else:
        h = F.relu(self.embedding_layer(feats))
        offset = self.out_mean_layer(h)
        var = torch.sigmoid(self.out_std_layer(h))
      marks = lo[:, None] + size[:, None] * offset  # (B, L, N, 2)
      outs.append((marks, var))
      centres = marks[:, -1]
      if var is not None:
        half = half * torch.clamp(
            12 * var[:, -1].max(dim=-1, keepdim=True)[0], 0.5, 0.7)
    return outs


def _images(size, seed=0):
  return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)
                                             ).astype(np.float32)


@pytest.mark.parametrize('kind', ['slpt', 'dslpt'])
def test_official_checkpoint_reproduces_the_reference(kind, tmp_path):
  torch.manual_seed(0)
  ref = RefSLPT(kind).eval()
  sd = ref.state_dict()
  if kind == 'dslpt':  # saved from DataParallel
    sd = {f'module.{k}': v for k, v in sd.items()}
  src = tmp_path / f'{kind}.pth'
  torch.save(sd, src)
  rng = np.random.default_rng(1)
  init = rng.uniform(40, 216, (N, 2))
  np.savez(tmp_path / 'init_98.npz', init_face=init.reshape(-1))
  dst = tmp_path / 'run'
  assert cli.main(['convert', kind, '--src', str(src), '--dst', str(dst),
                   '--init', str(tmp_path / 'init_98.npz')]) == 0
  pred = Predictor(dst)
  assert pred.config.model.name == kind
  assert pred.config.model.num_layers == LAYERS
  np.testing.assert_allclose(pred.prompts('wflw'), init / 256, atol=1e-6)
  img = _images(64)  # a 16 x 16 feature map: border clipping is exercised
  x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
  with torch.no_grad():
    want = ref(torch.from_numpy(x.transpose(0, 3, 1, 2)).float(),
               torch.from_numpy(init[None] / 256).float())
  got = pred.model.apply(pred.variables, img, pred.prompts('wflw'))
  for s, (marks, var) in enumerate(want):
    np.testing.assert_allclose(np.asarray(got['landmarks'][s]),
                               marks.numpy().transpose(1, 0, 2, 3),
                               atol=1e-5, err_msg=f"stage {s + 1}")
    if var is not None:
      np.testing.assert_allclose(np.asarray(got['variance'][s]),
                                 var.numpy().transpose(1, 0, 2, 3),
                                 atol=1e-5, err_msg=f"stage {s + 1}")


def test_wrong_files_are_named(tmp_path, capsys):
  torch.manual_seed(0)
  ref = RefSLPT('slpt').eval()
  src = tmp_path / 'slpt.pth'
  torch.save(ref.state_dict(), src)
  np.savez(tmp_path / 'init_68.npz', init_face=np.zeros(136))
  dst = tmp_path / 'run'
  assert cli.main(['convert', 'slpt', '--src', str(src), '--dst', str(dst),
                   '--init', str(tmp_path / 'init_68.npz')]) == 2
  assert '98 landmark queries but the initial shape file has 68' in \
      capsys.readouterr().err
  np.savez(tmp_path / 'init_98.npz', init_face=np.zeros(196))
  assert cli.main(['convert', 'dslpt', '--src', str(src), '--dst', str(dst),
                   '--init', str(tmp_path / 'init_98.npz')]) == 2
  assert 'a SLPT checkpoint but the config is model.name=\'dslpt\'' in \
      capsys.readouterr().err
  assert not dst.exists()
