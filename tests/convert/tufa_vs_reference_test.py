"""Official TUFA checkpoint conversion vs a PyTorch reference of Face_prompt.

The reference runs the official model's computation with independent
pieces: transformers' ViT layers for the DINO encoder (its position
embedding resized the DINO way, interpolate(scale_factor=(g + 0.1) / 14)),
`torch.nn.MultiheadAttention` in sequence-first layout driven as the official
pre-norm decoder drives it (q = k = LN(t) + E, v = LN(t); q = LN(t) + E,
k = F + P, v = F; ReLU FFN; one final LayerNorm on every layer's output), the
structure prompts of Eq. 6.1-6.3 computed in torch, and the Linear-ReLU-
Linear head. Its weights are saved under the official key names
(`Encoder.*`, `Decoder.Decoder.*`, `Linear.*`) with prompt files holding
`init` and `offset` in 256-pixel units, converted with `jaxlm convert tufa`
and evaluated through `jaxlm.predict.Predictor`, prompting with
`offset / 256` as the official test script does.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from dino_vs_reference_test import hf_vit, images, original_names  # noqa: E402

from jaxlm import cli  # noqa: E402
from jaxlm.models import vit  # noqa: E402
from jaxlm.inference import Predictor  # noqa: E402

nn = torch.nn
D, H, FF, LAYERS = 384, 6, 1536, 2


class RefLayer(nn.Module):
  """The official pre-norm decoder layer (TUFA; SLPT's inherent relation
  layer) on torch.nn.MultiheadAttention."""

  def __init__(self, d=D, heads=H, ff=FF):
    super().__init__()
    self.self_attn = nn.MultiheadAttention(d, heads)
    self.multihead_attn = nn.MultiheadAttention(d, heads)
    self.linear1, self.linear2 = nn.Linear(d, ff), nn.Linear(ff, d)
    self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d), nn.LayerNorm(d),
                                          nn.LayerNorm(d))

  def forward(self, tgt, memory, pos, query_pos):  # (S, B, D) layouts
    y = self.norm1(tgt)
    tgt = tgt + self.self_attn(y + query_pos, y + query_pos, y)[0]
    y = self.norm2(tgt)
    tgt = tgt + self.multihead_attn(y + query_pos, memory + pos, memory)[0]
    y = self.norm3(tgt)
    return tgt + self.linear2(torch.relu(self.linear1(y)))


class RefDecoder(nn.Module):

  def __init__(self):
    super().__init__()
    self.layers = nn.ModuleList([RefLayer() for _ in range(LAYERS)])
    self.norm = nn.LayerNorm(D)

  def forward(self, memory, pos, query):
    memory, query = memory.permute(1, 0, 2), query.permute(1, 0, 2)
    pos = pos[:, None].expand(-1, memory.shape[1], -1)
    t, outs = torch.zeros_like(query), []
    for layer in self.layers:
      t = layer(t, memory, pos, query)
      outs.append(self.norm(t))
    return torch.stack(outs).permute(0, 2, 1, 3)  # (L, B, N, D)


def structure_prompts(anchors, width=D, temperature=10000.0):
  c = anchors * 2.0 - 1.0
  n = width // 2
  dim_t = temperature ** (2 * (torch.arange(n) // 2) / n)
  def enc(v):
    v = v[..., None] / dim_t
    return torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()),
                       dim=-1).flatten(-2)
  return torch.cat([enc(c[..., 1]), enc(c[..., 0])], dim=-1)


class RefTUFA(nn.Module):

  def __init__(self, vit_model):
    super().__init__()
    self.vit = vit_model
    self.decoder = RefDecoder()
    self.head = nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 2))
    with torch.no_grad():
      for p in list(self.decoder.parameters()) + list(self.head.parameters()):
        p.add_(0.05 * torch.randn_like(p))

  def encode(self, x):
    emb = self.vit.embeddings
    b = x.shape[0]
    t = emb.patch_embeddings.projection(x)
    gh, gw = t.shape[-2:]
    t = t.flatten(2).transpose(1, 2)
    pos = emb.position_embeddings
    g0 = int(math.sqrt(pos.shape[1] - 1))
    patch_pos = pos[:, 1:]
    if (gh, gw) != (g0, g0):  # DINO keeps the 224 px embedding as it is
      grid = patch_pos.reshape(1, g0, g0, D).permute(0, 3, 1, 2)
      grid = nn.functional.interpolate(
          grid, scale_factor=((gh + 0.1) / g0, (gw + 0.1) / g0),
          mode='bicubic')
      patch_pos = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, D)
    t = torch.cat([emb.cls_token.expand(b, -1, -1), t], 1)
    t = t + torch.cat([pos[:, :1], patch_pos], 1)
    for layer in self.vit.layers:
      t = layer(t)
    return self.vit.layernorm(t)[:, 1:], patch_pos[0]

  def forward(self, x, anchors):
    feats, pos = self.encode(x)
    query = structure_prompts(anchors).expand(x.shape[0], -1, -1)
    return self.head(self.decoder(feats, pos, query))

  def official_state_dict(self):
    sd = {f'Encoder.{k}': v for k, v in
          original_names(self.vit.state_dict()).items()}
    sd.update({f'Decoder.Decoder.{k}': v
               for k, v in self.decoder.state_dict().items()})
    sd.update({f'Linear.{k}': v for k, v in self.head.state_dict().items()})
    return sd


@pytest.fixture(scope='module')
def reference():
  torch.manual_seed(0)
  return RefTUFA(hf_vit(16, seed=2)).eval()


def _prompt_file(path, n, seed):
  rng = np.random.default_rng(seed)
  init = rng.uniform(60, 200, (n, 2))
  offset = init + rng.normal(0, 3, (n, 2))
  np.savez(path, init=init, offset=offset)
  return offset / 256.0


def _run(ref, img, anchors):
  x = (img / 255.0 - np.array(vit.IMAGENET_MEAN)) / np.array(vit.IMAGENET_STD)
  with torch.no_grad():
    return ref(torch.from_numpy(x.transpose(0, 3, 1, 2)).float(),
               torch.from_numpy(np.asarray(anchors, np.float32))).numpy()


def test_official_checkpoint_reproduces_the_reference(reference, tmp_path):
  src = tmp_path / 'Face_prompt.pth'
  torch.save(reference.official_state_dict(), src)
  offsets = {n: _prompt_file(tmp_path / f'shape_{n}.npz', n, n)
             for n in (98, 68, 29)}
  dst = tmp_path / 'tufa'
  assert cli.main([
      'convert', 'tufa', '--src', str(src), '--dst', str(dst), '--prompts',
      f'wflw={tmp_path / "shape_98.npz"}', f'w300={tmp_path / "shape_68.npz"}',
      f'cofw={tmp_path / "shape_29.npz"}']) == 0
  pred = Predictor(dst)
  assert [d for d, _ in pred.datasets] == ['cofw', 'w300', 'wflw']
  assert pred.config.model.decoder_layers == LAYERS
  img = images(256)
  for name, n in (('wflw', 98), ('cofw', 29)):
    prompts = pred.prompts(name)
    np.testing.assert_allclose(prompts, offsets[n], atol=1e-6)
    want = _run(reference, img, offsets[n])
    got = np.asarray(pred.model.apply(pred.variables, img, prompts))
    assert got.shape == want.shape == (LAYERS, 2, n, 2)
    np.testing.assert_allclose(got, want, atol=1e-4)
  # At the pretraining resolution the embedding is used unresized.
  img = images(224, seed=1)
  got = np.asarray(pred.model.apply(pred.variables, img, offsets[68]))
  np.testing.assert_allclose(got, _run(reference, img, offsets[68]),
                             atol=1e-4)


def test_bad_prompt_file_and_wrong_checkpoint(reference, tmp_path, capsys):
  src = tmp_path / 'Face_prompt.pth'
  torch.save(reference.official_state_dict(), src)
  np.savez(tmp_path / 'bad.npz', init=np.zeros((98, 2)))
  dst = tmp_path / 'out'
  assert cli.main(['convert', 'tufa', '--src', str(src), '--dst', str(dst),
                   '--prompts', f'wflw={tmp_path / "bad.npz"}']) == 2
  assert 'missing array(s) offset' in capsys.readouterr().err
  assert not dst.exists()
  dino = tmp_path / 'dino.pth'
  torch.save(original_names(reference.vit.state_dict()), dino)
  _prompt_file(tmp_path / 'ok.npz', 98, 0)
  assert cli.main(['convert', 'tufa', '--src', str(dino), '--dst', str(dst),
                   '--prompts', f'wflw={tmp_path / "ok.npz"}']) == 2
  assert 'not an official TUFA (Face_prompt) checkpoint' in \
      capsys.readouterr().err
  assert not dst.exists()


@pytest.mark.slow
@pytest.mark.integration
def test_jaxlm_eval_runs_a_converted_checkpoint(reference, tmp_path, capsys):
  """convert tufa -> jaxlm eval --checkpoint on built (fake) WFLW/300W/COFW."""
  import json
  from jaxlm.data.formats import fake
  src = tmp_path / 'Face_prompt.pth'
  torch.save(reference.official_state_dict(), src)
  for n in (98, 68, 29):
    _prompt_file(tmp_path / f'shape_{n}.npz', n, n)
  dst = tmp_path / 'tufa'
  assert cli.main([
      'convert', 'tufa', '--src', str(src), '--dst', str(dst), '--prompts',
      f'wflw={tmp_path / "shape_98.npz"}', f'w300={tmp_path / "shape_68.npz"}',
      f'cofw={tmp_path / "shape_29.npz"}']) == 0
  raw, data = tmp_path / 'raw', tmp_path / 'tfds'
  fake.write_wflw(raw / 'wflw', dict(train=2, test=2))
  fake.write_300w(raw / 'w300', n=1, private=False, masked=False)
  fake.write_cofw(raw / 'cofw', dict(train=2, test=2), cofw68=False)
  for name, folder in (('wflw', 'wflw'), ('w300', 'w300'),
                       ('cofw/cofw29', 'cofw')):
    assert cli.main(['build', name, '--manual_dir', str(raw / folder),
                     '--data_dir', str(data), '--no-progress']) == 0
  assert cli.main(['eval', '--checkpoint', str(dst), '--no-progress',
                   f'--config.data.data_dir={data}',
                   '--config.eval.batch_size=2']) == 0
  for name, count in (('wflw', 2), ('w300_full', 3), ('cofw', 2)):
    res = json.loads((dst / 'eval' / f'{name}.json').read_text())
    assert res['count'] == count and not res['zero_shot']
